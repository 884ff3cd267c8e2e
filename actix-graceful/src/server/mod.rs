//! Running an actix-web server under the crate's control: readiness, signals, upgrades and
//! the careful drain. The thin actix glue around the protocol code in `handoff`.

use std::{
    future::{poll_fn, Future},
    io,
    path::PathBuf,
    pin::Pin,
    task::Poll,
    time::{Duration, Instant},
};

use actix_web::dev::ServerHandle;
use futures::{
    channel::{mpsc, oneshot},
    StreamExt as _,
};
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

mod signals;

use self::signals::{Event, Signals};
use crate::{
    glue::{sealed::Token, HttpServerExt},
    health, lame_duck,
    process::{
        self, announce,
        connections::ClientConnections,
        handoff::{self, Cancel, Plan, Readiness},
        inherit,
        keeper::{self, Mode, Replacement, Role},
        registry, signals as process_signals,
    },
    protocol::notify::{self, sd_notify, PidFile},
    UpgradeError,
};

/// Default time a successor has to report ready.
const DEFAULT_UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on the drain (see [`Graceful::drain_timeout`]): actix's default keep-alive.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the drain looks at the client connections (and at the successor).
const DRAIN_TICK: Duration = Duration::from_millis(5);
/// How long "no client connection" must hold before the drain ends: connections the accept
/// thread took just before its pause applied are in the descriptor table by then.
const DRAIN_QUIET: Duration = Duration::from_millis(10);

type Reply = oneshot::Sender<Result<u32, UpgradeError>>;

/// Configuration of a gracefully run server; [`run`](Graceful::run) starts it.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use actix_graceful::{Graceful, GracefulBind as _};
/// use actix_web::{App, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let server = HttpServer::new(|| App::new().wrap(actix_graceful::LameDuck))
///         .graceful_bind("127.0.0.1:8080")?;
///     Graceful::new()
///         .upgrade_timeout(Duration::from_secs(10))
///         .pid_file("/run/app.pid")
///         .run(server)
///         .await
/// }
/// ```
#[derive(Debug)]
#[must_use = "a Graceful does nothing until `run` is awaited"]
pub struct Graceful {
    upgrade_timeout: Duration,
    shutdown_timeout: Option<Duration>,
    drain_timeout: Duration,
    upgrade_signal: i32,
    successor: Option<PathBuf>,
    env_file: Option<PathBuf>,
    readiness: Readiness,
    pid_file: Option<PidFile>,
    pre_stop_delay: Duration,
    fd_store: bool,
    keeper: Mode,
    commands: mpsc::UnboundedReceiver<Reply>,
    handle: UpgradeHandle,
}

impl Default for Graceful {
    fn default() -> Self {
        Self::new()
    }
}

impl Graceful {
    /// The defaults: SIGUSR2 upgrades, a successor has 30 s to get ready, the drain waits up to
    /// 5 s for client connections to leave, actix's own shutdown timeout (30 s), no pid file.
    ///
    /// The crate's first use (this, `graceful_bind*`, or any other entry point) installs a
    /// process-wide handler for SIGUSR2, so an upgrade signal that comes before
    /// [`run`](Self::run), on any thread (also one started before), is recorded instead of
    /// killing the process; `run` then upgrades as soon as it serves. (A keeper refuses it with a
    /// log line while it starts its first generation, which runs the newest binary anyway.)
    pub fn new() -> Self {
        process::init();
        let (tx, commands) = mpsc::unbounded();
        Graceful {
            upgrade_timeout: DEFAULT_UPGRADE_TIMEOUT,
            shutdown_timeout: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            upgrade_signal: process_signals::DEFAULT_UPGRADE,
            successor: None,
            env_file: None,
            readiness: Readiness::Pipe,
            pid_file: None,
            pre_stop_delay: Duration::ZERO,
            fd_store: false,
            keeper: Mode::Off,
            commands,
            handle: UpgradeHandle { tx },
        }
    }

    /// How long a successor may take to report ready before it is killed and the upgrade
    /// abandoned (default 30 s).
    pub fn upgrade_timeout(mut self, timeout: Duration) -> Self {
        self.upgrade_timeout = timeout;
        self
    }

