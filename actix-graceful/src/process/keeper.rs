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
//! - Each generation leads a process group of its own (see `handoff::spawn`), so a terminal's
//!   signals to its foreground group (SIGWINCH on every resize, SIGINT on Ctrl-C, SIGHUP) reach
//!   the keeper only, which passes on what means something: SIGTERM, SIGINT, SIGQUIT as they
//!   are, a hang-up (SIGHUP, unless it is the upgrade signal) as SIGTERM.
//! - Upgrade signal → a new generation; once it is ready the previous one is told it was
//!   replaced through its control pipe, a channel only the keeper holds (the pipe's read end
//!   is handed over after the readiness pipe, named by [`KEEPER_FD`]; the keeper writes
//!   [`REPLACED`]), and drains at once, as after a handoff, without the pre-stop delay that
//!   SIGTERM (the service stops) brings. No signal means "replaced": anyone can send a signal
//!   (a terminal sends SIGWINCH to a whole process group on each resize). For generations built
//!   on an older version of this crate (a rollback), the keeper also sends SIGWINCH, which a
//!   generation of this version ignores. A failed upgrade leaves the running generation alone.
//!   SIGTERM, SIGINT, SIGQUIT go to every generation; the keeper waits for all of them and ends
//!   with the last current generation's status (see [`KeeperExit`]).
//! - A generation that exits when nobody asked is replaced from the sockets the keeper holds:
//!   clients queue in the kernel's accept queue meanwhile. The first replacement starts at once,
//!   later ones after 250 ms, 500 ms, 1 s, 2 s; after [`MAX_FAILURES`] failures in a row (a start
//!   that never got ready, or a generation that died within [`STABLE`] of getting ready) the
//!   keeper gives up and exits with status 1 so that the supervisor notices.
//! - Reaping: only the known generations, by pid: the app's own children (a `Command` that `main`
//!   runs on another thread) are the app's to wait for. As PID 1, or as a child subreaper
//!   (`PR_SET_CHILD_SUBREAPER`, the app's choice), orphans are re-parented to the keeper and
//!   nothing else would reap them: then `waitpid(-1)` too, except while a start is in flight
//!   (the start's own `waitpid` must find its child).

use std::{
    fmt, io,
    os::fd::{AsRawFd, OwnedFd, RawFd},
    sync::{mpsc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use futures::channel::oneshot;
use nix::{
    errno::Errno,
    fcntl::OFlag,
    sys::{
        signal::{kill, Signal},
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::{getppid, pipe2, Pid},
};

use super::{
    announce,
    handoff::{self, Cancel, Plan},
    registry,
    signals::{self, Wake},
};
use crate::{
    protocol::{
        env::{self, GENERATION, KEEPER, KEEPER_FD},
        notify::{self, monotonic_usec, sd_notify, PidFile},
    },
    UpgradeError,
};

/// The byte the keeper writes on a generation's control pipe: a newer generation serves.
const REPLACED: u8 = b'R';

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

/// Decides the role: a generation when [`KEEPER`] is set *and* `LISTEN_PID` is this process
/// (so the variable was meant for it, not inherited from an ancestor), else a keeper.
///
/// # Errors
/// [`KEEPER`] is meant for this process but is not a process id.
pub(crate) fn role() -> io::Result<Role> {
    role_from(env::snapshot())
}

/// [`role`] from the values of [`KEEPER`] and `LISTEN_PID` and this process's pid.
fn role_from(snapshot: &env::Snapshot) -> io::Result<Role> {
    let Some(value) = &snapshot.keeper else {
        return Ok(Role::Keeper);
    };
    if !snapshot.is_for_us() {
        log::debug!("{KEEPER} is set but not for this process (LISTEN_PID is not ours)");
        return Ok(Role::Keeper);
    }
    let pid = value
        .to_str()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<i32>().ok());
    match pid {
        Some(pid) if pid > 0 => Ok(Role::Generation(Pid::from_raw(pid))),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{KEEPER}={value:?} is not a keeper's process id"),
        )),
    }
}

/// How a generation hears that a newer one serves.
pub(crate) enum Replacement {
    /// Through the control pipe: resolves once the keeper says so.
    Pipe(Replaced),
    /// A keeper of an older version of this crate says it with this signal (the glue turns it
    /// into a stream of the runtime's).
    Signal(i32),
}

