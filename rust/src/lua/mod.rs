//! The one place where Lua meets the core, split by concern: [`decode`] (Lua tables in),
//! [`encode`] (Lua tables out), [`stanza`] (util.stanza objects out), [`account`] (the account
//! userdata), [`web`] (the web page's userdata) and the module table below.

mod account;
mod decode;
mod driver;
mod encode;
mod serialize;
mod stanza;
mod web;

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Lua, LuaString, Result, Table, UserData, UserDataMethods, Value};

use crate::account::Policy;
use crate::driver::Driver;
use crate::model::client_id_problem;
use crate::revocation::parse_selector;
use crate::stats::SoftwareStats;
use crate::adhoc::step_of;
use crate::budget::{over_budget_text, RequestBudget};
use crate::text::{format_day, stats_cell};

use account::{with_entries, AccountHandle, SharedDriver};
use decode::{decode_moment, decode_policy};

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

/// One module instance: its options (a host loads its own) and the driver of its accounts.
struct Engine {
    policy: Policy,
    driver: SharedDriver,
    /// The `clients` store's deletion marker, for writes.
    remove: Value,
}

impl UserData for Engine {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `engine:handle(username, event, moment)` → the actions to carry out, in order (see
        // driver::actions_table); storage results go back as events.
        methods.add_method("handle", |lua, this, (username, event, moment): (String, Table, Table)| {
            let moment = decode_moment(&moment)?;
            let event = driver::decode_event(&event, &moment)?;
            let actions = this.driver.borrow_mut().handle(&username, event, moment);
            driver::actions_table(lua, actions, &this.remove)
        });
        // `engine:pending()` → usernames with changes not stored or logins not recorded.
        methods.add_method("pending", |lua, this, ()| lua.create_sequence_from(this.driver.borrow().pending()));
        // `engine:new_account(username)`: the account as the driver holds it (made recent);
        // without a name, a fresh account of its own (benches, tests).
        methods.add_method("new_account", |_, this, username: Option<String>| {
            Ok(match username {
                Some(username) => AccountHandle::held(username, this.driver.clone()),
                None => AccountHandle::detached(this.driver.clone()),
            })
        });
        // `engine:walk_account(username)`: for host-wide walks, an account not in memory is
        // read without being kept (unless a prune leaves changes to store).
        methods.add_method("walk_account", |_, this, username: String| Ok(AccountHandle::walking(username, this.driver.clone())));
        // `engine:new_budget(now)`: a stream's budget of list and ad-hoc requests.
        methods.add_method("new_budget", |_, this, now: f64| Ok(BudgetHandle(RequestBudget::new(this.policy.requests_per_minute, now))));
    }
}

/// A stream's request budget.
struct BudgetHandle(RequestBudget);

impl UserData for BudgetHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `budget:spend(now)` → nothing when allowed, else the text to answer with.
        methods.add_method_mut("spend", |_, this, now: f64| match this.0.spend(now) {
            Ok(()) => Ok(None),
            Err(wait) => Ok(Some(over_budget_text(wait))),
        });
    }
}

/// Host-wide statistics, fed one account at a time.
struct StatsHandle(SoftwareStats);

impl UserData for StatsHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `stats:add(account, moment)`.
        methods.add_method_mut("add", |_, this, (account, moment): (mlua::AnyUserData, Table)| {
            let mut account = account.borrow_mut::<AccountHandle>()?;
            with_entries(&mut account, &moment, |entries| this.0.add_account(entries))
        });
        // `stats:totals()` → accounts, clients.
        methods.add_method("totals", |_, this, ()| Ok((this.0.accounts, this.0.clients)));
        // `stats:rows()` → array of {software, version, accounts, clients, last_seen = day}.
        methods.add_method("rows", |lua, this, ()| {
            let rows = this.0.rows();
            let list = lua.create_table_with_capacity(rows.len(), 0)?;
            for (index, row) in rows.iter().enumerate() {
                let item = lua.create_table()?;
                item.raw_set("software", row.software.as_deref().map(stats_cell))?;
                item.raw_set("version", row.version.as_deref().map(stats_cell))?;
                item.raw_set("accounts", row.accounts)?;
                item.raw_set("clients", row.clients)?;
                item.raw_set("last_seen", row.last_seen.and_then(format_day))?;
                list.raw_seti(index + 1, item)?;
            }
            Ok(list)
        });
    }
}

/// The module table: `version`, `new_engine(options)` (options: see decode::decode_policy, plus
/// `store_remove`, the `clients` store's deletion marker), `client_id_problem(id)`,
/// `selector_kind(selector)`, `adhoc_step(action, form_type)`, `new_software_stats()`,
/// `new_web(options)`, `serialize_stanza(stanza, stanza_mt)`.
pub fn open(lua: &Lua) -> Result<Table> {
    let exports = lua.create_table()?;
    exports.set("version", crate::VERSION)?;
    exports.set(
        "new_engine",
        lua.create_function(|_, options: Table| {
            let policy = decode_policy(&options)?;
            let driver = Rc::new(RefCell::new(Driver::new(policy)));
            Ok(Engine { policy, driver, remove: options.raw_get("store_remove")? })
        })?,
    )?;
    exports.set(
        "client_id_problem",
        lua.create_function(|_, id: LuaString| Ok(client_id_problem(&id.as_bytes())))?,
    )?;
    exports.set(
        "selector_kind",
        lua.create_function(|_, selector: LuaString| {
            let selector = selector.to_str().map(|s| s.to_owned()).unwrap_or_default();
            Ok(parse_selector(&selector).map(|parsed| parsed.kind()))
        })?,
    )?;
    // `core.adhoc_step(action, form_type)` → what the step asks for (see adhoc::Step::name), and
    // the error text when it is refused.
    exports.set(
        "adhoc_step",
        lua.create_function(|_, (action, form_type): (LuaString, Option<LuaString>)| {
            let action = action.to_str().map(|s| s.to_owned()).unwrap_or_default();
            let form_type = form_type.map(|t| t.to_str().map(|s| s.to_owned()).unwrap_or_default());
            let step = step_of(&action, form_type.as_deref());
            Ok((step.name(), step.error_text()))
        })?,
    )?;
    exports.set("new_software_stats", lua.create_function(|_, ()| Ok(StatsHandle(SoftwareStats::new())))?)?;
    serialize::register(lua, &exports)?;
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
