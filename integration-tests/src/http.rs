//! A minimal HTTP/1.1 client with exact control of keep-alive and exact classification of
//! failures. No retries, ever: a failure is reported as what it was.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// TCP (loopback only in these tests).
    Tcp(SocketAddr),
    /// A Unix stream socket path.
    Unix(PathBuf),
}

impl Target {
    /// Parse an address as printed in hello's startup line: `127.0.0.1:8080`,
    /// `[::1]:8080` or `unix:/path`.
    pub fn parse(s: &str) -> Option<Target> {
        if let Some(p) = s.strip_prefix("unix:") {
            return Some(Target::Unix(PathBuf::from(p)));
        }
        s.parse().ok().map(Target::Tcp)
    }

    /// The TCP port, if TCP.
    pub fn port(&self) -> Option<u16> {
        match self {
            Target::Tcp(a) => Some(a.port()),
            Target::Unix(_) => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "{a}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The class of a failed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailKind {
    /// `connect` refused (nobody listening), or the Unix socket path is missing.
    ConnectRefused,
    /// ECONNRESET / EPIPE / ECONNABORTED while writing or reading.
    Reset,
    /// The server closed the connection before sending any byte of the response
    /// (typically a reused keep-alive connection closed under our feet).
    EofBeforeResponse,
    /// Connect, read or write timed out.
    Timeout,
    /// Not parseable as HTTP/1.1, or truncated mid-response.
    Malformed,
    /// Anything else.
    Other,
}

impl FailKind {
    /// Every class, in display order.
    pub const ALL: [FailKind; 6] = [
        FailKind::ConnectRefused,
        FailKind::Reset,
        FailKind::EofBeforeResponse,
        FailKind::Timeout,
        FailKind::Malformed,
        FailKind::Other,
    ];

    /// Index into [`FailKind::ALL`].
    pub fn index(self) -> usize {
        FailKind::ALL.iter().position(|k| *k == self).unwrap()
    }
}

impl fmt::Display for FailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FailKind::ConnectRefused => "refused",
            FailKind::Reset => "reset",
            FailKind::EofBeforeResponse => "eof",
            FailKind::Timeout => "timeout",
            FailKind::Malformed => "malformed",
            FailKind::Other => "other",
        };
        f.write_str(s)
    }
}

/// A failed request.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Its class.
    pub kind: FailKind,
    /// Was the request sent on a reused keep-alive connection?
    pub reused: bool,
    /// What happened, for humans.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}connection): {}",
            self.kind,
            if self.reused { "reused " } else { "new " },
            self.detail
        )
    }
}

/// A complete response.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The `X-Pid` header, parsed.
    pub pid: Option<i32>,
    /// Did the server say `Connection: close`?
    pub close: bool,
    /// All headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

/// Classify an I/O error. `started` says whether any byte of the response had arrived.
pub fn classify(e: &io::Error, reused: bool, what: &str) -> Failure {
    let kind = match e.raw_os_error() {
        Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => FailKind::ConnectRefused,
        Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ECONNABORTED) => FailKind::Reset,
        Some(libc::EAGAIN) | Some(libc::ETIMEDOUT) => FailKind::Timeout,
        _ => match e.kind() {
            io::ErrorKind::ConnectionRefused => FailKind::ConnectRefused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => FailKind::Reset,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FailKind::Timeout,
            _ => FailKind::Other,
        },
    };
    Failure {
        kind,
        reused,
        detail: format!("{what}: {e}"),
    }
}

fn malformed(reused: bool, detail: String) -> Failure {
    Failure {
        kind: FailKind::Malformed,
        reused,
        detail,
    }
}

/// An HTTP/1.1 client holding at most one connection.
///
/// With `keep_alive` (the default) the connection is reused until the server says
/// `Connection: close` or a request fails; then the next request opens a new one. Without
/// it every request goes on a fresh connection and carries `Connection: close`.
pub struct Client {
    target: Target,
    conn: Option<BufReader<Stream>>,
    timeout: Duration,
    keep_alive: bool,
    host: String,
    /// Requests sent on the current connection.
    pub requests_on_conn: u64,
    /// Connections opened so far.
    pub connections: u64,
}

