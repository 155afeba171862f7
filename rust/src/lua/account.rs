//! The account userdata: the core's [`Account`] with the methods the Lua module calls. Each
//! method is one request's worth of work: decode the facts, ask the core, encode the answer.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{LuaString, Result, Table, UserData, UserDataMethods};

use super::decode::{decode_fast_tokens, decode_grant, decode_login, decode_map, decode_moment, decode_protocol, decode_record};
use super::encode::{entry_table, login_outcome_table, plan_table};
use super::stanza::{element_to_stanza, reply_xml};
use crate::account::{Account, Moment, NotReady, Part};
use crate::driver::{Driver, ReadResult, Stored};
use crate::listing::list_entries;
use crate::model::AccountFacts;
use crate::render::render_listing;
use crate::forms::client_choices;
use crate::revocation::{plan_revocation, plan_selection, plan_sign_out_others};
use crate::notices::{Announcement, NoticeGates};
use crate::text::{client_listing, plan_reports, sign_out_question};

/// The driver of a module instance, shared by its account handles.
pub type SharedDriver = Rc<RefCell<Driver>>;

/// An account: the one the driver holds in memory, or one read for a host-wide walk and not
/// kept (`detached`) unless it has changes to store.
pub struct AccountHandle {
    detached: Option<Account>,
    username: String,
    driver: SharedDriver,
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

/// The facts at `moment`, refusing parts never read: a caller that skipped reading what
/// `missing` named would otherwise act on nothing.
fn facts_at(account: &mut Account, moment: Moment, needs_records: bool) -> Result<&AccountFacts> {
    ensure_read(account, needs_records)?;
    Ok(account.facts_at(moment))
}

fn ensure_read(account: &Account, needs_records: bool) -> Result<()> {
    if account.unread().iter().any(|part| *part != Part::Records || needs_records) {
        return Err(runtime("account facts used before they were read".to_owned()));
    }
    Ok(())
}

impl AccountHandle {
    /// The account `username` of the driver.
    pub fn held(username: String, driver: SharedDriver) -> Self {
        AccountHandle { detached: None, username, driver }
    }

    /// A fresh account the driver does not keep.
    pub fn detached(driver: SharedDriver) -> Self {
        let account = Account::new(*driver.borrow().policy());
        AccountHandle { detached: Some(account), username: String::new(), driver }
    }

    /// The account `username` as the driver holds it, else a fresh one it does not keep.
    pub fn walking(username: String, driver: SharedDriver) -> Self {
        let in_memory = driver.borrow_mut().cached(&username).is_some();
        let detached = (!in_memory).then(|| Account::new(*driver.borrow().policy()));
        AccountHandle { detached, username, driver }
    }

    /// Runs `f` on the account and the notice gates (the driver is borrowed meanwhile: `f`
    /// must not call back into Lua code that uses it).
    pub fn with<R>(&mut self, f: impl FnOnce(&mut Account, &mut NoticeGates) -> R) -> R {
        let mut driver = self.driver.borrow_mut();
        match &mut self.detached {
            Some(account) => f(account, driver.gates()),
            None => {
                let (account, gates) = driver.account_and_gates(&self.username);
                f(account, gates)
            }
        }
    }

    /// The `<clients>` element of the list in the protocol of `xmlns`, at `moment`.
    fn clients_element(&mut self, moment: &Table, xmlns: &LuaString) -> Result<crate::render::Element> {
        let protocol = decode_protocol(xmlns)?;
        let moment = decode_moment(moment)?;
        self.with(|account, _| facts_at(account, moment, true).map(|facts| render_listing(facts, protocol)))
    }

    /// A detached account with changes to store goes to the driver, which stores them.
    fn adopt_if_pending(&mut self) {
        if self.detached.as_ref().is_some_and(Account::has_pending_writes) {
            let account = self.detached.take().expect("checked above");
            self.driver.borrow_mut().adopt(&self.username, account);
        }
    }
}

impl UserData for AccountHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Reading storage -------------------------------------------------------------