    /// How long in-flight requests may run once this process stops (after an upgrade or on
    /// SIGTERM) before their connections are closed. Default: actix's 30 s. Rounded up to whole
    /// seconds, as actix counts them.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// The longest the drain waits for client connections to leave (default 5 s, actix's
    /// default keep-alive): **set it to your `HttpServer::keep_alive`**.
    ///
    /// The drain starts once the successor is ready (or on SIGTERM, after the
    /// [pre-stop delay](Self::pre_stop_delay)). This process stops accepting, answers every
    /// further response with `Connection: close` (the [`LameDuck`](crate::LameDuck) middleware),
    /// and never closes a connection itself: a busy connection moves over after its next
    /// request, an idle one stays open until it carries one more request or actix's keep-alive
    /// timer closes it, as it would have without an upgrade. The process exits as soon as it
    /// holds no client connection (a connection accepted on one of its listeners; its own
    /// outgoing connections do not count), so a busy server's old process is gone within
    /// milliseconds. When the timeout ends first, the connections left (in-flight requests,
    /// streams, WebSockets, HTTP/2) get actix's graceful stop: in-flight requests finish within
    /// [`shutdown_timeout`](Self::shutdown_timeout), idle ones are closed.
    ///
    /// A shorter timeout than the keep-alive can close an idle pooled connection while its
    /// client sends on it; a longer one only keeps the old process longer when a client holds an
    /// idle connection open.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let keep_alive = Duration::from_secs(15);
    /// let server = actix_web::HttpServer::new(actix_web::App::new).keep_alive(keep_alive);
    /// let graceful = actix_graceful::Graceful::new().drain_timeout(keep_alive);
    /// # drop((server, graceful));
    /// ```
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The signal that starts an upgrade (default `SIGUSR2`), e.g. `libc::SIGHUP`. It is caught
    /// process-wide from this call on (one that comes before [`run`](Self::run) is recorded and
    /// acted on once `run` serves), so configure it early in `main`. SIGUSR2 then gets back, in
    /// `run`, the disposition it had before the crate's first use (by default: terminate).
    ///
    /// # Panics
    /// When `signal` is not a catchable signal, or one with another meaning to the server
    /// (SIGTERM, SIGINT, SIGQUIT, SIGKILL, SIGSTOP, SIGCHLD, SIGPIPE, fault signals).
    pub fn upgrade_signal(mut self, signal: i32) -> Self {
        assert!(
            process_signals::is_valid_upgrade_signal(signal),
            "signal {signal} cannot be the upgrade signal"
        );
        if let Err(err) = process_signals::catch(signal) {
            log::warn!("cannot catch signal {signal} until the server runs: {err}");
        }
        self.upgrade_signal = signal;
        self
    }

