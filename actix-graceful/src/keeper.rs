//! Keeper mode: the first process stays a thin keeper that holds the listening sockets and runs
//! each generation of the server as its child, so the pid a foreground supervisor (supervisord,
//! runit, s6, Docker, PID 1 in a container) watches never changes. Blocking code, free of actix
//! types.
//!
//! Design:
//! - Entered in `Graceful::run`, after the app bound its listeners with `graceful_bind*` (the
//!   registry holds duplicates of them) and before actix starts anything: the keeper never runs
//!   a worker and never serves.
//! - Every generation is started with the ordinary handoff (`handoff::hand_over`: `LISTEN_FDS`
//!   sockets, readiness pipe, timeout) plus `ACTIX_GRACEFUL_KEEPER=<keeper pid>` and without
//!   `NOTIFY_SOCKET`: the keeper is the main pid, the only one that notifies systemd and writes
//!   the pid file. All starts run on one long-lived thread, so the generations' parent-death
//!   signal (set by [`attach`]) fires when the keeper dies, not when a helper thread ends.
//! - Upgrade signal → a new generation; once it is ready the previous one gets SIGWINCH (as
//!   nginx's old workers do; see [`replaced_signal`]) and drains at once, as after a handoff,
//!   without the pre-stop delay that SIGTERM (the service stops) brings. A failed upgrade leaves
//!   the running generation alone. SIGTERM, SIGINT, SIGQUIT go to every generation; the keeper
//!   waits for all of them and exits with the last current generation's status.
//! - A generation that exits when nobody asked is replaced from the sockets the keeper holds:
//!   clients queue in the kernel's accept queue meanwhile. The first replacement starts at once,
//!   later ones after 250 ms, 500 ms, 1 s, 2 s; after [`MAX_FAILURES`] failures in a row (a start
//!   that never got ready, or a generation that died within [`STABLE`] of getting ready) the
//!   keeper gives up and exits with status 1 so that the supervisor notices.
//! - Reaping: `waitpid(-1)` (so, as PID 1, orphans too), except while a start is in flight, when
//!   only known generations are reaped: the start's own `waitpid` must find its child.

use std::{
    ffi::OsStr,
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::{
        atomic::{AtomicI32, AtomicU64, Ordering},
        mpsc, OnceLock,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    fcntl::OFlag,
    poll::{poll, PollFd, PollFlags, PollTimeout},
    sys::{
        signal::{
            kill, pthread_sigmask, sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow,
            Signal,
        },
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::{getppid, pipe2, Pid},
};

use crate::{
    handoff::{self, Cancel, Plan},
    notify::{self, monotonic_usec, sd_notify, PidFile},
    process::GENERATION_VAR,
    registry, UpgradeError,
};

/// Names the keeper in a generation's environment.
pub(crate) const KEEPER_VAR: &str = "ACTIX_GRACEFUL_KEEPER";

/// A generation that served this long before it died counts as a one-off crash, not a loop.
pub(crate) const STABLE: Duration = Duration::from_secs(10);
/// Failed generations in a row after which the keeper gives up.
pub(crate) const MAX_FAILURES: u32 = 5;
/// The delay before the second replacement in a row; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The keeper's loop wakes at least this often (signals and finished starts wake it at once).
const TICK: Duration = Duration::from_secs(1);

/// Whether and how keeper mode applies to this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Not asked for.
    Off,
    /// Asked for: this process becomes the keeper, or a generation of one (see [`role`]).
    On,
    /// This process is a generation run by the keeper with this pid.
    Under(Pid),
}

/// What keeper mode makes of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// No keeper started this process: it becomes one.
    Keeper,
    /// A generation started by the keeper with this pid.
    Generation(Pid),
}

/// Decides the role: a generation when [`KEEPER_VAR`] is set *and* `LISTEN_PID` is this process
/// (so the variable was meant for it, not inherited from an ancestor), else a keeper.
///
/// # Errors
/// [`KEEPER_VAR`] is meant for this process but is not a process id.
pub(crate) fn role() -> io::Result<Role> {
    role_from(
        std::env::var_os(KEEPER_VAR).as_deref(),
        std::env::var_os("LISTEN_PID").as_deref(),
        std::process::id(),
    )
}

