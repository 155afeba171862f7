//! A util.stanza tree turned into its wire bytes, exactly as Prosody's own `tostring(stanza)`
//! (util.stanza `_dostring`) would: attributes in `pairs` order (here `lua_next`, the same
//! order), `xmlns` left out where it repeats the parent's, `\1`-namespaced attributes as
//! `xmlns:nsN`, text and attribute values escaped for `'"<>&` and nothing else, an element
//! without children as `<name/>`.
//!
//! It walks the tree as it is when it is written, after every `stanzas/out` filter has had it,
//! so whatever a filter changed is what is sent. It costs one string: Prosody's serialiser
//! makes several temporary strings per element and a buffer table, which the collector then
//! has to sweep (half of its time on a 2000-client reply).
//!
//! Only what `_dostring` would serialise without calling back into Lua is handled here: plain
//! string names, attribute names and values, and text. Anything else (a number as text, a
//! table with its own `__index`, `__pairs` or `__len`, a tree deeper than [`MAX_DEPTH`]) makes
//! it answer `nil`, and the caller lets Prosody serialise the stanza as usual.

use std::ffi::c_int;

use mlua::{ffi, Lua, LuaString, Result, Table, Value};

/// Deeper trees are left to Prosody (the `<clients>` reply is 5 levels deep).
const MAX_DEPTH: usize = 64;

/// Stack slots the walk reads: the stanza metatable and the field names it looks up.
#[derive(Clone, Copy)]
struct Keys {
    stanza_mt: c_int,
    name: c_int,
    attr: c_int,
    xmlns: c_int,
    index: c_int,
    pairs: c_int,
    len: c_int,
}

fn escape_into(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    for (i, byte) in text.iter().enumerate() {
        let entity: &[u8] = match byte {
            b'\'' => b"&apos;",
            b'"' => b"&quot;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            _ => continue,
        };
        out.extend_from_slice(&text[start..i]);
        out.extend_from_slice(entity);
        start = i + 1;
    }
    out.extend_from_slice(&text[start..]);
}

/// The bytes of the string at `index`.
///
/// # Safety
/// `index` holds a string, which stays on the stack while the slice is used.
unsafe fn bytes<'a>(state: *mut ffi::lua_State, index: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let ptr = ffi::lua_tolstring(state, index, &mut len);
    std::slice::from_raw_parts(ptr.cast(), len)
}

/// Pushes `table[key]` (raw) where `key` is one of the `keys` slots; returns its type.
///
/// # Safety
/// `table` is an absolute index of a table; one free stack slot.
unsafe fn raw_field(state: *mut ffi::lua_State, table: c_int, key: c_int) -> c_int {
    ffi::lua_pushvalue(state, key);
    ffi::lua_rawget(state, table)
}

/// Whether the value at `index` has a metatable with any of the fields that would make Lua's
/// `pairs`, `#` or indexing differ from the raw operations used here. Leaves the stack as it was.
///
/// # Safety
/// `index` is absolute; three free stack slots.
unsafe fn has_hooks(state: *mut ffi::lua_State, index: c_int, keys: Keys, allow_stanza_mt: bool) -> bool {
    if ffi::lua_getmetatable(state, index) == 0 {
        return false;
    }
    let mt = ffi::lua_gettop(state);
    let hooked = if allow_stanza_mt && ffi::lua_rawequal(state, mt, keys.stanza_mt) != 0 {
        false
    } else {
        [keys.index, keys.pairs, keys.len].iter().any(|&key| {
            let kind = raw_field(state, mt, key);
            ffi::lua_pop(state, 1);
            kind != ffi::LUA_TNIL
        })
    };
    ffi::lua_pop(state, 1);
    hooked
}

