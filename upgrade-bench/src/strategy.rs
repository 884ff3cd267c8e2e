//! The restart strategies: starting a server generation, triggering a restart its way, and
//! timing the handoff from what the server prints and which pids come and go.

use crate::badbuild::{BadBuild, Deploy};
use crate::badrun::{BadOutcome, EndState};
use crate::loadgen::{Load, Recorded, Spec};
use crate::procinfo::{age_ms, children, cpu_seconds, major_faults, proc_state, task_sched};
use integration_tests::family::PROBATION_VAR;
use integration_tests::hello::number_after;
use integration_tests::reaper::{self, Gone};
use integration_tests::{procfs, signal, ServerFamily, Target};
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a strategy restarts the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Send the upgrade signal; the process hands its listeners to its successor
    /// (actix-graceful).
    Graceful,
    /// The same in keeper mode: the upgrade signal goes to the keeper, which starts a new
    /// generation with the listeners it holds; the generation it replaces drains.
    Keeper,
    /// SIGTERM the old process, then start a new one (retrying while the port is taken).
    Naive,
    /// Start the new process (bound with SO_REUSEPORT) next to the old one, wait until it
    /// serves, then SIGTERM the old one.
    ReusePort,
    /// nginx's binary upgrade: USR2 to the master starts a new master with the listening
    /// sockets (its `NGINX` variable), wait until it runs workers, then QUIT the old master
    /// (its workers finish what is in flight and close their idle keep-alive connections).
    Nginx,
}

/// nginx's own processes: it runs as a daemon (nginx ignores USR2 in the foreground), so the
/// master is found through its pid file.
#[derive(Clone, Debug)]
pub struct NginxRun {
    /// `pid` in the config: the current master's pid (the old one's moves to `.oldbin`).
    pub pid_file: std::path::PathBuf,
    /// The config file, its directory, port and workers (a bad deploy rewrites the file).
    pub conf: std::path::PathBuf,
    /// See `conf`.
    pub dir: std::path::PathBuf,
    /// See `conf`.
    pub port: u16,
    /// See `conf`.
    pub workers: usize,
}

/// One strategy to run.
#[derive(Clone, Debug)]
pub struct Strategy {
    /// Short name (file names, tables).
    pub name: String,
    /// What it does.
    pub kind: Kind,
    /// nginx's pid file (`Kind::Nginx` only).
    pub nginx: Option<NginxRun>,
    /// The server command, `{port}` already substituted.
    pub cmd: Vec<String>,
}

/// Timing of one restart, milliseconds from the trigger.
#[derive(Clone, Debug, Default)]
pub struct Handoff {
    /// Trigger, seconds since the load started.
    pub at: f64,
    /// Trigger → the successor is ready. Graceful: the library's own `ready after` figure
    /// (upgrade signal handled → successor's ready byte). Others: the new process's ready
    /// line seen by the bench.
    pub ready_ms: Option<f64>,
    /// Trigger → old process reaped (by the bench, a subreaper; a process whose parent is
    /// still alive is reaped only once that parent exits).
    pub gone_ms: Option<f64>,
    /// Trigger → old process exited (a zombie or gone from /proc; polled every 2 ms).
    pub exited_ms: Option<f64>,
    /// Where the handoff time went (graceful only, from `/proc/<pid>/task/*/schedstat`).
    pub sched: Option<Sched>,
    /// How the old process ended.
    pub old_exit: Option<String>,
    /// What a bad deploy did (`--bad-build`).
    pub bad: Option<BadOutcome>,
}

/// fds and memory of the serving process, read from /proc just before a trigger.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// Open fds.
    pub fds: usize,
    /// Open fds that are not sockets (sockets come and go with client connections).
    pub non_socket_fds: usize,
    /// VmRSS, KiB.
    pub rss_kb: u64,
    /// VmHWM (peak RSS), KiB.
    pub hwm_kb: u64,
}