        // `account:missing(purpose, now)` → names of the parts to read first.
        methods.add_method_mut("missing", |lua, this, (purpose_name, now): (String, f64)| {
            let purpose = super::driver::purpose_named(&purpose_name)?;
            let parts = this.with(|account, _| account.missing(purpose, now));
            lua.create_sequence_from(parts.into_iter().map(Part::name))
        });
        // `account:load(part, stored, roles, now)` → how many stored items were malformed.
        methods.add_method_mut("load", |_, this, (part, stored, roles, now): (String, Option<Table>, Option<Table>, f64)| {
            match decode_stored(&part, stored, roles.as_ref())? {
                ReadResult::Read { data, skipped } => {
                    this.with(|account, _| match data {
                        Stored::Records(records) => account.load_records(records),
                        Stored::Grants(grants) => account.load_grants(grants, now),
                        Stored::FastTokens(tokens) => account.load_fast_tokens(tokens),
                    });
                    Ok(skipped)
                }
                ReadResult::Failed { .. } => Ok(0),
            }
        });
        // `account:is_detached()`: read for a host-wide walk, not held by the driver (its reads
        // go through `missing` and `load`).
        methods.add_method("is_detached", |_, this, ()| Ok(this.detached.is_some()));

        // Logins (the module records them through the driver: `engine:handle`) -------------

        // `account:record_login(login, moment)` → outcome, or nil and "records-missing" |
        // "deleted". Changes are not stored by this.
        methods.add_method_mut("record_login", |lua, this, (login, moment): (Table, Table)| {
            let login = decode_login(&login)?;
            let at = login.at;
            let moment = decode_moment(&moment)?;
            let now = moment.now;
            let username = this.username.clone();
            this.with(|account, gates| match account.record_login(login, moment) {
                Ok(outcome) => {
                    let (mut notify, mut notice, mut check_in) = (Vec::new(), None, None);
                    if let Some(record) = account.record(&outcome.client_id).filter(|_| outcome.announce) {
                        let announcement = Announcement { software: record.user_agent.software.clone(), device: record.user_agent.device.clone(), at };
                        let recipients = account.notice_recipients(&outcome.client_id);
                        let interval = account.policy().notice_interval;
                        let offer = gates.offer(&username, announcement, !recipients.is_empty(), now, interval);
                        if offer.notice.is_some() {
                            notify = recipients;
                        }
                        (notice, check_in) = (offer.notice, offer.check_in);
                    }
                    Ok((Some(login_outcome_table(lua, &outcome, &notify, notice, check_in)?), None))
                }
                Err(reason) => Ok((None, Some(not_ready(reason)))),
            })
        });
        methods.add_method_mut("has_pending_writes", |_, this, ()| Ok(this.with(|account, _| account.has_pending_writes())));

        // Listing ------------------------------------------------------------------------

        // `account:list_stanza(moment, xmlns, stanza_mt)` → `<clients>` stanza.
        methods.add_method_mut("list_stanza", |lua, this, (moment, xmlns, stanza_mt): (Table, LuaString, Table)| {
            element_to_stanza(lua, &this.clients_element(&moment, &xmlns)?, &stanza_mt)
        });
        // `account:list_xml(moment, xmlns, start_tag)` → the whole reply as serialized XML (see
        // stanza::reply_xml). The module lists through the driver (`{ type = "list" }`); these
        // two serve benches and tests.
        methods.add_method_mut("list_xml", |lua, this, (moment, xmlns, start_tag): (Table, LuaString, LuaString)| {
            reply_xml(lua, &this.clients_element(&moment, &xmlns)?, &start_tag.as_bytes())
        });
        // `account:active_clients(moment)` → entries in the community module's shape.
        methods.add_method_mut("active_clients", |lua, this, moment: Table| {
            let moment = decode_moment(&moment)?;
            this.with(|account, _| {
                let facts = facts_at(account, moment, true)?;
                let entries = list_entries(facts);
                let list = lua.create_table_with_capacity(entries.len(), 0)?;
                for (index, entry) in entries.iter().enumerate() {
                    list.raw_seti(index + 1, entry_table(lua, entry, facts)?)?;
                }
                Ok(list)
            })
        });
        // `account:client_listing(moment, width)` → lines to print, number of clients.
        methods.add_method_mut("client_listing", |lua, this, (moment, width): (Table, usize)| {
            let moment = decode_moment(&moment)?;
            let (lines, count) = this.with(|account, _| {
                facts_at(account, moment, true).map(|facts| {
                    let entries = list_entries(facts);
                    (client_listing(&entries, width), entries.len())
                })
            })?;
            Ok((lua.create_sequence_from(lines)?, count))
        });
        // `account:client_options(moment)` → `{ { value = listed id, label } … }`.
        methods.add_method_mut("client_options", |lua, this, moment: Table| {
            let moment = decode_moment(&moment)?;
            this.with(|account, _| {
                let choices = client_choices(&list_entries(facts_at(account, moment, true)?));
                let options = lua.create_table_with_capacity(choices.len(), 0)?;
                for (index, choice) in choices.into_iter().enumerate() {
                    let option = lua.create_table()?;
                    option.raw_set("value", choice.value)?;
                    option.raw_set("label", choice.label)?;
                    options.raw_seti(index + 1, option)?;
                }
                Ok(options)
            })
        });

