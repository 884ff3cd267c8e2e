//! Waiting for the processes this one started (successors, keeper generations), in one place:
//! whether one has ended, reaping it, and killing what is left of its process group. Blocking
//! system calls only; it decides nothing about what an exit means.

use nix::{
    errno::Errno,
    sys::{
        signal::{kill, Signal},
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::Pid,
};

use crate::ExitStatus;

/// What to do with the rest of a child's process group when it has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// Kill it whatever the exit (a successor that was not ready yet: every exit is a failure).
    Kill,
    /// Kill it unless the child exited with status 0 (it ended on purpose).
    KillOnFailure,
}

/// Reaps the child `pid` if it has ended and says how; `None` while it runs (or is stopped).
/// Before the reap, what is left of its process group is killed as `group` says ([`kill_group`]).
/// A child that is no longer ours to wait for (ECHILD: reaped by other code of the process, or
/// auto-reaped with SIGCHLD ignored) has ended with its status unknown; its group's id may be
/// another's by now, so it is left alone.
pub(crate) fn try_reap(pid: Pid, group: Group) -> Option<ExitStatus> {
    match peek(pid) {
        Ok(None) => None,
        Ok(Some(status)) => {
            let status = describe(status);
            if group == Group::Kill || status != ExitStatus::Code(0) {
                kill_group(pid);
            }
            reap(pid);
            Some(status)
        }
        Err(Errno::ECHILD) => Some(ExitStatus::Unknown),
        Err(_) => None,
    }
}

/// Sends `signal` to the child `pid` (gone already: nothing to do).
pub(crate) fn signal(pid: Pid, signal: Signal) {
    if let Err(err) = kill(pid, signal) {
        log::debug!("cannot send {signal} to pid={pid}: {err}");
    }
}

/// Waits until the child `pid` ends (blocking), then does as [`try_reap`].
pub(crate) fn wait(pid: Pid, group: Group) -> ExitStatus {
    loop {
        if let Some(status) = try_reap(pid, group) {
            return status;
        }
        if let Err(err) = block_until_ended(pid) {
            if err != Errno::EINTR {
                return try_reap(pid, group).unwrap_or(ExitStatus::Unknown);
            }
        }
    }
}

/// Blocks until the child `pid` has ended, without reaping it.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn block_until_ended(pid: Pid) -> Result<(), Errno> {
    use nix::sys::wait::{waitid, Id};
    waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT).map(drop)
}

/// Where `waitid` is missing: polls (a child's life is no hot path).
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn block_until_ended(_pid: Pid) -> Result<(), Errno> {
    std::thread::sleep(std::time::Duration::from_millis(50));
    Ok(())
}

/// SIGKILLs the child `pid` and its process group, and reaps it (blocking until it is gone).
pub(crate) fn kill_and_reap(pid: Pid) -> ExitStatus {
    kill_group(pid);
    let _ = kill(pid, Signal::SIGKILL);
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            Ok(status) => return describe(status),
            Err(_) => return ExitStatus::Unknown,
        }
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

/// SIGKILLs every process in the process group of the child `pid` (successors and generations
/// lead their own group, see `handoff::spawn`): a wrapper script's child, started without
/// `exec`, holds the inherited listeners and would keep them open, orphaned. Call it before
/// `pid` is reaped (alive or a zombie, it keeps the group's id from being reused). A descendant
/// that left the group (`setsid`, `setpgid`) is out of reach; a service manager's cgroup
/// catches it.
fn kill_group(pid: Pid) {
    if pid.as_raw() <= 1 {
        return;
    }
    match kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL) {
        Ok(()) => log::debug!("killed what was left of pid={pid}'s process group"),
        Err(Errno::ESRCH) => {}
        Err(err) => log::warn!("cannot kill pid={pid}'s process group: {err}"),
    }
}

/// The [`ExitStatus`] of a `waitpid`/`waitid` result.
pub(crate) fn describe(status: WaitStatus) -> ExitStatus {
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
    use std::process::Command;

    use super::*;

    fn spawn_sh(script: &str) -> Pid {
        #[allow(clippy::zombie_processes)] // reaped by the code under test
        let child = Command::new("/bin/sh")
            .args(["-c", script])
            .spawn()
            .expect("sh");
        Pid::from_raw(child.id() as i32)
    }

    #[test]
    fn a_running_child_is_not_reaped_and_an_ended_one_is_once() {
        let pid = spawn_sh("sleep 30");
        assert_eq!(try_reap(pid, Group::Kill), None);
        assert_eq!(kill_and_reap(pid).to_string(), "killed by signal SIGKILL");
        let pid = spawn_sh("exit 3");
        let status = loop {
            if let Some(status) = try_reap(pid, Group::KillOnFailure) {
                break status;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(status, ExitStatus::Code(3));
        assert_eq!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Err(Errno::ECHILD));
    }

    #[test]
    fn a_child_reaped_elsewhere_has_ended_with_an_unknown_status() {
        let pid = spawn_sh("exit 0");
        while let Err(Errno::EINTR) = waitpid(pid, None) {}
        assert_eq!(try_reap(pid, Group::Kill), Some(ExitStatus::Unknown));
    }
}