/// [`role`] from the values of [`KEEPER_VAR`] and `LISTEN_PID` and this process's pid.
fn role_from(keeper: Option<&OsStr>, listen_pid: Option<&OsStr>, own: u32) -> io::Result<Role> {
    let Some(value) = keeper else {
        return Ok(Role::Keeper);
    };
    if listen_pid.and_then(OsStr::to_str) != Some(own.to_string().as_str()) {
        log::debug!("{KEEPER_VAR} is set but not for this process (LISTEN_PID is not ours)");
        return Ok(Role::Keeper);
    }
    let pid = value
        .to_str()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<i32>().ok());
    match pid {
        Some(pid) if pid > 0 => Ok(Role::Generation(Pid::from_raw(pid))),
        _ => {
            let msg = format!("{KEEPER_VAR}={value:?} is not a keeper's process id");
            log::error!("{msg}");
            Err(io::Error::new(io::ErrorKind::InvalidInput, msg))
        }
    }
}

/// Run by a generation at start: asks for SIGTERM (a graceful drain) when the keeper dies, and
/// checks that the keeper is still its parent.
///
/// # Errors
/// The keeper is already gone.
pub(crate) fn attach(keeper: Pid) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        if rc != 0 {
            log::warn!(
                "cannot ask for SIGTERM when the keeper dies: {}",
                io::Error::last_os_error()
            );
        }
    }
    let parent = getppid();
    if parent != keeper {
        let msg = format!("the keeper pid={keeper} is gone (parent is pid={parent})");
        log::error!("{msg}");
        return Err(io::Error::new(io::ErrorKind::NotFound, msg));
    }
    log::info!(
        "generation pid={} of keeper pid={keeper}",
        std::process::id()
    );
    Ok(())
}

/// The signal by which the keeper tells a generation that a newer one serves: SIGWINCH (ignored
/// by default, so harmless anywhere else), or SIGTERM should SIGWINCH be the upgrade signal.
pub(crate) fn replaced_signal(upgrade: i32) -> i32 {
    if upgrade == libc::SIGWINCH {
        libc::SIGTERM
    } else {
        libc::SIGWINCH
    }
}

/// Run by a generation on the upgrade signal: a generation never starts a successor itself, it
/// passes the request on to its keeper.
pub(crate) fn forward_upgrade(keeper: Pid, signal: i32) {
    let sent = Signal::try_from(signal).and_then(|sig| kill(keeper, sig));
    match sent {
        Ok(()) => log::info!("upgrade: passed on to the keeper pid={keeper}"),
        Err(err) => log::error!("upgrade: cannot pass it on to the keeper pid={keeper}: {err}"),
    }
}

/// What the keeper needs to know.
pub(crate) struct Config {
    /// How to start a generation.
    pub(crate) plan: Plan,
    /// Written (with the keeper's pid) once the first generation serves.
    pub(crate) pid_file: Option<PidFile>,
    /// Hand the listeners to systemd's fd store once the first generation serves.
    pub(crate) fd_store: bool,
}