    /// Starts this executable as the successor instead of the path this process was started
    /// from. The arguments stay the same.
    pub fn successor_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.successor = Some(path.into());
        self
    }

    /// Reads `path` at every upgrade, before the successor starts, and sets its `KEY=VALUE`
    /// lines over the environment the successor inherits: the way to change configuration on
    /// upgrade. Blank lines and `#` comments are skipped, `export ` before a key is allowed, the
    /// value is the rest of the line as is (no quotes, no expansion), and the handoff's own
    /// variables (`LISTEN_*`, `ACTIX_GRACEFUL_READY_FD`, `ACTIX_GRACEFUL_GENERATION`) cannot be
    /// set. A missing, unreadable or malformed file fails that upgrade with
    /// [`UpgradeError::EnvFile`] (naming the line) and this process keeps serving. This process's own environment never changes.
    ///
    /// # Examples
    ///
    /// ```
    /// let graceful = actix_graceful::Graceful::new().successor_env_file("/etc/app/env");
    /// ```
    pub fn successor_env_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.env_file = Some(path.into());
        self
    }

    /// Takes the successor as ready once it has run for `delay` without exiting, for a successor
    /// that knows only the standard socket-activation protocol and cannot report readiness.
    /// A successor built on this crate still reports earlier when it can.
    pub fn successor_ready_after(mut self, delay: Duration) -> Self {
        self.readiness = Readiness::After(delay);
        self
    }

    /// Writes this process's pid to `path` (atomically) once it serves; a successor rewrites
    /// it when it takes over (and this process again if the successor fails), and a process
    /// that stops for good (SIGTERM, SIGINT, SIGQUIT) removes it if it is still its own.
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pid_file = Some(PidFile::new(path.into()));
        self
    }

    /// On SIGTERM, keeps serving normally for `delay` before the drain starts (default: none),
    /// while [`readiness`](crate::readiness) already answers 503: time for a load balancer or
    /// Kubernetes to stop sending new traffic. An upgrade signal in that time is refused; SIGINT
    /// or SIGQUIT still stop at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let graceful = actix_graceful::Graceful::new().pre_stop_delay(Duration::from_secs(5));
    /// ```
    pub fn pre_stop_delay(mut self, delay: Duration) -> Self {
        self.pre_stop_delay = delay;
        self
    }

    /// Hands the listening sockets to systemd's fd store once serving (`FDSTORE=1`, one datagram
    /// per socket with its `FDNAME=`: the binding's name, else `stored`), so that after a crash
    /// or a `systemctl restart` the next process gets them back through `LISTEN_FDS` and clients
    /// queue instead of being refused. Default off; needs `FileDescriptorStoreMax=` in the unit
    /// and does nothing without `NOTIFY_SOCKET`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let graceful = actix_graceful::Graceful::new().fd_store(true);
    /// ```
    pub fn fd_store(mut self, enabled: bool) -> Self {
        self.fd_store = enabled;
        self
    }

    /// Keeper mode, for foreground supervisors (supervisord, runit, s6, Docker, PID 1 in a
    /// container) that must see one pid for the life of the service (default: off).
    ///
    /// The process started by the supervisor binds the listeners (`graceful_bind*`), then in
    /// [`run`](Self::run) becomes a thin keeper: it starts no actix worker and serves nothing,
    /// holds the sockets and runs the server as its child, a *generation*, started with the
    /// same executable, arguments and handoff as a successor, each in a process group of its
    /// own: a terminal's signals (SIGWINCH on a resize, Ctrl-C's SIGINT, SIGHUP) reach only the
    /// keeper, which passes on SIGTERM, SIGINT and SIGQUIT, and stops gracefully on a hang-up
    /// (SIGHUP, unless it is the upgrade signal). The upgrade signal sent to the keeper starts
    /// a new generation and, once the new one is ready, drains the old one at once (the keeper
    /// says so through a pipe only it holds; SIGTERM would bring the pre-stop delay); sent to
    /// a generation, it is passed on to the keeper. A generation that dies is replaced from the
    /// held sockets (clients queue meanwhile); after 5 failures in a row (each a start that
    /// never got ready, or a generation that died within 10 s) the keeper gives up. SIGTERM,
    /// SIGINT and SIGQUIT go to the generations; the keeper reaps them (only them: the app's
    /// own children are the app's to wait for; as PID 1 or a child subreaper, any orphan too)
    /// and `run` returns once all have exited: `Ok(())` when the last generation exited 0,
    /// else an error carrying a [`KeeperExit`](crate::KeeperExit) with the status for the
    /// process (the generation's, 128 + the signal number when it was killed, or 1 when the
    /// keeper gave up), for `main` to exit with. The keeper alone writes
    /// the pid file and talks to systemd (`READY=1`, `RELOADING=1`, `STOPPING=1`, `MAINPID=`
    /// the keeper); generations get no `NOTIFY_SOCKET`.
    ///
    /// Everything `main` does before `run` happens in the keeper too: keep expensive set-up in
    /// the app factory or after `run` starts.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use actix_graceful::{Graceful, GracefulBind as _};
    /// use actix_web::{App, HttpServer};
    ///
    /// #[actix_web::main]
    /// async fn main() -> std::io::Result<()> {
    ///     let server = HttpServer::new(|| App::new().wrap(actix_graceful::LameDuck))
    ///         .graceful_bind("0.0.0.0:8080")?;
    ///     Graceful::new().keeper(true).run(server).await
    /// }
    /// ```
    pub fn keeper(mut self, on: bool) -> Self {
        self.keeper = if on { Mode::On } else { Mode::Off };
        self
    }

    /// A handle to trigger upgrades from code, e.g. an admin endpoint. Take it before
    /// [`run`](Self::run).
    #[must_use]
    pub fn handle(&self) -> UpgradeHandle {
        self.handle.clone()
    }

    /// Runs `server` until it stops, serving through any number of upgrades. actix's own
    /// signal handling is replaced: the upgrade signal hands over to a successor; SIGTERM stops
    /// with the same careful drain; SIGINT and SIGQUIT stop at once, as in actix.
    ///
    /// Returns `Ok(())` when this process has handed over (or stopped) and drained: the caller
    /// should then let the process exit.
    ///
    /// # Errors
    /// The signal handlers cannot be installed, or actix fails to start its workers. In keeper
    /// mode: the keeper cannot set up, a generation finds its keeper gone, or the keeper ended
    /// with a status other than 0 ([`KeeperExit`](crate::KeeperExit)). The error is returned,
    /// not logged: log or print it once, in the caller.
    pub async fn run(mut self, server: impl HttpServerExt) -> io::Result<()> {
        let mut replaced = None;
        if self.keeper == Mode::On {
            match keeper::role()? {
                Role::Keeper => return self.keep(server).await,
                Role::Generation(pid) => {
                    replaced = Some(match keeper::attach(pid, self.upgrade_signal)? {
                        Replacement::Pipe(replaced) => replaced,
                        Replacement::Signal(signal) => signals::replaced_by(signal)?,
                    });
                    self.keeper = Mode::Under(pid);
                    self.pid_file = None; // the keeper's
                }
            }
        }
        let signals = Signals::install(self.upgrade_signal)?;
        let shutdown_secs = self
            .shutdown_timeout
            .map(|t| t.as_secs() + u64::from(t.subsec_nanos() > 0));
        let mut server = server.start_without_signals(Token, shutdown_secs);
        let handle = server.handle();

        // actix starts its workers, builds their services and registers the listeners in the
        // first poll: only after it does this process serve.
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut server).poll(cx))).await;
        if let Poll::Ready(result) = first {
            return result;
        }
        let task = actix_rt::spawn(server);
        self.serving();
        let mut controller = Controller::new(self, handle, signals);
        controller.replaced = replaced;
        controller.run(task).await
    }

    /// Keeper mode's keeper: never starts `server` (no worker runs here); the registry holds the
    /// listeners for the generations.
    async fn keep(self, server: impl HttpServerExt) -> io::Result<()> {
        // The keeper's server never runs: the registry alone holds the sockets, for good.
        registry::pin_all();
        drop(server);
        inherit::settle();
        let config = keeper::Config {
            plan: self.plan(),
            pid_file: self.pid_file.clone(),
            fd_store: self.fd_store,
        };
        actix_rt::task::spawn_blocking(move || keeper::run(config))
            .await
            .map_err(io::Error::other)?
    }

    /// How to start a successor (or a generation).
    fn plan(&self) -> Plan {
        let startup = process::startup();
        Plan {
            exe: self
                .successor
                .clone()
                .unwrap_or_else(|| startup.exe.clone()),
            args: startup.args.clone(),
            cwd: startup.cwd.clone(),
            upgrade_signal: self.upgrade_signal,
            readiness: self.readiness,
            timeout: self.upgrade_timeout,
            env: Vec::new(),
            env_file: self.env_file.clone(),
            control: None,
        }
    }

    fn serving(&self) {
        inherit::settle();
        if !lame_duck::installed() {
            log::warn!(
                "the LameDuck middleware is not installed: keep-alive clients may see a reset \
                 connection during a handoff; wrap your App with actix_graceful::LameDuck"
            );
        }
        announce::serving(self.pid_file.as_ref(), self.fd_store, &status("serving"));
        log::info!("serving, pid={}", std::process::id());
    }
}