/// Run by a generation at start: asks for SIGTERM (a graceful drain) when the keeper dies,
/// checks that the keeper is still its parent, and says how the keeper will tell it that a
/// newer generation serves.
///
/// # Errors
/// The keeper is already gone.
pub(crate) fn attach(keeper: Pid, upgrade: i32) -> io::Result<Replacement> {
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
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the keeper pid={keeper} is gone (parent is pid={parent})"),
        ));
    }
    log::info!(
        "generation pid={} of keeper pid={keeper}",
        std::process::id()
    );
    let control = CONTROL.lock().unwrap_or_else(|e| e.into_inner()).take();
    match control {
        Some(fd) => Ok(Replacement::Pipe(watch_control(fd))),
        None => {
            // A keeper of an older version of this crate says "replaced" with a signal.
            let signal = legacy_replaced_signal(upgrade);
            log::info!("no control pipe from the keeper (an older version): signal {signal} means replaced");
            Ok(Replacement::Signal(signal))
        }
    }
}

/// Resolves to `true` once the keeper says that a newer generation serves; `false` when it can
/// no longer say (the keeper is gone: its death signal, SIGTERM, does the rest).
pub(crate) type Replaced = futures::future::LocalBoxFuture<'static, bool>;

/// The generation's control pipe, taken at the crate's first use ([`take_control_fd`]).
static CONTROL: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Takes the control pipe a keeper handed to this process, if any: only with a `LISTEN_PID`
/// that is explicitly ours, and only if the fd is a pipe after the listeners and the readiness
/// pipe. Marks it close-on-exec so the app's own children do not inherit it.
pub(crate) fn take_control_fd(listen_fds: usize) {
    let snapshot = env::snapshot();
    let Some(value) = &snapshot.keeper_fd else {
        return;
    };
    if !snapshot.is_for_us() {
        return;
    }
    let first_free = crate::protocol::listen_fds::LISTEN_FDS_START + listen_fds as RawFd + 1;
    let fd = value
        .to_str()
        .and_then(|v| v.parse::<RawFd>().ok())
        .filter(|&fd| fd >= first_free);
    let Some(fd) = fd else {
        log::warn!("ignoring {KEEPER_FD}={value:?}: not an fd after the readiness pipe");
        return;
    };
    if let Some(owned) = crate::protocol::fd::take_inherited_pipe(KEEPER_FD, fd) {
        *CONTROL.lock().unwrap_or_else(|e| e.into_inner()) = Some(owned);
    }
}

/// Reads the control pipe on a thread of its own (detached: blocking, and it must not hold up
/// the runtime's shutdown).
fn watch_control(fd: OwnedFd) -> Replaced {
    let (tx, rx) = oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("keeper-control".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            loop {
                match nix::unistd::read(fd.as_raw_fd(), &mut byte) {
                    Ok(1) if byte[0] == REPLACED => {
                        let _ = tx.send(());
                        return;
                    }
                    Err(Errno::EINTR) => continue,
                    Ok(1) => continue,
                    _ => return, // EOF or an error: the keeper is gone
                }
            }
        });
    if let Err(err) = spawned {
        log::warn!("cannot watch the keeper's control pipe: {err}");
    }
    Box::pin(async move { rx.await.is_ok() })
}

/// The signal by which a keeper of an older version of this crate tells a generation that a
/// newer one serves (and which this keeper still sends, for such generations): SIGWINCH, or
/// SIGTERM should SIGWINCH be the upgrade signal.
fn legacy_replaced_signal(upgrade: i32) -> i32 {
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

/// How keeper mode ended, when not with status 0: the error [`Graceful::run`] returns in the
/// keeper, as the source of an [`io::Error`] (kind `Other`), so that `main` runs its
/// destructors and exits with [`code`](Self::code) (the library never calls
/// `std::process::exit`).
///
/// # Examples
///
/// ```no_run
/// use std::process::ExitCode;
/// use actix_graceful::{Graceful, GracefulBind as _, KeeperExit};
/// use actix_web::{App, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> ExitCode {
///     let run = async {
///         let server = HttpServer::new(|| App::new().wrap(actix_graceful::LameDuck))
///             .graceful_bind("0.0.0.0:8080")?;
///         Graceful::new().keeper(true).run(server).await
///     };
///     match run.await {
///         Ok(()) => ExitCode::SUCCESS,
///         Err(err) => {
///             eprintln!("error: {err}");
///             match KeeperExit::from_io(&err) {
///                 Some(exit) => ExitCode::from(exit.code()),
///                 None => ExitCode::FAILURE,
///             }
///         }
///     }
/// }
/// ```
///
/// [`Graceful::run`]: crate::Graceful::run
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperExit {
    code: u8,
    why: String,
}

impl KeeperExit {
    /// The status for the process: the last generation's exit status (128 + the signal number
    /// when a signal killed it), or 1 when the keeper gave up on a crash loop.
    #[must_use]
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The `KeeperExit` an error returned by [`Graceful::run`](crate::Graceful::run) carries,
    /// if it is one.
    #[must_use]
    pub fn from_io(err: &io::Error) -> Option<&KeeperExit> {
        err.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for KeeperExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keeper mode ended with status {}: {}",
            self.code, self.why
        )
    }
}

