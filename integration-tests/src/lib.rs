//! Test harness for `actix-graceful`: runs the example apps as real processes with real
//! signals and sockets.
//!
//! - [`bins`]: where the example binaries and `upgrade-bench` are ([`hello_bin`],
//!   [`plain_listenfd_bin`], [`bins::upgrade_bench`]), built on first use.
//! - [`reaper`]: the test process is a child subreaper with one global `waitpid(-1)` thread;
//!   never wait on a `Child` yourself.
//! - [`family`]: [`ServerFamily`], a guard that kills and reaps every generation of a server.
//! - [`capture`]: stdout/stderr captured line by line, with `wait_for_line`.
//! - [`http`]: a minimal HTTP/1.1 client with exact failure classes.
//! - [`load`]: a bounded load generator and slow requests.
//! - [`hello`]: starting `hello`, parsing its startup line, performing a live upgrade.
//! - [`procfs`]: /proc readers (zombies, fds, listening sockets).
//! - [`pty`]: a real pseudo-terminal as a process's controlling terminal.
//! - [`systemd`]: a real, private systemd user manager for the example units.
//!
//! Everything is bounded in time; everything talks to loopback only.

pub mod activation;
pub mod bins;
pub mod capture;
pub mod family;
pub mod hello;
pub mod http;
pub mod load;
pub mod procfs;
pub mod pty;
pub mod reaper;
pub mod systemd;

pub use family::{PidSet, ServerFamily};
pub use http::{Client, FailKind, Failure, Response, Target};
pub use load::{Load, LoadConfig, LoadReport};

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The `hello` example (env `HELLO_BIN` overrides).
pub fn hello_bin() -> PathBuf {
    bins::locate("hello", "HELLO_BIN")
}

/// `hello-fixture`: `hello`'s routes with the tests' knobs (`--early-thread`,
/// `--child-wait-ms`, ...; env `HELLO_FIXTURE_BIN` overrides).
pub fn fixture_bin() -> PathBuf {
    bins::locate("hello-fixture", "HELLO_FIXTURE_BIN")
}

/// The `plain-listenfd` example (env `PLAIN_LISTENFD_BIN` overrides).
pub fn plain_listenfd_bin() -> PathBuf {
    bins::locate("plain-listenfd", "PLAIN_LISTENFD_BIN")
}

/// A free TCP port on 127.0.0.1 that no earlier call in this process returned. Prefer letting
/// the server bind port 0 and reading the port from its startup line: between this call and
/// the bind that uses the port, another process may take it.
///
/// Not from the kernel's ephemeral range (`ip_local_port_range`), where every `bind(:0)` and
/// every outgoing connection takes its port: the tests share one process, and a load generator
/// of one test opens thousands of connections while another test picks a port. The ports are
/// handed out in turn from an offset derived from the pid (another test process on the machine
/// starts elsewhere), each checked free by binding it.
pub fn free_port() -> u16 {
    static NEXT: Mutex<Option<u16>> = Mutex::new(None);
    let (lo, hi) = ports_below_ephemeral();
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    let span = u32::from(hi - lo) + 1;
    let mut port = next.unwrap_or_else(|| lo + (std::process::id() * 7919 % span) as u16);
    for _ in 0..span {
        if port < lo || port > hi {
            port = lo;
        }
        let candidate = port;
        port = port.wrapping_add(1);
        if std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            *next = Some(port);
            return candidate;
        }
    }
    panic!("no free port in {lo}..={hi}");
}

/// The ports [`free_port`] takes: up to 16384 ports right below the ephemeral range, not below
/// 1024.
fn ports_below_ephemeral() -> (u16, u16) {
    let ephemeral_lo = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let hi = ephemeral_lo.saturating_sub(1).max(2048);
    (hi.saturating_sub(16383).max(1024), hi)
}

/// Serialize heavy tests (the machines have 2 cores). Poisoning is ignored.
pub fn heavy_lock() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// An integer from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Create `/tmp/itest-<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("itest-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Atomically replace `dst` with `contents`, mode 0755 (write a sibling file, then rename
/// over `dst`, as a deploy would; a running executable at `dst` is not disturbed).
pub fn replace_file(dst: &Path, contents: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dst.with_extension("itest-new");
    std::fs::write(&tmp, contents).expect("write replacement");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&tmp, dst).expect("rename replacement into place");
}

/// Atomically replace `dst` with a copy of `src` (mode 0755).
pub fn replace_with_copy(dst: &Path, src: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dst.with_extension("itest-new");
    std::fs::copy(src, &tmp).expect("copy replacement");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&tmp, dst).expect("rename replacement into place");
}

/// Send `sig` to `pid`. Returns false if the process does not exist.
pub fn signal(pid: i32, sig: nix::sys::signal::Signal) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).is_ok()
}

/// Median and 90th percentile of `v` (sorted copy); `None` if empty.
pub fn median_p90(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = |q: f64| ((s.len() as f64 - 1.0) * q).round() as usize;
    Some((s[idx(0.5)], s[idx(0.9)]))
}

/// Sleep helper in milliseconds.
pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms))
}

/// Copy `hello` to `to`, executable (so a test can later replace the file at that path).
pub fn copy_hello(to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(hello_bin(), to).expect("copy hello");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod hello");
}

/// A fresh temp dir holding a copy of `hello`; returns the dir (removed on drop) and the copy.
pub fn private_copy(tag: &str) -> (TempDir, PathBuf) {
    private_copy_of(&hello_bin(), tag)
}

/// A fresh temp dir holding a copy of `exe` called `hello`; returns the dir (removed on drop)
/// and the copy.
pub fn private_copy_of(exe: &Path, tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let copy = dir.join("hello");
    replace_with_copy(&copy, exe);
    (dir, copy)
}

/// `p` quoted for a `/bin/sh` script.
pub fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// `Command::output` that works under the [`reaper`] (which std's own would race): runs `cmd`
/// with stdin closed, at most `timeout` (then SIGKILL), and returns how it ended with its
/// stdout and stderr. `Err` only when it cannot be spawned or did not end even after SIGKILL.
pub fn run_output(
    mut cmd: std::process::Command,
    timeout: Duration,
) -> std::io::Result<(reaper::Exit, Vec<u8>, Vec<u8>)> {
    use std::io::Read as _;
    use std::process::Stdio;
    reaper::ensure();
    let since = std::time::Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id() as i32;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    drop(child);
    let mut gone = reaper::wait_gone(pid, since, timeout);
    if gone.is_none() {
        signal(pid, nix::sys::signal::Signal::SIGKILL);
        gone = reaper::wait_gone(pid, since, Duration::from_secs(5));
    }
    let exit = match gone {
        Some(reaper::Gone::Reaped(exit)) => exit,
        other => return Err(std::io::Error::other(format!("pid {pid}: {other:?}"))),
    };
    Ok((
        exit,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ))
}

/// Calls `f` every 5 ms until it returns true (then true) or `timeout` passed (then false).
pub fn poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        sleep_ms(5);
    }
}