/// `STATUS=` for this process in `state`.
fn status(state: &str) -> String {
    notify::status(process::startup().generation, std::process::id(), state)
}

/// Waits until this process holds no client connection, or `cap` has passed, watching
/// `successor` (a child of this process) meanwhile; returns its pid and exit status if it died.
///
/// Never takes back after `cap` (checked first, so a task that wakes late does not), nor for an
/// exit with status 0: that successor drained on purpose (it was stopped, or handed over in
/// turn), and taking back would put two generations in charge; this process then drains on
/// as before, its connections are still its clients'.
async fn drain_connections(mut successor: Option<i32>, cap: Duration) -> Option<(i32, String)> {
    let started = Instant::now();
    let end = started + cap;
    let clients = ClientConnections::new(registry::handoff_set().into_iter().map(|(fd, _)| fd));
    let mut quiet_since = None;
    let mut cannot_count = false;
    loop {
        let now = Instant::now();
        if now >= end {
            let left = clients
                .count()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string());
            log::info!(
                "drain timeout ({} ms) reached with {left} client connection(s) left; \
                 stopping gracefully",
                cap.as_millis()
            );
            return None;
        }
        if let Some(pid) = successor {
            match handoff::exit_status(pid) {
                Some((status, true)) => {
                    log::info!("successor pid={pid} drained and exited ({status})");
                    successor = None;
                }
                Some((status, false)) => return Some((pid, status.to_string())),
                None => {}
            }
        }
        match clients.count() {
            Ok(0) => {
                let since = *quiet_since.get_or_insert(now);
                if now.duration_since(since) >= DRAIN_QUIET {
                    log::info!(
                        "drained: no client connection left after {:.1} ms",
                        started.elapsed().as_secs_f64() * 1000.0
                    );
                    return None;
                }
            }
            Ok(_) => quiet_since = None,
            Err(err) if !cannot_count => {
                // Without a count, the timeout is the only end: never sooner than a client's
                // keep-alive allows.
                log::warn!("cannot count client connections ({err}); draining until the timeout");
                cannot_count = true;
            }
            Err(_) => {}
        }
        // A process with very many connections spends a while counting them: tick at least
        // four times as long as the count took, so the count stays a small share of a CPU.
        let tick = DRAIN_TICK.max(now.elapsed() * 4);
        actix_rt::time::sleep(end.saturating_duration_since(Instant::now()).min(tick)).await;
    }
}

