//! Counting this process's client connections: the stream sockets its listeners accepted, found
//! in the process's own descriptor table. Owns nothing and touches no actix type; the drain in
//! `server` asks it, tick by tick, whether any client is still connected.
//!
//! Why the descriptor table and not `HttpServer::on_connect`: actix keeps a single `on_connect`
//! callback and offers no getter, so setting one would silently replace the application's own.
//! The table needs no hook, sees every connection actix holds (also those accepted but still
//! queued for a worker, which a callback would not see yet), and tells client connections from
//! the application's own outgoing ones (database pools, HTTP clients) by their local address:
//! an accepted socket's local address is its listener's (the port, or the Unix path), an
//! outgoing one's is an ephemeral port or an unnamed Unix socket.

use std::{
    collections::HashMap,
    fs, io,
    net::{IpAddr, SocketAddr},
    os::fd::RawFd,
    path::PathBuf,
};

use nix::sys::socket::{getsockname, SockaddrStorage};

/// Where the descriptor table is listed: Linux's `/proc`, else the BSDs' and macOS's `/dev/fd`.
const FD_DIRS: [&str; 2] = ["/proc/self/fd", "/dev/fd"];

/// A local address that accepted connections share with their listener.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Local {
    Inet(SocketAddr),
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Local {
    /// The local address of the socket at `fd`; `None` for anything that is not a named TCP or
    /// Unix socket (not a socket, closed meanwhile, unnamed, another family).
    fn of(fd: RawFd) -> Option<Local> {
        let addr: SockaddrStorage = getsockname(fd).ok()?;
        if let Some(v4) = addr.as_sockaddr_in() {
            return Some(Local::Inet(SocketAddr::V4((*v4).into())));
        }
        if let Some(v6) = addr.as_sockaddr_in6() {
            return Some(Local::Inet(SocketAddr::V6((*v6).into())));
        }
        let unix = addr.as_unix_addr()?;
        if let Some(path) = unix.path() {
            return Some(Local::Path(path.to_owned()));
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(name) = unix.as_abstract() {
            return Some(Local::Abstract(name.to_owned()));
        }
        None
    }

    /// Whether a socket with this local address was accepted on a listener at `listener`.
    fn accepted_on(&self, listener: &Local) -> bool {
        match (self, listener) {
            (Local::Inet(conn), Local::Inet(l)) => {
                conn.port() == l.port() && (l.ip().is_unspecified() || same_ip(conn.ip(), l.ip()))
            }
            (a, b) => a == b,
        }
    }
}

/// Equal, also when one side is the IPv4-mapped IPv6 form of the other (a dual-stack listener).
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// What a count learned about a socket, kept while it stays open: an open socket's inode
/// identifies it, so a descriptor seen again costs one `fstat` instead of three calls.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// Accepted on one of our listeners.
    client: bool,
    /// Its TCP peer (client connections only).
    peer: Option<SocketAddr>,
}

/// The listeners whose accepted connections are this process's client connections.
#[derive(Debug, Clone)]
pub(crate) struct ClientConnections {
    listeners: Vec<Local>,
    /// The sockets of the last count, by descriptor and inode.
    known: HashMap<(RawFd, u64), Known>,
}

impl ClientConnections {
    /// For the listening sockets at `fds` (this process's own descriptors for them).
    pub(crate) fn new(fds: impl IntoIterator<Item = RawFd>) -> Self {
        let mut listeners: Vec<Local> = fds.into_iter().filter_map(Local::of).collect();
        listeners.dedup();
        ClientConnections {
            listeners,
            known: HashMap::new(),
        }
    }

    /// How many client connections this process holds now: open stream sockets, not listening,
    /// whose local address is one of the listeners'. A snapshot: other threads open and close
    /// sockets meanwhile, so a caller that needs "none" should see it twice.
    ///
    /// # Errors
    /// The descriptor table cannot be listed (no `/proc/self/fd` nor `/dev/fd`).
    pub(crate) fn count(&mut self) -> io::Result<usize> {
        self.count_but(&[])
    }

