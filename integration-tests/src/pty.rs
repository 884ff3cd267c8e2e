//! A real pseudo-terminal (`openpty`) that a started process takes as its controlling terminal,
//! as a shell's foreground job has one: the kernel then sends it (its foreground process group)
//! SIGWINCH on every resize, SIGINT for `^C`, SIGHUP on hang-up.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// A pseudo-terminal pair; the test keeps the master side.
pub struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    /// Opens a pty of `cols` x `rows`, both sides close-on-exec from the start (the tests share
    /// one process: an fd without it, even for a moment, leaks into every process another test
    /// starts meanwhile, and a leaked master keeps the terminal from hanging up).
    pub fn open(cols: u16, rows: u16) -> io::Result<Pty> {
        let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: posix_openpt returns a new fd (or -1), owned by nobody else.
        let master = unsafe { libc::posix_openpt(flags) };
        if master < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just opened, owned here.
        let master = unsafe { OwnedFd::from_raw_fd(master) };
        let m = master.as_raw_fd();
        // SAFETY: grantpt/unlockpt on our master fd.
        if unsafe { libc::grantpt(m) } != 0 || unsafe { libc::unlockpt(m) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: ptsname_r writes a NUL-terminated name into a buffer of the size given.
        let rc = unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: `name` is NUL-terminated (ptsname_r succeeded).
        let slave = unsafe { libc::open(name.as_ptr(), flags) };
        if slave < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just opened, owned here.
        let slave = unsafe { OwnedFd::from_raw_fd(slave) };
        let pty = Pty { master, slave };
        pty.resize(cols, rows)?;
        Ok(pty)
    }

    /// Makes `cmd`'s process a session leader whose controlling terminal is this pty, with the
    /// pty as its stdin (stdout and stderr stay as the command sets them, so the harness can
    /// capture them): the foreground job of a terminal.
    pub fn attach(&self, cmd: &mut Command) {
        let slave = self.slave.as_raw_fd();
        // SAFETY: the closure makes only async-signal-safe calls (setsid, dup2, ioctl).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 || libc::dup2(slave, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Resizes the terminal, as a terminal emulator does when its window changes: the kernel
    /// sends SIGWINCH to the foreground process group when the size differs.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        let size = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ reads a winsize through a valid pointer.
        if unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ as _, &size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Types `bytes` at the terminal (`b"\x03"` is ^C: SIGINT to the foreground group).
    pub fn type_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: writes from a live buffer to an fd we own.
        let n = unsafe { libc::write(self.master.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n != bytes.len() as isize {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The terminal's foreground process group.
    pub fn foreground(&self) -> io::Result<i32> {
        // SAFETY: tcgetpgrp on an fd we own.
        let pgrp = unsafe { libc::tcgetpgrp(self.master.as_raw_fd()) };
        if pgrp < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(pgrp)
    }
}

fn winsize(cols: u16, rows: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// The process group of `pid`, if it exists.
pub fn pgid(pid: i32) -> Option<i32> {
    nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
        .ok()
        .map(|p| p.as_raw())
}