/// Runs the keeper until every generation has exited. Returns the exit status for the process:
/// the last current generation's (128 + signal number when it was killed by a signal), or 1 when
/// the keeper gave up on a crash loop.
///
/// # Errors
/// No listener was bound with `graceful_bind*`, or the signal handlers or the start thread
/// cannot be set up.
pub(crate) fn run(config: Config) -> io::Result<i32> {
    let Config {
        mut plan,
        pid_file,
        fd_store,
    } = config;
    if registry::handoff_set().is_empty() {
        let msg = "keeper mode needs listeners bound with graceful_bind*: nothing to hold";
        log::error!("{msg}");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    plan.env
        .push((KEEPER_VAR, Some(std::process::id().to_string())));
    plan.env.push(("NOTIFY_SOCKET", None));
    let wake = Wake::install(plan.upgrade_signal)?;
    let replaced = Signal::try_from(replaced_signal(plan.upgrade_signal))?;
    let starter = Starter::spawn(plan)?;
    let mut keeper = Keeper {
        starter,
        pid_file,
        fd_store,
        replaced,
        started: 0,
        current: None,
        old: Vec::new(),
        starting: None,
        restart_at: None,
        failures: 0,
        stopping: None,
        exit_code: 0,
        gave_up: false,
        announced: false,
    };
    log::info!(
        "keeper pid={}: starting the first generation",
        std::process::id()
    );
    keeper.start(Kind::First);
    let code = keeper.run(&wake);
    if let Some(pid_file) = &keeper.pid_file {
        pid_file.remove_if_ours();
    }
    keeper.starter.shut_down();
    log::info!(
        "keeper pid={}: every generation has exited; exit status {code}",
        std::process::id()
    );
    Ok(code)
}

// ---- signals: a self-pipe, so any thread may take them ----

static PENDING: AtomicU64 = AtomicU64::new(0);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The pipe, never closed: a handler may run on any thread at any time.
static PIPE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();

extern "C" fn on_signal(signal: libc::c_int) {
    let saved = Errno::last_raw();
    if (1..64).contains(&signal) {
        PENDING.fetch_or(1 << signal, Ordering::SeqCst);
    }
    wake();
    Errno::set_raw(saved);
}

/// Wakes the keeper's loop. Async-signal-safe.
fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: writes one byte from a live stack buffer to our own non-blocking pipe; a full
        // pipe (EAGAIN) already means "wake up".
        unsafe {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
    }
}

struct Wake {
    read: &'static OwnedFd,
}