    /// [`count`](Self::count), leaving out the TCP connections whose peer is in `except` (the
    /// drain's HTTP/2 connections, which a graceful stop sends GOAWAY).
    ///
    /// # Errors
    /// As [`count`](Self::count).
    pub(crate) fn count_but(&mut self, except: &[SocketAddr]) -> io::Result<usize> {
        if self.listeners.is_empty() {
            return Ok(0);
        }
        let fds = open_fds()?;
        let mut known = HashMap::with_capacity(self.known.len());
        let mut count = 0;
        for fd in fds {
            let Some(inode) = socket_inode(fd) else {
                continue;
            };
            let it = match self.known.get(&(fd, inode)) {
                Some(it) => *it,
                None => self.learn(fd),
            };
            known.insert((fd, inode), it);
            let left_out = it
                .peer
                .is_some_and(|peer| except.iter().any(|p| same_peer(*p, peer)));
            if it.client && !left_out {
                count += 1;
            }
        }
        self.known = known;
        Ok(count)
    }

    /// What the socket at `fd` is: asked of the kernel once per socket.
    fn learn(&self, fd: RawFd) -> Known {
        let client = self.is_client(fd);
        Known {
            client,
            peer: if client { tcp_peer(fd) } else { None },
        }
    }

    fn is_client(&self, fd: RawFd) -> bool {
        let Some(local) = Local::of(fd) else {
            return false;
        };
        if !self.listeners.iter().any(|l| local.accepted_on(l)) {
            return false;
        }
        // The listener itself (and our duplicate of it) has the same address.
        int_option(fd, libc::SO_ACCEPTCONN) == Some(0)
            && int_option(fd, libc::SO_TYPE) == Some(libc::SOCK_STREAM)
    }
}

/// The descriptors open in this process now.
fn open_fds() -> io::Result<Vec<RawFd>> {
    let mut last = None;
    for dir in FD_DIRS {
        match fs::read_dir(dir) {
            Ok(entries) => {
                let fds = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok());
                return Ok(fds.collect());
            }
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound)))
}

/// The inode of the socket at `fd`; `None` for anything else (or a descriptor closed meanwhile).
fn socket_inode(fd: RawFd) -> Option<u64> {
    let stat = nix::sys::stat::fstat(fd).ok()?;
    #[allow(clippy::unnecessary_cast)] // mode_t and ino_t differ in width between platforms
    let (mode, inode) = (stat.st_mode as libc::mode_t, stat.st_ino as u64);
    (mode & libc::S_IFMT == libc::S_IFSOCK).then_some(inode)
}

/// The TCP peer of the socket at `fd` (`None` for a Unix socket).
fn tcp_peer(fd: RawFd) -> Option<SocketAddr> {
    let addr = nix::sys::socket::getpeername::<SockaddrStorage>(fd).ok()?;
    addr.as_sockaddr_in()
        .map(|a| SocketAddr::V4((*a).into()))
        .or_else(|| addr.as_sockaddr_in6().map(|a| SocketAddr::V6((*a).into())))
}

/// Equal addresses, also when one IP is the IPv4-mapped IPv6 form of the other.
fn same_peer(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && same_ip(a.ip(), b.ip())
}

