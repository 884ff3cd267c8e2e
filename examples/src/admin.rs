//! `POST /admin/upgrade` (`hello --admin`): a live upgrade through an
//! `actix_graceful::UpgradeHandle`, answered with its outcome: 200 `upgraded to pid=N` once the
//! successor serves, 409 `upgrade failed: ...` otherwise.
//!
//! Whoever reaches the route can replace the running server, so it is served only where an
//! operator connects: on the listener named `admin` when any listener has a name (systemd's
//! `FileDescriptorName=`, `--listen admin=ADDR`), else on the loopback and Unix-socket
//! listeners. Elsewhere it answers 404, as for a path the app does not have. What counts is the
//! listener that accepted the connection, not the client's address: a client of a public
//! listener is refused even when it connects from this host. Behind a reverse proxy on the same
//! host, a loopback listener is reachable through the proxy: name an `admin` listener there.

use std::{any::Any, path::PathBuf};

use actix_graceful::{ListenAddr, UpgradeHandle};
use actix_web::{dev::Extensions, rt::net::UnixStream, web, HttpRequest, HttpResponse};

/// The route, when `handle` is given (`App::configure`).
pub fn routes(handle: Option<UpgradeHandle>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        if let Some(handle) = handle {
            cfg.app_data(web::Data::new(handle))
                .route("/admin/upgrade", web::post().to(upgrade));
        }
    }
}

/// `HttpServer::on_connect`: remembers the path of the Unix socket a connection came in on
/// (actix gives a Unix listener's requests a placeholder TCP address, 127.0.0.1:8080).
pub fn on_connect(conn: &dyn Any, data: &mut Extensions) {
    if let Some(path) = conn.downcast_ref::<UnixStream>().and_then(unix_path) {
        data.insert(UnixListener(path));
    }
}

/// The path of the Unix socket a connection came in on, as `actix_graceful::listeners()`
/// shows it (`@name` in the abstract namespace).
#[derive(Clone, Debug)]
struct UnixListener(PathBuf);

fn unix_path(stream: &UnixStream) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt as _;
    let addr = socket2::SockRef::from(stream).local_addr().ok()?;
    match addr.as_pathname() {
        Some(path) => Some(path.to_owned()),
        None => {
            let name = addr.as_abstract_namespace()?;
            Some(std::ffi::OsString::from_vec([b"@", name].concat()).into())
        }
    }
}

/// Upgrades through the handle; answers with the successor's pid or why there is none. 404
/// on a listener that does not serve the route ([`serves_admin`]).
async fn upgrade(req: HttpRequest, handle: web::Data<UpgradeHandle>) -> HttpResponse {
    let here = match req.conn_data::<UnixListener>() {
        Some(UnixListener(path)) => ListenAddr::Unix(path.clone()),
        None => ListenAddr::Tcp(req.app_config().local_addr()),
    };
    let listeners = actix_graceful::listeners();
    let named: Vec<_> = listeners.iter().map(|l| (l.name(), l.addr())).collect();
    if !serves_admin(&named, &here) {
        return HttpResponse::NotFound().finish();
    }
    match handle.upgrade().await {
        Ok(upgraded) => HttpResponse::Ok().body(format!("upgraded to pid={}\n", upgraded.pid())),
        Err(err) => HttpResponse::Conflict().body(format!("upgrade failed: {err}\n")),
    }
}

/// Whether the listener at `here` serves the route, given the name and address of every
/// listener: with any name, only a listener named `admin`; without, a loopback or Unix one.
pub fn serves_admin(listeners: &[(Option<&str>, &ListenAddr)], here: &ListenAddr) -> bool {
    if listeners.iter().any(|(name, _)| name.is_some()) {
        return listeners
            .iter()
            .any(|(name, addr)| *name == Some("admin") && *addr == here);
    }
    match here {
        ListenAddr::Tcp(addr) => addr.ip().to_canonical().is_loopback(),
        ListenAddr::Unix(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `unix:PATH` or a TCP address, as the start-up line prints them.
    fn addr(s: &str) -> ListenAddr {
        match s.strip_prefix("unix:") {
            Some(path) => ListenAddr::Unix(path.into()),
            None => ListenAddr::Tcp(s.parse().expect("a TCP address")),
        }
    }

    #[test]
    fn with_names_only_the_admin_listener_serves_it() {
        let (public, admin) = (addr("127.0.0.1:8080"), addr("127.0.0.1:8081"));
        let uds = addr("unix:/run/hello/admin.sock");
        let named = [(Some("public"), &public), (Some("admin"), &admin)];
        assert!(serves_admin(&named, &admin));
        assert!(
            !serves_admin(&named, &public),
            "loopback, but not named admin"
        );
        let on_unix = [
            (Some("public"), &public),
            (Some("admin"), &uds),
            (None, &admin),
        ];
        assert!(serves_admin(&on_unix, &uds));
        assert!(
            !serves_admin(&on_unix, &admin),
            "unnamed, beside named ones"
        );
    }

    #[test]
    fn without_names_loopback_and_unix_listeners_serve_it() {
        let all = addr("0.0.0.0:8080");
        let v6 = addr("[::1]:8080");
        let lo = addr("127.0.0.2:9090");
        let uds = addr("unix:@hello");
        let unnamed = [(None, &all), (None, &v6), (None, &lo), (None, &uds)];
        assert!(!serves_admin(&unnamed, &all));
        assert!(!serves_admin(&unnamed, &addr("[::]:8080")));
        assert!(!serves_admin(&unnamed, &addr("192.0.2.1:8080")));
        assert!(serves_admin(&unnamed, &v6));
        assert!(serves_admin(&unnamed, &lo));
        assert!(serves_admin(&unnamed, &addr("[::ffff:127.0.0.1]:8080")));
        assert!(serves_admin(&unnamed, &uds));
    }
}
