//! What `hello` and `hello-plain` share: the handlers, so the benchmark compares the serving
//! and not the apps (`/` and `/sleep?ms=N` answer `pid=<pid>` with an `X-Pid` header,
//! `/health` `ok`), and the exit status.

use std::{process::ExitCode, time::Duration};

use actix_web::{web, HttpResponse};

/// `pid=<pid>`, header `X-Pid`.
pub fn reply() -> HttpResponse {
    let pid = std::process::id();
    HttpResponse::Ok()
        .insert_header(("X-Pid", pid.to_string()))
        .body(format!("pid={pid}\n"))
}

/// [`reply`] after `ms` milliseconds (at most 10 minutes).
pub async fn sleep(query: web::Query<std::collections::HashMap<String, String>>) -> HttpResponse {
    let ms = query.get("ms").and_then(|v| v.parse().ok()).unwrap_or(0u64);
    actix_web::rt::time::sleep(Duration::from_millis(ms.min(600_000))).await;
    reply()
}

/// `ok`, header `X-Pid`.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-Pid", std::process::id().to_string()))
        .body("ok\n")
}

/// Success, or the error on stderr prefixed with `name` and a failure status.
pub fn exit(name: &str, result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: error: {err}");
            ExitCode::FAILURE
        }
    }
}
