//! The self-probe's process side: a private listener the probe alone reaches, the listeners
//! actix serves hidden behind placeholders until the probe passed, and the probe's HTTP/1.1
//! request. Free of actix types: the server starts actix between [`Hidden::hide`] and
//! [`Hidden::reveal`] and pauses its accept loop around the reveal.
//!
//! Why placeholders: a successor shares its predecessor's accept queue, and actix accepts on
//! every listener from its first poll. To serve the probe before taking any public connection,
//! the descriptor numbers actix registers in its accept loop point at placeholders (listening
//! sockets of the same family on loopback, or an abstract Unix name, that nobody connects to)
//! when actix starts; once the probe passed and actix's accept loop has let go of them (its
//! pause applied: no epoll instance of this process watches them any more), `dup2` puts the
//! real listeners back at those numbers and actix's resume registers them. Linux only (the
//! epoll check reads `/proc/self/fdinfo`); elsewhere the listeners stay as they are and the
//! probe runs while the process already accepts.

use std::{
    io,
    os::{
        fd::{AsRawFd, RawFd},
        unix::{fs::DirBuilderExt as _, net::UnixListener},
    },
    path::PathBuf,
    time::{Duration, Instant},
};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::registry;
use crate::protocol::fd;

/// The private listener of the probe: a Unix socket in a directory only this user can enter,
/// removed once the probe is done.
#[derive(Debug)]
pub(crate) struct Private {
    dir: PathBuf,
    path: PathBuf,
}

impl Private {
    /// Binds the private listener; the caller hands it to actix.
    ///
    /// # Errors
    /// The directory or the socket cannot be made.
    pub(crate) fn bind() -> io::Result<(Private, UnixListener)> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "actix-graceful-probe-{}-{nanos}",
            std::process::id()
        ));
        let context = |e: io::Error| {
            let what = format!(
                "self-probe: cannot make its private socket in {}",
                dir.display()
            );
            io::Error::new(e.kind(), format!("{what}: {e} (TMPDIR sets the directory)"))
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(context)?;
        let path = dir.join("probe.sock");
        let private = Private {
            dir: dir.clone(),
            path,
        }; // removes the directory again should the bind fail
        let listener = UnixListener::bind(&private.path).map_err(context)?;
        listener.set_nonblocking(true).map_err(context)?;
        Ok((private, listener))
    }

    /// Sends `GET <path>` to the app through the private listener and reads the status line:
    /// `Ok` for a 2xx, else why not.
    ///
    /// # Errors
    /// No answer, or not a 2xx: the status and the start of the body, or what went wrong.
    pub(crate) async fn get(&self, path: &str) -> Result<(), String> {
        let mut stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|e| format!("self-probe: cannot connect to the private listener: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("self-probe: GET {path}: {e}"))?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while answer.len() < 4096 {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("self-probe: GET {path}: {e}")),
            }
        }
        judge(path, &answer)
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// `Ok` when `answer` starts with a 2xx status line.
fn judge(path: &str, answer: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(code) => {
            let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
            let body: String = body.chars().take(120).collect();
            Err(format!(
                "self-probe: GET {path} answered {code}: {}",
                body.trim()
            ))
        }
        None => {
            let start: String = text.chars().take(60).collect();
            Err(format!(
                "self-probe: GET {path}: not an HTTP answer: {start:?}"
            ))
        }
    }
}

/// The listeners actix serves, hidden behind placeholders.
#[derive(Debug)]
pub(crate) struct Hidden {
    /// Each served descriptor number, the placeholder's inode, and the real listener (the
    /// registry's duplicate, borrowed by number: the registry keeps it while hidden).
    swaps: Vec<(RawFd, u64, RawFd)>,
}

impl Hidden {
    /// Puts a placeholder at every descriptor number actix serves a listener at. The registry
    /// keeps every listener meanwhile.
    ///
    /// # Errors
    /// A placeholder cannot be made or placed; the listeners placed so far are put back.
    pub(crate) fn hide() -> io::Result<Hidden> {
        let mut hidden = Hidden { swaps: Vec::new() };
        registry::hold_listeners(true);
        for (served, dup, unix) in registry::served_listeners() {
            match placeholder(unix).and_then(|p| put_at(&p, served).map(|()| p)) {
                Ok(placeholder) => {
                    let ino = fd::identity(placeholder.as_raw_fd()).map_or(0, |(_, ino)| ino);
                    hidden.swaps.push((served, ino, dup));
                }
                Err(err) => {
                    hidden.put_back();
                    return Err(err);
                }
            }
        }
        Ok(hidden)
    }

