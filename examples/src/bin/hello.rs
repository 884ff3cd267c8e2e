//! The example app: answers with its pid, so a client sees which generation served it.
//!
//! ```text
//! cargo run -p examples --bin hello -- --listen 127.0.0.1:8080
//! kill -USR2 <pid>     # live upgrade to the binary now at the same path
//! ```
//!
//! Routes: `/` (`pid=<pid>`, header `X-Pid`), `/sleep?ms=N` (the same after N ms), `POST /echo`
//! (`len=<body bytes> pid=<pid>`), `/health`
//! (always 200 while the process answers), `/ready` (the readiness probe:
//! `actix_graceful::readiness`, 503 from SIGTERM on), `/env?name=X` (the value of environment
//! variable X, 404 when unset).
//! Options (`--help` lists them; a bad value is an error naming the flag, exit status 2): `--listen ADDR` (repeatable; `unix:/path`, `NAME=ADDR` for a systemd fd name;
//! default from `HELLO_LISTEN`, comma-separated, else `127.0.0.1:8080`), `--workers N`,
//! `--upgrade-timeout-ms N`, `--drain-timeout-ms N`, `--shutdown-timeout-s N`,
//! `--ready-after-ms N`, `--pid-file PATH`, `--upgrade-signal USR2|USR1|HUP`, `--admin` (adds
//! `POST /admin/upgrade`, which upgrades through an `UpgradeHandle` and answers with the
//! result), `--pre-stop-ms N` (on SIGTERM, serve N ms more before draining), `--fd-store` (hand
//! the listeners to systemd's fd store), `--keeper` (keeper mode: this process stays, holds the
//! sockets and runs the server as its child; for supervisors and containers that must see one
//! pid), `--env-file PATH` (`KEY=VALUE` lines set over a successor's environment, re-read at
//! every upgrade), `--ipv6-only on|off` (IPV6_V6ONLY of freshly bound IPv6 sockets),
//! `--udp-echo NAME=ADDR` (a UDP echo service beside HTTP: the inherited UDP socket named NAME,
//! else a fresh one bound at ADDR and registered under NAME, so successors get the same socket;
//! it answers `pid=<pid> <datagram>` until the drain starts; prints `hello udp NAME ADDR
//! (inherited|bound)`), `--keep-unclaimed` (leave inherited fds nothing claimed open, for
//! another part of the app; by default hello claims what it needs and closes the rest with
//! `actix_graceful::close_unclaimed`). Logs with `RUST_LOG`.
//!
//! Test options, for what apps do around the server: `--early-thread` (start a thread before
//! the crate's first use, as a log appender or an exporter would), `--delay-run-ms N` (wait N ms
//! between binding and `run`), `--child-wait-ms N` (on a thread started before `run`, spawn a
//! child that exits 7, wait for it N ms later and print `hello pid=<pid> child: <status>`).

use std::{process::ExitCode, time::Duration};

use actix_graceful::{Binding, Graceful, GracefulBind as _, UpgradeHandle};
use actix_web::{web, App, HttpResponse, HttpServer};

#[path = "../shared.rs"]
mod shared;
use shared::{echo, health, reply, sleep};

