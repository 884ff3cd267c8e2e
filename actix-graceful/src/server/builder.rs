//! The [`Graceful`] builder: the configuration of a gracefully run server, with the long
//! documentation of each knob. Pure but for [`Graceful::upgrade_signal`] (which must catch its
//! signal early); it starts nothing: [`Graceful::run`] hands it to `server::serve`.

use std::{fmt, future::Future, io, path::PathBuf, sync::Arc, time::Duration};

use futures::{channel::mpsc, future::LocalBoxFuture, FutureExt as _};

use super::{
    handle::{Reply, UpgradeHandle},
    probation::ErrorRate,
};
use crate::{
    events::{self, Event},
    process::{self, handoff::Plan, handoff::Readiness, signals as process_signals},
    protocol::notify::PidFile,
    settings::Settings,
};

/// Default time a successor has to report ready.
const DEFAULT_UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on the drain (see [`Graceful::drain_timeout`]): actix's default keep-alive.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default probation of a new build (see [`Graceful::probation`]).
const DEFAULT_PROBATION: Duration = Duration::from_secs(10);

/// An app's check (readiness, probation), boxed: once called, it resolves to why it failed.
pub(crate) type Check = Box<dyn FnOnce() -> LocalBoxFuture<'static, Result<(), String>> + Send>;

/// `check`, its error as text, boxed.
fn boxed<F, Fut, E>(check: F) -> Check
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: fmt::Display,
{
    Box::new(move || check().map(|r| r.map_err(|e| e.to_string())).boxed_local())
}

/// A closure of the app's, kept by the builder (shown as `..` by `Debug`).
pub(super) struct Hook<T>(pub(super) T);

