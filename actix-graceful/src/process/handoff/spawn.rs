//! `fork` + `execve` of the successor with the listeners at fds `3..3+n` and a standard
//! `LISTEN_PID` holding the successor's own pid.
//!
//! Everything the child needs is allocated before `fork`; between `fork` and `exec` the child
//! only makes async-signal-safe system calls (`sigaction`, `sigprocmask`, `setpgid`, `fcntl`,
//! `dup2`, `close_range`, `getpid`, `chdir`, `execve`, `write`, `_exit`) and writes into memory
//! it already owns.
//!
//! Signals: the forking thread blocks every signal around `fork`, so the child runs no handler
//! of this process before it has reset them all to their defaults; it then takes the
//! successor's mask (the upgrade signal blocked across `exec`, see `signals`).
//!
//! Process group: the child makes itself the leader of a new process group (`setpgid(0, 0)`),
//! so signals a terminal sends to its foreground group (SIGWINCH on a resize, SIGINT on Ctrl-C,
//! SIGHUP) reach the process the user started and not its successors behind its back, and a
//! failed successor can be killed with every descendant it started (`kill(-pid)`).

use std::{
    ffi::{CString, OsString},
    io,
    os::{
        fd::{AsRawFd, OwnedFd, RawFd},
        unix::ffi::{OsStrExt as _, OsStringExt as _},
    },
    path::PathBuf,
};

use nix::{
    fcntl::OFlag,
    sys::{
        signal::{pthread_sigmask, SigSet, SigmaskHow},
        wait::waitpid,
    },
    unistd::{pipe2, Pid},
};

use super::Plan;
use crate::{
    process::signals,
    protocol::{
        env::{GENERATION, KEEPER_FD, READY_FD},
        listen_fds::{self, LISTEN_FDS_START},
    },
};

const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";

/// The child's failure report: the step that failed and its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildStep {
    Dup = 1,
    Chdir = 2,
    Exec = 3,
}

/// Everything the child needs, allocated before `fork`.
pub(crate) struct Spawn {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    /// `LISTEN_PID=` followed by room for the digits and the terminating NUL.
    _pid_entry: Vec<u8>,
    /// Where the child writes its pid digits (inside `_pid_entry`, after the prefix).
    pid_digits: *mut u8,
    env_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
    /// Source fds: the listeners in order, then the readiness pipe's write end, then the keeper's
    /// control pipe, if any.
    sources: Vec<RawFd>,
    /// The keeper's control pipe (read end), placed after the readiness pipe.
    control: Option<RawFd>,
    /// Scratch space for the child's high duplicates.
    scratch: Vec<RawFd>,
    mask: SigSet,
    /// Highest fd to mark close-on-exec when `close_range` is unavailable.
    fd_limit: RawFd,
}

/// A started successor: its pid and the read end of its readiness pipe.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) pid: Pid,
    pub(crate) ready: OwnedFd,
}

/// Why the child did not get to `exec` the successor.
#[derive(Debug)]
pub(crate) struct ChildFailed {
    pub(crate) pid: Pid,
    pub(crate) step: ChildStep,
    pub(crate) error: io::Error,
}

