//! [`ServerFamily`]: a guard owning every process of one server under test, all generations.
//!
//! It knows the pid it spawned, and learns more pids as the test runs: every `pid=<n>` in a
//! line the family writes to stdout/stderr (the `hello pid=` startup lines, the library's
//! `successor pid=` log lines) and every `X-Pid` seen by the HTTP client (pass
//! [`ServerFamily::pid_set`] to the load generator). On drop, whether the test passed or
//! panicked, it SIGKILLs all of them (plus any descendant it finds in /proc) and waits until
//! the reaper has collected them. On a panic it also prints the tail of the captured output.

use crate::capture::Capture;
use crate::procfs;
use crate::reaper::{self, Gone};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The operators' variable for the probation (`Graceful::with_env`; the examples read it).
pub const PROBATION_VAR: &str = "ACTIX_GRACEFUL_PROBATION";
/// The probation every server the tests start gets unless the test sets one.
pub const TEST_PROBATION: &str = "300ms";

/// A shared set of pids; cloning shares the set.
#[derive(Clone, Default, Debug)]
pub struct PidSet(Arc<Mutex<BTreeSet<i32>>>);

impl PidSet {
    /// Remember `pid` (ignores pid <= 1 and the test process itself).
    pub fn add(&self, pid: i32) {
        if pid > 1 && pid != std::process::id() as i32 {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(pid);
        }
    }
    /// All pids remembered.
    pub fn snapshot(&self) -> BTreeSet<i32> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Is `pid` remembered?
    pub fn contains(&self, pid: i32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&pid)
    }
}