/// Appends the element at absolute index `element` to `out`; false when it is something
/// only Prosody's serialiser can do (the caller then falls back to it).
///
/// No call here allocates in Lua or runs Lua code (raw reads, `lua_next` over an unchanged
/// table, `lua_tolstring` on strings only), so none can raise: a Lua error cannot unwind
/// through these frames and `out`.
///
/// # Safety
/// `state` is live with `keys` on its stack.
unsafe fn write_element(state: *mut ffi::lua_State, keys: Keys, element: c_int, parent_ns: Option<&[u8]>, depth: usize, out: &mut Vec<u8>) -> bool {
    if depth > MAX_DEPTH || ffi::lua_checkstack(state, 12) == 0 || has_hooks(state, element, keys, true) {
        return false;
    }
    let top = ffi::lua_gettop(state);
    let ok = write_element_at(state, keys, element, parent_ns, depth, out);
    ffi::lua_settop(state, top);
    ok
}

/// [`write_element`] without restoring the stack.
unsafe fn write_element_at(state: *mut ffi::lua_State, keys: Keys, element: c_int, parent_ns: Option<&[u8]>, depth: usize, out: &mut Vec<u8>) -> bool {
    if raw_field(state, element, keys.name) != ffi::LUA_TSTRING {
        return false;
    }
    let name = bytes(state, -1);
    if raw_field(state, element, keys.attr) != ffi::LUA_TTABLE {
        return false;
    }
    let attr = ffi::lua_gettop(state);
    if has_hooks(state, attr, keys, false) {
        return false;
    }
    out.push(b'<');
    out.extend_from_slice(name);
    let mut nsid = 0;
    ffi::lua_pushnil(state);
    while ffi::lua_next(state, attr) != 0 {
        if ffi::lua_type(state, -2) != ffi::LUA_TSTRING || ffi::lua_type(state, -1) != ffi::LUA_TSTRING {
            return false;
        }
        let key = bytes(state, -2);
        let value = bytes(state, -1);
        if let Some(split) = key.iter().position(|&b| b == 1) {
            nsid += 1;
            out.extend_from_slice(format!(" xmlns:ns{nsid}='").as_bytes());
            escape_into(out, &key[..split]);
            out.extend_from_slice(format!("' ns{nsid}:").as_bytes());
            out.extend_from_slice(&key[split + 1..]);
            out.extend_from_slice(b"='");
            escape_into(out, value);
            out.push(b'\'');
        } else if !(key == b"xmlns" && Some(value) == parent_ns) {
            out.push(b' ');
            out.extend_from_slice(key);
            out.extend_from_slice(b"='");
            escape_into(out, value);
            out.push(b'\'');
        }
        ffi::lua_pop(state, 1);
    }
    // What the children compare their xmlns with: `t.attr.xmlns`, a string or nothing.
    let own_ns = match raw_field(state, attr, keys.xmlns) {
        ffi::LUA_TSTRING => Some(bytes(state, -1)),
        ffi::LUA_TNIL => None,
        _ => return false, // only a string can equal a child's (string) xmlns; keep it simple
    };
    let len = ffi::lua_rawlen(state, element);
    if len == 0 {
        out.extend_from_slice(b"/>");
        return true;
    }
    out.push(b'>');
    for n in 1..=len {
        match ffi::lua_rawgeti(state, element, n as ffi::lua_Integer) {
            ffi::LUA_TSTRING => escape_into(out, bytes(state, -1)),
            ffi::LUA_TTABLE => {
                let child = ffi::lua_gettop(state);
                if !write_element(state, keys, child, own_ns, depth + 1, out) {
                    return false;
                }
            }
            _ => return false,
        }
        ffi::lua_pop(state, 1);
    }
    out.extend_from_slice(b"</");
    out.extend_from_slice(name);
    out.push(b'>');
    true
}

