//! One process-wide child reaper.
//!
//! The test process makes itself a *child subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`), so a
//! server generation whose parent has exited is re-parented to the test process instead of
//! to init. A single thread then waits for any child in a loop and records every exit status
//! in a map keyed by pid, with the instant it was reaped, before it reaps the child.
//!
//! Consequences for the code that spawns processes:
//! - spawn with [`std::process::Command`] but never call `Child::wait`, `Child::try_wait`,
//!   `Command::status` or `Command::output` (the reaper would steal the status, or std would
//!   see `ECHILD`). Ask this module instead ([`wait_gone`], [`exit_status_since`]).
//! - many tests run as threads of one test binary: because there is only one reaper and it
//!   keeps every status, no test steals another's.
//! - pids are reused (pid_max may be 32768): look up statuses only "since" the instant you
//!   started caring about a pid.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Condvar, Mutex, Once};
use std::time::{Duration, Instant};

/// How a reaped process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl Exit {
    /// `exit(0)`.
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Reaped {
    exit: Exit,
    at: Instant,
}

static MAP: Mutex<BTreeMap<i32, Vec<Reaped>>> = Mutex::new(BTreeMap::new());
static CV: Condvar = Condvar::new();
static INIT: Once = Once::new();

/// Become a child subreaper and start the reaper thread (idempotent). Every helper that
/// spawns a process calls this first.
pub fn ensure() {
    INIT.call_once(|| {
        // SAFETY: plain prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
        assert_eq!(
            rc,
            0,
            "prctl(PR_SET_CHILD_SUBREAPER) failed: {}",
            std::io::Error::last_os_error()
        );
        std::thread::Builder::new()
            .name("itest-reaper".into())
            .spawn(reaper_loop)
            .expect("spawn reaper thread");
    });
}

fn reaper_loop() {
    loop {
        match next_exit() {
            Ok(Some((pid, exit))) => {
                // Recorded before it is reaped: a process our reaper collects is never absent
                // from /proc and from the map at once, so `wait_gone` needs no grace period.
                let mut map = MAP.lock().unwrap_or_else(|e| e.into_inner());
                map.entry(pid).or_default().push(Reaped {
                    exit,
                    at: Instant::now(),
                });
                drop(map);
                CV.notify_all();
                let mut status: libc::c_int = 0;
                // SAFETY: waitpid with a valid out pointer. Retried on EINTR, else the zombie
                // would be recorded twice; ECHILD (a std `Child::wait` of another thread got
                // there first) is fine, the status is recorded.
                while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
                {
                }
            }
            Ok(None) => {}
            // ECHILD: no children right now. Poll again shortly.
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Waits for a child to end and returns its pid and status, leaving it a zombie (`WNOWAIT`).
/// `Ok(None)`: interrupted, or a state that is not an end.
fn next_exit() -> std::io::Result<Option<(i32, Exit)>> {
    // SAFETY: siginfo_t is plain data, valid when zeroed.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid with a valid out pointer.
    let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EINTR) => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: waitid filled `info` for a child (si_pid, si_status are set for SIGCHLD).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    let exit = match info.si_code {
        libc::CLD_EXITED => Exit::Code(status),
        libc::CLD_KILLED | libc::CLD_DUMPED => Exit::Signal(status),
        _ => return Ok(None),
    };
    Ok(Some((pid, exit)))
}

/// The exit status of `pid` if the reaper collected it at or after `since`.
pub fn exit_status_since(pid: i32, since: Instant) -> Option<Exit> {
    let map = MAP.lock().unwrap_or_else(|e| e.into_inner());
    map.get(&pid)
        .and_then(|v| v.iter().rev().find(|r| r.at >= since))
        .map(|r| r.exit)
}

/// The exit status of `pid` and the instant it was reaped, if reaped at or after `since`.
pub fn reaped_at(pid: i32, since: Instant) -> Option<(Exit, Instant)> {
    let map = MAP.lock().unwrap_or_else(|e| e.into_inner());
    map.get(&pid)
        .and_then(|v| v.iter().rev().find(|r| r.at >= since))
        .map(|r| (r.exit, r.at))
}

/// How a process disappeared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// Our reaper collected it (it was our child or was re-parented to us).
    Reaped(Exit),
    /// It no longer exists, but someone else reaped it (e.g. a server reaped its own failed
    /// successor), so we do not know its status.
    ReapedElsewhere,
}

impl Gone {
    /// The exit status, if we know it.
    pub fn exit(&self) -> Option<Exit> {
        match self {
            Gone::Reaped(e) => Some(*e),
            Gone::ReapedElsewhere => None,
        }
    }
}

impl fmt::Display for Gone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gone::Reaped(e) => write!(f, "{e}"),
            Gone::ReapedElsewhere => write!(f, "reaped by another process"),
        }
    }
}

/// Wait until `pid` is gone (reaped by us since `since`, or absent from /proc), at most
/// `timeout`. `None` on timeout. A zombie is not gone.
pub fn wait_gone(pid: i32, since: Instant, timeout: Duration) -> Option<Gone> {
    ensure();
    let deadline = Instant::now() + timeout;
    let mut map = MAP.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(r) = map
            .get(&pid)
            .and_then(|v| v.iter().rev().find(|r| r.at >= since))
        {
            return Some(Gone::Reaped(r.exit));
        }
        let now = Instant::now();
        if !crate::procfs::exists(pid) {
            // The reaper records a status before it reaps (`next_exit`), and the map was
            // looked at above under the lock the reaper records under: someone else reaped it.
            return Some(Gone::ReapedElsewhere);
        }
        if now >= deadline {
            return None;
        }
        let step = (deadline - now).min(Duration::from_millis(10));
        map = CV
            .wait_timeout(map, step)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Is `pid` still around (running, or a zombie nobody reaped yet)?
pub fn alive(pid: i32) -> bool {
    crate::procfs::exists(pid)
}
