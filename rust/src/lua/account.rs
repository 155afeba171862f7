//! The account userdata: the core's [`Account`] with the methods the Lua module calls. Each
//! method is one request's worth of work: decode the facts, ask the core, encode the answer.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{LuaString, Result, Table, UserData, UserDataMethods, Value};

use super::decode::{decode_fast_tokens, decode_grant, decode_login, decode_map, decode_moment, decode_record};
use super::encode::{entry_table, login_outcome_table, plan_table, record_table};
use super::stanza::element_to_stanza;
use crate::account::{Account, NotReady, Part, Purpose};
use crate::listing::list_entries;
use crate::model::AccountFacts;
use crate::render::{render_clients, Protocol};
use crate::revocation::{plan_revocation, plan_selection, plan_sign_out_others, Action, RevocationPlan};
use crate::notices::{Announcement, Flush, NoticeGates};
use crate::text::{client_listing, describe_entry, revocation_report, sign_out_question, Report};

/// The notice gates of a module instance, shared by its account handles.
pub type SharedGates = Rc<RefCell<NoticeGates>>;

pub struct AccountHandle {
    pub account: Account,
    username: String,
    gates: SharedGates,
}

fn runtime(message: String) -> mlua::Error {
    mlua::Error::runtime(format!("client_management: {message}"))
}

fn not_ready(reason: NotReady) -> &'static str {
    match reason {
        NotReady::RecordsMissing => "records-missing",
        NotReady::Deleted => "deleted",
    }
}

fn purpose(name: &str) -> Result<Purpose> {
    match name {
        "login" => Ok(Purpose::Login),
        "listing" => Ok(Purpose::Listing),
        "change" => Ok(Purpose::Change),
        other => Err(runtime(format!("unknown purpose '{other}'"))),
    }
}

/// Both reports of a plan from an ad-hoc command: what it did, and what it could not finish.
fn reports(plan: &RevocationPlan, facts: &AccountFacts, closed_others: usize) -> (Report, Report) {
    let entries = list_entries(facts);
    let label = |id: &str| entries.iter().find(|e| e.listed_id() == id).map_or_else(|| id.to_owned(), describe_entry);
    (revocation_report(plan, label, false, closed_others), revocation_report(plan, label, true, closed_others))
}

impl AccountHandle {
    pub fn new(account: Account, username: String, gates: SharedGates) -> Self {
        AccountHandle { account, username, gates }
    }

    /// The facts at `moment`, refusing parts never read: a caller that skipped reading what
    /// `missing` named would otherwise act on nothing.
    fn facts(&mut self, moment: &Table, needs_records: bool) -> Result<&AccountFacts> {
        let moment = decode_moment(moment)?;
        self.ensure_read(needs_records)?;
        Ok(self.account.facts_at(moment))
    }

    fn ensure_read(&self, needs_records: bool) -> Result<()> {
        if self.account.unread().iter().any(|part| *part != Part::Records || needs_records) {
            return Err(runtime("account facts used before they were read".to_owned()));
        }
        Ok(())
    }
}

