//! Decision core of mod_client_management.
//!
//! Sans-I/O: the Lua module gathers facts about one account (stored client records,
//! tokenauth grants, FAST tokens, live sessions, the clock) into [`model::AccountFacts`]; the
//! core answers with an ordered list ([`listing`]), a rendered reply ([`render`]) or a
//! revocation plan ([`revocation`]) that the Lua module carries out. Only the `lua` module
//! knows about Lua, and only when built with the `module` or `embedded-lua` feature.

pub mod access;
pub mod ids;
pub mod listing;
pub mod model;
pub mod render;
pub mod revocation;
pub mod stats;

#[cfg(any(feature = "module", feature = "embedded-lua"))]
pub mod lua;

/// Version the Lua module checks the library against, so a stale build is refused loudly.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