impl std::error::Error for KeeperExit {}

/// Runs the keeper until every generation has exited.
///
/// # Errors
/// A [`KeeperExit`] when the status for the process is not 0 (the last current generation's,
/// or 1 when the keeper gave up on a crash loop); no listener was bound with `graceful_bind*`;
/// the signal handlers or the start thread cannot be set up.
pub(crate) fn run(config: Config) -> io::Result<()> {
    let Config {
        mut plan,
        pid_file,
        fd_store,
    } = config;
    if registry::handoff_set().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "keeper mode needs listeners bound with graceful_bind*: nothing to hold",
        ));
    }
    plan.env
        .push((KEEPER, Some(std::process::id().to_string())));
    plan.env.push(("NOTIFY_SOCKET", None));
    let upgrade = plan.upgrade_signal;
    let mut caught = vec![
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGCHLD,
        upgrade,
    ];
    if upgrade != libc::SIGHUP {
        caught.push(libc::SIGHUP);
    }
    let wake = Wake::install(&caught)?;
    signals::release_usr2_unless(upgrade);
    let legacy = legacy_replaced_signal(upgrade);
    let legacy = (legacy == libc::SIGWINCH)
        .then(|| Signal::try_from(legacy).ok())
        .flatten();
    let starter = Starter::spawn(plan)?;
    let mut keeper = Keeper {
        starter,
        pid_file,
        fd_store,
        upgrade,
        legacy,
        reap_orphans: reaps_orphans(),
        started: 0,
        current: None,
        old: Vec::new(),
        starting: None,
        restart_at: None,
        failures: 0,
        stopping: None,
        exit_code: 0,
        exit_how: "exit status 0".to_owned(),
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
    match u8::try_from(code) {
        Ok(0) => Ok(()),
        code => Err(io::Error::other(KeeperExit {
            code: code.unwrap_or(1),
            why: if keeper.gave_up {
                format!(
                    "gave up after {} failed generations in a row",
                    keeper.failures
                )
            } else {
                format!("the last generation ended with {}", keeper.exit_how)
            },
        })),
    }
}

/// Whether orphans come to the keeper, so that it must reap any child: as PID 1, or as a child
/// subreaper.
fn reaps_orphans() -> bool {
    if std::process::id() == 1 {
        return true;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut on: libc::c_int = 0;
        // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the valid pointer.
        let rc = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut on as *mut libc::c_int) };
        if rc == 0 && on != 0 {
            return true;
        }
    }
    false
}

// ---- the start thread ----

/// Runs `hand_over` for each request, one at a time, on one thread that lives as long as the
/// keeper (the generations' parent-death signal follows the thread that forked them).
struct Starter {
    requests: Option<mpsc::Sender<(Cancel, u64)>>,
    results: mpsc::Receiver<Started>,
    thread: Option<JoinHandle<()>>,
}

/// A started generation: its pid and the write end of its control pipe.
type Started = Result<(i32, OwnedFd), UpgradeError>;

/// Starts one generation with a fresh control pipe; returns the pipe's write end with its pid.
fn start_generation(plan: &Plan, cancel: &Cancel) -> Started {
    // Both ends close-on-exec here; the spawn places the read end in the child for it.
    let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| UpgradeError::Spawn(e.into()))?;
    let mut plan = plan.clone().with_listeners(registry::handoff_set());
    plan.control = Some(read.as_raw_fd());
    let pid = handoff::hand_over(&plan, cancel)?;
    drop(read);
    Ok((pid, write))
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
                    plan.env.push((GENERATION, Some(generation.to_string())));
                    let result = start_generation(&plan, &cancel);
                    if outbox.send(result).is_err() {
                        break;
                    }
                    signals::wake();
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
    /// The write end of its control pipe.
    control: OwnedFd,
}

