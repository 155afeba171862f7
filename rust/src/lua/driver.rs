//! The driver's events in and actions out, as Lua tables: `engine:handle(username, event,
//! moment)` (docs/ARCHITECTURE.md, "The driver").

use mlua::{Lua, LuaString, Result, Table, UserData, UserDataMethods, Value};

use super::account::decode_stored;
use super::decode::{decode_login, decode_protocol, grant_user_agent};
use super::encode::{entry_table, plan_table, record_table};
use super::stanza::element_to_stanza;
use super::web::{decode_web_request, response_table};
use super::words::{form_table, note_table, AccountStats};
use crate::account::{CacheEvent, Moment, Part};
use crate::driver::{Action, Event, LogLevel, Question, ReadResult, Reply};
use crate::model::timestamp_from_f64;
use crate::notices::Announcement;
use crate::render::Element;

fn runtime(message: String) -> mlua::Error {
    mlua::Error::runtime(format!("client_management: {message}"))
}

/// A string argument that is not UTF-8 names nothing we store: "".
fn lossless(value: Option<LuaString>) -> String {
    value.and_then(|s| s.to_str().ok().map(|s| s.to_owned())).unwrap_or_default()
}

/// `{ type = "ask", question = … }`: `active_clients` | `client_lines` (`width`) |
/// `manage_form` | `revoke_listed` (`ids`) | `sign_out_others` (`requester`: a stream key, `confirmed`) |
/// `web` (see web::decode_web_request) | `software_stats` | `host_revoke` (`selector`) |
/// `prune` (`dry_run`).
fn decode_question(table: &Table) -> Result<Question> {
    let name: String = table.raw_get("question")?;
    Ok(match name.as_str() {
        "active_clients" => Question::ActiveClients,
        "client_lines" => Question::ClientLines { width: table.raw_get::<Option<usize>>("width")?.unwrap_or(80) },
        "manage_form" => Question::ManageForm,
        "revoke_listed" => {
            let ids: Option<Vec<LuaString>> = table.raw_get("ids")?;
            Question::RevokeListed(ids.unwrap_or_default().into_iter().map(|id| lossless(Some(id))).collect())
        }
        "sign_out_others" => Question::SignOutOthers {
            requester: table.raw_get("requester")?,
            confirmed: table.raw_get::<Option<bool>>("confirmed")?.unwrap_or(false),
        },
        "web" => {
            let (request, view) = decode_web_request(table)?;
            Question::Web { request, view: Box::new(view) }
        }
        "software_stats" => Question::SoftwareStats,
        "host_revoke" => Question::HostRevoke { selector: lossless(table.raw_get("selector")?) },
        "prune" => Question::Prune { dry_run: table.raw_get::<Option<bool>>("dry_run")?.unwrap_or(false) },
        other => return Err(runtime(format!("unknown question '{other}'"))),
    })
}

fn part_named(name: &str) -> Result<Part> {
    [Part::Records, Part::Grants, Part::FastTokens].into_iter().find(|p| p.name() == name).ok_or_else(|| runtime(format!("unknown part '{name}'")))
}

/// `{ type = "login", stream, login }` | `{ type = "ask", question, … }` (see
/// [`decode_question`]) | `{ type = "list", xmlns, xml }` (`xml`: answer with the serialised
/// `<clients>`) | `{ type = "revoke", selector }` | `{ type = "carried_out", complete }` |
/// `{ type = "read", results = { { part, data, error } },
/// roles }` | `{ type = "written", serial, error }` | `{ type = "tick" }` |
/// `{ type = "notices_due" }` | `{ type = "credentials", name }` (mod_tokenauth's event name,
/// or "revoked") | `{ type = "grant_created", grant }` | `{ type = "deleted" }` |
/// `{ type = "store" }`.
pub fn decode_event(table: &Table, moment: &Moment) -> Result<Event> {
    let kind: String = table.raw_get("type")?;
    Ok(match kind.as_str() {
        "login" => Event::Login { stream: table.raw_get("stream")?, login: Box::new(decode_login(&table.raw_get("login")?)?) },
        "read" => {
            let roles: Option<Table> = table.raw_get("roles")?;
            let mut results = Vec::new();
            for result in table.raw_get::<Table>("results")?.sequence_values::<Table>() {
                let result = result?;
                let part: String = result.raw_get("part")?;
                match result.raw_get::<Option<String>>("error")? {
                    Some(error) => results.push(ReadResult::Failed { part: part_named(&part)?, error }),
                    None => results.push(decode_stored(&part, result.raw_get("data")?, roles.as_ref())?),
                }
            }
            Event::Read(results)
        }
        "written" => {
            let serial: u64 = table.raw_get("serial")?;
            let result = match table.raw_get::<Option<String>>("error")? {
                Some(error) => Err(error),
                None => Ok(()),
            };
            Event::Written { serial, result }
        }
        "ask" => Event::Ask(decode_question(table)?),
        "revoke" => Event::Revoke { selector: lossless(table.raw_get("selector")?) },
        "list" => {
            let as_xml = table.raw_get::<Option<bool>>("xml")?.unwrap_or(false);
            Event::List { protocol: decode_protocol(&table.raw_get("xmlns")?)?, as_xml }
        }
        "carried_out" => Event::CarriedOut { complete: table.raw_get("complete")? },
        "tick" => Event::Tick,
        "notices_due" => Event::NoticesDue,
        "credentials" => {
            let name: String = table.raw_get("name")?;
            Event::Credentials(CacheEvent::from_name(&name).ok_or_else(|| runtime(format!("unknown event '{name}'")))?)
        }
        "grant_created" => {
            let grant: Table = table.raw_get("grant")?;
            let agent = grant_user_agent(&grant).cleaned();
            let created = grant.raw_get::<Option<f64>>("created").ok().flatten().and_then(timestamp_from_f64);
            let at = created.or_else(|| timestamp_from_f64(moment.now)).unwrap_or_default();
            Event::GrantCreated(Announcement { software: agent.software, device: agent.device, at })
        }
        "deleted" => Event::AccountDeleted,
        "store" => Event::StoreNow,
        other => return Err(runtime(format!("unknown event '{other}'"))),
    })
}