        // Revoking -----------------------------------------------------------------------

        // `account:plan_revocation(selector, moment)` → plan (see encode::plan_table). Works
        // without the client records when the selector names a grant.
        methods.add_method_mut("plan_revocation", |lua, this, (selector, moment): (LuaString, Table)| {
            let moment = decode_moment(&moment)?;
            // A selector that is not UTF-8 cannot name anything we store.
            let selector = selector.to_str().map(|s| s.to_owned()).unwrap_or_default();
            let plan = this.with(|account, _| {
                let records_known = account.records_loaded();
                facts_at(account, moment, false).map(|facts| plan_revocation(facts, &selector, records_known))
            })?;
            plan_table(lua, &plan, None)
        });
        // `account:plan_selection(listed_ids, moment)` → plan with reports.
        methods.add_method_mut("plan_selection", |lua, this, (ids, moment): (Vec<String>, Table)| {
            let moment = decode_moment(&moment)?;
            let (plan, reports) = this.with(|account, _| {
                facts_at(account, moment, true).map(|facts| {
                    let plan = plan_selection(facts, &ids);
                    let reports = plan_reports(&plan, &list_entries(facts), 0);
                    (plan, reports)
                })
            })?;
            plan_table(lua, &plan, Some(reports))
        });
        // `account:plan_sign_out(moment, requester_index)` → plan with reports and `question`,
        // what to confirm.
        methods.add_method_mut("plan_sign_out", |lua, this, (moment, requester): (Table, usize)| {
            let moment = decode_moment(&moment)?;
            let (plan, reports, closed) = this.with(|account, _| {
                facts_at(account, moment, true).map(|facts| {
                    let plan = plan_sign_out_others(facts, requester);
                    let closed = plan.closed_streams();
                    let reports = plan_reports(&plan, &list_entries(facts), closed);
                    (plan, reports, closed)
                })
            })?;
            let table = plan_table(lua, &plan, Some(reports))?;
            table.raw_set("question", sign_out_question(&plan, closed))?;
            Ok(table)
        });

        // Retention ------------------------------------------------------------------------

        // `account:prune(moment, dry_run)` → `{ deleted, minimised }`, or nil and a reason. A
        // detached account with changes goes to the driver, which stores them
        // (`engine:handle(username, { type = "store" })`).
        methods.add_method_mut("prune", |lua, this, (moment, dry_run): (Table, bool)| {
            let moment = decode_moment(&moment)?;
            let outcome = this.with(|account, _| {
                ensure_read(account, true)?;
                Ok::<_, mlua::Error>(account.prune(moment, dry_run))
            })?;
            this.adopt_if_pending();
            match outcome {
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

/// `f` of one account's listed entries (host-wide statistics).
pub fn with_entries<R>(account: &mut AccountHandle, moment: &Table, f: impl FnOnce(&[crate::listing::Entry]) -> R) -> Result<R> {
    let moment = decode_moment(moment)?;
    account.with(|account, _| facts_at(account, moment, true).map(|facts| f(&list_entries(facts))))
}

/// One stored part as Lua read it: `stored` (nil when nothing is stored), `roles` for grants.
pub fn decode_stored(part: &str, stored: Option<Table>, roles: Option<&Table>) -> Result<ReadResult> {
    Ok(match part {
        "records" => {
            let (records, skipped) = decode_map(stored, decode_record)?;
            ReadResult::Read { data: Stored::Records(records), skipped }
        }
        "grants" => {
            let (grants, skipped) = decode_map(stored, |k, v| decode_grant(k, v, roles))?;
            ReadResult::Read { data: Stored::Grants(grants), skipped }
        }
        "fast_tokens" => {
            let (tokens, skipped) = decode_fast_tokens(stored)?;
            ReadResult::Read { data: Stored::FastTokens(tokens), skipped }
        }
        other => return Err(runtime(format!("unknown part '{other}'"))),
    })
}
