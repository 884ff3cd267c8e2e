//! The parent's wait for a successor's first report: `ready` (it serves), `failed` (its
//! readiness check or self-probe failed, with why), or nothing before it exits, closes the
//! channel, or the upgrade timeout ends. Blocking; the successor is reaped (with its process
//! group) on every failure.

use std::{
    sync::{
        atomic::{AtomicI32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

use super::channel::{Channel, Heard};
use crate::{
    error::public_pid,
    process::child::{self, Group},
    protocol::report::Report,
    UpgradeError,
};

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

/// How the parent decides that the successor is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// The successor reports on the channel (every app built on this crate does).
    Reported,
    /// The successor is taken as ready once it has run this long without exiting: for a
    /// successor that knows only the standard protocol. A report counts too.
    After(Duration),
}

/// A successor that serves.
#[derive(Debug)]
pub(crate) struct Started {
    /// The child started (a wrapper script that `exec`s the server keeps it).
    pub(crate) pid: Pid,
    /// Its report channel: the probation's verdict comes on it, and its end without one means
    /// the successor died.
    pub(crate) channel: Channel,
    /// The probation it announced; `None` when it did not report (`Readiness::After`).
    pub(crate) probation: Option<Duration>,
}

/// How long a successor that reported `failed` has to exit before it is killed.
const EXIT_AFTER_FAILED: Duration = Duration::from_secs(5);
/// How long a successor may live on after closing its channel without a report: an exiting
/// process closes its fds just before it becomes reapable.
const CLOSED_GRACE: Duration = Duration::from_millis(200);

/// Waits until the successor `pid` is ready per `readiness`, within `timeout`, or until
/// `cancel` asks to stop it.
///
/// # Errors
/// [`UpgradeError::NotReady`] when it reported why it is not ready; [`UpgradeError::Exited`]
/// when it exits first; [`UpgradeError::ClosedReadinessPipe`] when it closed the channel and
/// lived on; [`UpgradeError::Protocol`] for a report that makes no sense now;
/// [`UpgradeError::Timeout`] when the time runs out. Every time, it has been reaped.
pub(crate) fn wait_ready(
    pid: Pid,
    mut channel: Channel,
    readiness: Readiness,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<Started, UpgradeError> {
    let start = Instant::now();
    let mut sent = 0;
    let mut closed_at: Option<Instant> = None;
    loop {
        pass_on(pid, cancel, &mut sent);
        let elapsed = start.elapsed();
        if matches!(readiness, Readiness::After(after) if elapsed >= after) {
            return match child::try_reap(pid, Group::Kill) {
                Some(status) => Err(exited(pid, status)),
                None => Ok(Started {
                    pid,
                    channel,
                    probation: None,
                }),
            };
        }
        if elapsed >= timeout {
            let status = child::kill_and_reap(pid);
            log::debug!("successor pid={pid} killed: {status}");
            let pid = public_pid(pid);
            return Err(UpgradeError::Timeout { pid, timeout });
        }
        let slice = (timeout - elapsed).min(Duration::from_millis(20));
        match channel.wait(slice) {
            Some(Heard::Closed) => {
                closed_at.get_or_insert_with(Instant::now);
                std::thread::sleep(slice.min(Duration::from_millis(5)));
            }
            Some(heard) => {
                let probation = first_report(pid, heard, timeout - elapsed)?;
                let probation = Some(probation);
                return Ok(Started {
                    pid,
                    channel,
                    probation,
                });
            }
            None => {}
        }
        if let Some(status) = child::try_reap(pid, Group::Kill) {
            return Err(exited(pid, status));
        }
        let closed_long = closed_at.is_some_and(|at| at.elapsed() > CLOSED_GRACE);
        if closed_long && readiness == Readiness::Reported {
            let status = child::kill_and_reap(pid);
            log::debug!("successor pid={pid} killed: {status}");
            return Err(UpgradeError::ClosedReadinessPipe {
                pid: public_pid(pid),
            });
        }
    }
}

/// What the successor's first report means: ready with its probation, or why not (it has
/// been reaped then; `left`: the time the upgrade has left).
fn first_report(pid: Pid, heard: Heard, left: Duration) -> Result<Duration, UpgradeError> {
    match heard {
        Heard::Report(Report::Ready { probation, .. }) => Ok(probation),
        Heard::Report(Report::Failed { reason, .. }) => Err(not_ready(pid, reason, left)),
        Heard::Report(report) => Err(protocol(pid, format!("{report:?}"))),
        Heard::Bad(bad) => Err(protocol(pid, bad.to_string())),
        Heard::Closed => Err(protocol(pid, "nothing".to_owned())),
    }
}

/// Passes a cancellation on to the successor once (the loop then reaps it).
fn pass_on(pid: Pid, cancel: &Cancel, sent: &mut i32) {
    let asked = cancel.0.load(Ordering::SeqCst);
    if asked != 0 && asked != *sent {
        if let Ok(sig) = Signal::try_from(asked) {
            log::info!("upgrade: cancelled, sending {sig} to successor pid={pid}");
            let _ = kill(pid, sig);
        }
        *sent = asked;
    }
}

fn exited(pid: Pid, status: crate::ExitStatus) -> UpgradeError {
    UpgradeError::Exited {
        pid: public_pid(pid),
        status,
    }
}

fn protocol(pid: Pid, what: String) -> UpgradeError {
    let status = child::kill_and_reap(pid);
    log::debug!("successor pid={pid} killed: {status}");
    UpgradeError::Protocol {
        pid: public_pid(pid),
        what,
    }
}

/// The successor said why it is not ready and exits: waits for it (at most `left` and
/// [`EXIT_AFTER_FAILED`]), then kills what is left, and reaps it.
fn not_ready(pid: Pid, reason: String, left: Duration) -> UpgradeError {
    let until = Instant::now() + left.min(EXIT_AFTER_FAILED);
    let status = loop {
        if let Some(status) = child::try_reap(pid, Group::Kill) {
            break status;
        }
        if Instant::now() >= until {
            break child::kill_and_reap(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    log::debug!("successor pid={pid} not ready, ended: {status}");
    UpgradeError::NotReady {
        pid: public_pid(pid),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::{os::fd::OwnedFd, process::Command};

    use nix::{
        errno::Errno,
        sys::wait::{waitpid, WaitPidFlag},
    };

    use super::*;
    use crate::ExitStatus;

    /// A `/bin/sh -c script` child and a report channel whose write end the test holds.
    fn spawn_sh(script: &str) -> (Pid, Channel, OwnedFd) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        #[allow(clippy::zombie_processes)] // reaped by the code under test
        let child = Command::new("/bin/sh")
            .args(["-c", script])
            .spawn()
            .expect("sh");
        let pid = Pid::from_raw(child.id() as i32);
        (pid, Channel::new(r).expect("channel"), w)
    }

    fn wait(pid: Pid, channel: Channel, timeout_ms: u64) -> Result<Started, UpgradeError> {
        let timeout = Duration::from_millis(timeout_ms);
        wait_ready(
            pid,
            channel,
            Readiness::Reported,
            timeout,
            &Cancel::default(),
        )
    }

    fn gone(pid: Pid) -> bool {
        waitpid(pid, Some(WaitPidFlag::WNOHANG)) == Err(Errno::ECHILD)
    }

    #[test]
    fn exit_before_ready_is_reported_with_its_status() {
        let (pid, channel, w) = spawn_sh("exit 3");
        drop(w);
        let err = wait(pid, channel, 5000).unwrap_err();
        assert!(
            matches!(&err, UpgradeError::Exited { status, .. } if *status == ExitStatus::Code(3)),
            "{err}"
        );
    }

    #[test]
    fn a_hang_is_killed_at_the_timeout() {
        let (pid, channel, _w) = spawn_sh("sleep 30");
        let t = Instant::now();
        let err = wait(pid, channel, 300).unwrap_err();
        assert!(matches!(err, UpgradeError::Timeout { .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(gone(pid));
    }

    #[test]
    fn cancel_stops_the_successor_and_reaps_it() {
        let (pid, channel, w) = spawn_sh("sleep 30");
        drop(w);
        let cancel = Cancel::default();
        cancel.stop_successor(Signal::SIGTERM);
        let t = Instant::now();
        let timeout = Duration::from_secs(10);
        let err = wait_ready(pid, channel, Readiness::Reported, timeout, &cancel).unwrap_err();
        assert!(
            matches!(&err, UpgradeError::Exited { status, .. } if status.to_string().contains("SIGTERM")),
            "{err}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_ready_report_is_ready_with_its_probation_and_the_channel_stays() {
        let (pid, channel, w) = spawn_sh("sleep 30");
        let line = Report::Ready {
            pid,
            probation: Duration::from_millis(1500),
        };
        nix::unistd::write(&w, &line.encode()).expect("write");
        let mut started = wait(pid, channel, 5000).expect("ready");
        assert_eq!(started.probation, Some(Duration::from_millis(1500)));
        nix::unistd::write(&w, &Report::Passed { pid }.encode()).expect("write");
        assert_eq!(
            started.channel.wait(Duration::from_secs(5)),
            Some(Heard::Report(Report::Passed { pid }))
        );
        child::kill_and_reap(pid);
    }

    #[test]
    fn a_failed_report_is_not_ready_with_its_reason_and_the_successor_is_reaped() {
        let (pid, channel, w) = spawn_sh("sleep 0.2");
        let reason = "readiness check: the database is unreachable".to_owned();
        nix::unistd::write(&w, &Report::Failed { pid, reason }.encode()).expect("write");
        let err = wait(pid, channel, 5000).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "successor pid={pid} is not ready: readiness check: the database is unreachable"
            )
        );
        assert!(gone(pid));
    }

    #[test]
    fn after_mode_needs_only_survival() {
        let (pid, channel, _w) = spawn_sh("sleep 30");
        let after = Readiness::After(Duration::from_millis(100));
        let five = Duration::from_secs(5);
        let started = wait_ready(pid, channel, after, five, &Cancel::default()).expect("ready");
        assert_eq!(started.probation, None);
        child::kill_and_reap(pid);
        let (pid, channel, _w) = spawn_sh("exit 0");
        let after = Readiness::After(Duration::from_millis(300));
        let err = wait_ready(pid, channel, after, five, &Cancel::default());
        assert!(matches!(err, Err(UpgradeError::Exited { .. })));
    }
}

/// Property tests: whatever a successor writes first, the parent is ready only on a `ready`
/// line, never panics, and leaves no child behind.
#[cfg(test)]
mod proptests {
    use std::process::Command;

    use nix::{
        errno::Errno,
        sys::wait::{waitpid, WaitPidFlag},
    };
    use proptest::prelude::*;

    use super::*;

    proptest! {
        // Every case starts a process and garbage costs the 200 ms grace: keep it small.
        #![proptest_config(ProptestConfig::with_cases(8))]

        #[test]
        fn only_a_ready_line_is_ready(bytes in prop_oneof![
            Just(b"ready 1 0\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..24),
        ]) {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            #[allow(clippy::zombie_processes)] // reaped by wait_ready / kill_and_reap below
            let child = Command::new("/bin/sh").args(["-c", "sleep 30"]).spawn().unwrap();
            let pid = Pid::from_raw(child.id() as i32);
            if !bytes.is_empty() {
                nix::unistd::write(&w, &bytes).unwrap();
            }
            drop(w); // as a successor that wrote and exited or closed the channel
            let channel = Channel::new(r).unwrap();
            let timeout = Duration::from_secs(5);
            let got = wait_ready(pid, channel, Readiness::Reported, timeout, &Cancel::default());
            if got.is_ok() {
                child::kill_and_reap(pid);
            }
            prop_assert_eq!(got.is_ok(), bytes.starts_with(b"ready 1 0\n"), "{:?}", got.err());
            prop_assert_eq!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Err(Errno::ECHILD));
        }
    }
}
