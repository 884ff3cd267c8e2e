//! Starting a server the way a service manager hands it sockets: fds at 3, 4, ... and the
//! `LISTEN_*` variables, without a launcher in between.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::family::ServerFamily;

/// Runs `exe` as systemd would after socket activation, with `fds` placed at 3, 4, ... (other fds up to 3+8 closed), environment
/// `env` (LISTEN_* removed first), and, if `listen_pid_self`, LISTEN_PID set to the server's own
/// pid (through `sh -c 'LISTEN_PID=$$ exec ...'`, which keeps the pid).
pub fn spawn_with_fds(
    name: &str,
    exe: &Path,
    fds: &[RawFd],
    env: &[(&str, &str)],
    listen_pid_self: bool,
    args: &[String],
) -> ServerFamily {
    assert!(fds.len() <= 8, "at most 8 fds");
    let mut cmd = if listen_pid_self {
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg("LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"")
            .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(args);
    for k in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let fds: Vec<RawFd> = fds.to_vec();
    // SAFETY: only async-signal-safe calls (dup/dup2/fcntl/close) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Move the sources above the target range first (collision-safe), then down.
            let mut high = [0 as RawFd; 8];
            for (i, &fd) in fds.iter().enumerate() {
                let h = libc::fcntl(fd, libc::F_DUPFD, 100);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high[i] = h;
            }
            for i in 0..8 {
                libc::close(3 + i as RawFd);
            }
            for (i, &h) in high.iter().take(fds.len()).enumerate() {
                if libc::dup2(h, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(h);
            }
            Ok(())
        });
    }
    ServerFamily::spawn(name, cmd).expect("spawn the server")
}

/// The real `systemd-socket-activate` (`SOCKET_ACTIVATE_BIN` overrides the path).
pub fn launcher() -> PathBuf {
    let p = std::env::var_os("SOCKET_ACTIVATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/systemd-socket-activate"));
    assert!(
        p.is_file(),
        "{} not found: install the `systemd` package (or set SOCKET_ACTIVATE_BIN)",
        p.display()
    );
    p
}

/// Run `exe` under systemd-socket-activate, as systemd starts a socket-activated service. `listen` are the launcher's `-l` addresses,
/// `extra` more launcher options (`--fdname=`, `-E`), `args` the server's arguments. Waits until
/// the launcher reports every socket listening.
pub fn socket_activate(
    listen: &[String],
    extra: &[String],
    exe: &Path,
    args: &[String],
) -> ServerFamily {
    let mut cmd = Command::new(launcher());
    for l in listen {
        cmd.arg("-l").arg(l);
    }
    // The launcher passes only TERM/PATH/USER/HOME plus -E variables to the child: the log
    // level, and the tests' short probation (as `ServerFamily::spawn` gives every server).
    cmd.arg("-E").arg("RUST_LOG=info");
    let probation = format!(
        "{}={}",
        crate::family::PROBATION_VAR,
        crate::family::TEST_PROBATION
    );
    cmd.arg("-E").arg(probation);
    cmd.args(extra);
    cmd.arg(exe);
    cmd.args(args);
    let fam = ServerFamily::spawn("activate", cmd).expect("spawn systemd-socket-activate");
    for i in 0..listen.len() {
        fam.stderr
            .wait_for_line(
                0,
                |l| l.contains(&format!(" as {}.", 3 + i)),
                Duration::from_secs(15),
            )
            .unwrap_or_else(|| {
                panic!(
                    "launcher did not report fd {}\n{}",
                    3 + i,
                    fam.output_tail(20)
                )
            });
    }
    fam
}