impl<T> fmt::Debug for Hook<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

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
    pub(super) upgrade_timeout: Duration,
    pub(super) shutdown_timeout: Option<Duration>,
    pub(super) drain_timeout: Duration,
    pub(super) upgrade_signal: i32,
    pub(super) successor: Option<PathBuf>,
    pub(super) env_file: Option<PathBuf>,
    pub(super) readiness: Readiness,
    pub(super) pid_file: Option<PidFile>,
    pub(super) pre_stop_delay: Duration,
    pub(super) fd_store: bool,
    pub(super) keeper: bool,
    pub(super) probation: Duration,
    pub(super) error_rate: ErrorRate,
    pub(super) ready_when: Option<Hook<Check>>,
    pub(super) self_probe: Option<String>,
    pub(super) probation_check: Option<Hook<Check>>,
    pub(super) on_event: Option<Hook<events::Callback>>,
    pub(super) commands: mpsc::UnboundedReceiver<Reply>,
    pub(super) handle: UpgradeHandle,
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
    /// Pure: it touches no signal and no descriptor. The crate's first use that does
    /// (`graceful_bind*`, [`Binding::bind`](crate::Binding::bind), [`run`](Self::run), or any
    /// other entry point) installs a process-wide handler for SIGUSR2, so an upgrade signal that
    /// comes after the bind and before `run`, on any thread (also one started before), is
    /// recorded instead of killing the process; `run` then upgrades as soon as it serves. (A
    /// keeper refuses it with a log line while it starts its first generation, which runs the
    /// newest binary anyway.)
    ///
    /// # Examples
    ///
    /// ```
    /// let graceful = actix_graceful::Graceful::new();
    /// # drop(graceful);
    /// ```
    pub fn new() -> Self {
        let (tx, commands) = mpsc::unbounded();
        Graceful {
            upgrade_timeout: DEFAULT_UPGRADE_TIMEOUT,
            shutdown_timeout: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            upgrade_signal: process_signals::DEFAULT_UPGRADE,
            successor: None,
            env_file: None,
            readiness: Readiness::Reported,
            pid_file: None,
            pre_stop_delay: Duration::ZERO,
            fd_store: false,
            keeper: false,
            probation: DEFAULT_PROBATION,
            error_rate: ErrorRate::default(),
            ready_when: None,
            self_probe: None,
            probation_check: None,
            on_event: None,
            commands,
            handle: UpgradeHandle { tx },
        }
    }

    /// How long a successor may take to report ready before it is killed and the upgrade
    /// abandoned (default 30 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let graceful = actix_graceful::Graceful::new().upgrade_timeout(Duration::from_secs(10));
    /// # drop(graceful);
    /// ```
    pub fn upgrade_timeout(mut self, timeout: Duration) -> Self {
        self.upgrade_timeout = timeout;
        self
    }

    /// How long in-flight requests may run once this process stops (after an upgrade or on
    /// SIGTERM) before their connections are closed. Default: actix's 30 s. Rounded up to whole
    /// seconds, as actix counts them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let graceful = actix_graceful::Graceful::new().shutdown_timeout(Duration::from_secs(10));
    /// # drop(graceful);
    /// ```
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
    /// timer closes it, as it would have without an upgrade. The drain ends as soon as the
    /// process holds no HTTP/1 client connection (a connection accepted on one of its
    /// listeners; its own outgoing connections do not count, nor HTTP/2 connections, which only
    /// the graceful stop's GOAWAY moves), so a busy server's drain ends within milliseconds.
    /// The process then stands by, idle, until its successor passed its
    /// [probation](Self::probation) (or at once without one), and stops: the connections left
    /// (in-flight requests, streams, WebSockets, HTTP/2) get actix's graceful stop: in-flight
    /// requests finish within [`shutdown_timeout`](Self::shutdown_timeout), idle ones are
    /// closed.
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
    /// The builder's one side effect, on purpose: nothing else in the crate knows this signal
    /// before `run`, so without it an early signal would take its default action (SIGHUP's:
    /// terminate) instead of being recorded.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let graceful = actix_graceful::Graceful::new().upgrade_signal(libc::SIGHUP);
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// let graceful = actix_graceful::Graceful::new().successor_path("/usr/local/bin/app");
    /// # drop(graceful);
    /// ```
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
    /// [`UpgradeError::EnvFile`](crate::UpgradeError::EnvFile) (naming the line) and this
    /// process keeps serving. This process's own environment never changes.
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let graceful = actix_graceful::Graceful::new().successor_ready_after(Duration::from_secs(2));
    /// # drop(graceful);
    /// ```
    pub fn successor_ready_after(mut self, delay: Duration) -> Self {
        self.readiness = Readiness::After(delay);
        self
    }

    /// Writes this process's pid to `path` (atomically) once it serves; a successor rewrites
    /// it when it takes over (and this process again if the successor fails), and a process
    /// that stops for good (SIGTERM, SIGINT, SIGQUIT) removes it if it is still its own.
    ///
    /// # Examples
    ///
    /// ```
    /// let graceful = actix_graceful::Graceful::new().pid_file("/run/app.pid");
    /// # drop(graceful);
    /// ```
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
        self.keeper = on;
        self
    }

    /// The readiness check of this build: `check` runs once in every process this `Graceful`
    /// runs, before it accepts its first connection (before actix starts its workers), and the
    /// process serves only once it returns `Ok`. Meanwhile the process it replaces serves the
    /// shared accept queue on, so a check that takes seconds to warm a cache makes no request
    /// wait.
    ///
    /// An `Err(reason)`, or no answer within the [upgrade timeout](Self::upgrade_timeout),
    /// means this build is not ready: a successor sends the reason to its predecessor and
    /// exits, and the predecessor serves on (its [`UpgradeHandle`] caller gets
    /// [`UpgradeError::NotReady`](crate::UpgradeError::NotReady) with the reason, which also
    /// goes to its log and systemd's `STATUS=`); the first process of a service returns the
    /// error from [`run`](Self::run). SIGTERM, SIGINT or SIGQUIT during the check end it.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn ping_database() -> Result<(), std::io::Error> { Ok(()) }
    /// let graceful = actix_graceful::Graceful::new().ready_when(|| async {
    ///     ping_database().await.map_err(|e| format!("database: {e}"))
    /// });
    /// # drop(graceful);
    /// ```
    pub fn ready_when<F, Fut, E>(mut self, check: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + 'static,
        E: fmt::Display,
    {
        self.ready_when = Some(Hook(boxed(check)));
        self
    }

    /// The self-probe: before it reports ready, a new process sends `GET <path>` to its own app
    /// (over a private Unix socket only this process listens on, so the old process, which
    /// shares the public accept queue, never answers it) and is ready only on a 2xx status. It
    /// accepts no public connection before the probe passed. A failure is handled as a failed
    /// [readiness check](Self::ready_when), with the status and the start of the body as the
    /// reason. Off by default; bounded by the [upgrade timeout](Self::upgrade_timeout).
    ///
    /// # Panics
    /// When `path` does not start with `/` or holds a space or a control character.
    ///
    /// # Examples
    ///
    /// ```
    /// let graceful = actix_graceful::Graceful::new().self_probe("/health");
    /// # drop(graceful);
    /// ```
    pub fn self_probe(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        assert!(
            path.starts_with('/') && !path.chars().any(|c| c == ' ' || c.is_control()),
            "self-probe path {path:?} must start with / and hold no space or control character"
        );
        self.self_probe = Some(path);
        self
    }

    /// How long a new build stays on probation after it reported ready (default 10 s; zero
    /// turns probation off).
    ///
    /// During its probation the process it replaced stays: it stops accepting and drains its
    /// clients as without probation, then waits, idle, holding its copy of the listeners. If
    /// the new process dies in that time (any exit but a handover to a successor of its own),
    /// or declares itself failed (its [error-rate rule](Self::error_rate), or the app's
    /// [probation check](Self::probation_check)), the old process takes the listeners back
    /// within milliseconds and serves on as before: pid file, `MAINPID=`, `READY=1` and
    /// `STATUS=rolled back: <reason>` say so. Once the probation has passed, the old process
    /// exits. With zero, the old process exits as soon as its drain ends, and a successor that
    /// dies afterwards is not replaced.
    ///
    /// The probation is the new build's: its own `Graceful` sets it, and it tells the old
    /// process. A successor that upgrades again during its probation hands the fallback on:
    /// the fallback is always the last process that passed a probation, so quick upgrades
    /// never leave more than one process behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let graceful = actix_graceful::Graceful::new().probation(Duration::from_secs(30));
    /// # drop(graceful);
    /// ```
    pub fn probation(mut self, length: Duration) -> Self {
        self.probation = length;
        self
    }

    /// The error-rate rule of the [probation](Self::probation) (default
    /// [`ErrorRate::default`]: at least half of at least 20 responses are 5xx). The
    /// [`LameDuck`](crate::LameDuck) middleware counts the responses; [`ErrorRate::off`] turns
    /// the rule off.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_graceful::{ErrorRate, Graceful};
    /// let graceful = Graceful::new().error_rate(ErrorRate::new(0.2, 50));
    /// # drop(graceful);
    /// ```
    pub fn error_rate(mut self, rule: ErrorRate) -> Self {
        self.error_rate = rule;
        self
    }

    /// The app's own probation check, beside (or, with [`ErrorRate::off`], instead of) the
    /// error-rate rule: `check` starts when the [probation](Self::probation) does and runs
    /// until it ends; an `Err(reason)` fails the probation (the old process takes back) and
    /// `Ok` leaves the verdict to the time. Use it for what only the app sees: downstream
    /// errors, queue depth, its own metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # async fn queue_depth() -> usize { 0 }
    /// let graceful = actix_graceful::Graceful::new().probation_check(|| async {
    ///     loop {
    ///         actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    ///         let depth = queue_depth().await;
    ///         if depth > 10_000 {
    ///             return Err(format!("queue depth {depth}"));
    ///         }
    ///     }
    /// });
    /// # drop(graceful);
    /// ```
    pub fn probation_check<F, Fut, E>(mut self, check: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + 'static,
        E: fmt::Display,
    {
        self.probation_check = Some(Hook(boxed(check)));
        self
    }

    /// Hands every [`Event`] of this process (an upgrade's start, its successor's readiness,
    /// the drain's end, a probation passed or rolled back...) to `callback`, e.g. for the app's
    /// metrics. Called on the server's control task: keep it short.
    ///
    /// # Examples
    ///
    /// ```
    /// let graceful = actix_graceful::Graceful::new().on_event(|event| log::info!("{event:?}"));
    /// # drop(graceful);
    /// ```
    pub fn on_event(mut self, callback: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Hook(Arc::new(callback)));
        self
    }

    /// A handle to trigger upgrades from code, e.g. an admin endpoint. Take it before
    /// [`run`](Self::run).
    ///
    /// # Examples
    ///
    /// ```
    /// let graceful = actix_graceful::Graceful::new();
    /// let upgrades = graceful.handle(); // e.g. for an admin endpoint: see `UpgradeHandle`
    /// # drop((graceful, upgrades));
    /// ```
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
    pub async fn run(self, server: impl crate::GracefulBind) -> io::Result<()> {
        super::serve(self, server).await
    }

    /// Applies every field of `settings` that is set over this configuration, through the
    /// builder methods listed on [`Settings`]; unset fields keep the values built so far.
    ///
    /// # Examples
    ///
    /// ```
    /// let settings = actix_graceful::Settings::default();
    /// let graceful = actix_graceful::Graceful::new().with_settings(&settings);
    /// ```
    pub fn with_settings(mut self, settings: &Settings) -> Self {
        if let Some(t) = settings.upgrade_timeout {
            self = self.upgrade_timeout(t);
        }
        if let Some(t) = settings.drain_timeout {
            self = self.drain_timeout(t);
        }
        if let Some(t) = settings.shutdown_timeout {
            self = self.shutdown_timeout(t);
        }
        if let Some(t) = settings.pre_stop_delay {
            self = self.pre_stop_delay(t);
        }
        if let Some(t) = settings.probation {
            self = self.probation(t);
        }
        if let Some(path) = &settings.pid_file {
            self = self.pid_file(path.clone());
        }
        if let Some(on) = settings.keeper_mode {
            self = self.keeper(on);
        }
        self
    }

    /// Applies the `ACTIX_GRACEFUL_*` environment variables listed on [`Settings`] over this
    /// configuration: the values built so far (in code, or from the app's configuration with
    /// [`with_settings`](Self::with_settings)) are the defaults, and a variable wins where it is
    /// set. Call it last, before [`run`](Self::run). Successors inherit the environment, and an
    /// [environment file](Self::successor_env_file) can change a variable for the next one.
    ///
    /// # Errors
    /// A bad value: an [`io::Error`] of kind [`InvalidInput`](io::ErrorKind::InvalidInput) naming
    /// the variable and the value, as from [`Settings::from_env`] (returned, not logged).
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
    ///     // 10 s unless ACTIX_GRACEFUL_UPGRADE_TIMEOUT says otherwise:
    ///     Graceful::new()
    ///         .upgrade_timeout(Duration::from_secs(10))
    ///         .with_env()?
    ///         .run(server)
    ///         .await
    /// }
    /// ```
    pub fn with_env(self) -> io::Result<Self> {
        Ok(self.with_settings(&Settings::from_env()?))
    }

    /// How to start a successor (or a generation).
    pub(super) fn plan(&self) -> Plan {
        let startup = process::startup();
        Plan {
            listeners: Vec::new(),
            generation: startup.generation + 1,
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
            fallback: None,
            exe_fd: None,
        }
    }
}
