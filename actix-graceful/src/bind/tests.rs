//! The binder's tests: names, registration, reclaiming a dropped server's socket, put-back
//! after a failed multi-address bind, abstract and stale Unix sockets.

use std::{io, net::SocketAddr};

use crate::{Binding, GracefulBind as _, ListenAddr, Listener};

#[test]
fn a_name_systemd_would_reject_is_refused_before_binding() {
    let _registry = crate::process::registry::one_test_at_a_time();
    for bad in ["api:v2", "tab\there", &"x".repeat(256)] {
        let err = Binding::tcp("127.0.0.1:0").name(bad).bind().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(err.to_string().contains("LISTEN_FDNAMES"), "{err}");
    }
}

#[test]
fn fresh_tcp_reports_the_real_port_and_registers_it() {
    let _registry = crate::process::registry::one_test_at_a_time();
    let listeners = Binding::tcp("127.0.0.1:0").name("itest").bind().unwrap();
    let Listener::Tcp(l) = &listeners[0] else {
        panic!("not TCP")
    };
    let addr = l.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    let info = crate::listeners()
        .into_iter()
        .find(|i| i.addr() == &ListenAddr::Tcp(addr))
        .expect("registered");
    assert_eq!(info.name(), Some("itest"));
    assert!(!info.is_inherited());
}

/// The socket behind a descriptor, as `/proc` names it (`socket:[inode]`).
fn socket_of(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Issue 12, 7b: a dropped `HttpServer`'s listener no longer goes to a successor, and a
/// rebuilt server on the same address gets the very same socket back (before: the dropped
/// one stayed in the handoff set, and the rebuild failed with "address in use" against the
/// registry's own duplicate).
#[test]
fn a_dropped_server_is_not_handed_over_and_a_rebuilt_one_gets_its_socket_back() {
    let _registry = crate::process::registry::one_test_at_a_time();
    use actix_web::{App, HttpServer};
    let name = "rebuilt-server";
    let server = HttpServer::new(App::new)
        .graceful_bind(Binding::tcp("127.0.0.1:0").name(name))
        .unwrap();
    let ours = |name: &str| {
        crate::process::registry::handoff_set()
            .into_iter()
            .filter(|(_, n)| n == name)
            .map(|(fd, _)| socket_of(fd))
            .collect::<Vec<_>>()
    };
    let addr = crate::listeners()
        .into_iter()
        .find(|l| l.name() == Some(name))
        .map(|l| l.addr().clone())
        .unwrap();
    let before = ours(name);
    assert_eq!(before.len(), 1);
    drop(server);
    assert!(
        crate::listeners().iter().all(|l| l.name() != Some(name)),
        "dropped: no longer listed"
    );

    let other = HttpServer::new(App::new)
        .graceful_bind("127.0.0.1:0")
        .unwrap();
    drop(other); // a dropped server with nothing to take back
    let ListenAddr::Tcp(sa) = addr else {
        panic!("tcp")
    };
    let server = HttpServer::new(App::new).graceful_bind(Binding::tcp(sa).name(name));
    let server = server.expect("the rebuilt server binds the same address");
    assert_eq!(ours(name), before, "the same socket, taken back");
    drop(server);
    assert_eq!(ours(name), Vec::<String>::new(), "dropped: not handed over");
    // Pruned: no descriptor of this process holds the socket any more, so the port is free
    // once no one else holds it. (Binding the port to show it would race with a process
    // another test's thread has just forked: it holds a copy until its `exec`.)
    let held: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| socket_of(*fd) == before[0])
        .collect();
    assert_eq!(held, Vec::<i32>::new(), "pruned: {} still open", before[0]);
}

/// Issue 12, 7a (child side): run by the parent with fd 3 = a listener at 127.0.0.1:P
/// (`LISTEN_FDS=1`) while it holds 127.0.0.2:P itself.
#[test]
fn child_multi_address_bind_fails_after_claiming() {
    let Ok(port) = std::env::var("AG_7A_PORT") else {
        return;
    };
    let port: u16 = port.parse().unwrap();
    let a1: SocketAddr = ([127, 0, 0, 1], port).into();
    let a2: SocketAddr = ([127, 0, 0, 2], port).into();
    let err = Binding::tcp(&[a1, a2][..]).bind().unwrap_err();
    println!("\nAG7A first {:?}", err.kind());
    let fallback = Binding::tcp(a1).bind();
    match fallback {
        Ok(ls) => {
            let Listener::Tcp(l) = &ls[0] else {
                panic!("tcp")
            };
            let info = crate::listeners();
            println!(
                "AG7A fallback {} inherited={}",
                socket_of(std::os::fd::AsRawFd::as_raw_fd(l)),
                info.iter().any(|i| i.is_inherited())
            );
        }
        Err(err) => println!("AG7A fallback error {err}"),
    }
}

