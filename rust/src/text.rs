//! What people read: the shell's client listing, descriptions of clients in ad-hoc forms,
//! new-client notices, and reports of what a revocation did.

use crate::listing::Entry;
use crate::model::{bounded_text, format_time, Timestamp};
use crate::revocation::RevocationPlan;
use crate::sanitize::for_people;

/// `YYYY-MM-DD` (UTC); `None` for times no calendar can show.
pub fn format_day(timestamp: Timestamp) -> Option<String> {
    format_time(timestamp, time::macros::format_description!("[year]-[month]-[day]"))
}

/// `YYYY-MM-DD hh:mm` (UTC).
pub fn format_minute(timestamp: Timestamp) -> Option<String> {
    format_time(timestamp, time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]"))
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

// ---------------------------------------------------------------------------------- shell

const CLIENT_COLUMNS: [&str; 6] = ["ID", "Software", "First seen", "Last seen", "Expires", "Authentication"];
/// Columns holding times: days in the table, minutes in blocks.
const TIME_COLUMNS: std::ops::Range<usize> = 2..5;
const SEPARATOR: &str = " | ";

/// `user clients`: a table when every cell fits `width` whole (columns as wide as their
/// widest cell, titles padded by one, as util.human.io pads) and no cell holds a `|` (which
/// could pass for a column separator), otherwise one block per client, so that ids are never
/// cut (admins copy them into revoke_client) and no value can pass for another column or row.
/// Every cell is sanitised, so none spans lines.
pub fn client_listing(entries: &[Entry], width: usize) -> Vec<String> {
    let dash = |text: Option<String>| text.filter(|t| !t.is_empty()).unwrap_or_else(|| "-".to_owned());
    let rows: Vec<[Option<String>; 6]> = entries
        .iter()
        .map(|e| [Some(e.listed_id()), e.software_label(), None, None, None, Some(e.access_summary())])
        .map(|row| row.map(|cell| cell.map(|text| for_people(&text).into_owned())))
        .collect();
    let times: Vec<[Option<Timestamp>; 3]> = entries.iter().map(|e| [e.first_seen, e.last_seen, e.expires]).collect();
    let cell = |row: usize, column: usize, day: bool| -> String {
        if TIME_COLUMNS.contains(&column) {
            let time = times[row][column - TIME_COLUMNS.start];
            dash(time.and_then(if day { format_day } else { format_minute }))
        } else {
            dash(rows[row][column].clone())
        }
    };

    let table: Vec<Vec<String>> = (0..entries.len()).map(|row| (0..6).map(|c| cell(row, c, true)).collect()).collect();
    let columns: Vec<Column> = CLIENT_COLUMNS
        .iter()
        .enumerate()
        .map(|(column, title)| Column::left(title, Width::Fixed(table.iter().map(|row| chars(&row[column])).max().unwrap_or(0))))
        .collect();
    let cells: Vec<Vec<Option<String>>> = table.iter().map(|row| row.iter().cloned().map(Some).collect()).collect();
    let lines = table_lines(&columns, &cells, width as f64);
    let fits = lines.first().is_some_and(|header| chars(header) <= width);
    let forgeable = table.iter().flatten().any(|text| text.contains('|'));
    if fits && !forgeable {
        return lines;
    }
    let mut lines = Vec::new();
    for row in 0..entries.len() {
        if row > 0 {
            lines.push(String::new());
        }
        lines.push(cell(row, 0, false));
        for (column, title) in CLIENT_COLUMNS.iter().enumerate().skip(1) {
            lines.push(format!("  {:<15} {}", format!("{title}:"), cell(row, column, false)));
        }
    }
    lines
}

/// How wide a column of a shell table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// At least this wide, and never narrower than its title and one space.
    Fixed(usize),
    /// What the fixed columns leave of the line.
    Fill,
}