/// Everything one strategy's run produced.
pub struct Run {
    /// One per restart done.
    pub handoffs: Vec<Handoff>,
    /// What went wrong with the restarts themselves (not the requests).
    pub errors: Vec<String>,
    /// One per generation that served, taken just before its trigger (and at the end).
    pub samples: Vec<ProcSample>,
    /// The load's records.
    pub recorded: Recorded,
    /// What the servers printed (per process: stdout, then stderr).
    pub log: Vec<String>,
    /// With `--bad-build`: the service at the end of the run.
    pub end: Option<EndState>,
}

/// The knobs of one run.
#[derive(Clone, Debug)]
pub struct RunCfg {
    /// Restarts.
    pub upgrades: usize,
    /// Load duration, seconds.
    pub seconds: f64,
    /// The load (its target is the server's).
    pub load: Spec,
    /// Slow requests fired before each restart.
    pub slow: usize,
    /// Their path.
    pub slow_path: String,
    /// Their client timeout.
    pub slow_timeout: Duration,
    /// How long before a restart they are fired.
    pub slow_lead: Duration,
    /// A new process is serving once it prints a line containing this.
    pub ready_line: String,
    /// The graceful strategy's upgrade signal.
    pub upgrade_signal: Signal,
    /// Bound on each wait (ready, spawned, gone).
    pub step_timeout: Duration,
    /// `--bad-build`: every restart deploys this bad build.
    pub bad: Option<BadBuild>,
}

/// Start one process of `cmd`.
pub fn spawn(name: &str, cmd: &[String]) -> std::io::Result<ServerFamily> {
    let (prog, args) = cmd
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty server command"))?;
    let mut c = Command::new(prog);
    c.args(args);
    // The servers log at info (the graceful strategy reads the library's lines) unless the
    // bench's own RUST_LOG says otherwise (e.g. `actix_graceful=debug,info` for timings).
    if let Some(level) = std::env::var_os("RUST_LOG") {
        c.env("RUST_LOG", level);
    }
    // The probation the bench's environment sets (`--probation-ms` sets it too), else the
    // library's default: not the test harness's short one.
    match std::env::var_os(PROBATION_VAR) {
        Some(p) => c.env(PROBATION_VAR, p),
        None => c.env_remove(PROBATION_VAR),
    };
    ServerFamily::spawn(name, c)
}

/// Wait until `fam`'s first process prints a line containing `needle` (stdout or stderr).
/// Returns when it was seen; an error if the process exits first or `timeout` passes.
pub fn wait_ready(fam: &ServerFamily, needle: &str, timeout: Duration) -> Result<Instant, String> {
    let deadline = Instant::now() + timeout;
    let (mut out, mut err) = (0, 0);
    loop {
        for (cap, from) in [(&fam.stdout, &mut out), (&fam.stderr, &mut err)] {
            let n = cap.len();
            if !cap.find(*from, |l| l.contains(needle)).is_empty() {
                return Ok(Instant::now());
            }
            *from = n;
        }
        if let Some(exit) = reaper::exit_status_since(fam.root(), fam.started) {
            return Err(format!(
                "{} exited ({exit}) before printing {needle:?}:\n{}",
                fam.name(),
                fam.output_tail(6)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} printed no {needle:?} within {timeout:?}",
                fam.name()
            ));
        }
        // Blocks on the condition variable until a line arrives (or 2 ms).
        let _ = fam
            .stdout
            .wait_for_line(out, |l| l.contains(needle), Duration::from_millis(2));
    }
}

fn sample(pid: i32) -> ProcSample {
    let fds = procfs::fd_targets(pid);
    ProcSample {
        fds: fds.len(),
        non_socket_fds: fds
            .iter()
            .filter(|(_, t)| !t.starts_with("socket:"))
            .count(),
        rss_kb: procfs::vm_rss_kb(pid).unwrap_or(0),
        hwm_kb: procfs::vm_hwm_kb(pid).unwrap_or(0),
    }
}