/// A list reply's `<clients>` tree, for a stream whose filters read stanzas.
struct Listing(Element);

impl UserData for Listing {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `listing:stanza(stanza_mt)` → the `<clients>` util.stanza object.
        methods.add_method("stanza", |lua, this, stanza_mt: Table| element_to_stanza(lua, &this.0, &stanza_mt));
    }
}

/// Each action as `{ type, … }`: `read` (`parts`), `write` (`serial`, `changes` = id → record,
/// or `remove` for deleted ones), `timer` / `notice_timer` (`after`), `new_client` (`client`,
/// `stream`), `notify` (`streams`, `text`), `reply` (see [`reply_fields`]), `carry_out`
/// (`plan`, see encode::plan_table), `listing` (`clients`: see [`Listing`]; or `xml`: the
/// serialised `<clients>` as a Lua string), `answer` (`error`), `log` (`level`, `message`).
pub fn actions_table(lua: &Lua, actions: Vec<Action>, remove: &Value) -> Result<Table> {
    let list = lua.create_table_with_capacity(actions.len(), 0)?;
    for (index, action) in actions.into_iter().enumerate() {
        let item = lua.create_table()?;
        match action {
            Action::Read(parts) => {
                item.raw_set("type", "read")?;
                item.raw_set("parts", lua.create_sequence_from(parts.into_iter().map(Part::name))?)?;
            }
            Action::Write { serial, changed, removed } => {
                item.raw_set("type", "write")?;
                item.raw_set("serial", serial)?;
                let changes = lua.create_table_with_capacity(0, changed.len() + removed.len())?;
                for record in &changed {
                    changes.raw_set(record.id.as_str(), record_table(lua, record)?)?;
                }
                for id in &removed {
                    changes.raw_set(id.as_str(), remove.clone())?;
                }
                item.raw_set("changes", changes)?;
            }
            Action::Timer { after } => {
                item.raw_set("type", "timer")?;
                item.raw_set("after", after)?;
            }
            Action::NoticeTimer { after } => {
                item.raw_set("type", "notice_timer")?;
                item.raw_set("after", after)?;
            }
            Action::NewClient { record, stream } => {
                item.raw_set("type", "new_client")?;
                item.raw_set("client", record_table(lua, &record)?)?;
                item.raw_set("stream", stream)?;
            }
            Action::Notify { streams, text } => {
                item.raw_set("type", "notify")?;
                item.raw_set("streams", lua.create_sequence_from(streams)?)?;
                item.raw_set("text", text)?;
            }
            Action::CarryOut(plan) => {
                item.raw_set("type", "carry_out")?;
                item.raw_set("plan", plan_table(lua, &plan)?)?;
            }
            Action::Listing(clients) => {
                item.raw_set("type", "listing")?;
                item.raw_set("clients", Listing(clients))?;
            }
            Action::ListingXml(body) => {
                // The body's Lua string is made once and kept with the cached body: a listing
                // answered from the cache allocates no new copy of it.
                item.raw_set("type", "listing")?;
                item.raw_set("xml", body.attached(|xml| lua.create_string(xml))?)?;
            }
            Action::Answer { error } => {
                item.raw_set("type", "answer")?;
                item.raw_set("error", error)?;
            }
            Action::Reply(reply) => {
                item.raw_set("type", "reply")?;
                reply_fields(lua, &item, reply)?;
            }
            Action::Log { level, message } => {
                item.raw_set("type", "log")?;
                item.raw_set("level", match level {
                    LogLevel::Warn => "warn",
                    LogLevel::Error => "error",
                })?;
                item.raw_set("message", message)?;
            }
        }
        list.raw_seti(index + 1, item)?;
    }
    Ok(list)
}

/// A reply's fields: `clients` (entries in the community module's shape), `lines` and `count`,
/// `form` (util.dataforms' layout), `note` (`level`, `text`), `response` (Prosody's HTTP
/// response), `stats` (one account's tally, for `stats:add`) or `pruned` (`deleted`,
/// `minimised`).
fn reply_fields(lua: &Lua, item: &Table, reply: Reply) -> Result<()> {
    match reply {
        Reply::Clients(entries) => {
            let list = lua.create_table_with_capacity(entries.len(), 0)?;
            for (index, entry) in entries.iter().enumerate() {
                list.raw_seti(index + 1, entry_table(lua, entry)?)?;
            }
            item.raw_set("clients", list)
        }
        Reply::Lines { lines, count } => {
            item.raw_set("lines", lua.create_sequence_from(lines)?)?;
            item.raw_set("count", count)
        }
        Reply::Form(form) => item.raw_set("form", form_table(lua, &form)?),
        Reply::Note(report) => item.raw_set("note", note_table(lua, report.level, &report.text)?),
        Reply::Web(response) => item.raw_set("response", response_table(lua, response)?),
        Reply::Stats(stats) => item.raw_set("stats", AccountStats(Some(stats))),
        Reply::Pruned(outcome) => {
            let pruned = lua.create_table()?;
            pruned.raw_set("deleted", outcome.deleted.len())?;
            pruned.raw_set("minimised", outcome.minimised)?;
            item.raw_set("pruned", pruned)
        }
    }
}
