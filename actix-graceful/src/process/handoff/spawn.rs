//! `fork` + `execve` of the successor with the listeners at fds `3..3+n` and a standard
//! `LISTEN_PID` holding the successor's own pid.
//!
//! Why not `std::process::Command` with `pre_exec`: `Command` builds the environment before
//! `fork`, so it cannot know the child's pid, and `LISTEN_PID` must be exactly that pid for an
//! unmodified socket-activation consumer (systemd's semantics). So the environment is built
//! here, with room for the pid's digits that the child writes itself.
//!
//! Everything the child needs is allocated before `fork`; between `fork` and `exec` the child
//! only makes async-signal-safe system calls (`sigaction`, `sigprocmask`, `setpgid`, `fcntl`,
//! `dup2`, `close_range`, `getpid`, `chdir`, `execve`/`execveat`, `write`, `_exit`) and writes
//! into memory it already owns, with no bounds-checked indexing (a panic would allocate).
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
    sys::signal::{pthread_sigmask, SigSet, SigmaskHow},
    unistd::{pipe2, Pid},
};

use super::Plan;
use crate::{
    error::public_pid,
    process::{child, signals},
    protocol::{
        env::{self, FALLBACK_FD, GENERATION, KEEPER_FD, PROTOCOL, PROTOCOL_VERSION, READY_FD},
        listen_fds::{self, LISTEN_FDS_START},
    },
    UpgradeError,
};

const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";
/// Room for the pid's decimal digits and the terminating NUL (a `u32` has at most 10 digits).
const PID_ROOM: usize = 11;

/// The step of the child's start that failed (its number is what the child reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildStep {
    Dup = 1,
    Chdir = 2,
    Exec = 3,
}

/// Everything the child needs, allocated before `fork`.
pub(crate) struct Spawn {
    path: CString,
    /// Executed instead of `path` when set (keeper mode's last good build): `execveat` with
    /// `AT_EMPTY_PATH`. `script`: it starts with `#!`, so it must stay open across `exec` for
    /// the interpreter to read it through `/dev/fd`.
    exe_fd: Option<(RawFd, bool)>,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    /// `LISTEN_PID=` followed by [`PID_ROOM`] bytes.
    pid_entry: Box<[u8]>,
    env_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
    /// Source fds: the listeners in order, then the readiness pipe's write end, then the
    /// keeper's control pipe or the fallback's channel, if any.
    sources: Vec<RawFd>,
    /// Placed after the readiness pipe: the keeper's control pipe or the fallback's channel.
    extra: Option<RawFd>,
    /// Scratch space for the child's high duplicates, one per source.
    scratch: Vec<RawFd>,
    mask: SigSet,
    /// Highest fd to mark close-on-exec when `close_range` is unavailable.
    fd_limit: RawFd,
}

/// A started successor: its pid and the read end of its report channel.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) pid: Pid,
    pub(crate) channel: OwnedFd,
}