impl Client {
    /// A keep-alive client with 10 s timeouts.
    pub fn new(target: Target) -> Client {
        let host = match &target {
            Target::Tcp(a) => a.to_string(),
            Target::Unix(_) => "localhost".to_string(),
        };
        Client {
            target,
            conn: None,
            timeout: Duration::from_secs(10),
            keep_alive: true,
            host,
            requests_on_conn: 0,
            connections: 0,
        }
    }

    /// Set connect/read/write timeouts.
    pub fn timeout(mut self, t: Duration) -> Client {
        self.timeout = t;
        self
    }

    /// Reuse connections (true, default) or one connection per request (false).
    pub fn keep_alive(mut self, on: bool) -> Client {
        self.keep_alive = on;
        self
    }

    /// Is a connection open (to be reused by the next request)?
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Close the current connection, if any.
    pub fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            c.get_ref().shutdown();
        }
        self.requests_on_conn = 0;
    }

    fn connect(&mut self) -> Result<(), Failure> {
        let stream = match &self.target {
            Target::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, self.timeout)
                    .map_err(|e| classify(&e, false, "connect"))?;
                let _ = s.set_nodelay(true);
                s.set_read_timeout(Some(self.timeout))
                    .and_then(|_| s.set_write_timeout(Some(self.timeout)))
                    .map_err(|e| classify(&e, false, "setsockopt"))?;
                Stream::Tcp(s)
            }
            Target::Unix(p) => {
                let s = UnixStream::connect(p).map_err(|e| classify(&e, false, "connect"))?;
                s.set_read_timeout(Some(self.timeout))
                    .and_then(|_| s.set_write_timeout(Some(self.timeout)))
                    .map_err(|e| classify(&e, false, "setsockopt"))?;
                Stream::Unix(s)
            }
        };
        self.conn = Some(BufReader::with_capacity(8192, stream));
        self.requests_on_conn = 0;
        self.connections += 1;
        Ok(())
    }

    /// `GET path`. On any failure the connection is dropped (the next request reconnects).
    pub fn get(&mut self, path: &str) -> Result<Response, Failure> {
        self.request("GET", path, b"")
    }

    /// `POST path` with an empty body (`Content-Length: 0`); otherwise as [`Client::get`].
    pub fn post(&mut self, path: &str) -> Result<Response, Failure> {
        self.request("POST", path, b"")
    }

    /// `POST path` with `body`; otherwise as [`Client::get`].
    pub fn post_body(&mut self, path: &str, body: &[u8]) -> Result<Response, Failure> {
        self.request("POST", path, body)
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Response, Failure> {
        let reused = self.conn.is_some();
        if !reused {
            self.connect()?;
        }
        let res = self.exchange(method, path, body, reused);
        match &res {
            Ok(r) if r.close || !self.keep_alive => self.close(),
            Ok(_) => self.requests_on_conn += 1,
            Err(_) => self.close(),
        }
        res
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        reused: bool,
    ) -> Result<Response, Failure> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: itest\r\n{}{}\r\n",
            self.host,
            if method == "GET" {
                String::new()
            } else {
                format!("Content-Length: {}\r\n", body.len())
            },
            if self.keep_alive {
                ""
            } else {
                "Connection: close\r\n"
            }
        )
        .into_bytes();
        req.extend_from_slice(body);
        let conn = self.conn.as_mut().expect("connected");
        conn.get_mut()
            .write_all(&req)
            .map_err(|e| classify(&e, reused, "write request"))?;
        read_response(conn, reused)
    }
}

fn read_line(r: &mut impl BufRead, reused: bool, what: &str) -> Result<String, Failure> {
    let mut buf = Vec::new();
    let n = r
        .take(16 * 1024)
        .read_until(b'\n', &mut buf)
        .map_err(|e| classify(&e, reused, what))?;
    if n == 0 {
        return Err(Failure {
            kind: FailKind::Malformed,
            reused,
            detail: format!("{what}: eof mid-response"),
        });
    }
    if !buf.ends_with(b"\n") {
        return Err(malformed(
            reused,
            format!("{what}: line too long or truncated"),
        ));
    }
    Ok(String::from_utf8_lossy(&buf)
        .trim_end_matches(['\r', '\n'])
        .to_string())
}

