//! The readiness channel between a process and its successor: a pipe whose write end the
//! successor finds at the fd named by `ACTIX_GRACEFUL_READY_FD`. The successor writes one byte
//! once it serves; the parent reads it, or EOF if the successor died first.

use std::{
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::{
        atomic::{AtomicI32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    poll::{poll, PollFd, PollFlags, PollTimeout},
    sys::{
        signal::{kill, Signal},
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::Pid,
};

use crate::protocol::{
    env::{self, READY_FD},
    fd, listen_fds,
};
use crate::{ExitStatus, UpgradeError};

/// Asks a running readiness wait to stop its successor with a signal (0: carry on).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancel(Arc<AtomicI32>);

impl Cancel {
    /// Sends `signal` to the successor being waited for, if any, and keeps waiting for it to
    /// exit (bounded by the upgrade timeout).
    pub(crate) fn stop_successor(&self, signal: Signal) {
        self.0.store(signal as i32, Ordering::SeqCst);
    }
}

/// The byte a ready successor writes.
const READY: u8 = b'R';

/// How the parent decides that the successor is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// The successor reports through the pipe (every app built on this crate does).
    Pipe,
    /// The successor is taken as ready once it has run this long without exiting: for a
    /// successor that knows only the standard protocol. A report through the pipe counts too.
    After(Duration),
}

// ---- successor side ----

static REPORT_FD: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Takes the readiness pipe handed to this process, if any: only with a `LISTEN_PID` that is
/// explicitly ours (so the variable is for us) and only if the fd is a pipe outside the
/// listener range. Marks it close-on-exec so the app's own children do not inherit it.
pub(crate) fn take_report_fd(listen_fds: usize) {
    let snapshot = env::snapshot();
    let Some(value) = &snapshot.ready_fd else {
        return;
    };
    if !snapshot.is_for_us() {
        return;
    }
    let first_free = listen_fds::first_after(listen_fds);
    if let Some(owned) = fd::take_announced_pipe(READY_FD, value, first_free, "the listeners") {
        *REPORT_FD.lock().unwrap_or_else(|e| e.into_inner()) = Some(owned);
    }
}

/// Whether this process was started by a predecessor that waits for its readiness.
pub(crate) fn has_predecessor() -> bool {
    REPORT_FD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some()
}

/// Tells the predecessor that this process serves; closes the pipe. Does nothing the second
/// time or when there is no predecessor.
pub(crate) fn report_ready() {
    let Some(fd) = REPORT_FD.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    loop {
        match nix::unistd::write(&fd, &[READY]) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(err) => {
                log::warn!("cannot report readiness to the predecessor: {err}");
                break;
            }
        }
    }
}

// ---- parent side ----

/// Waits until the successor `pid` is ready per `readiness`, within `timeout`.
///
/// # Errors
/// [`UpgradeError::Exited`] when it exits first (reaped), [`UpgradeError::Timeout`] when the
/// time runs out (killed with SIGKILL and reaped).
pub(crate) fn wait_ready(
    pid: Pid,
    pipe: &OwnedFd,
    readiness: Readiness,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<(), UpgradeError> {
    let start = Instant::now();
    let mut pipe_open = true;
    let mut closed_at: Option<Instant> = None;
    let mut sent = 0;
    loop {
        let asked = cancel.0.load(Ordering::SeqCst);
        if asked != 0 && asked != sent {
            // The server is stopping: pass the stop on; the loop below reaps the successor.
            if let Ok(sig) = Signal::try_from(asked) {
                log::info!("upgrade: cancelled, sending {sig} to successor pid={pid}");
                let _ = kill(pid, sig);
            }
            sent = asked;
        }
        let elapsed = start.elapsed();
        if let Readiness::After(after) = readiness {
            if elapsed >= after {
                return check_alive(pid);
            }
        }
        if elapsed >= timeout {
            return Err(kill_and_reap(pid, timeout));
        }
        // Wake at least every 20 ms to notice an exit when the pipe is already closed.
        let slice = (timeout - elapsed).min(Duration::from_millis(20));
        if pipe_open {
            let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
            let ms = PollTimeout::try_from(slice).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, ms) {
                Ok(0) | Err(Errno::EINTR) => {}
                Ok(_) => {
                    let mut byte = [0u8; 1];
                    match nix::unistd::read(pipe.as_raw_fd(), &mut byte) {
                        Ok(1) if byte[0] == READY => return Ok(()),
                        Ok(_) => pipe_open = false, // EOF: it closed the pipe or died
                        Err(Errno::EINTR | Errno::EAGAIN) => {}
                        Err(_) => pipe_open = false,
                    }
                }
                Err(_) => pipe_open = false,
            }
        } else {
            std::thread::sleep(slice);
        }
        if let Some(status) = try_reap(pid) {
            return Err(UpgradeError::Exited {
                pid: pid.as_raw() as u32,
                status,
            });
        }
        let closed_for = closed_at.get_or_insert_with(Instant::now).elapsed();
        if pipe_open {
            closed_at = None;
        } else if readiness == Readiness::Pipe && closed_for > Duration::from_millis(200) {
            // Alive well after it closed the pipe without a word (an exiting process closes
            // its fds just before it becomes reapable): it will never report.
            let _ = kill_and_reap(pid, timeout);
            return Err(UpgradeError::ClosedReadinessPipe {
                pid: pid.as_raw() as u32,
            });
        }
    }
}

fn check_alive(pid: Pid) -> Result<(), UpgradeError> {
    match try_reap(pid) {
        Some(status) => Err(UpgradeError::Exited {
            pid: pid.as_raw() as u32,
            status,
        }),
        None => Ok(()),
    }
}

/// Reaps `pid` if it has exited, describing how.
/// Before the successor's readiness every exit is a failure: what is left of its process group
/// is killed ([`kill_group`]) before the zombie is reaped.
fn try_reap(pid: Pid) -> Option<ExitStatus> {
    match peek(pid) {
        Ok(None) => None,
        Ok(Some(status)) => {
            kill_group(pid.as_raw());
            reap(pid);
            Some(describe(status))
        }
        Err(Errno::ECHILD) => Some(ExitStatus::Unknown),
        Err(_) => None,
    }
}

/// How the child `pid` ended, if it did, without reaping it: until it is reaped, the zombie
/// keeps its pid, and so its process group's id, from being reused, so [`kill_group`] cannot
/// reach another process's group.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn peek(pid: Pid) -> Result<Option<WaitStatus>, Errno> {
    use nix::sys::wait::{waitid, Id};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        match waitid(Id::Pid(pid), flags) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(status) => return Ok(Some(status)),
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Where `waitid` is missing: reaps at once (the group's id is then reserved only while a member
/// lives; pids are reused only after the whole range went round).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn peek(pid: Pid) -> Result<Option<WaitStatus>, Errno> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(status) => return Ok(Some(status)),
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Reaps the child `pid`, which has ended ([`peek`]).
fn reap(pid: Pid) {
    while let Err(Errno::EINTR) = waitpid(pid, None) {}
}

/// Reaps the child `pid` if it has ended and says how, and whether it exited with status 0;
/// `None` while it runs (or is stopped). A child that is no longer ours to wait for (ECHILD:
/// reaped by other code of the process, or auto-reaped with SIGCHLD ignored) is gone with its
/// status unknown, which counts as a failure. After a failure, what is left of its process
/// group is killed ([`kill_group`]).
pub(crate) fn exit_status(pid: i32) -> Option<(ExitStatus, bool)> {
    let child = Pid::from_raw(pid);
    match peek(child) {
        Ok(Some(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..)))) => {
            let success = matches!(status, WaitStatus::Exited(_, 0));
            if !success {
                kill_group(pid);
            }
            reap(child);
            Some((describe(status), success))
        }
        // Reaped at an unknown time: its group's id may be another's by now, leave it alone.
        Err(Errno::ECHILD) => Some((ExitStatus::Unknown, false)),
        _ => None,
    }
}