/// A column of a shell table: its title, width, alignment and what an empty cell shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub title: &'static str,
    pub width: Width,
    pub right: bool,
    pub default: &'static str,
}

impl Column {
    pub const fn left(title: &'static str, width: Width) -> Self {
        Self { title, width, right: false, default: "" }
    }
}

/// Every table of the shell, laid out as Prosody's util.human.io lays out its tables (so that
/// ours look like the rest of prosodyctl's): cells separated by ` | `, padded to their column,
/// cut with `…` when too long; `max_width` is the terminal's width. The first line holds the
/// titles. A cell that is `None` shows the column's default.
pub fn table_lines(columns: &[Column], rows: &[Vec<Option<String>>], max_width: f64) -> Vec<String> {
    let fixed = |column: &Column| match column.width {
        Width::Fixed(width) => Some(width.max(chars(column.title) + 1)),
        Width::Fill => None,
    };
    let fixed_total: usize = columns.iter().filter_map(fixed).sum();
    let fills = columns.iter().filter(|c| fixed(c).is_none()).count().max(1) as f64;
    let free = max_width - (SEPARATOR.len() * columns.len().saturating_sub(1)) as f64 - fixed_total as f64;
    let widths: Vec<i64> = columns.iter().map(|c| fixed(c).map_or_else(|| (free / fills).floor() as i64, |w| w as i64)).collect();
    let fit = |text: &str, column: &Column, width: i64| -> String {
        let length = chars(text) as i64;
        if length < width {
            let pad = " ".repeat((width - length) as usize);
            if column.right { format!("{pad}{text}") } else { format!("{text}{pad}") }
        } else if length > width {
            if width <= 1 {
                "\u{2026}".to_owned()
            } else {
                format!("{}\u{2026}", text.chars().take((width - 1) as usize).collect::<String>())
            }
        } else {
            text.to_owned()
        }
    };
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        cells.zip(columns.iter().zip(&widths)).map(|(text, (column, width))| fit(text, column, *width)).collect::<Vec<_>>().join(SEPARATOR)
    };
    let mut lines = vec![line(&mut columns.iter().map(|c| c.title))];
    for row in rows {
        lines.push(line(&mut row.iter().zip(columns).map(|(cell, column)| cell.as_deref().unwrap_or(column.default))));
    }
    lines
}

/// A cell of `clients stats` (a util.human.io table): sanitised, and a `|` shown as `¦` so that
/// no value passes for a column separator (the table is grouped by name, so it keeps one row
/// per name and version; `clients revoke software/…` takes the name with its `|`).
pub fn stats_cell(text: &str) -> String {
    for_people(text).replace('|', "\u{A6}")
}

// ---------------------------------------------------------------------------------- users

/// "Name Version on Device", as far as the client told (sanitised).
fn software_and_device(software: Option<String>, device: Option<&str>) -> String {
    let mut text = software.map_or_else(|| "Unknown software".to_owned(), |s| for_people(&s).into_owned());
    if let Some(device) = device.map(for_people).filter(|d| !d.is_empty()) {
        text.push_str(" on ");
        text.push_str(&device);
    }
    text
}

/// A client's own words, quoted so that a reader tells them from the server's: sanitised (one
/// line, nothing invisible), with the quotation marks used here turned into plain ones.
fn quoted(text: &str) -> String {
    let clean = for_people(text);
    format!("\u{201C}{}\u{201D}", clean.replace(['\u{201C}', '\u{201D}'], "\""))
}