impl Generation {
    /// Tells the generation that a newer one serves: it drains at once. Also sends `legacy`,
    /// for a generation of an older version of this crate, which knows no control pipe.
    fn replaced(self, legacy: Option<Signal>) {
        loop {
            match nix::unistd::write(&self.control, &[REPLACED]) {
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    log::warn!(
                        "cannot tell generation pid={} it was replaced: {err}",
                        self.pid
                    );
                }
                Ok(_) => {}
            }
            break;
        }
        if let Some(signal) = legacy {
            let _ = kill(self.pid, signal);
        }
    }
}

struct Keeper {
    starter: Starter,
    pid_file: Option<PidFile>,
    fd_store: bool,
    upgrade: i32,
    /// Also sent to a replaced generation, for one of an older version of this crate.
    legacy: Option<Signal>,
    /// Orphans come to the keeper (PID 1, or a child subreaper): reap any child.
    reap_orphans: bool,
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
    /// The exit status of the last current generation that exited, and how it ended.
    exit_code: i32,
    exit_how: String,
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
            _ if signal as i32 == self.upgrade => self.on_upgrade_signal(),
            Signal::SIGCHLD => {}
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => self.stop(signal),
            Signal::SIGHUP => {
                log::info!("keeper: SIGHUP (hang-up): stopping as on SIGTERM");
                self.stop(Signal::SIGTERM);
            }
            other => log::debug!("keeper: ignoring {other}"),
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

    fn on_started(&mut self, result: Started) {
        let Some(starting) = self.starting.take() else {
            return;
        };
        let ms = starting.since.elapsed().as_secs_f64() * 1000.0;
        let result = result.map(|(pid, control)| (Pid::from_raw(pid), control));
        if let Some(signal) = self.stopping {
            match result {
                Ok((pid, _)) => {
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
            (Kind::Upgrade, Ok((pid, control))) => {
                self.restart_at = None;
                let new = Generation {
                    pid,
                    number: self.started,
                    ready_at: Instant::now(),
                    control,
                };
                let state = match self.current.replace(new) {
                    Some(prev) => {
                        log::info!(
                            "upgrade: successor pid={pid} ready after {ms:.1} ms; draining generation pid={}",
                            prev.pid
                        );
                        let state = format!("serving; generation {} draining", prev.number);
                        self.old.push(prev.pid);
                        prev.replaced(self.legacy);
                        state
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
            (Kind::First | Kind::Restart, Ok((pid, control))) => {
                self.restart_at = None;
                log::info!("keeper: generation pid={pid} ready after {ms:.1} ms");
                self.current = Some(Generation {
                    pid,
                    number: self.started,
                    ready_at: Instant::now(),
                    control,
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
        announce::serving(
            self.pid_file.as_ref(),
            self.fd_store,
            &self.status("serving"),
        );
        let me = std::process::id();
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

    /// Reaps the generations that exited, by pid; any other child too (`waitpid(-1)`) when
    /// orphans come to the keeper, except while a start is in flight.
    fn reap(&mut self) {
        let known: Vec<Pid> = self
            .current
            .iter()
            .map(|g| g.pid)
            .chain(self.old.iter().copied())
            .collect();
        for pid in known {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                // Not ours to wait for any more (other code of the process reaped it): gone.
                Err(Errno::ECHILD) => self.ended(
                    pid,
                    1,
                    "gone, reaped by other code of this process (status unknown)".to_owned(),
                ),
                Err(err) => log::warn!("keeper: waitpid({pid}) failed: {err}"),
                Ok(status) => self.exited(pid, status),
            }
        }
        if !self.reap_orphans || self.starting.is_some() {
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
        self.ended(pid, code, how);
    }

    fn ended(&mut self, pid: Pid, code: i32, how: String) {
        if self.current.as_ref().is_some_and(|g| g.pid == pid) {
            let Some(gen) = self.current.take() else {
                return;
            };
            self.exit_code = code;
            self.exit_how.clone_from(&how);
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
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn role_is_generation_only_for_our_listen_pid() {
        let os = |s: &'static str| Some(OsStr::new(s));
        let role_from = |keeper: Option<&OsStr>, listen_pid: Option<&OsStr>, pid: u32| {
            role_from(&env::Snapshot {
                pid,
                keeper: keeper.map(Into::into),
                listen_pid: listen_pid.map(Into::into),
                ..env::Snapshot::default()
            })
        };
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
            assert!(err.to_string().contains(KEEPER), "{err}");
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
