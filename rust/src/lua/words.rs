//! What people read, handed to Lua as data: stanza errors, ad-hoc commands and their forms,
//! shell commands, their answers and tallies. Every word is written in [`crate::errors`],
//! [`crate::forms`] and [`crate::shell`]; this file only turns them into Lua tables.

use mlua::{Lua, LuaString, Result, Table, UserData, UserDataMethods};

use crate::adhoc::step_of;
use crate::errors::{bad_step, named, stream_closed, unnamed_client, StanzaError};
use crate::forms::{manage_form, sign_out_form, Choice, Command, Form, Note};
use crate::shell::{selector_problem, stats_lines, stats_summary, HostPrune, HostRevocation, Message, COMMANDS};
use crate::stats::SoftwareStats;


fn text(value: &LuaString) -> String {
    value.to_str().map(|s| s.to_owned()).unwrap_or_default()
}

/// A string argument, or `None` for anything else (nil, a table, a number).
fn string_arg(value: &mlua::Value) -> Option<String> {
    match value {
        mlua::Value::String(s) => Some(text(s)),
        _ => None,
    }
}

/// `{ type, condition, text, extra = { namespace, condition } }`: what util.error makes, and
/// what `st.error_reply` and mod_adhoc take.
pub fn error_table(lua: &Lua, error: &StanzaError) -> Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("type", error.kind)?;
    table.raw_set("condition", error.condition)?;
    table.raw_set("text", error.text.as_deref())?;
    if let Some((namespace, condition)) = &error.extra {
        let extra = lua.create_table()?;
        extra.raw_set("namespace", namespace.as_str())?;
        extra.raw_set("condition", *condition)?;
        table.raw_set("extra", extra)?;
    }
    Ok(table)
}

/// A form in util.dataforms' layout: `title`, `instructions`, then one table per field
/// (`name`, `type`, `label`, `value`, `options` of `{ label, value }`).
pub fn form_table(lua: &Lua, form: &Form) -> Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("title", form.title)?;
    table.raw_set("instructions", form.instructions)?;
    for (index, field) in form.fields.iter().enumerate() {
        let item = lua.create_table()?;
        item.raw_set("name", field.var)?;
        item.raw_set("type", field.kind)?;
        item.raw_set("label", field.label.as_deref())?;
        item.raw_set("value", field.value.as_deref())?;
        if let Some(choices) = &field.options {
            let options = lua.create_table_with_capacity(choices.len(), 0)?;
            for (n, choice) in choices.iter().enumerate() {
                let option = lua.create_table()?;
                option.raw_set("label", choice.label.as_str())?;
                option.raw_set("value", choice.value.as_str())?;
                options.raw_seti(n + 1, option)?;
            }
            item.raw_set("options", options)?;
        }
        table.raw_seti(index + 1, item)?;
    }
    Ok(table)
}

/// `{ { label, value }, … }`: the choices of a "Manage clients" form.
fn choices(options: Option<Table>) -> Result<Vec<Choice>> {
    let Some(options) = options else { return Ok(Vec::new()) };
    options
        .sequence_values::<Table>()
        .map(|option| {
            let option = option?;
            Ok(Choice { label: option.raw_get("label")?, value: option.raw_get("value")? })
        })
        .collect()
}

pub fn note_table(lua: &Lua, level: &str, text: &str) -> Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("level", level)?;
    table.raw_set("text", text)?;
    Ok(table)
}

/// One account's share of `clients stats`, as the driver answers it; taken by `stats:add`.
pub struct AccountStats(pub Option<SoftwareStats>);

impl UserData for AccountStats {}

/// `clients stats`, fed one account at a time.
struct StatsHandle {
    stats: SoftwareStats,
    unreadable: usize,
}

impl UserData for StatsHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `stats:add(reply.stats)`: an account's share (the driver's `software_stats` reply).
        methods.add_method_mut("add", |_, this, share: mlua::AnyUserData| {
            if let Some(stats) = share.borrow_mut::<AccountStats>()?.0.take() {
                this.stats.merge(stats);
            }
            Ok(())
        });
        // `stats:unreadable()`: an account that could not be read.
        methods.add_method_mut("unreadable", |_, this, ()| {
            this.unreadable += 1;
            Ok(())
        });
        // `stats:lines(width)` → the lines to print.
        methods.add_method("lines", |_, this, width: f64| Ok(stats_lines(&this.stats, this.unreadable, width)));
        // `stats:summary()` → the command's answer.
        methods.add_method("summary", |_, this, ()| Ok(stats_summary(&this.stats)));
    }
}