impl Spawn {
    /// Prepares the start of the plan's `exe` with its `args` (argv[0] included) in its `cwd`,
    /// the environment of this process less any `LISTEN_*` and readiness variable, with
    /// `env_changes` applied in order (`Some`: set, `None`: remove), the plan's `listeners`
    /// (fd, name), its `generation` (unless `env_changes` sets it) and, in keeper mode, the
    /// generation's control pipe `control` (named by [`KEEPER_FD`]).
    ///
    /// # Errors
    /// A path, argument or name holds a NUL byte.
    pub(crate) fn new(
        plan: &Plan,
        env_changes: &[(OsString, Option<OsString>)],
        upgrade_signal_mask: SigSet,
    ) -> io::Result<Self> {
        let Plan {
            exe,
            args,
            cwd,
            listeners,
            generation,
            control,
            ..
        } = plan;
        let control = *control;
        let n = listeners.len();
        let ready_fd = listen_fds::first_after(n);
        let names = listeners
            .iter()
            .map(|(_, name)| name.as_str())
            .collect::<Vec<_>>()
            .join(":");

        let argv = args
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<io::Result<Vec<_>>>()?;
        let mut env = std::env::vars_os()
            .filter(|(k, _)| {
                !matches!(
                    k.to_str(),
                    Some(
                        "LISTEN_FDS"
                            | "LISTEN_PID"
                            | "LISTEN_FDNAMES"
                            | READY_FD
                            | GENERATION
                            | KEEPER_FD
                    )
                ) && !env_changes.iter().any(|(name, _)| k == name)
            })
            .chain(
                env_changes
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.clone()?))),
            )
            .map(|(k, v)| {
                let mut entry = k.into_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                cstring(&entry)
            })
            .collect::<io::Result<Vec<_>>>()?;
        env.push(cstring(format!("LISTEN_FDS={n}").as_bytes())?);
        env.push(cstring(format!("LISTEN_FDNAMES={names}").as_bytes())?);
        env.push(cstring(format!("{READY_FD}={ready_fd}").as_bytes())?);
        if control.is_some() {
            let control_fd = ready_fd + 1;
            env.push(cstring(format!("{KEEPER_FD}={control_fd}").as_bytes())?);
        }
        if !env_changes.iter().any(|(name, _)| *name == GENERATION) {
            env.push(cstring(format!("{GENERATION}={generation}").as_bytes())?);
        }

        let mut pid_entry = LISTEN_PID_PREFIX.to_vec();
        pid_entry.resize(LISTEN_PID_PREFIX.len() + 24, 0);

        let entry_ptr = pid_entry.as_mut_ptr();
        // SAFETY: the prefix is shorter than the buffer, so the offset stays inside it. The heap
        // buffer does not move when the Vec is moved into `Spawn` below.
        let pid_digits = unsafe { entry_ptr.add(LISTEN_PID_PREFIX.len()) };
        let argv_ptrs = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let env_ptrs = env
            .iter()
            .map(|e| e.as_ptr())
            .chain([
                entry_ptr.cast_const().cast::<libc::c_char>(),
                std::ptr::null(),
            ])
            .collect();

        let fd_limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft.min(1 << 20) as RawFd)
            .unwrap_or(1 << 16);

        Ok(Spawn {
            path: cstring(exe.as_os_str().as_bytes())?,
            _argv: argv,
            argv_ptrs,
            _env: env,
            _pid_entry: pid_entry,
            pid_digits,
            env_ptrs,
            cwd: cstring(cwd.as_os_str().as_bytes())?,
            sources: listeners.iter().map(|(fd, _)| *fd).collect(),
            control,
            scratch: vec![-1; n + 3],
            mask: upgrade_signal_mask,
            fd_limit,
        })
    }

    /// The executable this starts.
    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(self.path.as_bytes()))
    }

    /// Forks and execs the successor. Returns once `exec` succeeded (or failed).
    ///
    /// # Errors
    /// `Err(Ok(ChildFailed))` when the child could not exec (it has been reaped);
    /// `Err(Err(io))` when the pipes or the fork could not be made.
    pub(crate) fn run(mut self) -> Result<Child, Result<ChildFailed, io::Error>> {
        let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| Err(e.into()))?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| Err(e.into()))?;
        self.sources.push(ready_w.as_raw_fd());
        if let Some(control) = self.control {
            self.sources.push(control);
        }

        // Every signal blocked around fork: the child must not run a handler of ours (it would
        // write to our self-pipes) before it has reset them.
        let mut before = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&signals::all()),
            Some(&mut before),
        )
        .map_err(|e| Err(e.into()))?;
        // SAFETY: after fork the child runs `exec_child` only, which makes async-signal-safe
        // system calls on memory allocated before the fork (see its comment) and never returns.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: we are the freshly forked child; see `exec_child`.
            unsafe { self.exec_child(err_w.as_raw_fd()) }
        }
        let fork_error = io::Error::last_os_error();
        if let Err(err) = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None) {
            log::warn!("cannot restore the signal mask after fork: {err}");
        }
        if pid < 0 {
            return Err(Err(fork_error));
        }
        let pid = Pid::from_raw(pid);
        log::debug!("forked successor pid={pid}");
        drop(ready_w);
        drop(err_w);

        let mut report = [0u8; 8];
        let got = read_full(&err_r, &mut report);
        if got == report.len() {
            // The child failed before or at exec and has exited with 127: reap it.
            let _ = waitpid(pid, None);
            let step = match u32::from_ne_bytes([report[0], report[1], report[2], report[3]]) {
                1 => ChildStep::Dup,
                2 => ChildStep::Chdir,
                _ => ChildStep::Exec,
            };
            let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
            return Err(Ok(ChildFailed {
                pid,
                step,
                error: io::Error::from_raw_os_error(errno),
            }));
        }
        Ok(Child {
            pid,
            ready: ready_r,
        })
    }

    /// The child's side, from `fork` to `exec`.
    ///
    /// # Safety
    /// Call only in the child of a `fork`. Makes only async-signal-safe calls (no allocation,
    /// no locks): it reads and writes the buffers of `self`, allocated before the fork.
    unsafe fn exec_child(&mut self, err_w: RawFd) -> ! {
        let n = self.sources.len(); // listeners, the readiness pipe, the control pipe
        let base = LISTEN_FDS_START + n as RawFd;
        let fail = |step: ChildStep, err_w: RawFd| -> ! {
            let errno = nix::errno::Errno::last_raw();
            let mut report = [0u8; 8];
            report[..4].copy_from_slice(&(step as u32).to_ne_bytes());
            report[4..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(err_w, report.as_ptr().cast(), report.len());
            libc::_exit(127)
        };

        // Every signal is blocked (see `run`): defaults first, then the successor's mask.
        signals::reset_in_child();
        // A process group of its own (see the module docs). Cannot fail for a fresh child that
        // is no session leader; should it, the child merely stays in ours.
        libc::setpgid(0, 0);
        libc::pthread_sigmask(libc::SIG_SETMASK, self.mask.as_ref(), std::ptr::null_mut());

        // Step 1: move every source, and the error pipe, above the target range 3..3+n, so no
        // dup2 below overwrites a source it has not copied yet.
        let high_err_w = libc::fcntl(err_w, libc::F_DUPFD_CLOEXEC, base);
        if high_err_w < 0 {
            fail(ChildStep::Dup, err_w);
        }
        let err_w = high_err_w;
        for i in 0..n {
            let high = libc::fcntl(self.sources[i], libc::F_DUPFD_CLOEXEC, base);
            if high < 0 {
                fail(ChildStep::Dup, err_w);
            }
            self.scratch[i] = high;
        }
        // Step 2: down to 3.., where dup2 leaves FD_CLOEXEC cleared (sources != targets).
        for i in 0..n {
            if libc::dup2(self.scratch[i], LISTEN_FDS_START + i as RawFd) < 0 {
                fail(ChildStep::Dup, err_w);
            }
        }
        // Step 3: nothing else crosses exec: every fd from `base` up becomes close-on-exec.
        if !cloexec_from(base) {
            for fd in base..self.fd_limit {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }

        // LISTEN_PID=<our pid>, written into the pre-allocated entry.
        write_decimal(
            std::slice::from_raw_parts_mut(self.pid_digits, 24),
            libc::getpid() as u32,
        );

        if libc::chdir(self.cwd.as_ptr()) != 0 {
            fail(ChildStep::Chdir, err_w);
        }
        libc::execve(
            self.path.as_ptr(),
            self.argv_ptrs.as_ptr(),
            self.env_ptrs.as_ptr(),
        );
        fail(ChildStep::Exec, err_w)
    }
}

/// Marks every fd from `first` up close-on-exec with one `close_range` call (Linux ≥ 5.11).
/// Returns false where that is not available. Async-signal-safe.
#[cfg(target_os = "linux")]
fn cloexec_from(first: RawFd) -> bool {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on our own descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn cloexec_from(_first: RawFd) -> bool {
    false
}

/// Writes `value` in decimal followed by a NUL into `buf` (at least 11 bytes). No allocation.
fn write_decimal(buf: &mut [u8], mut value: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (value % 10) as u8;
        len += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[i] = digits[len - 1 - i];
    }
    buf[len] = 0;
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{:?} holds a NUL byte",
                String::from_utf8_lossy(bytes)
                    .chars()
                    .take(64)
                    .collect::<String>()
            ),
        )
    })
}

/// Reads until `buf` is full or EOF; returns the byte count (EINTR retried, errors end it).
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_without_allocation() {
        let mut buf = [0xffu8; 12];
        write_decimal(&mut buf, 0);
        assert_eq!(&buf[..2], b"0\0");
        write_decimal(&mut buf, 4_294_967_295);
        assert_eq!(&buf[..11], b"4294967295\0");
        write_decimal(&mut buf, 31337);
        assert_eq!(&buf[..6], b"31337\0");
    }
}
