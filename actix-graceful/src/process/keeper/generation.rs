//! The generation's side of keeper mode: whether this process is a keeper or one of its
//! generations ([`role`]), and, in a generation, the link to the keeper (parent-death signal,
//! control pipe, the upgrade request passed on). Runs in the generation only: it must not start,
//! signal or reap generations (the keeper's driver does).

use std::{
    io,
    os::fd::{AsRawFd, OwnedFd},
    sync::Mutex,
};

use futures::channel::mpsc;
use nix::{
    errno::Errno,
    sys::signal::{kill, Signal},
    unistd::{getppid, Pid},
};

use super::LOG_TARGET;
use crate::protocol::{
    control::Control,
    env::{self, KEEPER, KEEPER_FD},
    fd, listen_fds,
};

/// What keeper mode makes of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// No keeper started this process: it becomes one.
    Keeper,
    /// A generation started by the keeper with this pid.
    Generation(Pid),
}

/// Decides the role: a generation when [`KEEPER`] is set *and* `LISTEN_PID` is this process
/// (so the variable was meant for it, not inherited from an ancestor), else a keeper.
///
/// # Errors
/// [`KEEPER`] is meant for this process but is not a process id.
pub(crate) fn role() -> io::Result<Role> {
    role_from(env::snapshot())
}

/// [`role`] from the values of [`KEEPER`] and `LISTEN_PID` and this process's pid.
fn role_from(snapshot: &env::Snapshot) -> io::Result<Role> {
    let Some(value) = &snapshot.keeper else {
        return Ok(Role::Keeper);
    };
    if !snapshot.is_for_us() {
        log::debug!(target: LOG_TARGET, "{KEEPER} is set but not for this process (LISTEN_PID is not ours)");
        return Ok(Role::Keeper);
    }
    let pid = value
        .to_str()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<i32>().ok());
    match pid {
        Some(pid) if pid > 0 => Ok(Role::Generation(Pid::from_raw(pid))),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{KEEPER}={value:?} is not a keeper's process id"),
        )),
    }
}

/// The link of a generation to its keeper: the keeper's words on the control pipe.
pub(crate) struct KeeperLink {
    /// The keeper's pid.
    pub(crate) keeper: Pid,
    /// The keeper's words, in order; the stream ends when the keeper is gone (its death
    /// signal, SIGTERM, does the rest).
    pub(crate) words: mpsc::UnboundedReceiver<Control>,
}

/// Run by a generation at start: asks for SIGTERM (a graceful drain) when the keeper dies,
/// checks that the keeper is still its parent, and listens to the keeper's control pipe.
///
/// # Errors
/// The keeper is already gone, or handed over no control pipe (a keeper that speaks another
/// protocol version is refused before this: `handoff::refusal`).
pub(crate) fn attach(keeper: Pid) -> io::Result<KeeperLink> {
    die_with_the_keeper();
    let parent = getppid();
    if parent != keeper {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the keeper pid={keeper} is gone (parent is pid={parent})"),
        ));
    }
    let control = CONTROL.lock().unwrap_or_else(|e| e.into_inner()).take();
    let control = control.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the keeper pid={keeper} handed over no control pipe ({KEEPER_FD})"),
        )
    })?;
    log::info!(target: LOG_TARGET,
        "generation pid={} of keeper pid={keeper}",
        std::process::id()
    );
    Ok(KeeperLink {
        keeper,
        words: watch_control(control),
    })
}

/// Asks for SIGTERM (a graceful drain) when the keeper (the parent) dies.
fn die_with_the_keeper() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        if rc != 0 {
            log::warn!(target: LOG_TARGET,
                "cannot ask for SIGTERM when the keeper dies: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// The generation's control pipe, taken at the crate's first use ([`claim_control_fd`]).
static CONTROL: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Takes the control pipe a keeper handed to this process, if any: only with a `LISTEN_PID`
/// that is explicitly ours, and only if the fd is a pipe after the listeners and the readiness
/// pipe. Marks it close-on-exec so the app's own children do not inherit it.
pub(crate) fn claim_control_fd(listen_fds: usize) {
    let snapshot = env::snapshot();
    let Some(value) = &snapshot.keeper_fd else {
        return;
    };
    if !snapshot.is_for_us() {
        return;
    }
    // After the listeners and the readiness pipe.
    let first_free = listen_fds::first_after(listen_fds).saturating_add(1);
    let after = "the readiness pipe";
    if let Some(owned) = fd::claim_announced_pipe(KEEPER_FD, value, first_free, after) {
        *CONTROL.lock().unwrap_or_else(|e| e.into_inner()) = Some(owned);
    }
}

/// Reads the control pipe on a thread of its own (detached: blocking, and it must not hold up
/// the runtime's shutdown); its words come out of the returned stream.
fn watch_control(fd: OwnedFd) -> mpsc::UnboundedReceiver<Control> {
    let (tx, rx) = mpsc::unbounded();
    let spawned = std::thread::Builder::new()
        .name("keeper-control".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            loop {
                match nix::unistd::read(fd.as_raw_fd(), &mut byte) {
                    Ok(1) => match Control::from_byte(byte[0]) {
                        Some(word) if tx.unbounded_send(word).is_err() => return,
                        Some(_) => {}
                        None => log::warn!(target: LOG_TARGET, "ignoring byte {} from the keeper", byte[0]),
                    },
                    Err(Errno::EINTR) => continue,
                    _ => return, // EOF or an error: the keeper is gone
                }
            }
        });
    if let Err(err) = spawned {
        log::warn!(target: LOG_TARGET, "cannot watch the keeper's control pipe: {err}");
    }
    rx
}

/// Run by a generation on the upgrade signal: a generation never starts a successor itself, it
/// passes the request on to its keeper.
pub(crate) fn forward_upgrade(keeper: Pid, signal: i32) {
    let sent = Signal::try_from(signal).and_then(|sig| kill(keeper, sig));
    match sent {
        Ok(()) => log::info!(target: LOG_TARGET, "upgrade: passed on to the keeper pid={keeper}"),
        Err(err) => {
            log::error!(target: LOG_TARGET, "upgrade: cannot pass it on to the keeper pid={keeper}: {err}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn role_is_generation_only_for_our_listen_pid() {
        let os = |s: &'static str| Some(OsStr::new(s));
        let role_from = |keeper: Option<&OsStr>, listen_pid: Option<&OsStr>, pid: u32| {
            role_from(&env::Snapshot {
                pid,
                keeper: keeper.map(Into::into),
                listen_pid: listen_pid.map(Into::into),
                ..env::Snapshot::default()
            })
        };
        assert_eq!(role_from(None, os("42"), 42).unwrap(), Role::Keeper);
        assert_eq!(
            role_from(os("7"), os("42"), 42).unwrap(),
            Role::Generation(Pid::from_raw(7))
        );
        // PID 1: the keeper of a container.
        assert_eq!(
            role_from(os("1"), os("42"), 42).unwrap(),
            Role::Generation(Pid::from_raw(1))
        );
        // Inherited from an ancestor (LISTEN_PID another's, or unset): not for us.
        assert_eq!(role_from(os("7"), os("43"), 42).unwrap(), Role::Keeper);
        assert_eq!(role_from(os("7"), None, 42).unwrap(), Role::Keeper);
        for bad in ["", "0", "-3", "+7", " 7", "x", "99999999999"] {
            let err = role_from(os(bad), os("42"), 42).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains(KEEPER), "{err}");
        }
    }
}
