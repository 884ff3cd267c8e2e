//! The handlers the examples share, so that the benchmark compares the serving and not the
//! apps: `/` and `/sleep?ms=N` answer `pid=<pid>` with an `X-Pid` header, `/health` `ok`,
//! `POST /echo` the body's length; and `hello`'s routes, [`hello`].

use std::{collections::HashMap, time::Duration};

use actix_web::{web, HttpResponse};

/// `hello`'s routes (and `hello-fixture`'s): `/` ([`reply`], or `HELLO_FAIL_STATUS`'s status:
/// [`crate::knobs`]), `/sleep?ms=N` ([`sleep`]), `POST /echo` ([`echo`]), `/health` ([`health`],
/// 200 while the process answers, 503 with `HELLO_UNHEALTHY`), `/ready` (the readiness probe,
/// `actix_graceful::readiness`: 503 from SIGTERM on) and `/env?name=X` ([`env`]).
pub fn hello(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(crate::knobs::root))
        .route("/sleep", web::get().to(sleep))
        .route("/echo", web::post().to(echo))
        .route("/health", web::get().to(crate::knobs::health))
        .route("/ready", web::get().to(actix_graceful::readiness))
        .route("/env", web::get().to(env));
}

/// `pid=<pid>`, header `X-Pid`.
pub fn reply() -> HttpResponse {
    let pid = std::process::id();
    HttpResponse::Ok()
        .insert_header(("X-Pid", pid.to_string()))
        .body(format!("pid={pid}\n"))
}

/// [`reply`] after `ms` milliseconds (at most 10 minutes).
pub async fn sleep(query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let ms = query.get("ms").and_then(|v| v.parse().ok()).unwrap_or(0u64);
    actix_web::rt::time::sleep(Duration::from_millis(ms.min(600_000))).await;
    reply()
}

/// `POST /echo`: `len=<body bytes> pid=<pid>`, header `X-Pid`; the non-idempotent request a
/// reverse proxy does not retry on a dead pooled connection.
pub async fn echo(body: web::Bytes) -> HttpResponse {
    let pid = std::process::id();
    HttpResponse::Ok()
        .insert_header(("X-Pid", pid.to_string()))
        .body(format!("len={} pid={pid}\n", body.len()))
}

/// `ok`, header `X-Pid`.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-Pid", std::process::id().to_string()))
        .body("ok\n")
}

/// `/env?name=X`: the value of the environment variable X (what a successor started with),
/// 404 when unset; header `X-Pid`.
pub async fn env(query: web::Query<HashMap<String, String>>) -> HttpResponse {
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