impl Wake {
    /// Installs the handlers for the stop signals, SIGCHLD and `upgrade`, then unblocks the
    /// upgrade signal (held since start-up) on this thread.
    fn install(upgrade: i32) -> io::Result<Wake> {
        if PIPE.get().is_none() {
            let pipe = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
            let _ = PIPE.set(pipe);
        }
        let (read, write) = PIPE
            .get()
            .ok_or_else(|| io::Error::other("keeper wake-up pipe missing"))?;
        WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        let upgrade = Signal::try_from(upgrade)?;
        for signal in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGCHLD,
            upgrade,
        ] {
            // SAFETY: the handler only touches atomics, errno and `write(2)`, all
            // async-signal-safe.
            unsafe { sigaction(signal, &action) }?;
        }
        let mut unblock = SigSet::empty();
        unblock.add(upgrade);
        unblock.add(Signal::SIGUSR2);
        pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&unblock), None)?;
        Ok(Wake { read })
    }

    /// Sleeps until a signal or a finished start wakes it, at most `timeout`.
    fn wait(&self, timeout: Duration) {
        let mut fds = [PollFd::new(self.read.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let _ = poll(&mut fds, ms);
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(self.read.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
        }
    }

    /// The signals received since the last call, in signal-number order.
    fn take(&self) -> Vec<Signal> {
        let bits = PENDING.swap(0, Ordering::SeqCst);
        (1..64)
            .filter(|n| bits & (1 << n) != 0)
            .filter_map(|n| Signal::try_from(n).ok())
            .collect()
    }
}

// ---- the start thread ----

/// Runs `hand_over` for each request, one at a time, on one thread that lives as long as the
/// keeper (the generations' parent-death signal follows the thread that forked them).
struct Starter {
    requests: Option<mpsc::Sender<(Cancel, u64)>>,
    results: mpsc::Receiver<Result<i32, UpgradeError>>,
    thread: Option<JoinHandle<()>>,
}

impl Starter {
    fn spawn(plan: Plan) -> io::Result<Starter> {
        let (requests, inbox) = mpsc::channel::<(Cancel, u64)>();
        let (outbox, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("keeper-start".into())
            .spawn(move || {
                for (cancel, generation) in inbox {
                    let mut plan = plan.clone();
                    plan.env
                        .push((GENERATION_VAR, Some(generation.to_string())));
                    let result = handoff::hand_over(&plan, &cancel);
                    if outbox.send(result).is_err() {
                        break;
                    }
                    wake();
                }
            })?;
        Ok(Starter {
            requests: Some(requests),
            results,
            thread: Some(thread),
        })
    }

    fn request(&self, cancel: Cancel, generation: u64) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|tx| tx.send((cancel, generation)).is_ok())
    }

    fn shut_down(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---- the keeper's state machine ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    First,
    Upgrade,
    Restart,
}

struct Starting {
    kind: Kind,
    cancel: Cancel,
    since: Instant,
}

struct Generation {
    pid: Pid,
    number: u64,
    ready_at: Instant,
}

struct Keeper {
    starter: Starter,
    pid_file: Option<PidFile>,
    fd_store: bool,
    /// Sent to a generation a newer one replaced.
    replaced: Signal,
    /// Generations started so far (each start gets the next number, from 1).
    started: u64,
    /// The generation that serves.
    current: Option<Generation>,
    /// Generations told to stop, still draining.
    old: Vec<Pid>,
    starting: Option<Starting>,
    /// When to start a replacement for a generation that died.
    restart_at: Option<Instant>,
    /// Failed generations in a row.
    failures: u32,
    /// The stop signal received, if any.
    stopping: Option<Signal>,
    /// The exit status of the last current generation that exited.
    exit_code: i32,
    gave_up: bool,
    /// Whether the first generation got ready (READY=1, pid file).
    announced: bool,
}

impl Keeper {
    fn run(&mut self, wake: &Wake) -> i32 {
        loop {
            let now = Instant::now();
            let timeout = self
                .restart_at
                .map_or(TICK, |at| at.saturating_duration_since(now).min(TICK));
            wake.wait(timeout);
            for signal in wake.take() {
                self.on_signal(signal);
            }
            self.reap();
            if let Ok(result) = self.starter.results.try_recv() {
                self.on_started(result);
                // The start's child may have exited meanwhile: look again now it is known.
                self.reap();
            }
            if let Some(at) = self.restart_at {
                if self.starting.is_none() && self.stopping.is_none() && Instant::now() >= at {
                    self.restart_at = None;
                    self.start(Kind::Restart);
                }
            }
            if let Some(current) = &self.current {
                if self.failures > 0 && current.ready_at.elapsed() >= STABLE {
                    self.failures = 0;
                }
            }
            if self.stopping.is_some()
                && self.current.is_none()
                && self.old.is_empty()
                && self.starting.is_none()
            {
                return if self.gave_up { 1 } else { self.exit_code };
            }
        }
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGCHLD => {}
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => self.stop(signal),
            _ => self.on_upgrade_signal(),
        }
    }

    fn on_upgrade_signal(&mut self) {
        if self.stopping.is_some() {
            log::warn!("upgrade refused: the keeper is stopping");
        } else if let Some(starting) = &self.starting {
            let what = match starting.kind {
                Kind::Upgrade => "an upgrade is already in progress",
                Kind::First | Kind::Restart => "a generation is being started",
            };
            log::warn!("upgrade refused: {what}");
        } else if self.current.is_none() {
            log::info!("upgrade signal while no generation runs: starting one now");
            self.restart_at = Some(Instant::now());
        } else {
            self.start(Kind::Upgrade);
        }
    }

    /// `STATUS=` for systemd: the serving generation's number and pid, the keeper, `state`.
    fn status(&self, state: &str) -> String {
        let (number, pid) = self
            .current
            .as_ref()
            .map_or((0, 0), |g| (g.number, g.pid.as_raw() as u32));
        notify::status(
            number,
            pid,
            &format!("{state} (keeper pid {})", std::process::id()),
        )
    }

    fn start(&mut self, kind: Kind) {
        self.started += 1;
        if kind == Kind::Upgrade {
            log::info!("upgrade: starting generation {}", self.started);
            let state = format!("upgrading: starting generation {}", self.started);
            sd_notify(&format!(
                "RELOADING=1\nMONOTONIC_USEC={}\n{}",
                monotonic_usec(),
                self.status(&state)
            ));
        }
        let cancel = Cancel::default();
        if !self.starter.request(cancel.clone(), self.started) {
            log::error!("keeper: the start thread is gone; cannot start a generation");
            self.failed();
            return;
        }
        self.starting = Some(Starting {
            kind,
            cancel,
            since: Instant::now(),
        });
    }

    fn on_started(&mut self, result: Result<i32, UpgradeError>) {
        let Some(starting) = self.starting.take() else {
            return;
        };
        let ms = starting.since.elapsed().as_secs_f64() * 1000.0;
        let result = result.map(Pid::from_raw);
        if let Some(signal) = self.stopping {
            match result {
                Ok(pid) => {
                    // Got ready just as the stop came: it stops too.
                    log::info!(
                        "keeper: generation pid={pid} got ready while stopping: sending {signal}"
                    );
                    let _ = kill(pid, signal);
                    self.old.push(pid);
                }
                Err(err) => log::info!("keeper: start abandoned for the stop: {err}"),
            }
            return;
        }
        match (starting.kind, result) {
            (Kind::Upgrade, Ok(pid)) => {
                self.restart_at = None;
                let new = Generation {
                    pid,
                    number: self.started,
                    ready_at: Instant::now(),
                };
                let state = match self.current.replace(new) {
                    Some(prev) => {
                        log::info!(
                            "upgrade: successor pid={pid} ready after {ms:.1} ms; draining generation pid={}",
                            prev.pid
                        );
                        let _ = kill(prev.pid, self.replaced);
                        self.old.push(prev.pid);
                        format!("serving; generation {} draining", prev.number)
                    }
                    None => {
                        log::info!("upgrade: successor pid={pid} ready after {ms:.1} ms");
                        "serving".to_owned()
                    }
                };
                sd_notify(&format!("READY=1\n{}", self.status(&state)));
            }
            (Kind::Upgrade, Err(err)) => {
                let serving = self
                    .current
                    .as_ref()
                    .map_or("no generation".to_owned(), |g| {
                        format!("generation pid={}", g.pid)
                    });
                log::error!("upgrade failed after {ms:.1} ms: {err}; {serving} keeps serving");
                let state = format!("serving; upgrade failed: {err}");
                sd_notify(&format!("READY=1\n{}", self.status(&state)));
            }
            (Kind::First | Kind::Restart, Ok(pid)) => {
                self.restart_at = None;
                log::info!("keeper: generation pid={pid} ready after {ms:.1} ms");
                self.current = Some(Generation {
                    pid,
                    number: self.started,
                    ready_at: Instant::now(),
                });
                if self.announced {
                    sd_notify(&self.status("serving"));
                } else {
                    self.announce(pid);
                }
            }
            (Kind::First | Kind::Restart, Err(err)) => {
                log::error!("keeper: starting a generation failed after {ms:.1} ms: {err}");
                self.failed();
            }
        }
    }

    /// The first generation serves: the keeper is ready as a whole.
    fn announce(&mut self, pid: Pid) {
        self.announced = true;
        if let Some(pid_file) = &self.pid_file {
            if let Err(err) = pid_file.write() {
                log::error!("cannot write pid file {}: {err}", pid_file.path().display());
            }
        }
        if self.fd_store {
            notify::store_fds(&registry::fd_store_set());
        }
        let me = std::process::id();
        if handoff::has_predecessor() {
            handoff::report_ready();
        } else {
            sd_notify(&format!(
                "READY=1\nMAINPID={me}\n{}",
                self.status("serving")
            ));
        }
        log::info!("keeper pid={me}: serving through generation pid={pid}");
    }

    /// A generation failed to start or died unasked: schedule a replacement, or give up.
    fn failed(&mut self) {
        self.failures += 1;
        if self.failures > MAX_FAILURES {
            log::error!(
                "keeper: {} generations failed in a row; giving up",
                self.failures
            );
            sd_notify(&self.status("crash loop: giving up"));
            self.gave_up = true;
            self.stop(Signal::SIGTERM);
            return;
        }
        let delay = backoff(self.failures);
        let when = if delay.is_zero() {
            "now".to_owned()
        } else {
            format!("in {delay:?}")
        };
        log::warn!(
            "keeper: starting a new generation {when} (failure {} of at most {MAX_FAILURES} in a row)",
            self.failures
        );
        self.restart_at = Some(Instant::now() + delay);
    }

    fn stop(&mut self, signal: Signal) {
        if self.stopping.is_none() {
            log::info!("keeper: {signal}: stopping every generation");
            sd_notify(&format!("STOPPING=1\n{}", self.status("stopping")));
        }
        self.stopping = Some(signal);
        self.restart_at = None;
        if let Some(starting) = &self.starting {
            starting.cancel.stop_successor(signal);
        }
        for pid in self.current.iter().map(|g| g.pid).chain(self.old.clone()) {
            let _ = kill(pid, signal);
        }
    }

    /// Reaps every exited child: any child (`waitpid(-1)`, so orphans too when this is PID 1),
    /// or only the known generations while a start is in flight.
    fn reap(&mut self) {
        if self.starting.is_some() {
            let known: Vec<Pid> = self
                .current
                .iter()
                .map(|g| g.pid)
                .chain(self.old.iter().copied())
                .collect();
            for pid in known {
                match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => {}
                    Ok(status) => self.exited(pid, status),
                }
            }
            return;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    log::warn!("keeper: waitpid failed: {err}");
                    return;
                }
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.exited(pid, status);
                    }
                }
            }
        }
    }

    fn exited(&mut self, pid: Pid, status: WaitStatus) {
        let (code, how) = match status {
            WaitStatus::Exited(_, code) => (code, format!("exit status {code}")),
            WaitStatus::Signaled(_, signal, _) => {
                (128 + signal as i32, format!("killed by signal {signal}"))
            }
            _ => return,
        };
        if self.current.as_ref().is_some_and(|g| g.pid == pid) {
            let Some(gen) = self.current.take() else {
                return;
            };
            self.exit_code = code;
            if self.stopping.is_some() {
                log::info!("keeper: generation pid={pid} stopped ({how})");
                return;
            }
            let up = gen.ready_at.elapsed();
            log::error!(
                "keeper: generation pid={pid} exited unasked ({how}) after {:.1} s of serving; \
                 the keeper holds the sockets, clients queue",
                up.as_secs_f64()
            );
            sd_notify(&notify::status(
                gen.number,
                pid.as_raw() as u32,
                &format!(
                    "died ({how}); starting a new generation (keeper pid {})",
                    std::process::id()
                ),
            ));
            if up >= STABLE {
                self.failures = 0;
            }
            self.failed();
        } else if let Some(i) = self.old.iter().position(|&p| p == pid) {
            self.old.remove(i);
            log::info!("keeper: old generation pid={pid} exited ({how})");
        } else {
            log::debug!("keeper: reaped pid={pid} ({how})");
        }
    }
}