/// Every `<n>` following `pid=` in `line` (not preceded by a letter, digit or `_`).
pub fn pids_in_line(line: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while let Some(pos) = line[i..].find("pid=") {
        let at = i + pos;
        let ok_before = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let digits: String = line[at + 4..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if ok_before {
            if let Ok(p) = digits.parse() {
                out.push(p);
            }
        }
        i = at + 4;
    }
    out
}

/// `RUST_LOG=info` and the tests' probation unless `cmd` sets them; the service manager's
/// variables of the test's own environment (`LISTEN_*`, `NOTIFY_SOCKET`) removed unless `cmd`
/// sets them.
fn server_env(cmd: &mut Command) {
    let set = |cmd: &Command, var: &str| cmd.get_envs().any(|(k, _)| k == var);
    if !set(cmd, "RUST_LOG") {
        cmd.env("RUST_LOG", "info");
    }
    // A short probation unless the test sets one: every upgrade still has a fallback that
    // takes the probation's verdict, without each old process lingering for the default
    // 10 s (tests of the default and of rollbacks set their own).
    if !set(cmd, PROBATION_VAR) {
        cmd.env(PROBATION_VAR, TEST_PROBATION);
    }
    for var in [
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
    ] {
        if !set(cmd, var) {
            cmd.env_remove(var);
        }
    }
}

/// The guard. See the module docs.
pub struct ServerFamily {
    name: String,
    root: i32,
    pids: PidSet,
    /// The family's stdout, every generation.
    pub stdout: Capture,
    /// The family's stderr, every generation.
    pub stderr: Capture,
    /// When the root was spawned: reaper statuses older than this are not ours.
    pub started: Instant,
    /// Print captured output tails on drop even when not panicking.
    pub dump_on_drop: bool,
}

impl ServerFamily {
    /// Spawn `cmd` with stdin from /dev/null and stdout/stderr captured. Sets
    /// `RUST_LOG=info` and the tests' short probation ([`TEST_PROBATION`]) unless the command
    /// sets them itself, and does not pass on the service manager's variables of the test's own
    /// environment (`LISTEN_*`, `NOTIFY_SOCKET`: the tests may run under systemd) unless the
    /// command sets them itself.
    pub fn spawn(name: &str, mut cmd: Command) -> std::io::Result<ServerFamily> {
        reaper::ensure();
        server_env(&mut cmd);
        let prog = cmd.get_program().to_owned();
        // A relative program with a slash is resolved in the child's directory, after chdir.
        let resolved = match cmd.get_current_dir() {
            Some(dir) => dir.join(&prog),
            None => std::path::PathBuf::from(&prog),
        };
        if prog.to_string_lossy().contains('/') && !resolved.exists() {
            // Never let std's spawn hit an exec failure: it would waitpid() the child itself
            // and race with our reaper.
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", prog.to_string_lossy()),
            ));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let root = child.id() as i32;
        let pids = PidSet::default();
        pids.add(root);
        let stdout = Capture::new(&format!("{name}:out"));
        let stderr = Capture::new(&format!("{name}:err"));
        let p1 = pids.clone();
        stdout.attach(child.stdout.take().expect("stdout piped"), move |l| {
            for p in pids_in_line(l) {
                p1.add(p)
            }
        });
        let p2 = pids.clone();
        stderr.attach(child.stderr.take().expect("stderr piped"), move |l| {
            for p in pids_in_line(l) {
                p2.add(p)
            }
        });
        // Dropping `Child` neither kills nor waits: the reaper collects it.
        drop(child);
        Ok(ServerFamily {
            name: name.to_string(),
            root,
            pids,
            stdout,
            stderr,
            started,
            dump_on_drop: false,
        })
    }

    /// The pid that was spawned (first generation, or the launcher that exec'd it).
    pub fn root(&self) -> i32 {
        self.root
    }

    /// A handle to the family's pid set, for the load generator and helpers.
    pub fn pid_set(&self) -> PidSet {
        self.pids.clone()
    }

    /// Remember another pid as belonging to this family.
    pub fn add_pid(&self, pid: i32) {
        self.pids.add(pid)
    }

    /// All pids known so far.
    pub fn pids(&self) -> BTreeSet<i32> {
        self.pids.snapshot()
    }

    /// Known pids that still exist and are not zombies.
    pub fn live_pids(&self) -> Vec<i32> {
        self.pids()
            .into_iter()
            .filter(|&p| {
                reaper::exit_status_since(p, self.started).is_none()
                    && procfs::stat(p).map(|s| s.state != 'Z').unwrap_or(false)
            })
            .collect()
    }

    /// Known pids that are zombies and stay zombies for 500 ms (our own reaper collects its
    /// children within milliseconds, so a lasting zombie has a parent that does not reap).
    pub fn lasting_zombies(&self) -> Vec<(i32, procfs::ProcStat)> {
        let candidates: Vec<i32> = self
            .pids()
            .into_iter()
            .filter(|&p| procfs::is_zombie(p))
            .collect();
        if candidates.is_empty() {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(500));
        candidates
            .into_iter()
            .filter_map(|p| procfs::stat(p).filter(|s| s.state == 'Z').map(|s| (p, s)))
            .collect()
    }

    /// Wait until `pid` is gone; see [`reaper::wait_gone`]. When no member is left then, also
    /// until the family's output is read to its end (at most 2 s): its last lines may still be
    /// in the pipes when the exit is seen, and a test that asserts on them must find them.
    pub fn wait_gone(&self, pid: i32, timeout: Duration) -> Option<Gone> {
        let gone = reaper::wait_gone(pid, self.started, timeout);
        if gone.is_some() && self.live_pids().is_empty() {
            let end = Duration::from_secs(2);
            self.stdout.wait_eof(end);
            self.stderr.wait_eof(end);
        }
        gone
    }

    /// SIGKILL every member and every descendant of a member, and wait (bounded) until
    /// they are gone. Safe against pid reuse: only kills processes whose parent is the test
    /// process or another member.
    pub fn kill_all(&self) {
        let me = std::process::id() as i32;
        for _round in 0..5 {
            let known = self.pids();
            // Snapshot the process table: pid -> ppid.
            let table: BTreeMap<i32, procfs::ProcStat> = procfs::all_pids()
                .into_iter()
                .filter_map(|p| procfs::stat(p).map(|s| (p, s)))
                .collect();
            // Members: known pids that still exist and hang off the test or another member;
            // plus their descendants, transitively.
            let mut members: BTreeSet<i32> = BTreeSet::new();
            loop {
                let before = members.len();
                for (&p, s) in &table {
                    if p <= 1 || p == me || members.contains(&p) {
                        continue;
                    }
                    let parent_ok =
                        s.ppid == me || members.contains(&s.ppid) || known.contains(&s.ppid);
                    if (known.contains(&p) && parent_ok) || members.contains(&s.ppid) {
                        members.insert(p);
                    }
                }
                if members.len() == before {
                    break;
                }
            }
            let targets: Vec<i32> = members
                .into_iter()
                .filter(|p| table.get(p).map(|s| s.state != 'Z').unwrap_or(false))
                .collect();
            if targets.is_empty() {
                break;
            }
            for &p in &targets {
                self.pids.add(p);
                // SAFETY: kill with a pid we checked belongs to this family.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
            for &p in &targets {
                let _ = reaper::wait_gone(p, self.started, Duration::from_secs(3));
            }
        }
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last `n` lines of stdout and stderr, for messages.
    pub fn output_tail(&self, n: usize) -> String {
        format!(
            "--- {} stdout (last {n}) ---\n{}\n--- {} stderr (last {n}) ---\n{}",
            self.name,
            self.stdout.tail(n),
            self.name,
            self.stderr.tail(n)
        )
    }
}

impl Drop for ServerFamily {
    fn drop(&mut self) {
        if std::thread::panicking() || self.dump_on_drop {
            eprintln!("{}", self.output_tail(80));
            eprintln!("--- {} known pids: {:?}", self.name, self.pids());
        }
        self.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::pids_in_line;

    #[test]
    fn extracts_pids() {
        assert_eq!(pids_in_line("hello pid=12 serving"), vec![12]);
        assert_eq!(
            pids_in_line("upgrade failed: successor pid=7 exited; (pid=8)"),
            vec![7, 8]
        );
        assert!(pids_in_line("LISTEN_PID=1 ppid=3 xpid=4 pid=").is_empty());
    }
}