impl Spawn {
    /// Prepares the start of the plan's executable with its `args` (`argv[0]` included) in its
    /// `cwd`, the environment of this process less every handoff variable, with `env_changes`
    /// applied in order (`Some`: set, `None`: remove), then the handoff's own variables.
    ///
    /// # Errors
    /// A path, argument or variable holds a NUL byte.
    pub(crate) fn new(
        plan: &Plan,
        env_changes: &[(OsString, Option<OsString>)],
        upgrade_signal_mask: SigSet,
    ) -> io::Result<Self> {
        let argv = plan
            .args
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<io::Result<Vec<_>>>()?;
        let env = successor_env(plan, env_changes)?;
        let mut pid_entry = [LISTEN_PID_PREFIX, &[0; PID_ROOM]]
            .concat()
            .into_boxed_slice();
        let argv_ptrs = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let env_ptrs = env
            .iter()
            .map(|e| e.as_ptr())
            .chain([pid_entry.as_mut_ptr().cast_const().cast(), std::ptr::null()])
            .collect();
        let fd_limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft.min(1 << 20) as RawFd)
            .unwrap_or(1 << 16);
        let extra = plan.control.or(plan.fallback);
        let sources: Vec<RawFd> = plan.listeners.iter().map(|(fd, _)| *fd).collect();
        Ok(Spawn {
            path: cstring(plan.exe.as_os_str().as_bytes())?,
            exe_fd: plan.exe_fd.map(|fd| (fd, is_script(fd))),
            _argv: argv,
            argv_ptrs,
            _env: env,
            pid_entry,
            env_ptrs,
            cwd: cstring(plan.cwd.as_os_str().as_bytes())?,
            scratch: vec![-1; sources.len() + 2],
            sources,
            extra,
            mask: upgrade_signal_mask,
            fd_limit,
        })
    }

    /// The executable this starts.
    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(self.path.as_bytes()))
    }

    /// Forks and execs the successor. Returns once `exec` succeeded.
    ///
    /// # Errors
    /// [`UpgradeError::Spawn`] when the pipes or the fork could not be made;
    /// [`UpgradeError::Exec`] when the child could not start the program (it has been reaped).
    pub(crate) fn run(mut self) -> Result<Child, UpgradeError> {
        let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).map_err(spawn_error)?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(spawn_error)?;
        self.sources.push(ready_w.as_raw_fd());
        self.sources.extend(self.extra);
        let pid = self.fork(err_w.as_raw_fd()).map_err(UpgradeError::Spawn)?;
        log::debug!("forked successor pid={pid}");
        drop(ready_w);
        drop(err_w);

        let mut report = [0u8; 8];
        if read_full(&err_r, &mut report) == report.len() {
            // The child failed before or at exec and has exited with 127: reap it.
            child::kill_and_reap(pid);
            return Err(self.exec_error(pid, &report));
        }
        Ok(Child {
            pid,
            channel: ready_r,
        })
    }

    /// Forks with every signal blocked (the child must not run a handler of ours, which would
    /// write to our self-pipes, before it has reset them); the child execs.
    fn fork(&mut self, err_w: RawFd) -> io::Result<Pid> {
        let mut before = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&signals::all()),
            Some(&mut before),
        )?;
        // SAFETY: after fork the child runs `exec_child` only, which makes async-signal-safe
        // system calls on memory allocated before the fork (see its comment) and never returns.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: we are the freshly forked child; see `exec_child`.
            unsafe { self.exec_child(err_w) }
        }
        let fork_error = io::Error::last_os_error();
        if let Err(err) = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None) {
            log::warn!("cannot restore the signal mask after fork: {err}");
        }
        if pid < 0 {
            return Err(fork_error);
        }
        Ok(Pid::from_raw(pid))
    }

    /// The child's failure report (step, errno) as an error.
    fn exec_error(&self, pid: Pid, report: &[u8; 8]) -> UpgradeError {
        let [s0, s1, s2, s3, e0, e1, e2, e3] = *report;
        let errno = io::Error::from_raw_os_error(i32::from_ne_bytes([e0, e1, e2, e3]));
        let error = match u32::from_ne_bytes([s0, s1, s2, s3]) {
            1 => io::Error::new(
                errno.kind(),
                format!("cannot place the listeners at fds 3..: {errno}"),
            ),
            2 => io::Error::new(
                errno.kind(),
                format!(
                    "cannot enter the start-up directory {}: {errno}",
                    self.cwd.to_string_lossy()
                ),
            ),
            _ => errno,
        };
        UpgradeError::Exec {
            path: self.path(),
            pid: public_pid(pid),
            error,
        }
    }

    /// The child's side, from `fork` to `exec`.
    ///
    /// # Safety
    /// Call only in the child of a `fork`. Makes only async-signal-safe calls (no allocation,
    /// no locks, no panics): it reads and writes the buffers of `self`, allocated before the
    /// fork, through iterators and `get`, never by a bounds-checked index.
    unsafe fn exec_child(&mut self, err_w: RawFd) -> ! {
        // Every signal is blocked (see `fork`): defaults first, then the successor's mask.
        // SAFETY: in the child of a fork, before exec: the function's contract.
        unsafe { signals::reset_in_child() };
        // SAFETY: plain system calls on our own process with valid (or null) pointers. setpgid:
        // a process group of its own (see the module docs); it cannot fail for a fresh child
        // that is no session leader, and should it, the child merely stays in ours.
        unsafe {
            libc::setpgid(0, 0);
            libc::pthread_sigmask(libc::SIG_SETMASK, self.mask.as_ref(), std::ptr::null_mut());
        }
        let err_w = match self.place_fds(err_w) {
            Ok(err_w) => err_w,
            Err(err_w) => fail(ChildStep::Dup, err_w),
        };
        // LISTEN_PID=<our pid>, written into the pre-allocated entry.
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        if let Some(digits) = self.pid_entry.get_mut(LISTEN_PID_PREFIX.len()..) {
            write_decimal(digits, pid);
        }
        // SAFETY: `cwd` is a NUL-terminated string we own.
        if unsafe { libc::chdir(self.cwd.as_ptr()) } != 0 {
            fail(ChildStep::Chdir, err_w);
        }
        self.exec();
        fail(ChildStep::Exec, err_w)
    }

    /// Moves every source (and the error pipe, returned at its new place) above the target
    /// range, then down to `3..`, and marks every other fd close-on-exec. In the child only.
    /// `Err`: a duplication failed (with the error pipe to report on).
    fn place_fds(&mut self, err_w: RawFd) -> Result<RawFd, RawFd> {
        let n = self.sources.len(); // listeners, the readiness pipe, the control/fallback pipe
        let base = LISTEN_FDS_START + n as RawFd;
        // Step 1: move every source, the error pipe and the executable's fd above the target
        // range 3..3+n, so no dup2 below overwrites a source it has not copied yet.
        let err_w = dup_above(err_w, base).ok_or(err_w)?;
        for (source, high) in self.sources.iter().zip(self.scratch.iter_mut()) {
            *high = dup_above(*source, base).ok_or(err_w)?;
        }
        if let Some((fd, _)) = &mut self.exe_fd {
            *fd = dup_above(*fd, base).ok_or(err_w)?;
        }
        // Step 2: down to 3.., where dup2 leaves FD_CLOEXEC cleared (sources != targets).
        for (high, target) in self.scratch.iter().take(n).zip(LISTEN_FDS_START..) {
            // SAFETY: dup2 on descriptors of our own.
            if unsafe { libc::dup2(*high, target) } < 0 {
                return Err(err_w);
            }
        }
        // Step 3: nothing else crosses exec: every fd from `base` up becomes close-on-exec,
        // but a script's own fd, which its interpreter opens through /dev/fd.
        if !cloexec_from(base) {
            for fd in base..self.fd_limit {
                // SAFETY: fcntl on a descriptor number; a closed one fails harmlessly.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
        if let Some((fd, true)) = self.exe_fd {
            // SAFETY: fcntl on our own descriptor.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
        Ok(err_w)
    }

    /// Executes the program: the held build's fd, else the path. Returns only on failure.
    fn exec(&self) {
        match self.exe_fd {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            // SAFETY: NUL-terminated strings and NULL-terminated pointer arrays, all owned by
            // `self` and allocated before the fork.
            Some((fd, _)) => unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    fd,
                    b"\0".as_ptr().cast::<libc::c_char>(), // "" (no C-string literal: MSRV 1.75)
                    self.argv_ptrs.as_ptr(),
                    self.env_ptrs.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
            },
            // Elsewhere no build is held by fd (keeper mode's rollback is Linux's): the path.
            // SAFETY: as above, with the path.
            _ => unsafe {
                libc::execve(
                    self.path.as_ptr(),
                    self.argv_ptrs.as_ptr(),
                    self.env_ptrs.as_ptr(),
                );
            },
        }
    }
}

/// The successor's environment, but for `LISTEN_PID` (the child writes it): this process's
/// own less every [`env::HANDOFF`] variable and less what `env_changes` names, then
/// `env_changes`' values, then the handoff's variables for this plan.
fn successor_env(
    plan: &Plan,
    env_changes: &[(OsString, Option<OsString>)],
) -> io::Result<Vec<CString>> {
    let n = plan.listeners.len();
    let ready_fd = listen_fds::first_after(n);
    let names: Vec<&str> = plan.listeners.iter().map(|(_, n)| n.as_str()).collect();
    let mut env = std::env::vars_os()
        .filter(|(k, _)| !env::is_handoff(k) && !env_changes.iter().any(|(name, _)| k == name))
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
    let mut own = vec![
        format!("LISTEN_FDS={n}"),
        format!("LISTEN_FDNAMES={}", names.join(":")),
        format!("{READY_FD}={ready_fd}"),
        format!("{GENERATION}={}", plan.generation),
        format!("{PROTOCOL}={PROTOCOL_VERSION}"),
    ];
    if plan.control.is_some() {
        own.push(format!("{KEEPER_FD}={}", ready_fd + 1));
    } else if plan.fallback.is_some() {
        own.push(format!("{FALLBACK_FD}={}", ready_fd + 1));
    }
    for entry in own {
        env.push(cstring(entry.as_bytes())?);
    }
    Ok(env)
}

/// Whether the file at `fd` starts with `#!` (read at offset 0, the fd's own offset untouched).
fn is_script(fd: RawFd) -> bool {
    let mut magic = [0u8; 2];
    // SAFETY: `fd` is a descriptor of ours (the caller holds it); `magic` is a live buffer.
    // The fd may be closed meanwhile: pread then fails and the file counts as no script.
    let got = unsafe { libc::pread(fd, magic.as_mut_ptr().cast(), magic.len(), 0) };
    got == 2 && magic == *b"#!"
}

/// `fcntl(F_DUPFD_CLOEXEC)`: a duplicate of `fd` at `min` or above. Async-signal-safe.
fn dup_above(fd: RawFd, min: RawFd) -> Option<RawFd> {
    // SAFETY: fcntl on a descriptor number; an invalid one fails.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    (high >= 0).then_some(high)
}

/// Reports the failed `step` with the current errno on `err_w` and exits with status 127.
/// Async-signal-safe.
fn fail(step: ChildStep, err_w: RawFd) -> ! {
    let errno = nix::errno::Errno::last_raw();
    let mut report = [0u8; 8];
    let (step_bytes, errno_bytes) = report.split_at_mut(4);
    step_bytes.copy_from_slice(&(step as u32).to_ne_bytes());
    errno_bytes.copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: writes a live buffer to our own pipe, then ends the process without running
    // anything of the parent's (no atexit handlers, no destructors).
    unsafe {
        libc::write(err_w, report.as_ptr().cast(), report.len());
        libc::_exit(127)
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

/// Writes `value` in decimal followed by a NUL at the start of `buf`, as far as it fits (a
/// `buf` of [`PID_ROOM`] bytes always does). No allocation, no panic: iterators only.
fn write_decimal(buf: &mut [u8], mut value: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    for slot in digits.iter_mut() {
        *slot = b'0' + (value % 10) as u8;
        len += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let most_significant_first = digits.iter().take(len).rev().chain(std::iter::once(&0));
    for (to, from) in buf.iter_mut().zip(most_significant_first) {
        *to = *from;
    }
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

fn spawn_error(err: nix::errno::Errno) -> UpgradeError {
    UpgradeError::Spawn(err.into())
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
        let mut buf = [0xffu8; PID_ROOM];
        write_decimal(&mut buf, 0);
        assert_eq!(&buf[..2], b"0\0");
        write_decimal(&mut buf, u32::MAX);
        assert_eq!(&buf[..11], b"4294967295\0");
        write_decimal(&mut buf, 31337);
        assert_eq!(&buf[..6], b"31337\0");
        // Too small a buffer is cut, never a panic.
        let mut small = [0xffu8; 3];
        write_decimal(&mut small, 31337);
        assert_eq!(&small, b"313");
    }

    #[test]
    fn a_script_is_told_from_a_binary() {
        let script = std::fs::File::open("/bin/sh").expect("sh");
        assert!(!is_script(script.as_raw_fd()), "/bin/sh is a binary");
        let dir = std::env::temp_dir().join(format!("ag-spawn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("wrapper");
        std::fs::write(&path, "#!/bin/sh\nexec true\n").expect("write");
        let file = std::fs::File::open(&path).expect("open");
        assert!(is_script(file.as_raw_fd()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
