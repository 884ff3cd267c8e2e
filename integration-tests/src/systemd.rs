//! A real systemd service manager for tests: `/lib/systemd/systemd --user` in a private mount
//! namespace, in cgroups of its own, talked to with `systemctl --user` over its private socket.
//!
//! How ([`Manager::start`]), as root:
//! - `unshare -m --propagation private` runs a small `/bin/sh` script that mounts a tmpfs on
//!   `/run/systemd` holding an empty `/run/systemd/system` (systemd then believes the machine
//!   was booted with systemd), bind-mounts the test's bin directory over `/usr/local/bin` (so
//!   the example units run verbatim: their `ExecStart=/usr/local/bin/hello` is the test's copy),
//!   moves itself into a fresh cgroup in every systemd-relevant hierarchy (cgroup2, and the
//!   `name=systemd` v1 hierarchy where one is mounted) and execs the manager with its own
//!   `XDG_RUNTIME_DIR`, `HOME` and `XDG_CONFIG_HOME` under a temp dir and a start unit
//!   (`--unit=itest-idle.target`) that pulls in nothing.
//! - `systemctl --user` runs inside the same namespace (`nsenter -t <pid> -m`) with the same
//!   `XDG_RUNTIME_DIR`, so it finds the private socket and sees `/run/systemd/system`.
//! - Units go to `$XDG_CONFIG_HOME/systemd/user/`; a test's own settings (ports, log file) go to
//!   a drop-in (`<unit>.d/itest.conf`), so the unit file itself is used as it is in the repo.
//!
//! Teardown ([`Drop`]): SIGKILL every process in the manager's cgroups (the manager first, so it
//! restarts nothing), wait until they are gone, remove the cgroups bottom-up. The namespace and
//! its mounts go with its last process. Bounded throughout.
//!
//! Where the machine cannot do it (not root, no systemd, no cgroup to write), [`Manager::start`]
//! returns why; [`Manager::start_or_skip`] turns that into a skip with a message, or a panic
//! under `CI=true`.

use crate::reaper::{self, Exit};
use crate::{run_output, TempDir};
use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The manager binary.
pub const SYSTEMD: &str = "/lib/systemd/systemd";
/// The start unit: a target that pulls in nothing.
const IDLE_TARGET: &str = "itest-idle.target";

/// A running private user manager. See the module docs.
pub struct Manager {
    pid: i32,
    started: Instant,
    dir: TempDir,
    cgroups: Vec<PathBuf>,
    journal: Journal,
}

/// The manager's log: a datagram socket standing in for journald's
/// (`/run/systemd/journal/socket` inside the namespace), read by a thread that keeps the
/// `MESSAGE=` of every entry.
struct Journal {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Journal {
    fn bind(path: &Path) -> std::io::Result<Journal> {
        let sock = UnixDatagram::bind(path)?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (lines.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("itest-journal".into())
            .spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                while !st.load(Ordering::Relaxed) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        if let Some(m) = journal_message(&buf[..n]) {
                            l.lock().unwrap_or_else(|e| e.into_inner()).push(m);
                        }
                    }
                }
            })?;
        Ok(Journal {
            lines,
            stop,
            thread: Some(thread),
        })
    }

    fn text(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `MESSAGE=` field of one entry in journald's native protocol: `KEY=value\n` fields, or
/// `KEY\n` + 64-bit little-endian length + value + `\n` for values that hold newlines.
pub fn journal_message(mut d: &[u8]) -> Option<String> {
    while !d.is_empty() {
        let nl = d.iter().position(|&b| b == b'\n').unwrap_or(d.len());
        let field = &d[..nl];
        if let Some(eq) = field.iter().position(|&b| b == b'=') {
            if &field[..eq] == b"MESSAGE" {
                return Some(String::from_utf8_lossy(&field[eq + 1..]).into_owned());
            }
            d = d.get(nl + 1..).unwrap_or(&[]);
        } else {
            let rest = d.get(nl + 1..)?;
            let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
            let value = rest.get(8..8 + len)?;
            if field == b"MESSAGE" {
                return Some(String::from_utf8_lossy(value).into_owned());
            }
            d = rest.get(8 + len + 1..).unwrap_or(&[]);
        }
    }
    None
}

/// The output of one `systemctl` call.
#[derive(Debug, Clone)]
pub struct Ctl {
    /// How it ended.
    pub exit: Exit,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// How long it took.
    pub took: Duration,
}

impl Ctl {
    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.exit.success()
    }
}

/// The cgroup hierarchies systemd uses on this machine: every cgroup2 mount and the
/// `name=systemd` v1 mount, from `/proc/self/mountinfo`.
fn systemd_hierarchies() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split_whitespace().nth(4).unwrap_or("");
        let mut r = right.split_whitespace();
        let fstype = r.next().unwrap_or("");
        let opts = r.nth(1).unwrap_or("");
        let wanted = fstype == "cgroup2"
            || (fstype == "cgroup" && opts.split(',').any(|o| o == "name=systemd"));
        if wanted && !mount_point.is_empty() {
            out.push(PathBuf::from(mount_point));
        }
    }
    out
}