/// Runs `server` with the default [`Graceful`] configuration.
///
/// `server` is any `actix_web::HttpServer` (its bound is sealed; code generic over the server
/// bounds it by [`GracefulBind`](crate::GracefulBind), implemented for the same servers).
///
/// # Errors
/// As [`Graceful::run`].
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::GracefulBind as _;
/// use actix_web::{App, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let server = HttpServer::new(|| App::new().wrap(actix_graceful::LameDuck))
///         .graceful_bind("127.0.0.1:8080")?;
///     actix_graceful::run(server).await
/// }
/// ```
pub async fn run(server: impl HttpServerExt) -> io::Result<()> {
    Graceful::new().run(server).await
}

/// Triggers upgrades from code. Cloneable and `Send`: hand it to an admin endpoint.
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::{Graceful, GracefulBind as _};
/// use actix_web::{web, App, HttpResponse, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let graceful = Graceful::new();
///     let upgrades = graceful.handle();
///     let server = HttpServer::new(move || {
///         let upgrades = upgrades.clone();
///         App::new().wrap(actix_graceful::LameDuck).route(
///             "/admin/upgrade",
///             web::post().to(move || {
///                 let upgrades = upgrades.clone();
///                 async move {
///                     match upgrades.upgrade().await {
///                         Ok(pid) => HttpResponse::Ok().body(format!("successor pid={pid}")),
///                         Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
///                     }
///                 }
///             }),
///         )
///     })
///     .graceful_bind("127.0.0.1:8080")?;
///     graceful.run(server).await
/// }
/// ```
#[derive(Debug, Clone)]
pub struct UpgradeHandle {
    tx: mpsc::UnboundedSender<Reply>,
}