/// The example app: answers with its pid; SIGUSR2 upgrades it live to the binary now at its path.
#[derive(Debug, clap::Parser)]
#[command(name = "hello", args_override_self = true)]
struct Options {
    /// `[NAME=]ADDR` or `[NAME=]unix:/path` (repeatable; NAME: a systemd fd name). Default:
    /// `HELLO_LISTEN` (comma-separated), else 127.0.0.1:8080
    #[arg(long, value_name = "[NAME=]ADDR")]
    listen: Vec<String>,
    /// Worker threads
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: usize,
    /// How long a successor may take to report ready
    #[arg(long, value_name = "N")]
    upgrade_timeout_ms: Option<u64>,
    /// The drain's cap once the successor serves
    #[arg(long, value_name = "N")]
    drain_timeout_ms: Option<u64>,
    /// A new build's probation (0: none): the old process stands by to take back meanwhile
    #[arg(long, value_name = "N")]
    probation_ms: Option<u64>,
    /// actix's shutdown timeout (seconds)
    #[arg(long, value_name = "N")]
    shutdown_timeout_s: Option<u64>,
    /// Report ready this long after the successor started
    #[arg(long, value_name = "N")]
    ready_after_ms: Option<u64>,
    /// Write the serving process's pid here
    #[arg(long, value_name = "PATH")]
    pid_file: Option<String>,
    /// The signal that upgrades
    #[arg(long, value_name = "SIG", value_enum, ignore_case = true)]
    upgrade_signal: Option<shared::UpgradeSignal>,
    /// Add `POST /admin/upgrade` (upgrades through an `UpgradeHandle`)
    #[arg(long)]
    admin: bool,
    /// On SIGTERM, serve N ms more before draining
    #[arg(long, value_name = "N")]
    pre_stop_ms: Option<u64>,
    /// Hand the listeners to systemd's fd store
    #[arg(long)]
    fd_store: bool,
    /// Keeper mode: this process stays, holds the sockets and runs the server as its child
    #[arg(long)]
    keeper: bool,
    /// `KEY=VALUE` lines set over a successor's environment, re-read at every upgrade
    #[arg(long, value_name = "PATH")]
    env_file: Option<String>,
    /// IPV6_V6ONLY of freshly bound IPv6 sockets
    #[arg(long, value_name = "on|off", value_parser = shared::on_off())]
    ipv6_only: Option<bool>,
    /// A UDP echo service: the inherited UDP socket NAME, else one bound at ADDR (repeatable)
    #[arg(long, value_name = "NAME=ADDR")]
    udp_echo: Vec<String>,
    /// Leave inherited fds nothing claimed open (default: close them)
    #[arg(long)]
    keep_unclaimed: bool,
    /// Test: start a thread before the crate's first use
    #[arg(long)]
    early_thread: bool,
    /// Test: wait N ms between binding and `run`
    #[arg(long, value_name = "N")]
    delay_run_ms: Option<u64>,
    /// Test: spawn a child that exits 7 and wait for it N ms later, on a thread
    #[arg(long, value_name = "N")]
    child_wait_ms: Option<u64>,
}

impl Options {
    /// `--listen`, else `HELLO_LISTEN` (comma-separated), else 127.0.0.1:8080.
    fn listen(&self) -> Vec<String> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        match std::env::var("HELLO_LISTEN") {
            Ok(v) if !v.is_empty() => v.split(',').map(str::to_owned).collect(),
            _ => vec!["127.0.0.1:8080".to_owned()],
        }
    }
}

/// `[NAME=]ADDR` or `[NAME=]unix:/path` as a binding.
fn binding(spec: &str) -> Binding {
    let (name, addr) = match spec.split_once('=') {
        Some((name, addr)) if !name.contains(':') && !name.contains('/') => (Some(name), addr),
        _ => (None, spec),
    };
    let binding = match addr.strip_prefix("unix:") {
        Some(path) => Binding::uds(path),
        None => Binding::tcp(addr),
    };
    match name {
        Some(name) => binding.name(name),
        None => binding,
    }
}

async fn env(query: web::Query<std::collections::HashMap<String, String>>) -> HttpResponse {
    let pid = std::process::id().to_string();
    match query.get("name").and_then(std::env::var_os) {
        Some(value) => HttpResponse::Ok()
            .insert_header(("X-Pid", pid))
            .body(value.to_string_lossy().into_owned()),
        None => HttpResponse::NotFound()
            .insert_header(("X-Pid", pid))
            .finish(),
    }
}

/// `--udp-echo NAME=ADDR`: the UDP socket NAME, inherited or bound fresh and registered, so it
/// is handed to every successor; echoes `pid=<pid> <datagram>` until this process drains, then
/// keeps the socket open (a take-back would hand it on again) without reading it.
fn udp_echo(spec: &str) -> std::io::Result<()> {
    let (name, addr) = spec.split_once('=').ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--udp-echo {spec:?}: want NAME=ADDR"),
        )
    })?;
    let (socket, origin) = match actix_graceful::take_udp(name)? {
        Some(socket) => (socket, "inherited"),
        None => {
            let socket = std::net::UdpSocket::bind(addr)?;
            actix_graceful::register_fd(name, &socket)?;
            (socket, "bound")
        }
    };
    println!("hello udp {name} {} ({origin})", socket.local_addr()?);
    socket.set_nonblocking(true)?;
    let socket = actix_web::rt::net::UdpSocket::from_std(socket)?;
    actix_web::rt::spawn(async move {
        let pid = std::process::id();
        let mut buf = [0u8; 1500];
        let mut drain = std::pin::pin!(actix_graceful::draining());
        loop {
            let got = {
                let recv = std::pin::pin!(socket.recv_from(&mut buf));
                match futures::future::select(drain.as_mut(), recv).await {
                    futures::future::Either::Left(_) => break,
                    futures::future::Either::Right((got, _)) => got,
                }
            };
            match got {
                Ok((n, from)) => {
                    let reply = [format!("pid={pid} ").as_bytes(), &buf[..n]].concat();
                    let _ = socket.send_to(&reply, from).await;
                }
                Err(err) => log::warn!("udp echo: {err}"),
            }
        }
        std::future::pending::<()>().await;
        drop(socket);
    });
    Ok(())
}

