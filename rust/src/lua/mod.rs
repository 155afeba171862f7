//! The one place where Lua meets the core, split by concern: [`decode`] (Lua tables in),
//! [`encode`] (Lua tables out), [`stanza`] (util.stanza objects out), [`account`] (the account
//! userdata), [`web`] (the web page's userdata), [`words`] (what people read: errors, forms,
//! shell texts and tallies) and the module table below.

mod account;
mod decode;
mod encode;
mod stanza;
mod web;
mod words;

use mlua::{Lua, LuaString, Result, Table, UserData, UserDataMethods};

use crate::account::{Account, Policy};
use crate::model::{client_id_problem, timestamp_from_f64};
use crate::budget::RequestBudget;
use crate::errors::over_budget;
use crate::notices::Announcement;

use account::{AccountHandle, SharedGates};
use decode::{decode_moment, decode_policy, grant_user_agent};

/// Read by the Lua module from the library file before loading it, so that a library of
/// another version is refused without running any of its code.
const MARKER: &str = concat!("client_management native core ", env!("CARGO_PKG_VERSION"), " for Lua 5.4\0");

const fn marker_bytes() -> [u8; MARKER.len()] {
    let bytes = MARKER.as_bytes();
    let mut out = [0u8; MARKER.len()];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Exported so that no linker drops it.
#[no_mangle]
#[used]
pub static CLIENT_MANAGEMENT_VERSION_MARKER: [u8; MARKER.len()] = marker_bytes();

/// One module instance: its options (a host loads its own) and the notice gates of its
/// accounts, shared with every account handle it makes.
struct Engine {
    policy: Policy,
    gates: SharedGates,
}

impl UserData for Engine {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `engine:new_account(username)`.
        methods.add_method("new_account", |_, this, username: Option<String>| {
            Ok(AccountHandle::new(Account::new(this.policy), username.unwrap_or_default(), this.gates.clone()))
        });
        // `engine:grant_notice(username, grant, moment)` → session indices to tell now (or nil),
        // the text, and when to flush the account's notices (seconds from now); nothing when
        // notices are off.
        methods.add_method("grant_notice", |lua, this, (username, grant, moment): (String, Table, Table)| {
            if !this.policy.notify_new_clients {
                return Ok((None, None, None));
            }
            let moment = decode_moment(&moment)?;
            let agent = grant_user_agent(&grant).cleaned();
            let created = grant.raw_get::<Option<f64>>("created").ok().flatten().and_then(timestamp_from_f64);
            let at = created.or_else(|| timestamp_from_f64(moment.now)).unwrap_or_default();
            let announcement = Announcement { software: agent.software, device: agent.device, at };
            let bound: Vec<usize> = moment.sessions.iter().filter(|s| s.is_bound()).map(|s| s.index).collect();
            let offer = this.gates.borrow_mut().offer(&username, announcement, !bound.is_empty(), moment.now, this.policy.notice_interval);
            let recipients = match offer.notice {
                Some(_) => Some(lua.create_sequence_from(bound)?),
                None => None,
            };
            Ok((recipients, offer.notice, offer.check_in))
        });
        // `engine:forget(username)`: the account was deleted.
        methods.add_method("forget", |_, this, username: String| {
            this.gates.borrow_mut().forget(&username);
            Ok(())
        });
        // `engine:new_budget(now)`: a stream's budget of list and ad-hoc requests.
        methods.add_method("new_budget", |_, this, now: f64| Ok(BudgetHandle(RequestBudget::new(this.policy.requests_per_minute, now))));
    }
}

/// A stream's request budget.
struct BudgetHandle(RequestBudget);

impl UserData for BudgetHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `budget:spend(now)` → nothing when allowed, else the error to answer with.
        methods.add_method_mut("spend", |lua, this, now: f64| match this.0.spend(now) {
            Ok(()) => Ok(None),
            Err(wait) => Ok(Some(words::error_table(lua, &over_budget(wait))?)),
        });
    }
}

/// The module table: `version`, `new_engine(options)`, `client_id_problem(id)`, and what
/// [`words::register`] and [`web::register`] add.
pub fn open(lua: &Lua) -> Result<Table> {
    let exports = lua.create_table()?;
    exports.set("version", crate::VERSION)?;
    exports.set(
        "new_engine",
        lua.create_function(|_, options: Table| Ok(Engine { policy: decode_policy(&options)?, gates: SharedGates::default() }))?,
    )?;
    exports.set(
        "client_id_problem",
        lua.create_function(|_, id: LuaString| Ok(client_id_problem(&id.as_bytes())))?,
    )?;
    words::register(lua, &exports)?;
    web::register(lua, &exports)?;
    Ok(exports)
}

#[cfg(feature = "module")]
#[mlua::lua_module]
fn client_management(lua: &Lua) -> Result<Table> {
    open(lua)
}

#[cfg(all(test, feature = "embedded-lua", not(feature = "module")))]
mod tests;