/// An `int` socket option of `fd` at `SOL_SOCKET`, `None` when it cannot be read.
fn int_option(fd: RawFd, option: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` is `value`'s size, so the kernel
    // writes at most that many bytes. `fd` is only a number here: a descriptor closed (or
    // reused) by another thread meanwhile yields EBADF/ENOTSOCK or another socket's option,
    // which the caller treats as "not a client connection" or counts again at the next tick.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            std::ptr::addr_of_mut!(value).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::{TcpListener, TcpStream, UdpSocket},
        os::{fd::AsRawFd as _, unix::net::UnixListener},
    };

    use super::*;

    #[test]
    fn counts_accepted_sockets_of_our_listeners_only() {
        let ours = TcpListener::bind("127.0.0.1:0").expect("bind");
        let other = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut clients = ClientConnections::new([ours.as_raw_fd()]);
        assert_eq!(clients.count().expect("count"), 0);

        // A connection to our listener: its accepted end counts, its client end does not (the
        // client end's local address is an ephemeral port), nor does anything on `other`, nor
        // a UDP socket on the same port.
        let client = TcpStream::connect(ours.local_addr().expect("addr")).expect("connect");
        let (mut accepted, _) = ours.accept().expect("accept");
        let _outgoing = TcpStream::connect(other.local_addr().expect("addr")).expect("connect");
        let _other_accepted = other.accept().expect("accept");
        let _udp = UdpSocket::bind(ours.local_addr().expect("addr")).ok();
        assert_eq!(clients.count().expect("count"), 1);

        drop(client);
        let mut buf = [0; 1];
        assert_eq!(accepted.read(&mut buf).expect("EOF"), 0);
        drop(accepted);
        assert_eq!(clients.count().expect("count"), 0);
    }

    #[test]
    fn a_descriptor_reused_by_another_socket_is_asked_about_again() {
        let ours = TcpListener::bind("127.0.0.1:0").expect("bind");
        let other = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut clients = ClientConnections::new([ours.as_raw_fd()]);
        let _client = TcpStream::connect(ours.local_addr().expect("addr")).expect("connect");
        let (accepted, _) = ours.accept().expect("accept");
        assert_eq!(clients.count().expect("count"), 1);
        // The accepted socket's number, now an outgoing connection (dup2 replaces atomically;
        // the number stays ours, so no other test's descriptor is touched).
        let outgoing = TcpStream::connect(other.local_addr().expect("addr")).expect("connect");
        let fd = std::os::fd::IntoRawFd::into_raw_fd(accepted);
        nix::unistd::dup2(outgoing.as_raw_fd(), fd).expect("dup2");
        // SAFETY: `fd` is open (dup2 succeeded) and owned by nothing else: `accepted` gave it up.
        let reused = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        assert_eq!(clients.count().expect("count"), 0);
        drop(reused);
    }

    #[test]
    fn connections_of_given_peers_are_left_out() {
        let ours = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut clients = ClientConnections::new([ours.as_raw_fd()]);
        let h1 = TcpStream::connect(ours.local_addr().expect("addr")).expect("connect");
        let h2 = TcpStream::connect(ours.local_addr().expect("addr")).expect("connect");
        let _a = ours.accept().expect("accept");
        let _b = ours.accept().expect("accept");
        let h2_peer = h2.local_addr().expect("addr");
        assert_eq!(clients.count_but(&[]).expect("count"), 2);
        assert_eq!(clients.count_but(&[h2_peer]).expect("count"), 1);
        drop(h1);
    }

    #[test]
    fn wildcard_listener_counts_connections_to_any_local_ip() {
        let Ok(ours) = TcpListener::bind("0.0.0.0:0") else {
            return; // no IPv4 here
        };
        let mut clients = ClientConnections::new([ours.as_raw_fd()]);
        let port = ours.local_addr().expect("addr").port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (_accepted, _) = ours.accept().expect("accept");
        client.write_all(b"x").expect("write");
        assert_eq!(clients.count().expect("count"), 1);
    }

    #[test]
    fn unix_connections_count_by_path_and_outgoing_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("ag-conn-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = fs::remove_file(&path);
        let ours = UnixListener::bind(&path).expect("bind");
        let mut clients = ClientConnections::new([ours.as_raw_fd()]);
        let _client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        assert_eq!(clients.count().expect("count"), 0, "not accepted yet");
        let (_accepted, _) = ours.accept().expect("accept");
        assert_eq!(clients.count().expect("count"), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn v4_mapped_addresses_match_their_v4_form() {
        assert!(same_ip(
            "::ffff:127.0.0.1".parse().expect("ip"),
            "127.0.0.1".parse().expect("ip")
        ));
        assert!(!same_ip(
            "::1".parse().expect("ip"),
            "127.0.0.1".parse().expect("ip")
        ));
    }
}
