//! The address of a listener, as shown to users and matched against inherited sockets.

use std::{fmt, net::SocketAddr, path::PathBuf};

/// Where a listener listens: a TCP address or a Unix socket path.
///
/// Displays as `127.0.0.1:8080`, `[::1]:8080` or `unix:/run/app.sock`.
///
/// # Examples
///
/// ```
/// use actix_graceful::ListenAddr;
///
/// let tcp = ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap());
/// assert_eq!(tcp.to_string(), "127.0.0.1:8080");
/// let uds = ListenAddr::Unix("/run/app.sock".into());
/// assert_eq!(uds.to_string(), "unix:/run/app.sock");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListenAddr {
    /// A TCP socket address (IPv4 or IPv6).
    Tcp(SocketAddr),
    /// A Unix-domain socket path (`@name` for the abstract namespace).
    Unix(PathBuf),
}

impl ListenAddr {
    /// The family's name, for messages: `"a TCP"` or `"a Unix"`.
    pub(crate) fn family(&self) -> &'static str {
        match self {
            ListenAddr::Tcp(_) => "a TCP",
            ListenAddr::Unix(_) => "a Unix",
        }
    }

    /// Whether an inherited socket at `self` serves a request for `wanted`.
    ///
    /// TCP: same port and the same IP, where both wildcard addresses (`0.0.0.0`, `[::]`) count
    /// as the same, and a requested port 0 ("any port") matches any port of that IP. Unix: the
    /// same path.
    pub(crate) fn serves(&self, wanted: &ListenAddr) -> bool {
        match (self, wanted) {
            (ListenAddr::Tcp(have), ListenAddr::Tcp(want)) => {
                let port_ok = want.port() == 0 || have.port() == want.port();
                let ip_ok = have.ip() == want.ip()
                    || (have.ip().is_unspecified() && want.ip().is_unspecified());
                port_ok && ip_ok
            }
            (ListenAddr::Unix(have), ListenAddr::Unix(want)) => have == want,
            _ => false,
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => addr.fmt(f),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> ListenAddr {
        ListenAddr::Tcp(s.parse().unwrap())
    }

    #[test]
    fn exact_tcp_match() {
        assert!(tcp("127.0.0.1:8080").serves(&tcp("127.0.0.1:8080")));
        assert!(!tcp("127.0.0.1:8080").serves(&tcp("127.0.0.1:8081")));
        assert!(!tcp("127.0.0.2:8080").serves(&tcp("127.0.0.1:8080")));
    }

    #[test]
    fn wildcards_of_both_families_match_each_other() {
        assert!(tcp("[::]:8080").serves(&tcp("0.0.0.0:8080")));
        assert!(tcp("0.0.0.0:8080").serves(&tcp("[::]:8080")));
        assert!(!tcp("[::]:8080").serves(&tcp("127.0.0.1:8080")));
    }

    #[test]
    fn port_zero_asks_for_any_port() {
        assert!(tcp("127.0.0.1:41234").serves(&tcp("127.0.0.1:0")));
        assert!(!tcp("[::1]:41234").serves(&tcp("127.0.0.1:0")));
    }

    #[test]
    fn unix_paths_and_families() {
        let u = ListenAddr::Unix("/run/a.sock".into());
        assert!(u.serves(&ListenAddr::Unix("/run/a.sock".into())));
        assert!(!u.serves(&ListenAddr::Unix("/run/b.sock".into())));
        assert!(!u.serves(&tcp("127.0.0.1:0")));
        assert!(!tcp("127.0.0.1:1").serves(&u));
    }
}