/// Sleeps until `at` (at once if it passed).
pub fn sleep_until(at: Instant) {
    if let Some(d) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// Polls /proc for the moment processes exit (become zombies or disappear).
struct ExitWatch {
    pending: Arc<Mutex<Vec<i32>>>,
    exited: Arc<Mutex<HashMap<i32, Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExitWatch {
    fn start() -> ExitWatch {
        let pending: Arc<Mutex<Vec<i32>>> = Arc::default();
        let exited: Arc<Mutex<HashMap<i32, Instant>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (p, e, st) = (pending.clone(), exited.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("exit-watch".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    let mut pending = p.lock().unwrap_or_else(|e| e.into_inner());
                    pending.retain(|&pid| {
                        let alive = procfs::stat(pid).is_some_and(|s| s.state != 'Z');
                        if !alive {
                            e.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(pid, Instant::now());
                        }
                        alive
                    });
                    drop(pending);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
            .ok();
        ExitWatch {
            pending,
            exited,
            stop,
            thread,
        }
    }

    fn watch(&self, pid: i32) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pid);
    }

    fn exited(&self, pid: i32) -> Option<Instant> {
        self.exited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pid)
            .copied()
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The generations of one run.
pub struct Gens {
    /// Graceful and keeper: one family for all generations. Others: one per process.
    pub families: Vec<ServerFamily>,
    /// The pid serving now (keeper: the keeper; nginx: the master), the next trigger's target.
    pub cur: i32,
}

/// Run `s` under load with `cfg.upgrades` restarts spread evenly over `cfg.seconds`; with a
/// bad build, each restart deploys it, and the load goes on a few seconds after the last.
pub fn run(s: &Strategy, target: &Target, cfg: &RunCfg) -> Result<Run, String> {
    let (mut deploy, s) = match cfg.bad {
        Some(bad) => Deploy::prepare(s, bad).map(|(d, s)| (Some(d), s))?,
        None => (None, s.clone()),
    };
    let mut gens = start_first(&s, target, cfg)?;
    if deploy.is_some() {
        crate::badrun::wait_first_probation(&gens.families[0])?;
    }
    let first = crate::badrun::answering_pid(target);
    let load = Load::start(
        Spec {
            target: target.clone(),
            ..cfg.load.clone()
        },
        gens.families[0].pid_set(),
    );
    let t0 = load.started();
    let watch = ExitWatch::start();
    let mut r = restarts(&s, &mut gens, &load, &watch, cfg, deploy.as_mut());
    sleep_until(t0 + Duration::from_secs_f64(cfg.seconds));
    let end = match &deploy {
        Some(d) => {
            sleep_until(r.settled + crate::badrun::TAIL);
            Some(crate::badrun::end_state(d, s.kind, target, first))
        }
        None => {
            // The last generation's sample, once its clients have moved over to it.
            if let Some(h) = r.handoffs.last() {
                sleep_until(t0 + Duration::from_secs_f64(h.at + 1.0));
            }
            r.samples.push(sample(gens.cur));
            None
        }
    };
    let recorded = load.stop();
    if deploy.is_none() {
        old_ends(&mut r, &watch, cfg);
    }
    drop(watch);
    let log = output(&gens);
    // Dropping the families kills and reaps whatever is left.
    drop(gens);
    Ok(Run {
        handoffs: r.handoffs,
        errors: r.errors,
        samples: r.samples,
        recorded,
        log,
        end,
    })
}

/// What the servers printed, per family: stdout, then stderr.
fn output(gens: &Gens) -> Vec<String> {
    let mut log = Vec::new();
    for fam in &gens.families {
        log.extend(fam.stdout.lines());
        log.extend(fam.stderr.lines());
    }
    log
}

/// The first generation, started and serving.
fn start_first(s: &Strategy, target: &Target, cfg: &RunCfg) -> Result<Gens, String> {
    let first = spawn(&s.name, &s.cmd).map_err(|e| format!("cannot start {:?}: {e}", s.cmd))?;
    let cur = match &s.nginx {
        Some(n) => crate::nginx::started(&first, n, target, cfg)?,
        None => {
            wait_ready(&first, &cfg.ready_line, cfg.step_timeout)?;
            first.root()
        }
    };
    Ok(Gens {
        cur,
        families: vec![first],
    })
}

/// What the restarts of one run did, before the old processes' ends are known.
struct Restarts {
    handoffs: Vec<Handoff>,
    errors: Vec<String>,
    samples: Vec<ProcSample>,
    /// Each old process and the instant its restart was triggered.
    olds: Vec<(i32, Instant)>,
    /// When the last restart (with a bad build: its crash and take-back) was over.
    settled: Instant,
}

/// The restarts, spread evenly over the load, slow requests fired before each; stops at the
/// first restart that fails (with a bad build, a build not taken into service is no
/// failure). `watch` learns every old process.
fn restarts(
    s: &Strategy,
    gens: &mut Gens,
    load: &Load,
    watch: &ExitWatch,
    cfg: &RunCfg,
    mut deploy: Option<&mut Deploy>,
) -> Restarts {
    let t0 = load.started();
    let mut r = Restarts {
        handoffs: Vec::new(),
        errors: Vec::new(),
        samples: Vec::new(),
        olds: Vec::new(),
        settled: t0,
    };
    for i in 0..cfg.upgrades {
        let at = t0
            + Duration::from_secs_f64(cfg.seconds * (i as f64 + 1.0) / (cfg.upgrades as f64 + 1.0));
        if cfg.slow > 0 {
            sleep_until(at.checked_sub(cfg.slow_lead).unwrap_or(at));
            load.fire_slow(cfg.slow, &cfg.slow_path, cfg.slow_timeout);
        }
        sleep_until(at);
        let trigger = Instant::now();
        let handoff = match deploy.as_deref_mut() {
            Some(d) => crate::badrun::deploy(s, gens, d, cfg, t0).map(|bad| Handoff {
                ready_ms: bad.ready_ms,
                bad: Some(bad),
                ..Handoff::default()
            }),
            None => {
                r.samples.push(sample(gens.cur));
                restart(s, gens, cfg).map(|done| {
                    r.olds.push((done.old, trigger));
                    watch.watch(done.old);
                    Handoff {
                        ready_ms: done.ready_ms,
                        sched: done.sched,
                        ..Handoff::default()
                    }
                })
            }
        };
        match handoff {
            Ok(h) => r.handoffs.push(Handoff {
                at: (trigger - t0).as_secs_f64(),
                ..h
            }),
            Err(e) => {
                r.errors.push(format!("restart {}: {e}", i + 1));
                break;
            }
        }
        r.settled = Instant::now();
    }
    r
}

/// What one restart did.
pub struct Done {
    /// Trigger → ready, as [`Handoff::ready_ms`].
    pub ready_ms: Option<f64>,
    /// Where the time went (graceful only).
    pub sched: Option<Sched>,
    /// The process that was replaced (it drains, or was stopped).
    pub old: i32,
    /// The new server process (keeper: the new generation; nginx: the new master).
    pub new: i32,
}

/// One restart, the strategy's way.
pub fn restart(s: &Strategy, gens: &mut Gens, cfg: &RunCfg) -> Result<Done, String> {
    let old = gens.cur;
    let (ready_ms, sched) = match s.kind {
        Kind::Graceful => graceful(gens, cfg)?,
        Kind::Keeper => return keeper(gens, cfg),
        Kind::Naive => (naive(gens, s, cfg)?, None),
        Kind::ReusePort => (reuseport(gens, s, cfg)?, None),
        Kind::Nginx => (crate::nginx::upgrade(gens, s, cfg)?, None),
    };
    Ok(Done {
        ready_ms,
        sched,
        old,
        new: gens.cur,
    })
}

/// How and when each old process ended: reaped (its status, trigger → reaped) and exited
/// (trigger → a zombie or gone, from `watch`).
fn old_ends(r: &mut Restarts, watch: &ExitWatch, cfg: &RunCfg) {
    for (h, &(old, trigger)) in r.handoffs.iter_mut().zip(&r.olds) {
        match reaper::wait_gone(old, trigger, cfg.step_timeout) {
            Some(Gone::Reaped(exit)) => {
                h.old_exit = Some(exit.to_string());
                h.gone_ms = reaper::reaped_at(old, trigger)
                    .map(|(_, when)| (when - trigger).as_secs_f64() * 1e3);
            }
            Some(Gone::ReapedElsewhere) => h.old_exit = Some("reaped elsewhere".into()),
            None => r.errors.push(format!(
                "old process {old} still alive {:?} after the load ended",
                cfg.step_timeout
            )),
        }
    }
    // The watcher polls every 2 ms: give it the time to see the last exits.
    std::thread::sleep(Duration::from_millis(10));
    for (h, &(old, trigger)) in r.handoffs.iter_mut().zip(&r.olds) {
        h.exited_ms = watch
            .exited(old)
            .map(|at| at.saturating_duration_since(trigger).as_secs_f64() * 1e3);
    }
}

/// Where a graceful handoff's time went, milliseconds, from the scheduler's accounting.
#[derive(Clone, Debug, Default)]
pub struct Sched {
    /// The successor's main thread, fork → its readiness seen: on a CPU.
    pub successor_cpu: f64,
    /// The same: runnable but waiting for a CPU.
    pub successor_wait: f64,
    /// The predecessor's main thread (which handles the signal) and the threads it started
    /// for the upgrade, signal → readiness seen: waiting for a CPU.
    pub predecessor_wait: f64,
    /// The successor's age when its readiness was seen, less its main thread's CPU and
    /// run-queue time: the time it slept or was blocked (10 ms resolution).
    pub successor_blocked: f64,
    /// For a successor not ready within 200 ms: its state, kernel wait channel and system
    /// call, read every 200 ms (the first and last two kept).
    pub stuck: String,
    /// The successor's major page faults (pages read from disk) when its readiness was seen.
    pub major_faults: Option<u64>,
}

/// Keep the first and the last two observations.
fn note(v: &mut Vec<String>, s: String) {
    if v.len() == 3 {
        v.remove(1);
    }
    v.push(s);
}

/// What a graceful upgrade reports: the library's `ready after` figure, and where the time
/// went.
pub type Ready = (Option<f64>, Option<Sched>);

/// Upgrade signal → the library's `spawned successor pid=` and `ready after` log lines.
pub fn graceful(gens: &mut Gens, cfg: &RunCfg) -> Result<Ready, String> {
    let fam = &gens.families[0];
    let mark = fam.stderr.len();
    let before = task_sched(gens.cur);
    if !signal(gens.cur, cfg.upgrade_signal) {
        return Err(format!("pid {} is gone", gens.cur));
    }
    let mut stuck = Vec::new();
    let new = wait_spawned(fam, mark, gens.cur, cfg, &mut stuck)?;
    // A successor not ready after 200 ms: note what it is doing (every 200 ms), to tell a CPU
    // shortage from a process blocked in the kernel.
    let key = format!("successor pid={new} ready after");
    let line = wait_line(
        fam,
        mark,
        |l| l.contains(&key),
        cfg,
        &format!("no `{key}` log line"),
        || note(&mut stuck, format!("successor: {}", proc_state(new))),
    )?;
    let after = task_sched(gens.cur);
    let predecessor_wait = after
        .iter()
        .filter_map(|(tid, (_, wait))| match before.get(tid) {
            None => Some(*wait),
            Some((_, w0)) if *tid == gens.cur => Some(wait - w0),
            Some(_) => None,
        })
        .sum();
    let age = age_ms(new);
    let sched = task_sched(new).get(&new).map(|&(cpu, wait)| Sched {
        successor_cpu: cpu,
        successor_wait: wait,
        predecessor_wait,
        successor_blocked: age.map_or(f64::NAN, |age| (age - cpu - wait).max(0.0)),
        stuck: stuck.join(" | "),
        major_faults: major_faults(new),
    });
    gens.cur = new;
    Ok((number_after(&line, "ready after"), sched))
}

/// Upgrade signal to the keeper → its `upgrade: successor pid=N ready after` line: the keeper
/// starts the new generation, the one it replaces drains.
fn keeper(gens: &mut Gens, cfg: &RunCfg) -> Result<Done, String> {
    let fam = &gens.families[0];
    let mark = fam.stderr.len();
    if !signal(gens.cur, cfg.upgrade_signal) {
        return Err(format!("keeper pid {} is gone", gens.cur));
    }
    let line = wait_line(
        fam,
        mark,
        |l| l.contains("upgrade: successor pid=") && l.contains("ready after"),
        cfg,
        "no `upgrade: successor pid=N ready after` line from the keeper",
        || {},
    )?;
    let pid = |key: &str| number_after(&line, key).map(|p| p as i32);
    let new = pid("successor pid=").ok_or_else(|| format!("no pid in {line:?}"))?;
    fam.add_pid(new);
    Ok(Done {
        ready_ms: number_after(&line, "ready after"),
        sched: None,
        old: pid("draining generation pid=").unwrap_or(gens.cur),
        new,
    })
}

/// A line of the library's that says the upgrade failed or was refused.
pub fn upgrade_failed(l: &str) -> bool {
    l.contains("upgrade failed") || l.contains("upgrade refused")
}

/// Waits (at most the step timeout) for a line from stderr line `mark` on that `wanted`
/// accepts, calling `meanwhile` every 200 ms until it comes. The line; an error with the line
/// if the upgrade failed first, or saying `missing` on timeout.
pub fn wait_line(
    fam: &ServerFamily,
    mark: usize,
    wanted: impl Fn(&str) -> bool,
    cfg: &RunCfg,
    missing: &str,
    mut meanwhile: impl FnMut(),
) -> Result<String, String> {
    let accept = |l: &str| wanted(l) || upgrade_failed(l);
    let deadline = Instant::now() + cfg.step_timeout;
    loop {
        let step =
            Duration::from_millis(200).min(deadline.saturating_duration_since(Instant::now()));
        if let Some((_, line)) = fam.stderr.wait_for_line(mark, accept, step) {
            return if upgrade_failed(&line) {
                Err(line)
            } else {
                Ok(line)
            };
        }
        if Instant::now() >= deadline {
            return Err(missing.to_owned());
        }
        meanwhile();
    }
}

/// Waits for the library's `spawned successor pid=` line (after the `exec`) from stderr line
/// `mark` on; returns the successor's pid, added to `fam`. Until then, notes the state of the
/// old process's children every 200 ms in `stuck`.
fn wait_spawned(
    fam: &ServerFamily,
    mark: usize,
    old: i32,
    cfg: &RunCfg,
    stuck: &mut Vec<String>,
) -> Result<i32, String> {
    let line = wait_line(
        fam,
        mark,
        |l| l.contains("spawned successor pid="),
        cfg,
        "no `spawned successor pid=` log line (is RUST_LOG at info for actix_graceful?)",
        || {
            for child in children(old) {
                let state = format!("child {child} before exec done: {}", proc_state(child));
                note(stuck, state);
            }
        },
    )?;
    let new = number_after(&line, "spawned successor pid=")
        .map(|p| p as i32)
        .ok_or_else(|| format!("no pid in {line:?}"))?;
    fam.add_pid(new);
    Ok(new)
}

/// SIGTERM, then start a new process as fast as possible.
fn naive(gens: &mut Gens, s: &Strategy, cfg: &RunCfg) -> Result<Option<f64>, String> {
    let t = Instant::now();
    signal(gens.cur, Signal::SIGTERM);
    loop {
        let fam = spawn(&s.name, &s.cmd).map_err(|e| e.to_string())?;
        match wait_ready(&fam, &cfg.ready_line, cfg.step_timeout) {
            Ok(ready) => {
                gens.cur = fam.root();
                gens.families.push(fam);
                return Ok(Some((ready - t).as_secs_f64() * 1e3));
            }
            // The port is still taken: try again.
            Err(e) if t.elapsed() < cfg.step_timeout => {
                drop(fam);
                if !e.contains("exited") {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Start a new process next to the old one; once it serves, SIGTERM the old one.
fn reuseport(gens: &mut Gens, s: &Strategy, cfg: &RunCfg) -> Result<Option<f64>, String> {
    let t = Instant::now();
    let fam = spawn(&s.name, &s.cmd).map_err(|e| e.to_string())?;
    let ready = wait_ready(&fam, &cfg.ready_line, cfg.step_timeout)?;
    signal(gens.cur, Signal::SIGTERM);
    gens.cur = fam.root();
    gens.families.push(fam);
    Ok(Some((ready - t).as_secs_f64() * 1e3))
}

/// A steady-state run: successful requests per second, and the server's CPU time per
/// successful request (microseconds; less sensitive to what else runs on the machine).
#[derive(Clone, Copy, Debug)]
pub struct Steady {
    /// Successful requests per second.
    pub rate: f64,
    /// Server CPU microseconds per successful request.
    pub cpu_us: f64,
}

/// Serve under load without restarts for `seconds`; measured after the first half second.
pub fn steady(
    cmd: &[String],
    target: &Target,
    load: &Spec,
    ready_line: &str,
    seconds: f64,
) -> Result<Steady, String> {
    let fam = spawn("steady", cmd).map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    wait_ready(&fam, ready_line, Duration::from_secs(20))?;
    let pid = fam.root();
    let load = Load::start(
        Spec {
            target: target.clone(),
            ..load.clone()
        },
        fam.pid_set(),
    );
    let warm = Duration::from_millis(500);
    sleep_until(load.started() + warm);
    let cpu0 = cpu_seconds(pid);
    sleep_until(load.started() + Duration::from_secs_f64(seconds));
    let cpu1 = cpu_seconds(pid);
    let rec = load.stop();
    drop(fam);
    let warm_us = warm.as_micros() as u32;
    let ok = rec
        .recs
        .iter()
        .filter(|r| r.start_us >= warm_us && r.outcome == crate::loadgen::Outcome::Ok)
        .count() as f64;
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => b - a,
        _ => return Err(format!("cannot read /proc/{pid}/stat")),
    };
    Ok(Steady {
        rate: ok / (rec.elapsed - warm).as_secs_f64().max(1e-9),
        cpu_us: cpu * 1e6 / ok.max(1.0),
    })
}

/// Upgrades without load, `spacing` apart: the library's `ready after` figures, and the
/// successors' CPU and run-queue milliseconds by then (`at`: seconds since the server served).
pub fn idle_handoffs(
    cmd: &[String],
    n: usize,
    spacing: Duration,
    cfg: &RunCfg,
) -> Result<Vec<Handoff>, String> {
    let fam = spawn("idle", cmd).map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    wait_ready(&fam, &cfg.ready_line, cfg.step_timeout)?;
    let mut gens = Gens {
        cur: fam.root(),
        families: vec![fam],
    };
    let mut out = Vec::new();
    let started = Instant::now();
    for _ in 0..n {
        std::thread::sleep(spacing);
        let at = started.elapsed().as_secs_f64();
        let (ready_ms, sched) = graceful(&mut gens, cfg)?;
        out.push(Handoff {
            at,
            ready_ms,
            sched,
            ..Handoff::default()
        });
    }
    Ok(out)
}