/// `clients revoke`, one account at a time.
struct RevocationHandle(HostRevocation);

impl UserData for RevocationHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `walk:unreadable()`.
        methods.add_method_mut("unreadable", |_, this, ()| {
            this.0.unreadable();
            Ok(())
        });
        // `walk:plan(revoked, password_protected)` → whether to carry the plan out.
        methods.add_method_mut("plan", |_, this, (revoked, password): (usize, usize)| Ok(this.0.plan(revoked, password)));
        // `walk:carried_out(revoked, complete)`.
        methods.add_method_mut("carried_out", |_, this, (revoked, complete): (usize, bool)| {
            this.0.carried_out(revoked, complete);
            Ok(())
        });
        methods.add_method("summary", |_, this, ()| Ok(this.0.summary()));
    }
}

/// `clients prune` and the daily prune, one account at a time.
struct PruneHandle(HostPrune);

impl UserData for PruneHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `prune:pruned(deleted)`.
        methods.add_method_mut("pruned", |_, this, deleted: usize| {
            this.0.pruned(deleted);
            Ok(())
        });
        // `prune:failed()`.
        methods.add_method_mut("failed", |_, this, ()| {
            this.0.failed();
            Ok(())
        });
        // `prune:counts()` → deleted, accounts, failed.
        methods.add_method("counts", |_, this, ()| Ok((this.0.deleted, this.0.accounts, this.0.failed)));
        methods.add_method("summary", |_, this, ()| Ok(this.0.summary()));
    }
}