/// Issue 12, 7a: an address resolving to several (127.0.0.1:P, 127.0.0.2:P), the first
/// inherited, the second in use: the call fails, and the inherited socket is put back, so
/// the app's fallback bind of 127.0.0.1:P gets that same socket (before: it was closed, and
/// the fallback could only bind afresh or, with the socket still held elsewhere, fail).
#[cfg(target_os = "linux")]
#[test]
fn a_failed_multi_address_bind_puts_the_inherited_socket_back() {
    if std::env::var_os("AG_7A_PORT").is_some() {
        return;
    }
    let inherited = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = inherited.local_addr().unwrap().port();
    let _blocker = std::net::TcpListener::bind(("127.0.0.2", port)).unwrap();
    let want = socket_of(std::os::fd::AsRawFd::as_raw_fd(&inherited));
    let port_text = port.to_string();
    let out = crate::process::inherit::tests::child::run(
        "bind::tests::child_multi_address_bind_fails_after_claiming",
        &[("LISTEN_FDS", "1"), ("AG_7A_PORT", &port_text)],
        Some(("", "")),
        &[std::os::fd::AsRawFd::as_raw_fd(&inherited)],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |tag: &str| {
        text.lines()
            .find_map(|l| l.split_once(tag).map(|(_, r)| r.to_owned()))
            .unwrap_or_else(|| panic!("no {tag} in\n{text}"))
    };
    assert_eq!(line("AG7A first "), "AddrInUse");
    assert_eq!(
        line("AG7A fallback "),
        format!("{want} inherited=true"),
        "the fallback gets the inherited socket"
    );
}

/// Issue 12, 7d: `@name` is Linux's abstract namespace, as in `NOTIFY_SOCKET` and
/// `ListenAddr`: no file appears, and the address reads back as `@name`.
#[cfg(target_os = "linux")]
#[test]
fn an_at_name_binds_the_abstract_namespace() {
    let _registry = crate::process::registry::one_test_at_a_time();
    let name = format!("@ag-bind-test-{}", std::process::id());
    let cwd_file = std::path::Path::new(&name);
    let listeners = Binding::uds(&name).bind().unwrap();
    let Listener::Unix(l) = &listeners[0] else {
        panic!("unix")
    };
    assert!(
        !cwd_file.exists(),
        "no file named {name} in the working directory"
    );
    let addr = l.local_addr().unwrap();
    use std::os::linux::net::SocketAddrExt as _;
    assert_eq!(
        addr.as_abstract_name(),
        Some(&name.as_bytes()[1..]),
        "{addr:?}"
    );
    assert!(crate::listeners()
        .iter()
        .any(|i| i.addr() == &ListenAddr::Unix(name.clone().into())));
    let err = Binding::uds(&name).bind().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
}

#[test]
fn a_live_unix_socket_is_never_replaced_but_a_stale_one_is() {
    let _registry = crate::process::registry::one_test_at_a_time();
    let dir = std::env::temp_dir().join(format!("ag-bind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("live.sock");
    let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let err = Binding::uds(&path).bind().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    drop(live);
    std::fs::remove_file(&path).unwrap();
    left_by_a_dead_process(&path);
    assert_eq!(Binding::uds(&path).bind().unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Leaves a socket file at `path` as a crashed server does: a child binds and listens on it,
/// then dies. Made in a child because a socket made here may live on for a while in a
/// process another test's thread has just forked (close-on-exec acts only at its `exec`), and
/// the path then rightly looks live: the binder's probe connects (CI, stop 22).
fn left_by_a_dead_process(path: &std::path::Path) {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType};
    use nix::sys::wait::{waitpid, WaitStatus};
    let addr = nix::sys::socket::UnixAddr::new(path).unwrap();
    // SAFETY: between fork and _exit the child makes only async-signal-safe calls (socket,
    // bind, listen, _exit) on `addr`, made before the fork; it allocates nothing and unwinds
    // nowhere (every result is ignored, and `_exit` ends it in every case).
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let flags = SockFlag::empty();
            if let Ok(fd) = socket(AddressFamily::Unix, SockType::Stream, flags, None) {
                let _ = bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr);
                let _ = listen(&fd, Backlog::MAXCONN);
            }
            // SAFETY: `_exit` is async-signal-safe and skips the parent's atexit handlers.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = waitpid(child, None).unwrap();
            assert_eq!(status, WaitStatus::Exited(child, 0));
        }
    }
    assert!(path.exists(), "the dead child's socket file stays");
}

/// Every form `ToSocketAddrs` takes by value converts into a TCP `Binding`, so
/// `graceful_bind(addr)` compiles for each of them.
#[test]
fn every_address_form_converts_into_a_tcp_binding() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    let v4 = Ipv4Addr::LOCALHOST;
    let sa = SocketAddr::from((v4, 8080));
    let text = String::from("127.0.0.1:8080");
    let forms: Vec<Binding> = vec![
        "127.0.0.1:8080".into(),
        text.clone().into(),
        (&text).into(),
        ("127.0.0.1", 8080).into(),
        (text.clone().replace(":8080", ""), 8080).into(),
        sa.into(),
        SocketAddrV4::new(v4, 8080).into(),
        SocketAddrV6::new(Ipv6Addr::LOCALHOST, 8080, 0, 0).into(),
        (IpAddr::V4(v4), 8080).into(),
        (v4, 8080).into(),
        (Ipv6Addr::LOCALHOST, 8080).into(),
        (&[sa, sa][..]).into(),
    ];
    for b in &forms {
        assert!(!b.is_unix(), "{b:?}");
        assert!(b.address_count() >= 1, "{b:?}");
    }
    assert_eq!(forms[forms.len() - 1].address_count(), 2);
}
