//! Element trees (see `render`) as util.stanza objects: `{name, attr, tags, [i] = child}`
//! with Prosody's stanza metatable, built through the raw Lua API. A thousand-client reply is
//! tens of thousands of small tables, and each costs: mlua's safe API wraps every table
//! operation in a protected call, and Prosody's eager collector would run a dozen cycles over
//! the heap during one build.
//!
//! Every element gets tables of its own, so a `stanzas/out` filter may edit any of them (and
//! mod_smacks may copy them) without touching another client's. The one thing shared is the
//! empty table of elements without attributes, and of elements without child elements: those
//! two are read-only, so a write raises instead of leaking into siblings.

use std::ffi::c_int;

use mlua::{ffi, Lua, Result, Table};

use crate::render::{Element, Node};

/// Stack slots `push_element` reads: the stanza metatable and the two shared empty tables.
#[derive(Clone, Copy)]
struct Slots {
    metatable: c_int,
    no_attrs: c_int,
    no_tags: c_int,
}

/// Pushes the util.stanza object for `element` onto the Lua stack. Uses at most 4 stack
/// slots per nesting level.
///
/// # Safety
/// `state` is a live Lua state with the `slots` on its stack and room for 4 slots per level of
/// `element`. Lua API calls here may raise (out of memory) and unwind by longjmp: nothing on
/// these frames has a destructor (only `Copy` values and borrows), so skipping them is sound.
unsafe fn push_element(state: *mut ffi::lua_State, slots: Slots, element: &Element) {
    let tags_count = element.children.iter().filter(|c| matches!(c, Node::Element(_))).count();
    ffi::lua_createtable(state, element.children.len() as c_int, 3);
    push_str(state, element.name);
    ffi::lua_setfield(state, -2, c"name".as_ptr());
    if element.attrs.is_empty() {
        ffi::lua_pushvalue(state, slots.no_attrs);
    } else {
        ffi::lua_createtable(state, 0, element.attrs.len() as c_int);
        for (name, value) in &element.attrs {
            push_str(state, name);
            push_str(state, value);
            ffi::lua_rawset(state, -3);
        }
    }
    ffi::lua_setfield(state, -2, c"attr".as_ptr());
    if tags_count == 0 {
        ffi::lua_pushvalue(state, slots.no_tags);
    } else {
        ffi::lua_createtable(state, tags_count as c_int, 0);
    }
    let mut tag_index = 0;
    for (index, child) in element.children.iter().enumerate() {
        match child {
            Node::Element(child) => {
                push_element(state, slots, child);
                ffi::lua_pushvalue(state, -1);
                tag_index += 1;
                ffi::lua_rawseti(state, -3, tag_index); // into tags
            }
            Node::Text(text) => push_str(state, text),
        }
        ffi::lua_rawseti(state, -3, index as ffi::lua_Integer + 1); // into the element
    }
    ffi::lua_setfield(state, -2, c"tags".as_ptr());
    ffi::lua_pushvalue(state, slots.metatable);
    ffi::lua_setmetatable(state, -2);
}

/// # Safety
/// As for [`push_element`].
unsafe fn push_str(state: *mut ffi::lua_State, text: &str) {
    ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len());
}

/// Replies with more elements than this are built with the collector paused.
///
/// Restarting a paused collector sets its debt to zero: the next allocation starts a new
/// cycle (incremental mode) or a young collection (generational), whatever the heap. For a
/// small reply that forced step costs more than the collector steps the build would trigger
/// (about 1.3 ms against a 0.6 ms floor at 20 clients, issue 16), so those are built with the
/// collector left alone. A big reply (about 15 elements per client) would otherwise run many
/// collector steps over the whole heap while it is built.
const PAUSE_ABOVE_ELEMENTS: usize = 1500;

/// The tree's depth and how many elements it has, `element` included.
fn shape(element: &Element) -> (usize, usize) {
    let (mut depth, mut count) = (0, 1);
    for child in &element.children {
        if let Node::Element(child) = child {
            let (child_depth, child_count) = shape(child);
            depth = depth.max(child_depth);
            count += child_count;
        }
    }
    (1 + depth, count)
}

/// The metatable of the shared empty tables, made once per Lua state.
fn read_only_metatable(lua: &Lua) -> Result<Table> {
    const KEY: &str = "client_management.read_only";
    if let Ok(Some(metatable)) = lua.named_registry_value::<Option<Table>>(KEY) {
        return Ok(metatable);
    }
    let metatable = lua.create_table()?;
    metatable.raw_set(
        "__newindex",
        lua.create_function(|_, ()| -> Result<()> {
            Err(mlua::Error::runtime("client_management: this empty stanza table is shared and read-only"))
        })?,
    )?;
    lua.set_named_registry_value(KEY, &metatable)?;
    Ok(metatable)
}

/// Holds Lua's collector while a large reply is built, restarting it when dropped (errors
/// included): one collection afterwards instead of a dozen during.
struct CollectorPause<'a> {
    lua: &'a Lua,
    was_running: bool,
}

impl<'a> CollectorPause<'a> {
    fn new(lua: &'a Lua) -> Self {
        let was_running = lua.gc_is_running();
        if was_running {
            lua.gc_stop();
        }
        CollectorPause { lua, was_running }
    }
}

impl Drop for CollectorPause<'_> {
    fn drop(&mut self) {
        if self.was_running {
            self.lua.gc_restart();
        }
    }
}

/// The util.stanza object for `element`. Runs in protected mode: an allocation failure is a
/// Lua error, not an abort.
pub fn element_to_stanza(lua: &Lua, element: &Element, stanza_mt: &Table) -> Result<Table> {
    let read_only = read_only_metatable(lua)?;
    let no_attrs = lua.create_table()?;
    no_attrs.set_metatable(Some(read_only.clone()))?;
    let no_tags = lua.create_table()?;
    no_tags.set_metatable(Some(read_only))?;
    let (depth, elements) = shape(element);
    let needed = 4 * depth as c_int + 4;
    let _pause = (elements > PAUSE_ABOVE_ELEMENTS).then(|| CollectorPause::new(lua));
    // SAFETY: the closure leaves exactly one new value (the stanza) above its three arguments,
    // removes those, and never indexes below them; it captures only borrows, so a Lua error
    // unwinding through it skips no destructor (see `push_element`).
    unsafe {
        lua.exec_raw((stanza_mt, no_attrs, no_tags), |state| {
            let top = ffi::lua_gettop(state);
            let slots = Slots { metatable: top - 2, no_attrs: top - 1, no_tags: top };
            if ffi::lua_checkstack(state, needed) == 0 {
                ffi::lua_settop(state, top - 3);
                ffi::lua_pushnil(state);
                return;
            }
            push_element(state, slots, element);
            ffi::lua_rotate(state, top - 2, 1); // the stanza below the arguments
            ffi::lua_settop(state, top - 2);
        })
    }
}

/// The whole list reply as serialized XML: `start_tag` (the iq's, made by util.stanza), the
/// `<clients>` element, `</iq>`. For a stream on which no `stanzas/out` filter could read the
/// stanza (docs/ARCHITECTURE.md, "The list reply"): no Lua tree, and one Lua string (the
/// collector's work grows with what is allocated).
pub fn reply_xml(lua: &Lua, clients: &Element, start_tag: &[u8]) -> Result<mlua::LuaString> {
    let clients = clients.to_xml();
    let mut reply = Vec::with_capacity(start_tag.len() + clients.len() + 5);
    reply.extend_from_slice(start_tag);
    reply.extend_from_slice(clients.as_bytes());
    reply.extend_from_slice(b"</iq>");
    lua.create_string(reply)
}
