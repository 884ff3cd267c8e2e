//! A server that knows nothing of actix-graceful: it takes its socket with the standard
//! socket-activation protocol through the `listenfd` crate, as any systemd-ready app does.
//! The integration tests upgrade `hello` to it to prove the handoff speaks the standard.

use actix_web::{web, App, HttpResponse, HttpServer};

fn reply() -> HttpResponse {
    let pid = std::process::id();
    HttpResponse::Ok()
        .insert_header(("X-Pid", pid.to_string()))
        .body(format!("pid={pid}\n"))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut fds = listenfd::ListenFd::from_env();
    let server = HttpServer::new(|| {
        App::new()
            .route("/", web::get().to(|| async { reply() }))
            .route("/health", web::get().to(|| async { reply() }))
    })
    .workers(2);
    let server = match fds.take_tcp_listener(0)? {
        Some(listener) => {
            listener.set_nonblocking(true)?;
            println!(
                "plain-listenfd pid={} serving {} (inherited)",
                std::process::id(),
                listener.local_addr()?
            );
            server.listen(listener)?
        }
        None => {
            println!(
                "plain-listenfd pid={} serving 127.0.0.1:8080 (bound)",
                std::process::id()
            );
            server.bind("127.0.0.1:8080")?
        }
    };
    server.run().await
}
