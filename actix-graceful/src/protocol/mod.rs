//! The protocol core: what crosses `exec` and the service manager's socket. The environment's
//! variables (read once, [`env::snapshot`]), the `LISTEN_*` parser, checks on raw descriptors,
//! `sd_notify` and the pid file, the successor's environment file, the report channel's messages.
//!
//! Pure or close to the system calls, owning no process state beyond the snapshot. Nothing here
//! may import an actix crate, nor anything from [`crate::process`] or the actix glue.

pub(crate) mod control;
pub(crate) mod env;
pub(crate) mod env_file;
pub(crate) mod fd;
pub(crate) mod listen_fds;
pub(crate) mod notify;
pub(crate) mod report;
