//! The one place where Lua meets the core, split by concern: [`decode`] (Lua tables in),
//! [`encode`] (Lua tables out), [`stanza`] (util.stanza objects out), [`account`] (the account
//! userdata), [`web`] (the web page's userdata), [`words`] (what people read: errors, forms,
//! shell texts and tallies) and the module table below.

mod account;
mod decode;
mod driver;
mod encode;
mod serialize;
mod stanza;
mod web;
mod words;

use std::cell::RefCell;

use mlua::{Lua, LuaString, Result, Table, UserData, UserDataMethods, Value};

use crate::account::Policy;
use crate::driver::Driver;
use crate::model::client_id_problem;
use crate::budget::RequestBudget;
use crate::errors::over_budget;

use account::AccountHandle;
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
    driver: RefCell<Driver>,
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
        // `engine:new_account()`: an account of its own, outside the driver (benches, tests).
        methods.add_method("new_account", |_, this, ()| Ok(AccountHandle::new(this.policy)));
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
/// [`words::register`], [`serialize::register`] and [`web::register`] add.
pub fn open(lua: &Lua) -> Result<Table> {
    let exports = lua.create_table()?;
    exports.set("version", crate::VERSION)?;
    exports.set(
        "new_engine",
        lua.create_function(|_, options: Table| {
            let policy = decode_policy(&options)?;
            Ok(Engine { policy, driver: RefCell::new(Driver::new(policy)), remove: options.raw_get("store_remove")? })
        })?,
    )?;
    exports.set(
        "client_id_problem",
        lua.create_function(|_, id: LuaString| Ok(client_id_problem(&id.as_bytes())))?,
    )?;
    words::register(lua, &exports)?;
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