/// Replaces every attribute table of two or more attributes in the tree at `element` by a copy
/// made as `st.clone` makes one: `{}`, then the attributes one by one in `pairs` order.
///
/// mod_smacks queues such a copy of every stanza and replays that copy after a resumption;
/// util.stanza writes attributes in `pairs` order, which depends on how the table was built,
/// so the copy's order can differ from the original's (and for about a third of 3-attribute
/// sets no order survives copying, measured over 20000 random sets in Lua 5.4). Written after
/// this, the reply has the copy's order: the replay is byte-identical.
///
/// # Safety
/// `element` is an absolute index of a table; `attr_key` holds "attr". May allocate (and so
/// raise): nothing here has a destructor.
unsafe fn copy_attrs_as_cloned(state: *mut ffi::lua_State, element: c_int, attr_key: c_int, depth: usize) {
    if depth > MAX_DEPTH || ffi::lua_checkstack(state, 8) == 0 {
        return;
    }
    let top = ffi::lua_gettop(state);
    if raw_field(state, element, attr_key) == ffi::LUA_TTABLE && ffi::lua_getmetatable(state, -1) == 0 {
        let attr = ffi::lua_gettop(state);
        let mut count = 0;
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, attr) != 0 {
            ffi::lua_pop(state, 1);
            count += 1;
        }
        if count >= 2 {
            ffi::lua_createtable(state, 0, 0);
            let copy = ffi::lua_gettop(state);
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, attr) != 0 {
                ffi::lua_pushvalue(state, -2);
                ffi::lua_insert(state, -2);
                ffi::lua_rawset(state, copy);
            }
            ffi::lua_pushvalue(state, attr_key);
            ffi::lua_pushvalue(state, copy);
            ffi::lua_rawset(state, element);
        }
    }
    ffi::lua_settop(state, top);
    let len = ffi::lua_rawlen(state, element);
    for n in 1..=len {
        if ffi::lua_rawgeti(state, element, n as ffi::lua_Integer) == ffi::LUA_TTABLE {
            copy_attrs_as_cloned(state, ffi::lua_gettop(state), attr_key, depth + 1);
        }
        ffi::lua_settop(state, top);
    }
}

/// `tostring(stanza)` as Prosody would make it, or `None` when only Prosody can (see the
/// module documentation). With `as_queued`, the attribute tables are first replaced as
/// mod_smacks's copy has them (see [`copy_attrs_as_cloned`]).
pub fn serialize_stanza(lua: &Lua, stanza: &Table, stanza_mt: &Table, as_queued: bool) -> Result<Option<LuaString>> {
    if as_queued {
        // SAFETY: the closure only reads and sets raw fields of the tree and pops what it pushed.
        unsafe {
            lua.exec_raw::<()>((stanza, "attr"), |state| {
                copy_attrs_as_cloned(state, 1, 2, 0);
                ffi::lua_settop(state, 0);
            })?;
        }
    }
    let mut out = Vec::new();
    let mut ok = false;
    // SAFETY: the closure reads the tree with raw, non-allocating calls only (see
    // `write_element`), restores the stack to its arguments and pops them.
    unsafe {
        lua.exec_raw::<()>(
            (stanza, stanza_mt, "name", "attr", "xmlns", "__index", "__pairs", "__len"),
            |state| {
                let top = ffi::lua_gettop(state);
                let keys = Keys {
                    stanza_mt: top - 6,
                    name: top - 5,
                    attr: top - 4,
                    xmlns: top - 3,
                    index: top - 2,
                    pairs: top - 1,
                    len: top,
                };
                ok = write_element(state, keys, top - 7, None, 0, &mut out);
                ffi::lua_settop(state, top - 8);
            },
        )?;
    }
    if !ok {
        return Ok(None);
    }
    lua.create_string(&out).map(Some)
}

/// `core.serialize_stanza(stanza, stanza_mt[, as_queued])` → the wire bytes, or nil.
pub fn register(lua: &Lua, exports: &Table) -> Result<()> {
    exports.set(
        "serialize_stanza",
        lua.create_function(|lua, (stanza, stanza_mt, as_queued): (Value, Table, Option<bool>)| match stanza {
            Value::Table(stanza) => serialize_stanza(lua, &stanza, &stanza_mt, as_queued.unwrap_or(false)),
            _ => Ok(None),
        })?,
    )
}