/// SIGKILLs every process in the process group of the successor `pid` (it leads its own group,
/// see `spawn`): a wrapper script's child, started without `exec`, holds the inherited
/// listeners and would keep them open, orphaned. Call it before `pid` is reaped (alive or a
/// zombie, it keeps the group's id from being reused). A descendant that left the group
/// (`setsid`, `setpgid`) is out of reach; a service manager's cgroup catches it.
fn kill_group(pid: i32) {
    if pid <= 1 {
        return;
    }
    match kill(Pid::from_raw(-pid), Signal::SIGKILL) {
        Ok(()) => log::debug!("killed what was left of successor pid={pid}'s process group"),
        Err(Errno::ESRCH) => {}
        Err(err) => log::warn!("cannot kill successor pid={pid}'s process group: {err}"),
    }
}

/// SIGKILLs and reaps `pid`, which did not get ready within `timeout`.
pub(crate) fn kill_and_reap(pid: Pid, timeout: Duration) -> UpgradeError {
    kill_group(pid.as_raw());
    let _ = kill(pid, Signal::SIGKILL);
    let status = loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    log::debug!("successor pid={pid} killed: {status:?}");
    UpgradeError::Timeout {
        pid: pid.as_raw() as u32,
        timeout,
    }
}

fn describe(status: WaitStatus) -> ExitStatus {
    match status {
        WaitStatus::Exited(_, code) => ExitStatus::Code(code),
        WaitStatus::Signaled(_, sig, core_dumped) => ExitStatus::Signal {
            signal: sig as i32,
            core_dumped,
        },
        // Not asked for (no WUNTRACED / WCONTINUED): nothing to tell.
        _ => ExitStatus::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    // The children are reaped by `wait_ready` / `kill_and_reap`, the code under test.
    #[allow(clippy::zombie_processes)]
    fn spawn_sh(script: &str) -> (Pid, OwnedFd, OwnedFd) {
        let (r, w) = nix::unistd::pipe().unwrap();
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .spawn()
            .unwrap();
        (Pid::from_raw(child.id() as i32), r, w)
    }

    #[test]
    fn exit_before_ready_is_reported_with_status() {
        let (pid, r, w) = spawn_sh("exit 3");
        drop(w);
        let err = wait_ready(
            pid,
            &r,
            Readiness::Pipe,
            Duration::from_secs(5),
            &Cancel::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&err, UpgradeError::Exited { status, .. } if *status == ExitStatus::Code(3)),
            "{err}"
        );
    }

    #[test]
    fn hang_is_killed_at_the_timeout() {
        let (pid, r, _w) = spawn_sh("sleep 30");
        let t = Instant::now();
        let err = wait_ready(
            pid,
            &r,
            Readiness::Pipe,
            Duration::from_millis(300),
            &Cancel::default(),
        )
        .unwrap_err();
        assert!(matches!(err, UpgradeError::Timeout { .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Err(Errno::ECHILD));
    }

    #[test]
    fn cancel_stops_the_successor_and_reaps_it() {
        let (pid, r, w) = spawn_sh("sleep 30");
        drop(w);
        let cancel = Cancel::default();
        cancel.stop_successor(Signal::SIGTERM);
        let t = Instant::now();
        let err =
            wait_ready(pid, &r, Readiness::Pipe, Duration::from_secs(10), &cancel).unwrap_err();
        assert!(
            matches!(&err, UpgradeError::Exited { status, .. } if status.to_string().contains("SIGTERM")),
            "{err}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_child_reaped_elsewhere_is_gone_not_running() {
        #[allow(clippy::zombie_processes)] // reaped right below, as other code of an app would
        let child = Command::new("/bin/sh")
            .args(["-c", "exit 0"])
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        while let Err(Errno::EINTR) = waitpid(pid, None) {}
        let (status, success) = exit_status(pid.as_raw()).expect("gone, not running");
        assert!(!success);
        assert_eq!(status, ExitStatus::Unknown, "{status}");
    }

    #[test]
    fn ready_byte_is_ready() {
        let (pid, r, w) = spawn_sh("sleep 1");
        nix::unistd::write(&w, &[READY]).unwrap();
        wait_ready(
            pid,
            &r,
            Readiness::Pipe,
            Duration::from_secs(5),
            &Cancel::default(),
        )
        .unwrap();
        let _ = kill_and_reap(pid, Duration::ZERO);
    }

    #[test]
    fn after_mode_needs_only_survival() {
        let (pid, r, _w) = spawn_sh("sleep 30");
        wait_ready(
            pid,
            &r,
            Readiness::After(Duration::from_millis(100)),
            Duration::from_secs(5),
            &Cancel::default(),
        )
        .unwrap();
        let _ = kill_and_reap(pid, Duration::ZERO);
        let (pid, r, _w) = spawn_sh("exit 0");
        let err = wait_ready(
            pid,
            &r,
            Readiness::After(Duration::from_millis(300)),
            Duration::from_secs(5),
            &Cancel::default(),
        );
        assert!(matches!(err, Err(UpgradeError::Exited { .. })));
    }
}

/// Property tests: the readiness channel's two readers (the fd variable and the byte on the
/// pipe) on arbitrary input. Bounded case counts: they run in `cargo test`.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Every case starts a process and a garbage byte costs the 200 ms grace: keep it small.
        #![proptest_config(ProptestConfig::with_cases(8))]

        /// Whatever a successor writes on the pipe, the parent is ready only on a leading `R`,
        /// never panics, and leaves no child behind.
        #[test]
        fn only_a_leading_ready_byte_is_ready(bytes in proptest::collection::vec(
            prop_oneof![Just(READY), any::<u8>()], 0..4)) {
            // Close-on-exec, as in the library: the child must not hold the write end.
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            #[allow(clippy::zombie_processes)] // reaped by wait_ready / kill_and_reap below
            let child = std::process::Command::new("/bin/sh")
                .args(["-c", "sleep 30"])
                .spawn()
                .unwrap();
            let pid = Pid::from_raw(child.id() as i32);
            if !bytes.is_empty() {
                nix::unistd::write(&w, &bytes).unwrap();
            }
            drop(w); // as a successor that wrote and exited or closed the pipe
            let got = wait_ready(pid, &r, Readiness::Pipe, Duration::from_secs(5), &Cancel::default());
            if got.is_ok() {
                let _ = kill_and_reap(pid, Duration::ZERO);
            }
            prop_assert_eq!(got.is_ok(), bytes.first() == Some(&READY), "{:?}", got);
            prop_assert_eq!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Err(Errno::ECHILD));
        }
    }
}