/// One line about a listed client, for forms and reports: what it is, how it gets in, when
/// it was seen.
pub fn describe_entry(entry: &Entry) -> String {
    let mut ways: Vec<&str> = Vec::new();
    if entry.access.password.is_some() {
        ways.push("password");
    }
    if entry.access.fast {
        ways.push("FAST");
    }
    if entry.access.grant.is_some() {
        ways.push("grant");
    }
    if entry.access.connected {
        ways.push("connected");
    }
    let mut text = format!(
        "{} ({})",
        software_and_device(entry.software_label(), entry.user_agent.device.as_deref()),
        ways.join(", ")
    );
    let times = [("first seen", entry.first_seen), ("last seen", entry.last_seen), ("expires", entry.expires)];
    let times: Vec<String> = times
        .iter()
        .filter_map(|(what, time)| time.and_then(format_day).map(|day| format!("{what} {day}")))
        .collect();
    if !times.is_empty() {
        text.push_str(", ");
        text.push_str(&times.join(", "));
    }
    text
}

/// The message the account's other streams get when a client first gains access. It comes
/// from the server, so what the client says about itself is quoted as its own words, inside
/// one sentence of ours: it can never start a line or a paragraph.
pub fn new_client_notice(software: Option<String>, device: Option<&str>, at: Timestamp) -> String {
    let when = format_minute(at).map(|t| format!(" at {t} UTC")).unwrap_or_default();
    format!(
        "A new client got access to your account{when}. {} If this was not you, revoke it with the \
         \"Manage clients\" command (your server's ad-hoc commands), and change your password.",
        self_description("It", software.as_deref(), device)
    )
}

/// What a client calls itself, in its own words (quoted), as one sentence about `who`.
fn self_description(who: &str, software: Option<&str>, device: Option<&str>) -> String {
    let software = software.filter(|s| !for_people(s).trim().is_empty());
    let device = device.filter(|d| !for_people(d).trim().is_empty());
    match (software, device) {
        (Some(software), Some(device)) => format!("{who} calls itself {} on {}.", quoted(software), quoted(device)),
        (Some(software), None) => format!("{who} calls itself {}.", quoted(software)),
        (None, Some(device)) => format!("{who} does not name its software (Unknown software); its device calls itself {}.", quoted(device)),
        (None, None) => format!("{who} does not name its software (Unknown software)."),
    }
}

/// The summary an account's other streams get for the clients that got access while notices
/// were held: how many, since when, and what the latest calls itself.
pub fn new_clients_summary(count: usize, since: Timestamp, software: Option<&str>, device: Option<&str>) -> String {
    let since = format_minute(since).map(|t| format!(" since {t} UTC")).unwrap_or_default();
    format!(
        "{count} more new client(s) got access to your account{since}. {} If this was not you, revoke \
         them with the \"Manage clients\" command (your server's ad-hoc commands), and change your password.",
        self_description("The latest", software, device)
    )
}

/// How a report reads: `info` when everything asked for was done, `warn` otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub level: &'static str,
    pub text: String,
}

/// What a revocation from an ad-hoc command did, or — when a step failed — what it could not
/// finish: one line per outcome, naming the clients (`label` describes a listed id).
pub fn revocation_report(plan: &RevocationPlan, label: impl Fn(&str) -> String, failed: bool, closed_others: usize) -> Report {
    let names = |ids: &[String], describe: &dyn Fn(&str) -> String| ids.iter().map(|id| describe(id)).collect::<Vec<_>>().join("; ");
    let mut lines = Vec::new();
    if !plan.revoked.is_empty() && failed {
        lines.push(format!("Failed: {} (a storage error stopped part of it; try again later)", names(&plan.revoked, &label)));
    } else if !plan.revoked.is_empty() {
        lines.push(format!("Revoked: {}", names(&plan.revoked, &label)));
    }
    if !plan.password_protected.is_empty() {
        lines.push(format!(
            "Needs a password change: {} (logged in with your password, so it can log in again until you change it)",
            names(&plan.password_protected, &label)
        ));
    }
    if !plan.not_found.is_empty() {
        // What a form names may be anything, and much of it: echo a bounded part.
        const SHOWN: usize = 10;
        let shown: Vec<String> = plan.not_found.iter().take(SHOWN).map(|id| bounded_text(for_people(id).into_owned())).collect();
        let more = plan.not_found.len().saturating_sub(SHOWN);
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        lines.push(format!("Not found: {}{tail}", shown.join("; ")));
    }
    if closed_others > 0 && !failed {
        lines.push(format!("Closed {closed_others} other connection(s)."));
    }
    if lines.is_empty() {
        lines.push("Nothing was revoked.".to_owned());
    }
    let clean = !failed && plan.password_protected.is_empty() && plan.not_found.is_empty();
    Report { level: if clean { "info" } else { "warn" }, text: lines.join("\n") }
}

