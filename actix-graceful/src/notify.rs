//! Telling the supervisor: systemd's `sd_notify` datagrams and an atomically written pid file.

use std::{
    io::{self, Write as _},
    path::{Path, PathBuf},
};

/// Sends `state` (newline-separated `KEY=VALUE` pairs) to the socket in `NOTIFY_SOCKET`, if
/// any. Failures are logged, never fatal: the server serves whether or not systemd listens.
pub(crate) fn sd_notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(err) = send(Path::new(&target), state) {
        log::warn!("sd_notify to {target:?} failed: {err}");
    } else {
        log::debug!("sd_notify: {}", state.replace('\n', " "));
    }
}

fn send(target: &Path, state: &str) -> io::Result<()> {
    use std::os::unix::{ffi::OsStrExt as _, net::UnixDatagram};
    let socket = UnixDatagram::unbound()?;
    let bytes = target.as_os_str().as_bytes();
    match bytes.first() {
        Some(b'/') => socket.send_to(state.as_bytes(), target).map(drop),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?;
            socket.send_to_addr(state.as_bytes(), &addr).map(drop)
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor an abstract name",
        )),
    }
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
        send(&path, "READY=1\nMAINPID=42").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nMAINPID=42");
        assert!(send(Path::new("relative"), "X=1").is_err());
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