/// Is `name` an executable file in a directory of `PATH`?
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Every directory under `root` (inclusive), deepest first.
fn cgroup_tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(cgroup_tree(&e.path()));
            }
        }
    }
    out.push(root.to_path_buf());
    out
}

fn cgroup_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

impl Manager {
    /// Start a manager, or say why this machine cannot.
    pub fn start(tag: &str) -> Result<Manager, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root (a private mount namespace and cgroups need root)".into());
        }
        if !Path::new(SYSTEMD).exists() {
            return Err(format!(
                "{SYSTEMD} is missing (install the `systemd` package)"
            ));
        }
        for tool in ["unshare", "nsenter", "systemctl"] {
            if !on_path(tool) {
                return Err(format!("`{tool}` is not on PATH (util-linux, systemd)"));
            }
        }
        let hierarchies = systemd_hierarchies();
        if hierarchies.is_empty() {
            return Err("no cgroup2 or name=systemd cgroup hierarchy is mounted".into());
        }
        reaper::ensure();
        let dir = TempDir::new(&format!("systemd-{tag}"));
        for sub in [
            "run",
            "home",
            "config/systemd/user",
            "bin",
            "logs",
            "journal",
        ] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{sub}: {e}"))?;
        }
        std::fs::write(
            dir.join("config/systemd/user").join(IDLE_TARGET),
            "[Unit]\nDescription=itest idle start unit\nDefaultDependencies=no\n",
        )
        .map_err(|e| e.to_string())?;
        // The run dir of a user manager must be private to its user.
        let _ = std::fs::set_permissions(
            dir.join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        );
        let name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cgroups = Vec::new();
        for h in &hierarchies {
            let cg = h.join(&name);
            std::fs::create_dir_all(&cg)
                .map_err(|e| format!("cannot create cgroup {}: {e}", cg.display()))?;
            cgroups.push(cg);
        }
        let journal = Journal::bind(&dir.join("journal/socket"))
            .map_err(|e| format!("bind the journal socket: {e}"))?;
        let mut m = Manager {
            pid: 0,
            started: Instant::now(),
            dir,
            cgroups,
            journal,
        };
        let procs: Vec<String> = m
            .cgroups
            .iter()
            .map(|c| crate::shell_quote(&c.join("cgroup.procs")))
            .collect();
        let script = format!(
            "set -e\n\
             mkdir -p /run/systemd\n\
             mount -t tmpfs -o mode=0755 itest-systemd /run/systemd\n\
             mkdir -p /run/systemd/system /run/systemd/journal\n\
             mount --bind {journal} /run/systemd/journal\n\
             mount --bind {bin} /usr/local/bin\n\
             for p in {procs}; do echo $$ > \"$p\"; done\n\
             exec {SYSTEMD} --user --unit={IDLE_TARGET} --log-target=journal --log-level=info\n",
            journal = crate::shell_quote(&m.dir.join("journal")),
            bin = crate::shell_quote(&m.dir.join("bin")),
            procs = procs.join(" "),
        );
        let log =
            std::fs::File::create(m.dir.join("logs/manager.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "/bin/sh", "-c", &script])
            .env("XDG_RUNTIME_DIR", m.dir.join("run"))
            .env("HOME", m.dir.join("home"))
            .env("XDG_CONFIG_HOME", m.dir.join("config"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn unshare: {e}"))?;
        m.pid = child.id() as i32;
        drop(child);
        // Ready once `systemctl --user is-system-running` answers running (or degraded).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(gone) = reaper::exit_status_since(m.pid, m.started) {
                return Err(format!(
                    "the manager exited ({gone}) at start-up:\n{}",
                    m.manager_log()
                ));
            }
            if let Ok(c) = m.try_systemctl(&["is-system-running"]) {
                let state = c.stdout.trim();
                if state == "running" || state == "degraded" {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the manager did not come up within 30 s:\n{}",
                    m.manager_log()
                ));
            }
            crate::sleep_ms(20);
        }
        Ok(m)
    }

    /// [`Manager::start`], or `None` after printing why (outside CI). Under `CI=true` a machine
    /// that cannot run the manager fails the test.
    pub fn start_or_skip(tag: &str) -> Option<Manager> {
        match Manager::start(tag) {
            Ok(m) => Some(m),
            Err(why) => {
                if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
                    panic!("CI=true and no real systemd manager can run here: {why}");
                }
                eprintln!("SKIPPED: no real systemd manager can run here: {why}");
                None
            }
        }
    }

    /// The manager's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The directory whose contents appear as `/usr/local/bin` to the manager's units.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// A path for logs and other files of the test (outside the namespace's private mounts).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(&format!("logs/{name}"))
    }

    /// The manager's log so far (its journal messages, then its stdout/stderr).
    pub fn manager_log(&self) -> String {
        let out = std::fs::read_to_string(self.dir.join("logs/manager.log")).unwrap_or_default();
        format!("{}\n{out}", self.journal.text())
    }

    /// The manager's log lines about `unit` (the tail of `n` of them).
    pub fn unit_log(&self, unit: &str, n: usize) -> String {
        let lines: Vec<String> = self
            .manager_log()
            .lines()
            .filter(|l| l.contains(unit))
            .map(str::to_owned)
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Install `text` as unit `name`. The start unit gets an ordering dependency on it (which
    /// starts nothing): a unit that something refers to is not garbage-collected once inactive,
    /// so `systemctl show` still reports how it ended (`Result=`, `ExecMainStatus=`).
    pub fn install_unit(&self, name: &str, text: &str) {
        let units = self.dir.join("config/systemd/user");
        std::fs::write(units.join(name), text).unwrap_or_else(|e| panic!("install {name}: {e}"));
        let d = units.join(format!("{IDLE_TARGET}.d"));
        std::fs::create_dir_all(&d).expect("drop-in dir");
        std::fs::write(
            d.join(format!("{name}.conf")),
            format!("[Unit]\nBefore={name}\n"),
        )
        .unwrap_or_else(|e| panic!("reference {name}: {e}"));
    }

    /// Install `text` as drop-in `itest.conf` for unit `name`.
    pub fn install_drop_in(&self, name: &str, text: &str) {
        let d = self
            .dir
            .join("config/systemd/user")
            .join(format!("{name}.d"));
        std::fs::create_dir_all(&d).expect("drop-in dir");
        std::fs::write(d.join("itest.conf"), text)
            .unwrap_or_else(|e| panic!("drop-in {name}: {e}"));
    }

    fn try_systemctl(&self, args: &[&str]) -> std::io::Result<Ctl> {
        let mut cmd = Command::new("nsenter");
        cmd.args([
            "-t",
            &self.pid.to_string(),
            "-m",
            "systemctl",
            "--user",
            "--no-pager",
        ])
        .args(args)
        .env("XDG_RUNTIME_DIR", self.dir.join("run"))
        .env_remove("DBUS_SESSION_BUS_ADDRESS");
        let t0 = Instant::now();
        let (exit, stdout, stderr) = run_output(cmd, Duration::from_secs(90))?;
        Ok(Ctl {
            exit,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            took: t0.elapsed(),
        })
    }

    /// `systemctl --user ARGS` against this manager (bounded: 90 s).
    pub fn systemctl(&self, args: &[&str]) -> Ctl {
        self.try_systemctl(args)
            .unwrap_or_else(|e| panic!("systemctl {args:?}: {e}"))
    }

    /// `systemctl ARGS`, panicking with the unit's log when it does not exit 0.
    pub fn must(&self, args: &[&str]) -> Ctl {
        let c = self.systemctl(args);
        assert!(
            c.ok(),
            "systemctl {args:?}: {} {}{}\n{}",
            c.exit,
            c.stdout,
            c.stderr,
            self.manager_log_tail(40)
        );
        c
    }

    /// The last `n` lines of the manager's output.
    pub fn manager_log_tail(&self, n: usize) -> String {
        let log = self.manager_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `systemctl show -p P1,P2 unit` as a map.
    pub fn show(&self, unit: &str, props: &[&str]) -> BTreeMap<String, String> {
        let c = self.must(&["show", "-p", &props.join(","), unit]);
        c.stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// One property.
    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.show(unit, &[prop]).remove(prop).unwrap_or_default()
    }

    /// The unit's `MainPID` (0: none).
    pub fn main_pid(&self, unit: &str) -> i32 {
        self.prop(unit, "MainPID").parse().unwrap_or(0)
    }

    /// Poll `prop` every 20 ms until `pred` holds (then its value) or `timeout`.
    pub fn wait_prop(
        &self,
        unit: &str,
        prop: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.prop(unit, prop);
            if pred(&v) {
                return Some(v);
            }
            if Instant::now() > deadline {
                return None;
            }
            crate::sleep_ms(20);
        }
    }

    /// Every pid in the manager's cgroups (the manager included).
    pub fn all_pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .cgroups
            .iter()
            .flat_map(|c| cgroup_tree(c))
            .flat_map(|d| cgroup_pids(&d))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn teardown(&mut self) {
        if self.pid > 0 {
            // The manager first, so it restarts nothing; then everything left in its cgroups.
            crate::signal(self.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = reaper::wait_gone(self.pid, self.started, Duration::from_secs(5));
        }
        for _round in 0..20 {
            let pids = self.all_pids();
            if pids.is_empty() {
                break;
            }
            for &p in &pids {
                crate::signal(p, nix::sys::signal::Signal::SIGKILL);
            }
            for &p in &pids {
                let _ = reaper::wait_gone(p, self.started, Duration::from_secs(2));
            }
        }
        for cg in &self.cgroups {
            for d in cgroup_tree(cg) {
                for _ in 0..50 {
                    if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                        break;
                    }
                    crate::sleep_ms(20);
                }
            }
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- systemd manager log (tail) ---\n{}",
                self.manager_log_tail(60)
            );
        }
        self.teardown();
    }
}
