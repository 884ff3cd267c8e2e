//! Every environment variable that crosses `exec` between the processes of a service, and the
//! one snapshot of them taken at the crate's first use. Nothing else in the crate reads these
//! variables from the process environment; nothing here changes it (unsound once other threads
//! exist).

use std::{ffi::OsString, sync::OnceLock};

use super::listen_fds;

/// The socket-activation count (systemd's protocol).
pub(crate) const LISTEN_FDS: &str = "LISTEN_FDS";
/// The pid the sockets are for (systemd's protocol).
pub(crate) const LISTEN_PID: &str = "LISTEN_PID";
/// The sockets' names, colon-separated (systemd's protocol).
pub(crate) const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
/// The write end of the readiness pipe a predecessor waits on.
pub(crate) const READY_FD: &str = "ACTIX_GRACEFUL_READY_FD";
/// The successor's generation number (1 for a process nobody of ours started).
pub(crate) const GENERATION: &str = "ACTIX_GRACEFUL_GENERATION";
/// Keeper mode: the keeper's pid, set in each generation's environment.
pub(crate) const KEEPER: &str = "ACTIX_GRACEFUL_KEEPER";
/// Keeper mode: the read end of the generation's control pipe.
pub(crate) const KEEPER_FD: &str = "ACTIX_GRACEFUL_KEEPER_FD";
/// The version of this handoff protocol the starting process speaks ([`PROTOCOL_VERSION`]).
pub(crate) const PROTOCOL: &str = "ACTIX_GRACEFUL_PROTOCOL";
/// The report channel to the fallback, when it is not the predecessor (a successor started by
/// a process that was itself on probation).
pub(crate) const FALLBACK_FD: &str = "ACTIX_GRACEFUL_FALLBACK_FD";

/// The version of the protocol between the processes of a service (these variables, the
/// report channel's messages, the keeper's control bytes). A process started by one that
/// speaks another version refuses to serve, with an error naming both.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// Every variable of the handoff: the successor's environment gets them from the handoff
/// itself (or from keeper mode), never from this process's own environment nor from an
/// environment file. The one list: `spawn` filters by it, `env_file` refuses it.
pub(crate) const HANDOFF: [&str; 9] = [
    LISTEN_FDS,
    LISTEN_PID,
    LISTEN_FDNAMES,
    READY_FD,
    GENERATION,
    KEEPER,
    KEEPER_FD,
    PROTOCOL,
    FALLBACK_FD,
];

/// Whether `name` is one of the [`HANDOFF`] variables.
pub(crate) fn is_handoff(name: &std::ffi::OsStr) -> bool {
    HANDOFF.iter().any(|v| name == *v)
}

/// The protocol's variables as this process found them, with its pid.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) pid: u32,
    pub(crate) listen_fds: Option<OsString>,
    pub(crate) listen_pid: Option<OsString>,
    pub(crate) listen_fdnames: Option<OsString>,
    pub(crate) ready_fd: Option<OsString>,
    pub(crate) generation: Option<OsString>,
    pub(crate) keeper: Option<OsString>,
    pub(crate) keeper_fd: Option<OsString>,
    pub(crate) protocol: Option<OsString>,
    pub(crate) fallback_fd: Option<OsString>,
}

impl Snapshot {
    /// Reads the variables from the process environment.
    fn read() -> Snapshot {
        let var = std::env::var_os;
        Snapshot {
            pid: std::process::id(),
            listen_fds: var(LISTEN_FDS),
            listen_pid: var(LISTEN_PID),
            listen_fdnames: var(LISTEN_FDNAMES),
            ready_fd: var(READY_FD),
            generation: var(GENERATION),
            keeper: var(KEEPER),
            keeper_fd: var(KEEPER_FD),
            protocol: var(PROTOCOL),
            fallback_fd: var(FALLBACK_FD),
        }
    }

    /// Whether `LISTEN_PID` names this process: the crate's own variables (readiness pipe,
    /// control pipe, keeper pid) are for it only then, not for a child that inherited them.
    pub(crate) fn is_for_us(&self) -> bool {
        listen_fds::names_pid(self.listen_pid.as_deref(), self.pid)
    }
}

/// The snapshot, taken at the first call (the crate's first use).
pub(crate) fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(Snapshot::read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crates_variables_are_for_us_only_with_our_listen_pid() {
        let at = |pid: Option<&str>| Snapshot {
            pid: 4242,
            listen_pid: pid.map(OsString::from),
            ..Snapshot::default()
        };
        assert!(at(Some("4242")).is_for_us());
        assert!(!at(Some("4243")).is_for_us());
        assert!(!at(Some("x")).is_for_us());
        assert!(!at(None).is_for_us());
    }
}