/// Reads one HTTP/1.x response from `r` (any stream: TCP, Unix, TLS); `reused` says whether the
/// request went on a reused connection, for the failure class.
pub fn read_response<R: BufRead>(r: &mut R, reused: bool) -> Result<Response, Failure> {
    // Status line. EOF before the first byte is its own class.
    match r.fill_buf() {
        Ok([]) => {
            return Err(Failure {
                kind: FailKind::EofBeforeResponse,
                reused,
                detail: "connection closed before any response byte".into(),
            })
        }
        Ok(_) => {}
        Err(e) => return Err(classify(&e, reused, "read status line")),
    }
    let status_line = read_line(r, reused, "status line")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(malformed(
            reused,
            format!("bad status line {status_line:?}"),
        ));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(reused, format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, reused, "header")?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| malformed(reused, format!("bad header {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        if headers.len() > 100 {
            return Err(malformed(reused, "too many headers".into()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let close = get("connection")
        .map(|v| v.to_ascii_lowercase().contains("close"))
        .unwrap_or(version == "HTTP/1.0");
    let pid = get("x-pid").and_then(|v| v.parse().ok());
    let chunked = get("transfer-encoding")
        .map(|v| v.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false);
    let mut body = Vec::new();
    if chunked {
        loop {
            let size_line = read_line(r, reused, "chunk size")?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| malformed(reused, format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers until the empty line.
                while !read_line(r, reused, "trailer")?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            read_exact(r, &mut body[start..], reused)?;
            let crlf = read_line(r, reused, "chunk end")?;
            if !crlf.is_empty() {
                return Err(malformed(reused, "chunk not followed by CRLF".into()));
            }
        }
    } else if let Some(cl) = get("content-length") {
        let n: usize = cl
            .parse()
            .map_err(|_| malformed(reused, format!("bad content-length {cl:?}")))?;
        if n > 64 * 1024 * 1024 {
            return Err(malformed(reused, format!("content-length too big: {n}")));
        }
        body.resize(n, 0);
        read_exact(r, &mut body, reused)?;
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        // no body
    } else if close {
        r.read_to_end(&mut body)
            .map_err(|e| classify(&e, reused, "read body"))?;
    } else {
        return Err(malformed(
            reused,
            "keep-alive response without length".to_string(),
        ));
    }
    Ok(Response {
        status,
        pid,
        close,
        headers,
        body,
    })
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], reused: bool) -> Result<(), Failure> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            malformed(reused, "eof mid-body".into())
        } else {
            classify(&e, reused, "read body")
        }
    })
}

/// One request on a fresh connection.
pub fn get_once(target: &Target, path: &str, timeout: Duration) -> Result<Response, Failure> {
    Client::new(target.clone())
        .keep_alive(false)
        .timeout(timeout)
        .get(path)
}

/// One `POST` (empty body) on a fresh connection.
pub fn post_once(target: &Target, path: &str, timeout: Duration) -> Result<Response, Failure> {
    Client::new(target.clone())
        .keep_alive(false)
        .timeout(timeout)
        .post(path)
}

/// Poll `path` on fresh connections (every 5 ms, each with a 2 s timeout) until a 200 reply's
/// `X-Pid` satisfies `pred`; returns that pid, or `None` after `timeout`. Failed polls are
/// ignored here (the load generator is the one that counts failures).
pub fn wait_for_pid(
    target: &Target,
    path: &str,
    pred: impl Fn(i32) -> bool,
    timeout: Duration,
) -> Option<i32> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(r) = get_once(target, path, Duration::from_secs(2)) {
            if r.status == 200 {
                if let Some(p) = r.pid {
                    if pred(p) {
                        return Some(p);
                    }
                }
            }
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
