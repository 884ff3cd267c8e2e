//! The process core: how this process was started, its signals, the descriptors it inherited
//! and the listeners it serves, its client connections, the handoff to a successor and keeper
//! mode.
//!
//! Blocking code and system calls over [`crate::protocol`]; it may hand futures to the glue
//! (`futures` only). Nothing here may import an actix crate: the actix glue (`bind`, `server`,
//! the drain middleware) drives it.

pub(crate) mod announce;
pub(crate) mod child;
pub(crate) mod connections;
pub(crate) mod handoff;
pub(crate) mod inherit;
pub(crate) mod keeper;
pub(crate) mod probe;
pub(crate) mod registry;
pub(crate) mod signals;
mod startup;

pub(crate) use startup::{init, startup};