    /// Once no epoll instance of this process watches a placeholder any more (actix's pause
    /// applied; at most `within`), puts the real listeners back at their numbers: actix's
    /// resume then registers them.
    ///
    /// # Errors
    /// A listener cannot be put back (the process must not serve then).
    pub(crate) fn reveal(mut self, within: Duration) -> io::Result<()> {
        let until = Instant::now() + within;
        while self.watched() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.watched() {
            log::warn!("self-probe: actix still watches a placeholder; putting the listeners back");
        }
        self.put_back_checked()
    }

    /// The probe failed and this process will not serve: the placeholders stay where they are
    /// (putting the listeners back under actix's accept loop would only make it log errors
    /// as it stops), and the registry keeps the listeners.
    pub(crate) fn keep_hidden(mut self) {
        self.swaps.clear();
    }

    /// Whether some epoll instance of this process still watches a placeholder.
    fn watched(&self) -> bool {
        let inodes: Vec<u64> = self.swaps.iter().map(|(_, ino, _)| *ino).collect();
        epoll_watches_any(&inodes)
    }

    fn put_back_checked(&mut self) -> io::Result<()> {
        let swaps = std::mem::take(&mut self.swaps);
        registry::hold_listeners(false);
        for (served, _, dup) in swaps {
            // SAFETY: dup2 between two descriptors of ours: `dup` is the registry's, `served`
            // the number actix holds (a placeholder's until now).
            if unsafe { libc::dup2(dup, served) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    fn put_back(&mut self) {
        if let Err(err) = self.put_back_checked() {
            log::error!("self-probe: cannot put a listener back: {err}");
        }
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        if !self.swaps.is_empty() {
            self.put_back();
        }
    }
}

/// A listening socket nobody reaches: TCP on 127.0.0.1, port 0, or an autobound abstract Unix
/// name; non-blocking, as actix's listeners are.
fn placeholder(unix: bool) -> io::Result<Socket> {
    let socket = if unix {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        // An empty address: Linux autobinds an abstract name.
        socket.bind(&SockAddr::unix("")?)?;
        socket
    } else {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.bind(&SockAddr::from(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))))?;
        socket
    };
    socket.listen(1)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Puts `placeholder` at the descriptor number `at` (atomically: `dup2`).
fn put_at(placeholder: &Socket, at: RawFd) -> io::Result<()> {
    // SAFETY: dup2 between descriptors of ours; `at` is a listener actix holds, replaced as a
    // whole (the registry keeps the real one).
    if unsafe { libc::dup2(placeholder.as_raw_fd(), at) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether an epoll instance of this process watches a file with one of these inodes
/// (`/proc/self/fdinfo` lists an epoll's targets with their `ino:` in hex).
fn epoll_watches_any(inodes: &[u64]) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc/self/fdinfo") else {
        return false;
    };
    dir.filter_map(Result::ok).any(|entry| {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            return false;
        };
        info.lines()
            .filter(|l| l.starts_with("tfd:"))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ino:")))
            .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
            .any(|ino| inodes.contains(&ino))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_2xx_passes() {
        assert!(judge("/health", b"HTTP/1.1 200 OK\r\n\r\nok").is_ok());
        assert!(judge("/health", b"HTTP/1.1 204 No Content\r\n\r\n").is_ok());
        let err = judge(
            "/health",
            b"HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\ndown\n",
        )
        .unwrap_err();
        assert_eq!(err, "self-probe: GET /health answered 503: down");
        assert!(judge("/health", b"")
            .unwrap_err()
            .contains("not an HTTP answer"));
        assert!(judge("/health", b"HTTP/1.1 3").is_err());
    }

    #[test]
    fn an_epoll_watch_is_seen_by_inode_and_gone_once_removed() {
        let socket = placeholder(false).expect("placeholder");
        let ino = fd::identity(socket.as_raw_fd()).expect("identity").1;
        // SAFETY: plain epoll calls on descriptors of this test, with a live event struct.
        unsafe {
            let epoll = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            assert!(epoll >= 0);
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 1,
            };
            let fd = socket.as_raw_fd();
            assert_eq!(
                libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event),
                0
            );
            assert!(epoll_watches_any(&[ino]));
            let none = std::ptr::null_mut();
            assert_eq!(libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, fd, none), 0);
            assert!(!epoll_watches_any(&[ino]));
            libc::close(epoll);
        }
    }
}
