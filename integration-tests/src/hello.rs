//! Starting the `hello` example, parsing its startup line, and driving a live upgrade.

use crate::family::{pids_in_line, ServerFamily};
use crate::http::{wait_for_pid, Target};
use crate::reaper::{Exit, Gone};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One listener from the startup line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// As printed: `127.0.0.1:8080` or `unix:/path`.
    pub addr: String,
    /// `(inherited)` (true) or `(bound)` (false).
    pub inherited: bool,
}

impl Listener {
    /// The address as a client target.
    pub fn target(&self) -> Target {
        Target::parse(&self.addr).unwrap_or_else(|| panic!("unparseable address {:?}", self.addr))
    }
}

/// A parsed `hello pid=<pid> serving <addr> (inherited|bound)[, ...]` line.
#[derive(Clone, Debug)]
pub struct Startup {
    /// The pid printed.
    pub pid: i32,
    /// The listeners, in order.
    pub listeners: Vec<Listener>,
    /// The raw line.
    pub line: String,
}

/// Parse a startup line; `None` if it is not one.
pub fn parse_startup(line: &str) -> Option<Startup> {
    let rest = line.strip_prefix("hello pid=")?;
    let (pid, rest) = rest.split_once(' ')?;
    let pid = pid.parse().ok()?;
    let rest = rest.strip_prefix("serving ")?;
    let mut listeners = Vec::new();
    for part in rest.split(", ") {
        let (addr, how) = part.trim().rsplit_once(' ')?;
        let inherited = match how {
            "(inherited)" => true,
            "(bound)" => false,
            _ => return None,
        };
        listeners.push(Listener {
            addr: addr.to_string(),
            inherited,
        });
    }
    Some(Startup {
        pid,
        listeners,
        line: line.to_string(),
    })
}

/// A running `hello` (all generations) under test.
pub struct Hello {
    /// The guard owning every generation.
    pub family: ServerFamily,
    /// The first generation's startup line.
    pub startup: Startup,
    /// The first listener as a client target.
    pub target: Target,
}

impl Hello {
    /// Start `exe` with `args` (and `RUST_LOG=info`) and wait up to 20 s for its startup
    /// line. Panics (after killing it) if it does not come.
    pub fn start(exe: &Path, args: &[&str]) -> Hello {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        Hello::start_cmd("hello", cmd)
    }

    /// Like [`Hello::start`] with a prepared command.
    pub fn start_cmd(name: &str, cmd: Command) -> Hello {
        let family = ServerFamily::spawn(name, cmd).expect("spawn hello");
        let startup = wait_startup(&family, 0, Duration::from_secs(20)).unwrap_or_else(|| {
            panic!(
                "no startup line from {name} within 20 s\n{}",
                family.output_tail(40)
            )
        });
        let target = startup
            .listeners
            .first()
            .expect("startup line lists a listener")
            .target();
        Hello {
            family,
            startup,
            target,
        }
    }

    /// The first generation's pid.
    pub fn pid(&self) -> i32 {
        self.startup.pid
    }

    /// The first line of the family's stderr from index `from` that contains `needle`, within
    /// `secs`; panics with the output's tail when none comes.
    pub fn wait_line(&self, from: usize, needle: &str, secs: u64) -> String {
        self.family
            .stderr
            .wait_for_line(from, |l| l.contains(needle), Duration::from_secs(secs))
            .unwrap_or_else(|| {
                panic!(
                    "no `{needle}` line within {secs} s\n{}",
                    self.family.output_tail(40)
                )
            })
            .1
    }

    /// Waits up to 10 s until a fresh connection's `GET /health` is answered by `pid`; panics
    /// (saying `what` should serve) when it is not.
    pub fn serves(&self, pid: i32, what: &str) {
        let got = wait_for_pid(
            &self.target,
            "/health",
            |p| p == pid,
            Duration::from_secs(10),
        );
        assert_eq!(got, Some(pid), "{what}: pid {pid} should serve");
    }