impl UserData for AccountHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Reading storage -------------------------------------------------------------

        // `account:missing(purpose, now)` → names of the parts to read first.
        methods.add_method("missing", |lua, this, (purpose_name, now): (String, f64)| {
            let parts = this.account.missing(purpose(&purpose_name)?, now);
            lua.create_sequence_from(parts.into_iter().map(Part::name))
        });
        // `account:load(part, stored, roles, now)` → how many stored items were malformed.
        methods.add_method_mut("load", |_, this, (part, stored, roles, now): (String, Option<Table>, Option<Table>, f64)| {
            match part.as_str() {
                "records" => {
                    let (records, skipped) = decode_map(stored, decode_record)?;
                    this.account.load_records(records);
                    Ok(skipped)
                }
                "grants" => {
                    let (grants, skipped) = decode_map(stored, |k, v| decode_grant(k, v, roles.as_ref()))?;
                    this.account.load_grants(grants, now);
                    Ok(skipped)
                }
                "fast_tokens" => {
                    let (tokens, skipped) = decode_fast_tokens(stored)?;
                    this.account.load_fast_tokens(tokens);
                    Ok(skipped)
                }
                other => Err(runtime(format!("unknown part '{other}'"))),
            }
        });
        methods.add_method("records_loaded", |_, this, ()| Ok(this.account.records_loaded()));
        // `account:record(id)` → the record as stored, or nil.
        methods.add_method("record", |lua, this, id: LuaString| {
            let id = id.to_str().map(|s| s.to_owned()).unwrap_or_default();
            this.account.record(&id).map(|record| record_table(lua, record)).transpose()
        });
        methods.add_method_mut("note", |_, this, event: String| {
            let event = crate::account::CacheEvent::from_name(&event).ok_or_else(|| runtime(format!("unknown event '{event}'")))?;
            this.account.note(event);
            Ok(())
        });
        methods.add_method_mut("mark_deleted", |_, this, ()| {
            this.account.mark_deleted();
            Ok(())
        });

        // Logins -------------------------------------------------------------------------

        // `account:record_login(login, moment)` → outcome, or nil and "records-missing" |
        // "deleted".
        methods.add_method_mut("record_login", |lua, this, (login, moment): (Table, Table)| {
            let login = decode_login(&login)?;
            let at = login.at;
            let moment = decode_moment(&moment)?;
            let now = moment.now;
            match this.account.record_login(login, moment) {
                Ok(outcome) => {
                    let (mut notify, mut notice, mut check_in) = (Vec::new(), None, None);
                    if let Some(record) = this.account.record(&outcome.client_id).filter(|_| outcome.announce) {
                        let announcement = Announcement { software: record.user_agent.software.clone(), device: record.user_agent.device.clone(), at };
                        let recipients = this.account.notice_recipients(&outcome.client_id);
                        let interval = this.account.policy().notice_interval;
                        let offer = this.gates.borrow_mut().offer(&this.username, announcement, !recipients.is_empty(), now, interval);
                        if offer.notice.is_some() {
                            notify = recipients;
                        }
                        (notice, check_in) = (offer.notice, offer.check_in);
                    }
                    Ok((Some(login_outcome_table(lua, &outcome, &notify, notice, check_in)?), None))
                }
                Err(reason) => Ok((None, Some(not_ready(reason)))),
            }
        });

        // `account:flush_notices(moment)` → session indices and the summary of the notices held
        // back, and when to flush again; or nil, nil, when to flush; or nothing (no more to say).
        // Without the records, every bound stream hears it.
        methods.add_method_mut("flush_notices", |lua, this, moment: Table| {
            let moment = decode_moment(&moment)?;
            let interval = this.account.policy().notice_interval;
            match this.gates.borrow_mut().flush(&this.username, moment.now, interval) {
                Flush::Done => Ok((None, None, None)),
                Flush::Wait { check_in } => Ok((None, None, Some(check_in))),
                Flush::Summary { text, since, check_in } => {
                    let recipients = this.account.summary_recipients(moment, since);
                    Ok((Some(lua.create_sequence_from(recipients)?), Some(text), Some(check_in)))
                }
            }
        });

        // Storing --------------------------------------------------------------------------

        methods.add_method("has_pending_writes", |_, this, ()| Ok(this.account.has_pending_writes()));
        // `account:take_writes(remove)` → `{ serial, changes = { id → record | remove } }` or
        // nil; `remove` is the store's deletion marker.
        methods.add_method("take_writes", |lua, this, remove: Value| {
            let Some(batch) = this.account.take_writes() else { return Ok(None) };
            let changes = lua.create_table_with_capacity(0, batch.changed.len() + batch.removed.len())?;
            for id in &batch.changed {
                if let Some(record) = this.account.record(id) {
                    changes.raw_set(id.as_str(), record_table(lua, record)?)?;
                }
            }
            for id in &batch.removed {
                changes.raw_set(id.as_str(), remove.clone())?;
            }
            let table = lua.create_table()?;
            table.raw_set("serial", batch.serial)?;
            table.raw_set("changes", changes)?;
            Ok(Some(table))
        });
        methods.add_method_mut("writes_stored", |_, this, serial: u64| {
            this.account.writes_stored(serial);
            Ok(())
        });
        methods.add_method_mut("writes_failed", |_, this, ()| Ok(this.account.writes_failed()));
        methods.add_method("retry_delay", |_, this, ()| Ok(this.account.retry_delay()));

        // Listing ------------------------------------------------------------------------

        // `account:list_stanza(moment, xmlns, stanza_mt)` → `<clients>` stanza.
        methods.add_method_mut("list_stanza", |lua, this, (moment, xmlns, stanza_mt): (Table, LuaString, Table)| {
            let protocol = Protocol::from_namespace(&xmlns.to_str()?).ok_or_else(|| runtime("unknown protocol namespace".to_owned()))?;
            let facts = this.facts(&moment, true)?;
            let reply = render_clients(&list_entries(facts), protocol);
            element_to_stanza(lua, &reply, &stanza_mt)
        });
        // `account:list_xml(moment, xmlns, start_tag)` → the whole reply as serialized XML:
        // `start_tag`, the same `<clients>` as `list_stanza`'s, `</iq>`. For a stream on which no
        // `stanzas/out` filter could read the stanza (issue 16): no Lua tree, and one Lua string
        // (the collector's work grows with what is allocated).
        methods.add_method_mut("list_xml", |lua, this, (moment, xmlns, start_tag): (Table, LuaString, LuaString)| {
            let protocol = Protocol::from_namespace(&xmlns.to_str()?).ok_or_else(|| runtime("unknown protocol namespace".to_owned()))?;
            let facts = this.facts(&moment, true)?;
            let clients = render_clients(&list_entries(facts), protocol).to_xml();
            let start_tag = start_tag.as_bytes();
            let mut reply = Vec::with_capacity(start_tag.len() + clients.len() + 5);
            reply.extend_from_slice(&start_tag);
            reply.extend_from_slice(clients.as_bytes());
            reply.extend_from_slice(b"</iq>");
            lua.create_string(reply)
        });
        // `account:active_clients(moment)` → entries in the community module's shape.
        methods.add_method_mut("active_clients", |lua, this, moment: Table| {
            let facts = this.facts(&moment, true)?;
            let entries = list_entries(facts);
            let list = lua.create_table_with_capacity(entries.len(), 0)?;
            for (index, entry) in entries.iter().enumerate() {
                list.raw_seti(index + 1, entry_table(lua, entry, facts)?)?;
            }
            Ok(list)
        });
        // `account:client_listing(moment, width)` → lines to print, number of clients.
        methods.add_method_mut("client_listing", |lua, this, (moment, width): (Table, usize)| {
            let entries = list_entries(this.facts(&moment, true)?);
            Ok((lua.create_sequence_from(client_listing(&entries, width))?, entries.len()))
        });
        // `account:client_options(moment)` → `{ { value = listed id, label } … }`.
        methods.add_method_mut("client_options", |lua, this, moment: Table| {
            let entries = list_entries(this.facts(&moment, true)?);
            let options = lua.create_table_with_capacity(entries.len(), 0)?;
            for (index, entry) in entries.iter().enumerate() {
                let option = lua.create_table()?;
                option.raw_set("value", entry.listed_id())?;
                option.raw_set("label", describe_entry(entry))?;
                options.raw_seti(index + 1, option)?;
            }
            Ok(options)
        });

        // Revoking -----------------------------------------------------------------------

        // `account:plan_revocation(selector, moment)` → plan (see encode::plan_table). Works
        // without the client records when the selector names a grant.
        methods.add_method_mut("plan_revocation", |lua, this, (selector, moment): (LuaString, Table)| {
            let records_known = this.account.records_loaded();
            let facts = this.facts(&moment, false)?;
            // A selector that is not UTF-8 cannot name anything we store.
            let selector = selector.to_str().map(|s| s.to_owned()).unwrap_or_default();
            plan_table(lua, &plan_revocation(facts, &selector, records_known), None)
        });
        // `account:plan_selection(listed_ids, moment)` → plan with reports.
        methods.add_method_mut("plan_selection", |lua, this, (ids, moment): (Vec<String>, Table)| {
            let facts = this.facts(&moment, true)?;
            let plan = plan_selection(facts, &ids);
            plan_table(lua, &plan, Some(reports(&plan, facts, 0)))
        });
        // `account:plan_sign_out(moment, requester_index)` → plan with reports and `question`,
        // what to confirm.
        methods.add_method_mut("plan_sign_out", |lua, this, (moment, requester): (Table, usize)| {
            let facts = this.facts(&moment, true)?;
            let plan = plan_sign_out_others(facts, requester);
            let closed = plan.actions.iter().filter(|a| matches!(a, Action::CloseSession { .. })).count();
            let table = plan_table(lua, &plan, Some(reports(&plan, facts, closed)))?;
            table.raw_set("question", sign_out_question(&plan, closed))?;
            Ok(table)
        });

        // Retention ------------------------------------------------------------------------

        // `account:prune(moment, dry_run)` → `{ deleted, minimised }`, or nil and a reason.
        methods.add_method_mut("prune", |lua, this, (moment, dry_run): (Table, bool)| {
            let moment = decode_moment(&moment)?;
            this.ensure_read(true)?;
            match this.account.prune(moment, dry_run) {
                Ok(outcome) => {
                    let table = lua.create_table()?;
                    table.raw_set("deleted", outcome.deleted.len())?;
                    table.raw_set("minimised", outcome.minimised)?;
                    Ok((Some(table), None))
                }
                Err(reason) => Ok((None, Some(not_ready(reason)))),
            }
        });
    }
}

/// Facts of one account for host-wide statistics.
pub fn account_facts<'a>(account: &'a mut AccountHandle, moment: &Table) -> Result<&'a AccountFacts> {
    account.facts(moment, true)
}
