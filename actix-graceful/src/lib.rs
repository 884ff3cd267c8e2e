//! Zero-downtime restarts and live binary upgrades for [actix-web](https://actix.rs).
//!
//! A plain restart refuses every connection that arrives while no process listens, and
//! actix's own graceful stop still resets about one request per keep-alive connection. This
//! crate keeps the listening sockets alive across processes instead:
//!
//! - [`GracefulBind::graceful_bind`] replaces `HttpServer::bind`. It takes over listening
//!   sockets handed to the process by the systemd socket-activation protocol (`LISTEN_FDS`,
//!   `LISTEN_PID`, `LISTEN_FDNAMES`; by systemd, `systemd-socket-activate`, systemfd, or a
//!   predecessor), validating each before owning it, and binds fresh ones only when nothing
//!   matching was handed over. TCP and Unix sockets; [`Binding::bind`] yields plain listeners
//!   for actix's TLS `listen_*` methods.
//! - Other inherited fds (UDP sockets, FIFOs, memfds from the fd store) are the app's to claim
//!   by name with [`take_udp`] / [`take_fd`]; [`register_fd`] hands a socket the app made to
//!   successors too. Nothing unclaimed is closed unless the app calls [`close_unclaimed`].
//! - [`run`] (or [`Graceful::run`] for configuration) runs the server. On `SIGUSR2` it starts
//!   the binary at the path the process was started from with the same arguments, hands it the
//!   listeners by the same standard protocol, waits until it reports that it serves, and only
//!   then stops accepting and drains: every response gets `Connection: close` ([`LameDuck`]),
//!   no connection is closed earlier than actix's keep-alive would close it, and the process
//!   exits once it holds no client connection ([`Graceful::drain_timeout`] caps the wait) and
//!   its successor passed its probation. A successor that fails to start, exits, is
//!   not ready in time, or fails the app's readiness check ([`Graceful::ready_when`]) or its
//!   self-probe ([`Graceful::self_probe`]) is killed and reaped; the old process serves on as
//!   if nothing happened.
//! - **A deploy never takes the service down.** A new build is on probation
//!   ([`Graceful::probation`], 10 s by default): the old process stands by with its copy of the
//!   listeners, and if the new one dies, answers too many 5xx ([`ErrorRate`]) or fails the
//!   app's [`Graceful::probation_check`], the old one takes the listeners back within
//!   milliseconds and says so (log, pid file, `MAINPID=`, `STATUS=rolled back: ...`,
//!   [`Upgraded::probation`], [`Event`]). A bad deploy costs at most the requests the bad build
//!   itself answered.
//! - [`Graceful::keeper`] turns on keeper mode for foreground supervisors and containers: the
//!   first process stays as a thin keeper holding the sockets and runs each generation as its
//!   child, so the supervised pid never changes across upgrades and crashes. It holds the last
//!   good build open, so a broken deploy, or a build that crash-loops, is rolled back to it
//!   even after its file on disk was replaced.
//!
//! # Example
//!
//! ```no_run
//! use actix_graceful::GracefulBind as _;
//! use actix_web::{web, App, HttpServer};
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let server = HttpServer::new(|| {
//!         App::new()
//!             .wrap(actix_graceful::LameDuck)
//!             .route("/", web::get().to(|| async { "hello" }))
//!     })
//!     .graceful_bind("127.0.0.1:8080")?;
//!     actix_graceful::run(server).await
//! }
//! ```
//!
//! Then `kill -USR2 <pid>` upgrades to whatever binary now sits at the started path.
//!
//! # Deployment
//!
//! - systemd: `READY=1`, `RELOADING=1`, `MAINPID=`, and `STATUS=` with the generation.
//!   Recommended: keeper mode ([`Graceful::keeper`]), so the main pid never changes and
//!   `systemctl stop` waits for the drain. A plain handoff moves `MAINPID=` to a process that
//!   is not systemd's child, which systemd neither waits for on stop nor hears without
//!   `NotifyAccess=all`: its unit needs `NotifyAccess=all` and an `ExecStop=` that waits. The
//!   units in the repository's `examples/systemd/` are the ones the tests run under a real
//!   systemd, with what each systemd version needs. [`Graceful::fd_store`] keeps the sockets
//!   in systemd's fd store across crashes and restarts.
//! - Supervisors: [`Graceful::pid_file`] (atomic, follows the serving process), or
//!   [`Graceful::keeper`] when the supervised pid must not change.
//! - Kubernetes and load balancers: [`Graceful::pre_stop_delay`] keeps serving after SIGTERM
//!   while [`readiness`] (mount it as the readiness probe) answers 503.
//! - Configuration changes: [`Graceful::successor_env_file`] is re-read at every upgrade and
//!   set over the successor's environment.
//! - Operators' knobs: [`Graceful::with_env`] applies `ACTIX_GRACEFUL_UPGRADE_TIMEOUT`,
//!   `_DRAIN_TIMEOUT`, `_SHUTDOWN_TIMEOUT`, `_PRE_STOP_DELAY`, `_PID_FILE` and `_KEEPER_MODE`
//!   over the builder's values, and [`Graceful::with_settings`] the same [`Settings`] from the
//!   application's own configuration (`serde` feature).
//!
//! # Long-lived connections
//!
//! Streams, server-sent events and WebSockets are not moved by `Connection: close`. Await
//! [`draining()`] (or take a [`Draining`] extractor) in the handler and end the stream when it
//! resolves: the client reconnects (SSE: with `Last-Event-ID`) and lands on the successor.
//! Such a connection holds the old process until [`Graceful::drain_timeout`]; connections
//! still open when [`Graceful::shutdown_timeout`] ends after that are closed by force.
//!
//! HTTP/2: stock actix-http's HTTP/2 dispatcher (3.20, `h2/dispatcher.rs`) never sends GOAWAY
//! on a graceful stop. An open HTTP/2 connection then stays with the old process, which serves
//! its new streams too, until the client closes it or the shutdown timeout drops it (without
//! GOAWAY; the streams in flight fail). The repository's `patches/` holds the actix-http change
//! that sends it, with the recipe to build with it (`[patch.crates-io]`): the drain does not
//! wait for HTTP/2 connections, and the graceful stop that follows it (once the probation
//! passed) moves them over with their GOAWAY, losing no stream. Without the patch, keep the
//! shutdown timeout short when clients hold HTTP/2 connections open.
//!
//! # Cargo features
//!
//! None is on by default.
//!
//! - `rustls-0_23`: `GracefulBind::graceful_bind_rustls` (actix-web's `rustls-0_23`; the app
//!   picks the crypto provider, e.g. rustls' `ring`).
//! - `openssl`: `GracefulBind::graceful_bind_openssl` (actix-web's `openssl`; system OpenSSL).
//! - `http2`: `h2` by ALPN on the TLS binders, and `GracefulBind::graceful_bind_auto_h2c`.
//! - `serde`: `Deserialize` for [`Settings`] (durations as text: `"30s"`, `"500ms"`).
//!
//! Each process builds its TLS configuration itself: only the listening socket crosses an
//! upgrade, so upgrading is also how a renewed certificate goes live.
//!
//! # Platform support
//! Unix, Linux first: `close_range`, `execveat` (keeper mode's rollback to a held build),
//! `/proc` (counting client connections, the self-probe's hidden listeners), abstract
//! `NOTIFY_SOCKET` names. [`run`], [`Graceful`] and everything about upgrades exist on Unix
//! only; elsewhere `graceful_bind` binds fresh TCP listeners as actix's `bind` does.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod addr;
mod bind;
mod drain;
mod error;
mod events;
mod glue;
#[cfg(unix)]
mod process;
#[cfg(unix)]
mod protocol;
#[cfg(unix)]
mod server;
mod settings;

pub use addr::ListenAddr;
pub use bind::{Binding, GracefulBind, Listener};
pub use drain::{draining, readiness, state, Draining, LameDuck, State};
pub use error::{BindError, ExitStatus, UpgradeError};
pub use events::Event;
#[cfg(unix)]
pub use process::inherit::{close_unclaimed, register_fd, take_fd, take_udp};
#[cfg(unix)]
pub use process::keeper::KeeperExit;
#[cfg(unix)]
pub use process::registry::{listeners, ListenerInfo};
#[cfg(unix)]
pub use server::{run, ErrorRate, Graceful, UpgradeHandle, Upgraded};
pub use settings::Settings;

/// The README's Rust code blocks, compiled by `cargo test --doc` so that its copy of the usage
/// cannot drift from the API (every block not marked `sh`, `yaml`, ... is Rust to rustdoc).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