    /// Keeper mode: waits up to 20 s until the keeper (this `hello`) reports its first
    /// generation ready, adds that generation to the family (killed and reaped with it), and
    /// returns its pid. Panics, with the output's tail, if no report comes.
    pub fn first_generation(&self) -> i32 {
        let key = format!("keeper pid={}: serving through generation pid=", self.pid());
        let (_, line) = self
            .family
            .stderr
            .wait_for_line(0, |l| l.contains(&key), Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no first generation\n{}", self.family.output_tail(30)));
        let generation = number_after(&line, &key).expect("generation pid") as i32;
        self.family.add_pid(generation);
        generation
    }
}

/// Wait for a startup line at stdout index >= `from`.
pub fn wait_startup(family: &ServerFamily, from: usize, timeout: Duration) -> Option<Startup> {
    family
        .stdout
        .wait_for_line(from, |l| parse_startup(l).is_some(), timeout)
        .and_then(|(_, l)| parse_startup(&l))
}

/// What one upgrade did, with timings measured from the moment SIGUSR2 was sent.
#[derive(Clone, Debug)]
pub struct Upgrade {
    /// The process signalled.
    pub old: i32,
    /// The successor (from the `spawned successor pid=` log line).
    pub new: i32,
    /// When the signal was sent.
    pub signalled_at: Instant,
    /// The `ready after <ms> ms` figure logged by the library.
    pub ready_ms_logged: Option<f64>,
    /// Signal → `ready` log line seen by the test.
    pub ready_seen: Duration,
    /// Signal → a fresh connection answered by the successor.
    pub serving_after: Duration,
    /// Signal → old process gone (if waited for).
    pub old_gone_after: Option<Duration>,
    /// How the old process ended (if waited for).
    pub old_exit: Option<Gone>,
}

/// Options for [`upgrade`].
#[derive(Clone, Debug)]
pub struct UpgradeOpts {
    /// Path polled on fresh connections to see who serves (`/health`; plain-listenfd has
    /// only `/`).
    pub probe_path: String,
    /// Wait for the old process to be gone, at most this long (`None`: do not wait).
    pub wait_old_exit: Option<Duration>,
    /// Bound for each of: successor spawned, successor ready, successor serving.
    pub step_timeout: Duration,
    /// Expect the library's `ready after` line (false for a foreign successor, where the
    /// line may differ).
    pub expect_ready_line: bool,
}

impl Default for UpgradeOpts {
    fn default() -> Self {
        UpgradeOpts {
            probe_path: "/health".into(),
            wait_old_exit: Some(Duration::from_secs(20)),
            step_timeout: Duration::from_secs(15),
            expect_ready_line: true,
        }
    }
}

/// The number after `key` in `line` (digits and one dot).
pub fn number_after(line: &str, key: &str) -> Option<f64> {
    let i = line.find(key)? + key.len();
    let s: String = line[i..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    s.parse().ok()
}

/// Send SIGUSR2 to `old` and follow the handoff: the `spawned successor pid=` line, the
/// `ready after` line, a fresh connection answered by the successor, and (optionally) the
/// old process's exit. Errors carry a description; the caller decides to panic.
pub fn upgrade(
    family: &ServerFamily,
    target: &Target,
    old: i32,
    opts: &UpgradeOpts,
) -> Result<Upgrade, String> {
    upgrade_with_signal(family, target, old, Signal::SIGUSR2, opts)
}

/// [`upgrade`] triggered by `sig` instead of SIGUSR2 (for `--upgrade-signal`).
pub fn upgrade_with_signal(
    family: &ServerFamily,
    target: &Target,
    old: i32,
    sig: Signal,
    opts: &UpgradeOpts,
) -> Result<Upgrade, String> {
    upgrade_probed(family, old, sig, opts, |new| {
        wait_for_pid(target, &opts.probe_path, |p| p == new, opts.step_timeout).is_some()
    })
}

/// [`upgrade_with_signal`] with a probe of the caller's (TLS, HTTP/2, ...): `serving(new)`
/// returns once a fresh connection is answered by `new` (true) or after the caller's bound
/// (false).
pub fn upgrade_probed(
    family: &ServerFamily,
    old: i32,
    sig: Signal,
    opts: &UpgradeOpts,
    serving: impl Fn(i32) -> bool,
) -> Result<Upgrade, String> {
    let mark = family.stderr.len();
    let t0 = Instant::now();
    if !crate::signal(old, sig) {
        return Err(format!("{sig} to {old}: no such process"));
    }
    let (_, spawned) = family
        .stderr
        .wait_for_line(
            mark,
            |l| {
                l.contains("spawned successor pid=")
                    || l.contains("upgrade failed")
                    || l.contains("upgrade refused")
            },
            opts.step_timeout,
        )
        .ok_or_else(|| {
            format!(
                "no `spawned successor` log line within {:?}",
                opts.step_timeout
            )
        })?;
    if !spawned.contains("spawned successor pid=") {
        return Err(format!("upgrade did not start: {spawned}"));
    }
    let new = number_after(&spawned, "spawned successor pid=")
        .map(|n| n as i32)
        .ok_or_else(|| format!("cannot parse pid in {spawned:?}"))?;
    family.add_pid(new);
    let mut ready_ms_logged = None;
    let mut ready_seen = t0.elapsed();
    if opts.expect_ready_line {
        let key = format!("successor pid={new} ready after");
        let (_, ready) = family
            .stderr
            .wait_for_line(
                mark,
                |l| {
                    l.contains(&key)
                        || (l.contains("upgrade failed") && pids_in_line(l).contains(&new))
                },
                opts.step_timeout,
            )
            .ok_or_else(|| format!("no `{key}` log line within {:?}", opts.step_timeout))?;
        if ready.contains("upgrade failed") {
            return Err(format!("upgrade failed: {ready}"));
        }
        ready_seen = t0.elapsed();
        ready_ms_logged = number_after(&ready, "ready after");
    }
    if !serving(new) {
        return Err(format!(
            "successor {new} not answering {} within {:?}",
            opts.probe_path, opts.step_timeout
        ));
    }
    let serving_after = t0.elapsed();
    let (old_exit, old_gone_after) = match opts.wait_old_exit {
        Some(t) => {
            let g = family
                .wait_gone(old, t)
                .ok_or_else(|| format!("old process {old} still alive {t:?} after the upgrade"))?;
            (Some(g), Some(t0.elapsed()))
        }
        None => (None, None),
    };
    Ok(Upgrade {
        old,
        new,
        signalled_at: t0,
        ready_ms_logged,
        ready_seen,
        serving_after,
        old_gone_after,
        old_exit,
    })
}

/// Waits up to `timeout` for the generation `pid` to be gone and checks that it exited 0:
/// reaped by the harness with status 0, or reaped by its predecessor (still draining when it
/// ended), which then logs `successor pid=PID exited (exit status 0)`.
pub fn wait_exit_0(family: &ServerFamily, pid: i32, timeout: Duration) -> Result<(), String> {
    match family.wait_gone(pid, timeout) {
        Some(Gone::Reaped(Exit::Code(0))) => Ok(()),
        Some(Gone::ReapedElsewhere) => {
            let line = format!("successor pid={pid} exited (exit status 0)");
            if family.stderr.find(0, |l| l.contains(&line)).is_empty() {
                Err(format!(
                    "{pid} was reaped by its predecessor, which did not log `{line}`"
                ))
            } else {
                Ok(())
            }
        }
        other => Err(format!("{pid}: {other:?}")),
    }
}

/// Did the old generation end with `exit(0)` (as the library promises)?
pub fn exited_cleanly(u: &Upgrade) -> bool {
    matches!(u.old_exit, Some(Gone::Reaped(Exit::Code(0))))
}

/// Wait for a `spawned successor pid=` log line at stderr index >= `from`; registers the
/// successor with the family (so it is killed and reaped whatever happens) and returns its pid.
pub fn wait_spawned(family: &ServerFamily, from: usize, timeout: Duration) -> Option<i32> {
    let (_, line) =
        family
            .stderr
            .wait_for_line(from, |l| l.contains("spawned successor pid="), timeout)?;
    let pid = number_after(&line, "spawned successor pid=")? as i32;
    family.add_pid(pid);
    Some(pid)
}

/// Send SIGUSR2 to `pid` and wait (10 s) for the `upgrade failed` log line, which it returns.
/// Panics (with the output tail) when none comes.
pub fn upgrade_must_fail(family: &ServerFamily, pid: i32) -> String {
    let mark = family.stderr.len();
    assert!(crate::signal(pid, Signal::SIGUSR2), "SIGUSR2 to {pid}");
    let (_, line) = family
        .stderr
        .wait_for_line(
            mark,
            |l| l.contains("upgrade failed"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no `upgrade failed` line\n{}", family.output_tail(20)));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_startup_lines() {
        let s = parse_startup(
            "hello pid=42 serving 127.0.0.1:8080 (inherited), unix:/tmp/a b.sock (bound)",
        )
        .unwrap();
        assert_eq!(s.pid, 42);
        assert_eq!(
            s.listeners,
            vec![
                Listener {
                    addr: "127.0.0.1:8080".into(),
                    inherited: true
                },
                Listener {
                    addr: "unix:/tmp/a b.sock".into(),
                    inherited: false
                },
            ]
        );
        assert_eq!(s.listeners[0].target().port(), Some(8080));
        assert!(parse_startup("hello pid=42 serving [::1]:1 (bound)").is_some());
        assert!(parse_startup("hello pid=x serving 1.2.3.4:5 (bound)").is_none());
        assert!(parse_startup("hello pid=1 serving 1.2.3.4:5 (maybe)").is_none());
        assert!(parse_startup("[INFO] serving, pid=1").is_none());
    }

    #[test]
    fn finds_numbers_after_keys() {
        let l = "upgrade: successor pid=123 ready after 4.5 ms; draining";
        assert_eq!(number_after(l, "successor pid="), Some(123.0));
        assert_eq!(number_after(l, "ready after"), Some(4.5));
        assert_eq!(number_after(l, "nothing"), None);
    }
}