/// The delay before a replacement after `failures` failures in a row: none for the first,
/// then 250 ms doubling.
fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => FIRST_BACKOFF * 2u32.saturating_pow((n - 2).min(16)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_is_generation_only_for_our_listen_pid() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert_eq!(role_from(None, os("42"), 42).unwrap(), Role::Keeper);
        assert_eq!(
            role_from(os("7"), os("42"), 42).unwrap(),
            Role::Generation(Pid::from_raw(7))
        );
        // PID 1: the keeper of a container.
        assert_eq!(
            role_from(os("1"), os("42"), 42).unwrap(),
            Role::Generation(Pid::from_raw(1))
        );
        // Inherited from an ancestor (LISTEN_PID another's, or unset): not for us.
        assert_eq!(role_from(os("7"), os("43"), 42).unwrap(), Role::Keeper);
        assert_eq!(role_from(os("7"), None, 42).unwrap(), Role::Keeper);
        for bad in ["", "0", "-3", "+7", " 7", "x", "99999999999"] {
            let err = role_from(os(bad), os("42"), 42).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains(KEEPER_VAR), "{err}");
        }
    }

    #[test]
    fn backoff_doubles_after_an_immediate_first_retry() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_millis(500));
        assert_eq!(backoff(5), Duration::from_secs(2));
        assert!(backoff(u32::MAX) > Duration::from_secs(1000));
    }
}
