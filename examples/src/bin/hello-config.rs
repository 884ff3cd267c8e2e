//! `hello` configured where applications keep their configuration: actix-graceful's settings
//! from the app's own configuration file (JSON here; any serde format, `config` or `figment`
//! works the same), then the `ACTIX_GRACEFUL_*` environment variables, which win where set.
//!
//! ```text
//! cargo run -p examples --bin hello-config -- --config examples/hello-config.json
//! ACTIX_GRACEFUL_PRE_STOP_DELAY=5s cargo run -p examples --bin hello-config -- --config examples/hello-config.json
//! ACTIX_GRACEFUL_DRAIN_TIMEOUT=5x cargo run -p examples --bin hello-config   # error, exit status 1
//! ```
//!
//! The file (every key optional):
//!
//! ```json
//! { "listen": "127.0.0.1:8080",
//!   "graceful": { "upgrade_timeout": "10s", "drain_timeout": "500ms", "shutdown_timeout": "30s",
//!                 "pre_stop_delay": "0s", "pid_file": "/tmp/hello.pid", "keeper_mode": false } }
//! ```
//!
//! Routes: `/` (`pid=<pid>`), `/ready` (503 from SIGTERM on), `/sleep?ms=N`. Options:
//! `--config PATH`, `--listen ADDR` (over the file's) (`--help`). Prints
//! `hello pid=<pid> serving <addr> (bound|inherited)` once bound, then the settings in effect.

use std::{path::PathBuf, process::ExitCode};

use actix_graceful::{Graceful, GracefulBind as _, Settings};
use actix_web::{web, App, HttpServer};
use serde::Deserialize;

use examples::routes::{reply, sleep};

/// The application's own configuration, with actix-graceful's settings as one part of it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AppConfig {
    listen: Option<String>,
    graceful: Settings,
}

/// `hello` with actix-graceful's settings from its configuration file, then `ACTIX_GRACEFUL_*`.
#[derive(Debug, clap::Parser)]
#[command(name = "hello-config", args_override_self = true)]
struct Options {
    /// The configuration file (JSON; every key optional)
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The address, over the file's `listen` (default 127.0.0.1:8080)
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

/// The configuration file, or the defaults without one.
fn load(path: Option<&PathBuf>) -> std::io::Result<AppConfig> {
    let Some(path) = path else {
        return Ok(AppConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: {e}", path.display()),
        )
    })
}

async fn serve(opts: Options) -> std::io::Result<()> {
    let config = load(opts.config.as_ref())?;
    // Code's defaults, then the file, then the environment.
    let graceful = Graceful::new()
        .shutdown_timeout(std::time::Duration::from_secs(10))
        .with_settings(&config.graceful)
        .with_env()?;
    let listen = opts
        .listen
        .or(config.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let server = HttpServer::new(|| {
        App::new()
            .wrap(actix_graceful::LameDuck)
            .route("/", web::get().to(|| async { reply() }))
            .route("/ready", web::get().to(actix_graceful::readiness))
            .route("/sleep", web::get().to(sleep))
    })
    .workers(2)
    .graceful_bind(listen.as_str())?;
    examples::print_serving()?;
    println!(
        "settings: file {:?}, environment {:?}",
        config.graceful,
        Settings::from_env()?
    );
    graceful.run(server).await
}

fn main() -> ExitCode {
    examples::main("hello-config", serve)
}
