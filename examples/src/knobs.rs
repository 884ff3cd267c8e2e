//! The knobs that make `hello` a bad build, as a deploy would install one (the good binary
//! behind a wrapper script that sets one and `exec`s it): for the deploy tests and the
//! benchmark's bad-build runs. Read once, at the first use.
//!
//! - `HELLO_UNHEALTHY=1`: `/health` answers 503 and the readiness check fails (a build that
//!   cannot reach what it needs).
//! - `HELLO_FAIL_STATUS=CODE`: every `/` answers CODE (a build that answers 500s).
//! - `HELLO_WARMUP_MS=N`: the readiness check passes only after N ms (a cache to warm).

use std::{sync::OnceLock, time::Duration};

use actix_web::{http::StatusCode, HttpResponse};

use crate::routes;

/// The knobs, from the environment.
#[derive(Debug, Default)]
struct Knobs {
    unhealthy: bool,
    fail_status: Option<StatusCode>,
    warmup: Duration,
}

fn knobs() -> &'static Knobs {
    static KNOBS: OnceLock<Knobs> = OnceLock::new();
    KNOBS.get_or_init(|| {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        Knobs {
            unhealthy: var("HELLO_UNHEALTHY").is_some_and(|v| v != "0"),
            fail_status: var("HELLO_FAIL_STATUS")
                .and_then(|v| v.parse::<u16>().ok())
                .and_then(|code| StatusCode::from_u16(code).ok()),
            warmup: Duration::from_millis(
                var("HELLO_WARMUP_MS")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
        }
    })
}

/// `hello`'s readiness check (`Graceful::ready_when`): waits `HELLO_WARMUP_MS`, then fails with
/// `HELLO_UNHEALTHY`, as a check of the app's own dependencies would.
///
/// # Errors
/// `HELLO_UNHEALTHY` is set.
pub async fn readiness_check() -> Result<(), String> {
    let knobs = knobs();
    if !knobs.warmup.is_zero() {
        actix_web::rt::time::sleep(knobs.warmup).await;
    }
    if knobs.unhealthy {
        return Err("HELLO_UNHEALTHY is set: this build cannot reach what it needs".into());
    }
    Ok(())
}

/// `GET /`: [`routes::reply`], or the status `HELLO_FAIL_STATUS` says.
pub async fn root() -> HttpResponse {
    match knobs().fail_status {
        Some(status) => HttpResponse::build(status)
            .insert_header(("X-Pid", std::process::id().to_string()))
            .body(format!(
                "HELLO_FAIL_STATUS={} pid={}\n",
                status.as_u16(),
                std::process::id()
            )),
        None => routes::reply(),
    }
}

/// `GET /health`: [`routes::health`], or 503 with `HELLO_UNHEALTHY`.
pub async fn health() -> HttpResponse {
    if knobs().unhealthy {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("X-Pid", std::process::id().to_string()))
            .body("unhealthy (HELLO_UNHEALTHY)\n");
    }
    routes::health().await
}