/// Adds to the module table: `error(name, namespace)`, `unnamed_client(id)`,
/// `selector_problem(selector)`, `adhoc_step(action, form_type)`,
/// `adhoc_commands()`, `adhoc_form(key, arg)`, `adhoc_note(name)`, `shell_commands()`,
/// `shell_text(name, arg)`, `new_software_stats()`, `new_host_revocation(selector, dry_run)`,
/// `new_host_prune(dry_run)`.
pub fn register(lua: &Lua, exports: &Table) -> Result<()> {
    // `core.error(name, namespace)` → the stanza error called `name` (see errors::named).
    exports.set(
        "error",
        lua.create_function(|lua, (name, namespace): (LuaString, Option<LuaString>)| {
            error_table(lua, &named(&text(&name), &namespace.map(|n| text(&n)).unwrap_or_default()))
        })?,
    )?;
    // `core.stream_closed(name)` → `{ condition, text }` for `session:close` (see
    // errors::stream_closed).
    exports.set(
        "stream_closed",
        lua.create_function(|lua, name: LuaString| {
            let (condition, reason) = stream_closed(&text(&name));
            let table = lua.create_table()?;
            table.raw_set("condition", condition)?;
            table.raw_set("text", reason)?;
            Ok(table)
        })?,
    )?;
    // `core.unnamed_client(id)` → the error a revoke request naming no client is refused with.
    exports.set(
        "unnamed_client",
        lua.create_function(|lua, id: Option<LuaString>| {
            unnamed_client(id.as_ref().map(|id| id.as_bytes()).as_deref()).map(|error| error_table(lua, &error)).transpose()
        })?,
    )?;
    // `core.selector_problem(selector)` → what `user revoke_client` answers without a selector.
    exports.set(
        "selector_problem",
        lua.create_function(|_, selector: mlua::Value| {
            let bytes = match &selector {
                mlua::Value::String(s) => Some(s.as_bytes()),
                _ => None,
            };
            Ok(selector_problem(bytes.as_deref()))
        })?,
    )?;
    // `core.adhoc_step(action, form_type)` → what the step asks for (see adhoc::Step::name), and
    // the error it is refused with, if it is.
    exports.set(
        "adhoc_step",
        lua.create_function(|lua, (action, form_type): (LuaString, Option<LuaString>)| {
            let form_type = form_type.map(|t| text(&t));
            let step = step_of(&text(&action), form_type.as_deref());
            let error = bad_step(step).map(|error| error_table(lua, &error)).transpose()?;
            Ok((step.name(), error))
        })?,
    )?;
    // `core.adhoc_commands()` → `{ { key, name, node }, … }`.
    exports.set(
        "adhoc_commands",
        lua.create_function(|lua, ()| {
            let list = lua.create_table()?;
            for (index, command) in Command::ALL.iter().enumerate() {
                let item = lua.create_table()?;
                item.raw_set("key", command.key())?;
                item.raw_set("name", command.name())?;
                item.raw_set("node", command.node())?;
                list.raw_seti(index + 1, item)?;
            }
            Ok(list)
        })?,
    )?;
    // `core.adhoc_form("manage", options)` / `core.adhoc_form("sign-out-others", question)` →
    // the form's layout for util.dataforms.
    exports.set(
        "adhoc_form",
        lua.create_function(|lua, (key, arg): (LuaString, mlua::Value)| {
            let form = match Command::from_key(&text(&key)) {
                Some(Command::ManageClients) => manage_form(choices(lua.unpack(arg)?)?),
                Some(Command::SignOutOthers) => sign_out_form(lua.unpack(arg)?),
                None => return Err(mlua::Error::runtime("client_management: unknown ad-hoc command")),
            };
            form_table(lua, &form)
        })?,
    )?;
    // `core.adhoc_note("nothing-changed" | "unreadable")` → `{ level, text }`.
    exports.set(
        "adhoc_note",
        lua.create_function(|lua, name: LuaString| {
            let note = Note::named(&text(&name)).ok_or_else(|| mlua::Error::runtime("client_management: unknown note"))?;
            note_table(lua, note.level, note.text)
        })?,
    )?;
    // `core.shell_commands()` → items for `module:add_item("shell-command", …)`, without handlers.
    exports.set(
        "shell_commands",
        lua.create_function(|lua, ()| {
            let list = lua.create_table()?;
            for (index, command) in COMMANDS.iter().enumerate() {
                let item = lua.create_table()?;
                item.raw_set("section", command.section)?;
                item.raw_set("section_desc", command.section_desc)?;
                item.raw_set("name", command.name)?;
                item.raw_set("desc", command.desc)?;
                item.raw_set("host_selector", command.host_selector)?;
                let args = lua.create_table()?;
                for (n, arg) in command.args.iter().enumerate() {
                    let entry = lua.create_table()?;
                    entry.raw_set("name", arg.name)?;
                    entry.raw_set("type", arg.kind)?;
                    args.raw_seti(n + 1, entry)?;
                }
                item.raw_set("args", args)?;
                if command.dry_run {
                    let kv_params = lua.create_table()?;
                    kv_params.raw_set("dry_run", true)?;
                    let flags = lua.create_table()?;
                    flags.raw_set("kv_params", kv_params)?;
                    item.raw_set("flags", flags)?;
                }
                list.raw_seti(index + 1, item)?;
            }
            Ok(list)
        })?,
    )?;
    // `core.shell_text(name, arg)` → what a shell command says (see shell::Message).
    exports.set(
        "shell_text",
        lua.create_function(|_, (name, arg): (LuaString, mlua::Value)| {
            let word = string_arg(&arg);
            let number = match arg {
                mlua::Value::Integer(n) => usize::try_from(n).ok(),
                _ => None,
            };
            Message::named(&text(&name), number, word.as_deref())
                .map(|m| m.text())
                .ok_or_else(|| mlua::Error::runtime("client_management: unknown shell text or argument"))
        })?,
    )?;
    exports.set(
        "new_software_stats",
        lua.create_function(|_, ()| Ok(StatsHandle { stats: SoftwareStats::new(), unreadable: 0 }))?,
    )?;
    // `core.new_host_revocation(selector, dry_run)` → a tally, or nil and why the selector does
    // not do host-wide.
    exports.set(
        "new_host_revocation",
        lua.create_function(|_, (selector, dry_run): (mlua::Value, bool)| {
            Ok(match HostRevocation::new(string_arg(&selector).as_deref(), dry_run) {
                Ok(walk) => (Some(RevocationHandle(walk)), None),
                Err(why) => (None, Some(why)),
            })
        })?,
    )?;
    exports.set("new_host_prune", lua.create_function(|_, dry_run: bool| Ok(PruneHandle(HostPrune::new(dry_run))))?)?;
    Ok(())
}