/// Upgrades through the handle; answers with the successor's pid or why there is none.
async fn admin_upgrade(handle: web::Data<UpgradeHandle>) -> HttpResponse {
    match handle.upgrade().await {
        Ok(upgraded) => HttpResponse::Ok().body(format!("upgraded to pid={}\n", upgraded.pid())),
        Err(err) => HttpResponse::Conflict().body(format!("upgrade failed: {err}\n")),
    }
}

/// `--child-wait-ms`: a child of the app's own, waited for by the app.
fn child_wait(after: Duration) {
    let spawned = std::process::Command::new("/bin/sh")
        .args(["-c", "exit 7"])
        .spawn();
    std::thread::spawn(move || {
        let status = spawned.and_then(|mut child| {
            std::thread::sleep(after);
            child.wait()
        });
        let status = match status {
            Ok(status) => status.to_string(),
            Err(err) => format!("error: {err}"),
        };
        println!("hello pid={} child: {status}", std::process::id());
    });
}

async fn serve(opts: Options) -> std::io::Result<()> {
    if opts.early_thread {
        // Before the crate's first use: its signal mask is the one the process started with.
        std::thread::spawn(|| loop {
            std::thread::park();
        });
    }
    // The operators' ACTIX_GRACEFUL_* variables first; the flags win over them.
    let mut graceful = Graceful::new().with_env()?;
    if let Some(t) = opts.upgrade_timeout_ms.map(Duration::from_millis) {
        graceful = graceful.upgrade_timeout(t);
    }
    if let Some(t) = opts.drain_timeout_ms.map(Duration::from_millis) {
        graceful = graceful.drain_timeout(t);
    }
    if let Some(t) = opts.probation_ms.map(Duration::from_millis) {
        graceful = graceful.probation(t);
    }
    if let Some(t) = opts.shutdown_timeout_s.map(Duration::from_secs) {
        graceful = graceful.shutdown_timeout(t);
    }
    if let Some(t) = opts.ready_after_ms.map(Duration::from_millis) {
        graceful = graceful.successor_ready_after(t);
    }
    if let Some(p) = &opts.pid_file {
        graceful = graceful.pid_file(p);
    }
    if let Some(t) = opts.pre_stop_ms.map(Duration::from_millis) {
        graceful = graceful.pre_stop_delay(t);
    }
    graceful = graceful.fd_store(opts.fd_store);
    if let Some(p) = &opts.env_file {
        graceful = graceful.successor_env_file(p);
    }

    if let Some(signal) = opts.upgrade_signal {
        graceful = graceful.upgrade_signal(signal.number());
    }
    graceful = graceful.keeper(opts.keeper);
    let upgrades = opts.admin.then(|| graceful.handle());

    let mut server = HttpServer::new(move || {
        let app = App::new()
            .wrap(actix_graceful::LameDuck)
            .route("/", web::get().to(|| async { reply() }))
            .route("/sleep", web::get().to(sleep))
            .route("/echo", web::post().to(echo))
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(actix_graceful::readiness))
            .route("/env", web::get().to(env));
        match upgrades.clone() {
            Some(handle) => app
                .app_data(web::Data::new(handle))
                .route("/admin/upgrade", web::post().to(admin_upgrade)),
            None => app,
        }
    })
    .workers(opts.workers);
    for spec in &opts.listen() {
        let b = binding(spec);
        server = server.graceful_bind(match opts.ipv6_only {
            Some(only) => b.ipv6_only(only),
            None => b,
        })?;
    }

    for spec in &opts.udp_echo {
        udp_echo(spec)?;
    }
    if !opts.keep_unclaimed {
        // hello knows it claimed all it wants: close the rest (e.g. a listener a new version no
        // longer serves, which would queue connections nobody accepts).
        let _ = actix_graceful::close_unclaimed();
    }

    shared::print_serving()?;

    if let Some(after) = opts.child_wait_ms.map(Duration::from_millis) {
        child_wait(after);
    }
    if let Some(delay) = opts.delay_run_ms.map(Duration::from_millis) {
        actix_web::rt::time::sleep(delay).await;
    }
    graceful.run(server).await
}

fn main() -> ExitCode {
    shared::main("hello", serve)
}
