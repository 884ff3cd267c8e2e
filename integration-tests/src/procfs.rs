//! Small readers of Linux `/proc`: process state, open fds, listening sockets, children.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The fields of `/proc/<pid>/stat` we need.
#[derive(Clone, Debug)]
pub struct ProcStat {
    /// One-letter state: R, S, D, Z (zombie), T, ...
    pub state: char,
    /// Parent pid.
    pub ppid: i32,
    /// The command name (`comm`).
    pub comm: String,
}

/// Parse `/proc/<pid>/stat`; `None` if the process does not exist.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let mut rest = s[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcStat { state, ppid, comm })
}

/// Does `/proc/<pid>` exist (running or zombie)?
pub fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}/stat")).exists()
}

/// Is `pid` a zombie (exited, not reaped by its parent)?
pub fn is_zombie(pid: i32) -> bool {
    stat(pid).map(|s| s.state == 'Z').unwrap_or(false)
}

/// Number of open fds of `pid`.
pub fn fd_count(pid: i32) -> std::io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// `(fd, readlink target)` for every open fd of `pid`, sorted by fd.
pub fn fd_targets(pid: i32) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = match fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let fd: i32 = e.file_name().to_str()?.parse().ok()?;
                let t = fs::read_link(e.path()).ok()?;
                Some((fd, t.to_string_lossy().into_owned()))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Socket inodes among the open fds of `pid`.
pub fn socket_inodes(pid: i32) -> BTreeSet<u64> {
    fd_targets(pid)
        .into_iter()
        .filter_map(|(_, t)| {
            t.strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

/// Inodes of TCP sockets in LISTEN state on local `port` (IPv4 and IPv6, any address).
pub fn tcp_listen_inodes(port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(s) = fs::read_to_string(file) else {
            continue;
        };
        for line in s.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f[3] == "0A" {
                if let Ok(ino) = f[9].parse() {
                    out.push(ino);
                }
            }
        }
    }
    out
}

/// Inodes of listening Unix stream sockets bound to `path`.
pub fn unix_listen_inodes(path: &Path) -> Vec<u64> {
    let want = path.to_string_lossy();
    let mut out = Vec::new();
    let Ok(s) = fs::read_to_string("/proc/net/unix") else {
        return out;
    };
    // Num RefCount Protocol Flags Type St Inode Path
    for line in s.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let flags = u32::from_str_radix(f[3], 16).unwrap_or(0);
        if f[7] == want && flags & 0x0001_0000 != 0 {
            if let Ok(ino) = f[6].parse() {
                out.push(ino);
            }
        }
    }
    out
}

/// All processes whose parent is `pid` (scans /proc).
pub fn children_of(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| stat(p).map(|s| s.ppid == pid).unwrap_or(false))
        .collect()
}

/// Every pid currently in /proc.
pub fn all_pids() -> Vec<i32> {
    match fs::read_dir("/proc") {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `VmHWM` (peak resident set size) of `pid` in KiB.
pub fn vm_hwm_kb(pid: i32) -> Option<u64> {
    status_field_kb(pid, "VmHWM:")
}

/// `VmRSS` of `pid` in KiB.
pub fn vm_rss_kb(pid: i32) -> Option<u64> {
    status_field_kb(pid, "VmRSS:")
}

fn status_field_kb(pid: i32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Inodes of established TCP connections whose local port is `port` (IPv4 and IPv6): the
/// connections a server on `port` accepted.
pub fn tcp_established_inodes(port: u16) -> BTreeSet<u64> {
    tcp_inodes(port, |state| state == "01")
}

/// Inodes of TCP sockets on local `port` in any state but LISTEN: accepted connections, also
/// half-closed ones.
pub fn tcp_connection_inodes(port: u16) -> BTreeSet<u64> {
    tcp_inodes(port, |state| state != "0A")
}

fn tcp_inodes(port: u16, state_ok: impl Fn(&str) -> bool) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(s) = fs::read_to_string(file) else {
            continue;
        };
        for line in s.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || !state_ok(f[3]) {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                if let Ok(ino) = f[9].parse() {
                    out.insert(ino);
                }
            }
        }
    }
    out
}

/// How many connections accepted on `port` the process `pid` holds open (stop it first with
/// SIGSTOP for an exact count).
pub fn accepted_connections(pid: i32, port: u16) -> usize {
    let established = tcp_established_inodes(port);
    socket_inodes(pid)
        .intersection(&established)
        .filter(|&&ino| ino != 0)
        .count()
}
