//! Telling the supervisor: systemd's `sd_notify` datagrams and an atomically written pid file.

use std::{
    ffi::OsStr,
    io::{self, Write as _},
    os::{
        fd::{AsRawFd as _, RawFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
};

/// Sends `state` (newline-separated `KEY=VALUE` pairs) to the socket in `NOTIFY_SOCKET`, if
/// any. Failures are logged, never fatal: the server serves whether or not systemd listens.
pub(crate) fn sd_notify(state: &str) {
    let _ = sd_notify_with_fds(state, &[]);
}

/// Like [`sd_notify`], with `fds` attached (`SCM_RIGHTS`), as `FDSTORE=1` needs. Returns whether
/// the datagram was sent (`false` also when `NOTIFY_SOCKET` is not set).
pub(crate) fn sd_notify_with_fds(state: &str, fds: &[RawFd]) -> bool {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    match send(&target, state, fds) {
        Ok(()) => {
            log::debug!(
                "sd_notify: {} ({} fd(s))",
                state.replace('\n', " "),
                fds.len()
            );
            true
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            let line = state.replace('\n', " ");
            if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                log::debug!("sd_notify to {target:?}: queue full, dropped {line}");
            } else {
                log::warn!(
                    "sd_notify to {target:?}: the service manager's queue is full (it reads \
                     slowly); dropped {line}; later drops are logged at debug level only"
                );
            }
            false
        }
        Err(err) => {
            log::warn!("sd_notify to {target:?} failed: {err}");
            false
        }
    }
}

/// One datagram to a path or an `@abstract` name, as `sd_pid_notify_with_fds` sends it.
///
/// Hand-written rather than the `sd-notify` crate: its 0.5 release connects to `NOTIFY_SOCKET`
/// as a path only (no abstract namespace, which containers and `systemd-run --user` use) and
/// needs Rust 1.82; `nix::sys::socket::sendmsg` already does the one call needed.
fn send(target: &OsStr, state: &str, fds: &[RawFd]) -> io::Result<()> {
    use nix::sys::socket::{
        sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
    };
    let bytes = target.as_bytes();
    let addr = match bytes.first() {
        Some(b'/') => UnixAddr::new(bytes)?,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => UnixAddr::new_abstract(&bytes[1..])?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor an abstract name",
            ))
        }
    };
    // Never blocks: a manager that reads slowly (its queue full) costs a dropped notification,
    // not a stalled runtime thread.
    let socket = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    let iov = [io::IoSlice::new(state.as_bytes())];
    let sent = sendmsg(
        socket.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        Some(&addr),
    )?;
    if sent == state.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "notification datagram cut short",
        ))
    }
}

/// Hands `listeners` (descriptor and fd name) to systemd's fd store, one datagram each so every
/// descriptor keeps its own `FDNAME=`. systemd keeps one copy of a socket however often it is
/// stored, so every generation may store its listeners again.
pub(crate) fn store_fds(listeners: &[(RawFd, String)]) {
    let mut stored = 0;
    for (fd, name) in listeners {
        if sd_notify_with_fds(&format!("FDSTORE=1\nFDNAME={name}"), &[*fd]) {
            stored += 1;
        }
    }
    if stored > 0 {
        log::info!("handed {stored} listener(s) to the service manager's fd store");
    }
}

/// The `STATUS=` text systemd shows for this process: its generation, pid and `state`.
pub(crate) fn status(generation: u64, pid: u32, state: &str) -> String {
    format!("STATUS=generation {generation} (pid {pid}): {state}")
}

/// `MONOTONIC_USEC=` value for `RELOADING=1`: CLOCK_MONOTONIC in microseconds.
pub(crate) fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

/// A pid file written atomically (temporary file, then rename), so a supervisor never reads a
/// half-written one.
#[derive(Debug, Clone)]
pub(crate) struct PidFile(PathBuf);

impl PidFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        PidFile(path)
    }

    /// Writes this process's pid.
    pub(crate) fn write(&self) -> io::Result<()> {
        let mut tmp = self.0.clone().into_os_string();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.0)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Removes the file if it still holds this process's pid (a successor may have taken it).
    pub(crate) fn remove_if_ours(&self) {
        let ours = std::fs::read_to_string(&self.0)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            if let Err(err) = std::fs::remove_file(&self.0) {
                log::warn!("cannot remove pid file {}: {err}", self.0.display());
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn datagram_reaches_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("ag-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1\nMAINPID=42", &[]).unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nMAINPID=42");
        let err = send(OsStr::new("relative"), "X=1", &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fds_travel_with_the_datagram_to_an_abstract_name() {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
        use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
        let name = format!("ag-notify-test-{}", std::process::id());
        let addr = UnixAddr::new_abstract(name.as_bytes()).unwrap();
        let rx = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        nix::sys::socket::bind(rx.as_raw_fd(), &addr).unwrap();
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();

        let target = format!("@{name}");
        send(
            OsStr::new(&target),
            "FDSTORE=1\nFDNAME=public",
            &[write_end.as_raw_fd()],
        )
        .unwrap();

        let mut buf = [0u8; 64];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let msg =
            recvmsg::<()>(rx.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
        let received: Vec<RawFd> = msg
            .cmsgs()
            .unwrap()
            .flat_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds,
                _ => Vec::new(),
            })
            .collect();
        let n = msg.bytes;
        assert_eq!(&buf[..n], b"FDSTORE=1\nFDNAME=public");
        assert_eq!(received.len(), 1);
        // SAFETY: the fd was just received and is owned by nothing else.
        let copy = unsafe { OwnedFd::from_raw_fd(received[0]) };
        drop(write_end);
        nix::unistd::write(&copy, b"x").unwrap();
        let mut one = [0u8; 1];
        assert_eq!(
            nix::unistd::read(read_end.as_raw_fd(), &mut one).unwrap(),
            1
        );
        assert_eq!(&one, b"x", "the received fd is the same pipe");
    }

    #[test]
    fn a_full_manager_queue_is_a_dropped_notification_not_a_blocked_thread() {
        let dir = std::env::temp_dir().join(format!("ag-notify-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _rx = UnixDatagram::bind(&path).unwrap(); // never read
        let started = std::time::Instant::now();
        let mut full = None;
        for i in 0..10_000 {
            if let Err(err) = send(path.as_os_str(), "STATUS=filling", &[]) {
                full = Some((i, err));
                break;
            }
        }
        let (sent, err) = full.expect("the queue never filled");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        assert!(sent > 0);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pid_file_is_replaced_atomically_and_removed_only_if_ours() {
        let dir = std::env::temp_dir().join(format!("ag-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pf = PidFile::new(dir.join("app.pid"));
        pf.write().unwrap();
        assert_eq!(
            std::fs::read_to_string(pf.path()).unwrap(),
            format!("{}\n", std::process::id())
        );
        std::fs::write(pf.path(), "1\n").unwrap();
        pf.remove_if_ours();
        assert!(pf.path().exists(), "another pid's file must stay");
        pf.write().unwrap();
        pf.remove_if_ours();
        assert!(!pf.path().exists());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "no temp file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn monotonic_clock_moves() {
        let a = monotonic_usec();
        assert!(a > 0);
        assert!(monotonic_usec() >= a);
    }
}