/// Both reports of a plan from an ad-hoc command, its clients named as `entries` list them:
/// what it did, and what it could not finish.
pub fn plan_reports(plan: &RevocationPlan, entries: &[Entry], closed_others: usize) -> (Report, Report) {
    let label = |id: &str| entries.iter().find(|e| e.listed_id() == id).map_or_else(|| id.to_owned(), describe_entry);
    (revocation_report(plan, label, false, closed_others), revocation_report(plan, label, true, closed_others))
}

/// The question "Sign out all other clients" asks before doing anything.
pub fn sign_out_question(plan: &RevocationPlan, connections: usize) -> String {
    format!(
        "Sign out {} other client(s) and close {connections} other connection(s)",
        plan.revoked.len() + plan.password_protected.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::list_entries;
    use crate::model::{AccountFacts, ClientRecord, Grant, Moment, SessionFact, UserAgent};

    fn facts() -> AccountFacts {
        AccountFacts {
            records: vec![ClientRecord {
                id: "laptop".into(),
                first_seen: Some(1_795_742_465),
                last_seen: Some(1_795_742_525),
                mechanisms: vec![("PLAIN".into(), 1_795_742_525)],
                user_agent: UserAgent {
                    software: Some("Gajim".into()),
                    software_version: Some("1.9".into()),
                    device: Some("Laptop".into()),
                    ..Default::default()
                },
                ..Default::default()
            }],
            grants: vec![Grant { id: "g".into(), created: Some(1_795_742_400.0), ..Default::default() }],
            moment: Moment {
                sessions: vec![SessionFact { index: 1, full_jid: Some("u@h/r".into()), client_id: Some("laptop".into()), grant_id: None }],
                now: 1_795_742_600.0,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(format_day(1_795_742_465).as_deref(), Some("2026-11-27"));
        assert_eq!(format_minute(1_795_742_465).as_deref(), Some("2026-11-27 01:21"));
        assert_eq!(format_day(i64::MAX), None);
    }

    #[test]
    fn a_listing_is_a_table_only_when_it_fits() {
        let facts = facts();
        let entries = list_entries(&facts);
        let table = client_listing(&entries, 200);
        assert_eq!(
            table,
            [
                "ID            | Software  | First seen  | Last seen  | Expires  | Authentication ",
                "grant/g       | -         | 2026-11-27  | -          | -        | grant          ",
                "client/laptop | Gajim 1.9 | 2026-11-27  | 2026-11-27 | -        | password,online",
            ]
        );
        let width = table[0].chars().count();
        assert_eq!(client_listing(&entries, width), table);
        let blocks = client_listing(&entries, width - 1);
        assert_eq!(blocks[0], "grant/g");
        assert_eq!(blocks[6], "");
        assert_eq!(blocks[7], "client/laptop");
        assert_eq!(blocks[9], "  First seen:     2026-11-27 01:21");
        assert_eq!(blocks[12], "  Authentication: password,online");
    }

    #[test]
    fn descriptions_say_what_how_and_when() {
        let facts = facts();
        let entries = list_entries(&facts);
        assert_eq!(
            describe_entry(&entries[1]),
            "Gajim 1.9 on Laptop (password, connected), first seen 2026-11-27, last seen 2026-11-27"
        );
        assert_eq!(describe_entry(&entries[0]), "Unknown software (grant), first seen 2026-11-27");
    }

    #[test]
    fn reports_have_one_line_per_outcome() {
        use crate::revocation::{plan_selection, Outcome};
        let facts = facts();
        let entries = list_entries(&facts);
        let label = |id: &str| entries.iter().find(|e| e.listed_id() == id).map_or_else(|| id.to_owned(), describe_entry);
        let ids = ["grant/g", "client/laptop", "client/gone"].map(String::from);
        let plan = plan_selection(&facts, &ids);
        assert_eq!(plan.outcome, Outcome::PasswordResetRequired);
        let report = revocation_report(&plan, label, false, 0);
        assert_eq!(report.level, "warn");
        let lines: Vec<&str> = report.text.lines().collect();
        assert_eq!(lines.len(), 3, "{}", report.text);
        assert!(lines[0].starts_with("Revoked: Unknown software (grant)"));
        assert!(lines[1].starts_with("Needs a password change: Gajim 1.9 on Laptop"));
        assert_eq!(lines[2], "Not found: client/gone");
        let many: Vec<String> = (0..25).map(|i| format!("client/x{i}")).collect();
        let report = revocation_report(&plan_selection(&facts, &many), label, false, 0);
        assert_eq!(report.text.lines().last(), Some("Not found: client/x0; client/x1; client/x2; client/x3; client/x4; client/x5; client/x6; client/x7; client/x8; client/x9 and 15 more"));
        let failed = revocation_report(&plan, label, true, 0);
        assert!(failed.text.starts_with("Failed: Unknown software (grant)"), "{}", failed.text);
    }

    #[test]
    fn notices_name_the_client_and_the_way_to_revoke_it() {
        let text = new_client_notice(Some("Gajim".into()), Some("Laptop"), 1_795_742_465);
        assert_eq!(
            text,
            "A new client got access to your account at 2026-11-27 01:21 UTC. It calls itself \u{201C}Gajim\u{201D} on \
             \u{201C}Laptop\u{201D}. If this was not you, revoke it with the \"Manage clients\" command (your server's \
             ad-hoc commands), and change your password."
        );
        let unnamed = new_client_notice(None, None, 1_795_742_465);
        assert!(unnamed.contains("UTC. It does not name its software (Unknown software). If this"), "{unnamed}");
    }

    #[test]
    fn a_clients_words_in_a_notice_stay_quoted_on_one_line() {
        let software = "Gajim\u{201D}.\n\nSECURITY NOTICE from localhost:\r\u{2028}your account\u{202E} will be deleted\u{1b}[2J\u{7}";
        let text = new_client_notice(Some(software.into()), Some("\u{85}Phone\u{2029}\u{200B}\u{FEFF}\u{9b}"), 0);
        assert!(!text.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}', '\u{202E}', '\u{1b}', '\u{7}', '\u{200B}', '\u{FEFF}', '\u{9b}']), "{text:?}");
        assert!(text.contains("It calls itself \u{201C}Gajim\".  SECURITY NOTICE from localhost:  your account will be deleted[2J\u{201D} on \u{201C} Phone \u{201D}."), "{text}");
        assert_eq!(text.matches(['\u{201C}', '\u{201D}']).count(), 4, "only our quotation marks: {text}");
    }

    #[test]
    fn a_value_holding_the_separator_turns_the_table_into_blocks() {
        let mut facts = facts();
        facts.records[0].user_agent.device = None;
        facts.records[0].user_agent.software = Some("Conversations | 2026-01-01 | - | password,online\nclient/x".into());
        let entries = list_entries(&facts);
        let lines = client_listing(&entries, 1000);
        assert!(lines.iter().all(|line| !line.contains('\n')));
        assert_eq!(lines[0], "grant/g", "blocks, not a table: {lines:#?}");
        assert!(lines.contains(&"  Software:       Conversations | 2026-01-01 | - | password,online client/x 1.9".to_owned()), "{lines:#?}");
    }
}
