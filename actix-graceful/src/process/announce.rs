//! The "serving" announcement, one for both modes (a server's process, a keeper): the pid file,
//! the fd store, then the ready report to a predecessor that waits for it, or `READY=1` to the
//! service manager when this process is the first of its service.

use super::{handoff, registry};
use crate::protocol::notify::{self, sd_notify, PidFile};

/// Announces that this process serves; `status` is its `STATUS=` line (`STATUS=...`), and
/// `probation` the probation it tells a predecessor it is on.
///
/// A predecessor, still the service's main process, tells the service manager itself once it
/// reads the report; so `READY=1` and `MAINPID=` go out only without one.
pub(crate) fn serving(
    pid_file: Option<&PidFile>,
    fd_store: bool,
    status: &str,
    probation: std::time::Duration,
) {
    if let Some(pid_file) = pid_file {
        if let Err(err) = pid_file.write() {
            log::error!("cannot write pid file {}: {err}", pid_file.path().display());
        }
    }
    if fd_store {
        notify::store_fds(&registry::fd_store_set());
    }
    if handoff::has_predecessor() {
        handoff::ready(probation);
    } else {
        sd_notify(&format!(
            "READY=1\nMAINPID={}\n{status}",
            std::process::id()
        ));
    }
}