impl UpgradeHandle {
    /// Starts an upgrade, as the upgrade signal does, and resolves once it succeeded (to the
    /// successor's pid; this process then drains) or failed (this process keeps serving).
    ///
    /// # Errors
    /// Why there is no successor: see [`UpgradeError`]. The error is returned, not logged (the
    /// server's log says only that the upgrade failed or was refused): report it once, here.
    pub async fn upgrade(&self) -> Result<u32, UpgradeError> {
        let (reply, result) = oneshot::channel();
        self.tx
            .unbounded_send(reply)
            .map_err(|_| UpgradeError::NotRunning)?;
        result.await.unwrap_or(Err(UpgradeError::NotRunning))
    }
}

/// The state machine of a running server.
struct Controller {
    config: Graceful,
    handle: ServerHandle,
    signals: Signals,
    plan: Plan,
    upgrading: Option<Upgrade>,
    draining: bool,
    terminating: bool,
    /// Resolves when the successor died during the drain and this process took the
    /// listeners back (the successor's exit status).
    taken_back: Option<oneshot::Receiver<(i32, String)>>,
    /// Under a keeper: resolves once the keeper says a newer generation serves (drain at once).
    replaced: Option<keeper::Replaced>,
}

struct Upgrade {
    started: Instant,
    cancel: Cancel,
    result: actix_rt::task::JoinHandle<Result<i32, UpgradeError>>,
    waiter: Option<Reply>,
}

enum Step {
    Signal(Event),
    Command(Option<Reply>),
    Upgraded(Result<i32, UpgradeError>),
    TakenBack((i32, String)),
    Stopped(io::Result<()>),
    Replaced,
}

impl Controller {
    fn new(config: Graceful, handle: ServerHandle, signals: Signals) -> Self {
        let plan = config.plan();
        Controller {
            config,
            handle,
            signals,
            plan,
            upgrading: None,
            draining: false,
            terminating: false,
            taken_back: None,
            replaced: None,
        }
    }

    async fn run(mut self, mut task: actix_rt::task::JoinHandle<io::Result<()>>) -> io::Result<()> {
        let mut commands_open = true;
        loop {
            let step = poll_fn(|cx| {
                if let Poll::Ready(result) = Pin::new(&mut task).poll(cx) {
                    let result = result.unwrap_or_else(|e| Err(io::Error::other(e)));
                    return Poll::Ready(Step::Stopped(result));
                }
                if let Some(upgrade) = &mut self.upgrading {
                    if let Poll::Ready(result) = Pin::new(&mut upgrade.result).poll(cx) {
                        let result = result
                            .unwrap_or_else(|e| Err(UpgradeError::Spawn(io::Error::other(e))));
                        return Poll::Ready(Step::Upgraded(result));
                    }
                }
                if let Some(rx) = &mut self.taken_back {
                    if let Poll::Ready(back) = Pin::new(rx).poll(cx) {
                        self.taken_back = None;
                        if let Ok(back) = back {
                            return Poll::Ready(Step::TakenBack(back));
                        }
                    }
                }
                if let Some(replaced) = &mut self.replaced {
                    if let Poll::Ready(replaced) = replaced.as_mut().poll(cx) {
                        self.replaced = None;
                        if replaced {
                            return Poll::Ready(Step::Replaced);
                        }
                    }
                }
                if commands_open {
                    if let Poll::Ready(cmd) = self.config.commands.poll_next_unpin(cx) {
                        return Poll::Ready(Step::Command(cmd));
                    }
                }
                self.signals.poll_next(cx).map(Step::Signal)
            })
            .await;

            match step {
                Step::Stopped(result) => {
                    self.terminating = true;
                    self.abandon_upgrade(Signal::SIGTERM).await;
                    if let Some(pid_file) = &self.config.pid_file {
                        pid_file.remove_if_ours();
                    }
                    log::info!("drained, exiting (pid={})", std::process::id());
                    return result;
                }
                Step::Signal(Event::Upgrade) => self.start_upgrade(None),
                Step::Command(Some(reply)) => self.start_upgrade(Some(reply)),
                Step::Command(None) => commands_open = false,
                Step::Upgraded(result) => self.finish_upgrade(result),
                Step::TakenBack((pid, status)) => self.take_back(pid, &status),
                Step::Replaced => {
                    // As after our own handoff: no pre-stop delay, the newer one serves. No
                    // take-back either: should the newer one die, the keeper starts another.
                    log::info!("the keeper serves through a newer generation: draining");
                    self.terminating = true;
                    self.drain(Duration::ZERO, None);
                }
                Step::Signal(Event::Terminate) => {
                    log::info!("SIGTERM: stopping with a graceful drain");
                    self.terminating = true;
                    if let Some(upgrade) = &self.upgrading {
                        upgrade.cancel.stop_successor(Signal::SIGTERM);
                    }
                    if !self.draining {
                        let delay = self.config.pre_stop_delay;
                        health::stopping();
                        let state = if delay.is_zero() {
                            "stopping: draining".to_owned()
                        } else {
                            format!(
                                "stopping: serving {} ms more, then draining",
                                delay.as_millis()
                            )
                        };
                        sd_notify(&format!("STOPPING=1\n{}", status(&state)));
                        self.drain(delay, None);
                    }
                }
                Step::Signal(Event::Force(name)) => {
                    log::info!("{name}: stopping at once");
                    self.terminating = true;
                    self.abandon_upgrade(Signal::SIGKILL).await;
                    if self.draining {
                        // actix is awaiting its graceful worker stop and reads no further
                        // command: leave it behind, the process ends when `main` returns.
                        log::info!(
                            "{name} while draining: exiting now (pid={})",
                            std::process::id()
                        );
                        return Ok(());
                    }
                    let handle = self.handle.clone();
                    actix_rt::spawn(async move { handle.stop(false).await });
                }
            }
        }
    }

