//! An account outside the driver (`engine:new_account()`), for benches and glue tests: it is
//! loaded by hand and answers what the driver's requests answer, without storage. The module
//! itself goes through the driver only (`engine:handle`).

use mlua::{LuaString, Result, Table, UserData, UserDataMethods};

use super::decode::{decode_fast_tokens, decode_grant, decode_login, decode_map, decode_moment, decode_protocol, decode_record};
use super::encode::{entry_table, login_outcome_table};
use super::stanza::{element_to_stanza, reply_xml};
use crate::account::{Account, Moment, NotReady, Policy};
use crate::driver::{ReadResult, Stored};
use crate::listing::client_entries;
use crate::model::AccountFacts;
use crate::render::{render_listing, Element};

pub struct AccountHandle(Account);

fn runtime(message: String) -> mlua::Error {
    mlua::Error::runtime(format!("client_management: {message}"))
}

impl AccountHandle {
    pub fn new(policy: Policy) -> Self {
        AccountHandle(Account::new(policy))
    }

    /// The facts at `moment`, refusing parts never read: a caller that skipped loading one
    /// would otherwise act on nothing.
    fn facts_at(&mut self, moment: &Table) -> Result<&AccountFacts> {
        let moment: Moment = decode_moment(moment)?;
        if !self.0.unread().is_empty() {
            return Err(runtime("account facts used before they were read".to_owned()));
        }
        Ok(self.0.facts_at(moment))
    }

    fn clients_element(&mut self, moment: &Table, xmlns: &LuaString) -> Result<Element> {
        let protocol = decode_protocol(xmlns)?;
        Ok(render_listing(self.facts_at(moment)?, protocol))
    }
}

impl UserData for AccountHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `account:load(part, stored, roles, now)` → how many stored items were malformed.
        methods.add_method_mut("load", |_, this, (part, stored, roles, now): (String, Option<Table>, Option<Table>, f64)| {
            match decode_stored(&part, stored, roles.as_ref())? {
                ReadResult::Read { data, skipped } => {
                    match data {
                        Stored::Records(records) => this.0.load_records(records),
                        Stored::Grants(grants) => this.0.load_grants(grants, now),
                        Stored::FastTokens(tokens) => this.0.load_fast_tokens(tokens),
                    }
                    Ok(skipped)
                }
                ReadResult::Failed { .. } => Ok(0),
            }
        });
        // `account:record_login(login, moment)` → outcome (no notices: those are the
        // driver's), or nil and "records-missing" | "deleted".
        methods.add_method_mut("record_login", |lua, this, (login, moment): (Table, Table)| {
            let login = decode_login(&login)?;
            let moment = decode_moment(&moment)?;
            match this.0.record_login(login, moment) {
                Ok(outcome) => Ok((Some(login_outcome_table(lua, &outcome, &[], None, None)?), None)),
                Err(NotReady::RecordsMissing) => Ok((None, Some("records-missing"))),
                Err(NotReady::Deleted) => Ok((None, Some("deleted"))),
            }
        });
        // `account:list_stanza(moment, xmlns, stanza_mt)` → `<clients>` stanza.
        methods.add_method_mut("list_stanza", |lua, this, (moment, xmlns, stanza_mt): (Table, LuaString, Table)| {
            element_to_stanza(lua, &this.clients_element(&moment, &xmlns)?, &stanza_mt)
        });
        // `account:list_xml(moment, xmlns, start_tag)` → the whole reply as serialized XML (see
        // stanza::reply_xml).
        methods.add_method_mut("list_xml", |lua, this, (moment, xmlns, start_tag): (Table, LuaString, LuaString)| {
            reply_xml(lua, &this.clients_element(&moment, &xmlns)?, &start_tag.as_bytes())
        });
        // `account:active_clients(moment)` → entries in the community module's shape.
        methods.add_method_mut("active_clients", |lua, this, moment: Table| {
            let entries = client_entries(this.facts_at(&moment)?);
            let list = lua.create_table_with_capacity(entries.len(), 0)?;
            for (index, entry) in entries.iter().enumerate() {
                list.raw_seti(index + 1, entry_table(lua, entry)?)?;
            }
            Ok(list)
        });
    }
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
