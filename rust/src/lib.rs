//! Decision core of mod_client_management.
//!
//! Sans-I/O: the Lua module reads storage and sessions and hands the facts to an
//! [`account::Account`], which owns an account's records and decides: how a login changes a
//! record and when to store it, which records go ([`account`]), who has access ([`access`]),
//! the ordered list ([`listing`]), rendered replies ([`render`]), revocation plans
//! ([`revocation`]), what admins and users read ([`text`]), the one rule for text a client chose
//! ([`sanitize`]), the web page and JSON API ([`web`]). Only the `lua` module knows about
//! Lua, and only when built with the `module` or `embedded-lua` feature.

pub mod access;
pub mod account;
pub mod adhoc;
pub mod budget;
pub mod driver;
pub mod ids;
pub mod listing;
pub mod model;
pub mod notices;
pub mod render;
pub mod revocation;
pub mod sanitize;
pub mod stats;
pub mod text;
pub mod web;

#[cfg(any(feature = "module", feature = "embedded-lua"))]
pub mod lua;

/// Version the Lua module checks the library against, so a stale build is refused loudly.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