    /// Stops a successor still being started (with `signal`) and waits until it is reaped.
    async fn abandon_upgrade(&mut self, signal: Signal) {
        let Some(upgrade) = &mut self.upgrading else {
            return;
        };
        upgrade.cancel.stop_successor(signal);
        let result = (&mut upgrade.result)
            .await
            .unwrap_or_else(|e| Err(UpgradeError::Spawn(io::Error::other(e))));
        self.finish_upgrade(result);
    }

    fn start_upgrade(&mut self, reply: Option<Reply>) {
        if let Mode::Under(keeper) = self.config.keeper {
            keeper::forward_upgrade(keeper, self.config.upgrade_signal);
            if let Some(reply) = reply {
                let _ = reply.send(Err(UpgradeError::UnderKeeper {
                    keeper: keeper.as_raw() as u32,
                }));
            }
            return;
        }
        let refuse = if self.draining || self.terminating {
            Some(UpgradeError::Draining)
        } else if self.upgrading.is_some() {
            Some(UpgradeError::InProgress)
        } else {
            None
        };
        if let Some(err) = refuse {
            match reply.filter(|r| !r.is_canceled()) {
                // The caller gets the error and reports it: not logged twice.
                Some(reply) => {
                    log::info!("upgrade refused (the error goes to the UpgradeHandle caller)");
                    let _ = reply.send(Err(err));
                }
                None => log::warn!("upgrade refused: {err}"),
            }
            return;
        }
        log::info!("upgrade: starting {}", self.plan.exe.display());
        sd_notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\n{}",
            notify::monotonic_usec(),
            status(&format!(
                "upgrading: starting generation {}",
                process::startup().generation + 1
            ))
        ));
        let plan = self.plan.clone();
        let cancel = Cancel::default();
        let waiting = cancel.clone();
        self.upgrading = Some(Upgrade {
            started: Instant::now(),
            cancel,
            result: actix_rt::task::spawn_blocking(move || handoff::hand_over(&plan, &waiting)),
            waiter: reply,
        });
    }

    fn finish_upgrade(&mut self, result: Result<i32, UpgradeError>) {
        let Some(upgrade) = self.upgrading.take() else {
            return;
        };
        let ms = upgrade.started.elapsed().as_secs_f64() * 1000.0;
        // A successor that died between its ready report and now must not be handed over to.
        let result = result.and_then(|pid| match handoff::exit_status(pid) {
            Some((status, _)) => Err(UpgradeError::ExitedAfterReady {
                pid: pid as u32,
                status,
            }),
            None => Ok(pid),
        });
        let reply = match result {
            Ok(pid) => {
                log::info!("upgrade: successor pid={pid} ready after {ms:.1} ms; draining");
                if self.terminating {
                    // SIGTERM arrived mid-upgrade: the service is meant to stop, successor too.
                    log::info!("upgrade: stopping successor pid={pid} as SIGTERM asked");
                    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                } else {
                    sd_notify(&format!(
                        "MAINPID={pid}\nREADY=1\n{}",
                        notify::status(
                            process::startup().generation + 1,
                            pid as u32,
                            &format!("serving; pid {} draining", std::process::id())
                        )
                    ));
                    self.drain(Duration::ZERO, Some(pid));
                }
                Ok(pid as u32)
            }
            Err(err) => {
                if upgrade.waiter.as_ref().is_some_and(|w| !w.is_canceled()) {
                    // The caller gets the error and reports it: not logged twice.
                    log::info!(
                        "upgrade failed after {ms:.1} ms; still serving (the error goes to the \
                         UpgradeHandle caller)"
                    );
                } else {
                    log::error!("upgrade failed after {ms:.1} ms: {err}; still serving");
                }
                if let Some(pid_file) = &self.config.pid_file {
                    // The successor may have written its pid before it was killed.
                    if let Err(e) = pid_file.write() {
                        log::error!("cannot rewrite pid file {}: {e}", pid_file.path().display());
                    }
                }
                sd_notify(&format!(
                    "READY=1\n{}",
                    status(&format!("serving; upgrade failed: {err}"))
                ));
                Err(err)
            }
        };
        if let Some(waiter) = upgrade.waiter {
            let _ = waiter.send(reply);
        }
    }

    /// After `delay` of normal service, stops accepting (a successor shares the accept queue),
    /// answers with `Connection: close` until no client connection is left or the drain timeout
    /// ends, then stops the workers gracefully. If `successor` dies during the drain, accepts
    /// again instead ([`Self::take_back`]).
    fn drain(&mut self, delay: Duration, successor: Option<i32>) {
        if self.draining {
            return;
        }
        self.draining = true;
        let handle = self.handle.clone();
        let cap = self.config.drain_timeout;
        let (died, taken_back) = oneshot::channel();
        self.taken_back = successor.map(|_| taken_back);
        actix_rt::spawn(async move {
            if !delay.is_zero() {
                log::info!("pre-stop delay: serving {} ms more", delay.as_millis());
                actix_rt::time::sleep(delay).await;
            }
            handle.pause().await;
            lame_duck::begin();
            if let Some(back) = drain_connections(successor, cap).await {
                handle.resume().await;
                lame_duck::end();
                let _ = died.send(back);
                return;
            }
            handle.stop(true).await;
        });
    }

    /// The successor died while this process was draining: it accepts again (see
    /// [`Self::drain`]) and is in charge once more, with the connections it still holds.
    fn take_back(&mut self, pid: i32, exit: &str) {
        log::error!(
            "upgrade: successor pid={pid} died during the handoff ({exit}); \
             accepting again, still serving"
        );
        self.draining = false;
        if let Some(pid_file) = &self.config.pid_file {
            if let Err(e) = pid_file.write() {
                log::error!("cannot rewrite pid file {}: {e}", pid_file.path().display());
            }
        }
        // systemd hears this only with NotifyAccess=all: MAINPID= already named the successor.
        sd_notify(&format!(
            "MAINPID={}\nREADY=1\n{}",
            std::process::id(),
            status(&format!("serving again; successor pid {pid} died ({exit})"))
        ));
        if self.terminating {
            self.drain(Duration::ZERO, None);
        }
    }
}
