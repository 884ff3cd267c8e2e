//! `hello` under the real systemd socket-activation protocol.
//!
//! The launcher is the real `systemd-socket-activate` (it opens the sockets, waits for the
//! first connection, then execs the program in place with LISTEN_FDS/LISTEN_PID/
//! LISTEN_FDNAMES; so hello's pid is the launcher's pid). Bad inputs are produced by running
//! hello directly with a prepared fd 3 (`pre_exec` + `dup2`).

use integration_tests::activation::{socket_activate, spawn_with_fds};
use integration_tests::hello::{parse_startup, wait_startup, Listener, Startup};
use integration_tests::http::get_once;
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{free_port, hello_bin, procfs, Client, ServerFamily, Target, TempDir};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

fn tcp(port: u16) -> Target {
    Target::Tcp(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Run hello under systemd-socket-activate (see [`socket_activate`]).
fn activate(listen: &[String], extra: &[String], args: &[String]) -> ServerFamily {
    socket_activate(listen, extra, &hello_bin(), args)
}

fn startup_of(fam: &ServerFamily) -> Startup {
    wait_startup(fam, 0, T)
        .unwrap_or_else(|| panic!("no startup line from hello\n{}", fam.output_tail(30)))
}

fn listener(addr: String, inherited: bool) -> Listener {
    Listener { addr, inherited }
}

/// Exactly one listening TCP socket on `port`, and `pid` holds it.
fn assert_single_tcp_listener_held_by(port: u16, pid: i32) {
    let l = procfs::tcp_listen_inodes(port);
    assert_eq!(l.len(), 1, "listening sockets on port {port}: {l:?}");
    let mine = procfs::socket_inodes(pid);
    assert!(
        mine.contains(&l[0]),
        "the socket listening on {port} (inode {}) is not among hello's fds {mine:?}",
        l[0]
    );
}

#[test]
fn activated_tcp_socket_is_inherited() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let fam = activate(
        std::slice::from_ref(&addr),
        &[],
        &["--listen".into(), addr.clone()],
    );
    // The launcher execs hello on the first connection; this request waits in the backlog.
    let r = get_once(&tcp(port), "/", T).expect("first request");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.pid,
        Some(fam.root()),
        "hello should run as the launcher's pid (exec)"
    );
    assert_eq!(r.text().trim_end(), format!("pid={}", fam.root()));
    let st = startup_of(&fam);
    println!("startup: {}", st.line);
    assert_eq!(st.pid, fam.root());
    assert_eq!(st.listeners, vec![listener(addr, true)]);
    assert_single_tcp_listener_held_by(port, fam.root());
    // Keep-alive on the inherited socket.
    let mut c = Client::new(tcp(port));
    for _ in 0..5 {
        let r = c.get("/health").expect("health");
        assert_eq!((r.status, r.text().trim_end()), (200, "ok"));
        assert!(!r.close);
    }
    assert_eq!(c.connections, 1);
    assert_eq!(fam.stdout.count_containing(0, "hello pid="), 1);
}

#[test]
fn activated_unix_socket_is_inherited() {
    let dir = TempDir::new("sa-unix");
    let path = dir.join("hello.sock");
    let fam = activate(
        &[path.display().to_string()],
        &[],
        &["--listen".into(), format!("unix:{}", path.display())],
    );
    let target = Target::Unix(path.clone());
    let r = get_once(&target, "/", T).expect("first request over the Unix socket");
    assert_eq!(r.status, 200);
    assert_eq!(r.pid, Some(fam.root()));
    let st = startup_of(&fam);
    println!("startup: {}", st.line);
    assert_eq!(
        st.listeners,
        vec![listener(format!("unix:{}", path.display()), true)]
    );
    let l = procfs::unix_listen_inodes(&path);
    assert_eq!(
        l.len(),
        1,
        "listening Unix sockets at {}: {l:?}",
        path.display()
    );
    assert!(procfs::socket_inodes(fam.root()).contains(&l[0]));
}

#[test]
fn activated_named_sockets_are_matched_by_name() {
    let (p1, p2) = (free_port(), free_port());
    let (a1, a2) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    // fd 3 = public (p1), fd 4 = admin (p2); hello lists them in the other order.
    let fam = activate(
        &[a1.clone(), a2.clone()],
        &["--fdname=public:admin".into()],
        &[
            "--listen".into(),
            format!("admin={a2}"),
            "--listen".into(),
            format!("public={a1}"),
        ],
    );
    let r = get_once(&tcp(p1), "/", T).expect("request on public");
    assert_eq!((r.status, r.pid), (200, Some(fam.root())));
    let r = get_once(&tcp(p2), "/", T).expect("request on admin");
    assert_eq!((r.status, r.pid), (200, Some(fam.root())));
    let st = startup_of(&fam);
    println!("startup: {}", st.line);
    let mut got = st.listeners.clone();
    got.sort_by(|a, b| a.addr.cmp(&b.addr));
    let mut want = vec![listener(a1, true), listener(a2, true)];
    want.sort_by(|a, b| a.addr.cmp(&b.addr));
    assert_eq!(got, want);
    assert_single_tcp_listener_held_by(p1, fam.root());
    assert_single_tcp_listener_held_by(p2, fam.root());
}

/// `NAME=ADDR` takes the socket systemd named NAME, even when it is bound to another
/// address than ADDR (the unit file is the authority): the names decide, not the addresses.
#[test]
fn activated_name_wins_over_address() {
    let (p1, p2, p3, p4) = (free_port(), free_port(), free_port(), free_port());
    let (a1, a2) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let fam = activate(
        &[a1.clone(), a2.clone()],
        &["--fdname=public:admin".into()],
        &[
            "--listen".into(),
            format!("public=127.0.0.1:{p3}"),
            "--listen".into(),
            format!("admin=127.0.0.1:{p4}"),
        ],
    );
    let r = get_once(&tcp(p1), "/", T).expect("request on the socket named public");
    assert_eq!((r.status, r.pid), (200, Some(fam.root())));
    let st = startup_of(&fam);
    println!("startup: {}", st.line);
    assert_eq!(
        st.listeners,
        vec![listener(a1, true), listener(a2, true)],
        "the sockets named public/admin should be used as they are"
    );
    assert!(
        procfs::tcp_listen_inodes(p3).is_empty(),
        "nothing should bind {p3}"
    );
    assert!(
        procfs::tcp_listen_inodes(p4).is_empty(),
        "nothing should bind {p4}"
    );
}

/// LISTEN_PID names another process: the fds are not ours; bind fresh and serve.
#[test]
fn activated_with_foreign_listen_pid_binds_fresh() {
    let (p, q) = (free_port(), free_port());
    let fam = activate(
        &[format!("127.0.0.1:{p}")],
        &["-E".into(), "LISTEN_PID=1".into()],
        &["--listen".into(), format!("127.0.0.1:{q}")],
    );
    // Trigger the exec with a bare connection to the launcher's socket.
    let _poke = TcpStream::connect(("127.0.0.1", p)).expect("connect to the launcher");
    let st = startup_of(&fam);
    println!("startup: {}", st.line);
    assert_eq!(st.pid, fam.root());
    assert_eq!(
        st.listeners,
        vec![listener(format!("127.0.0.1:{q}"), false)]
    );
    let r = get_once(&tcp(q), "/", T).expect("request on the freshly bound port");
    assert_eq!((r.status, r.pid), (200, Some(fam.root())));
}

// ---------------------------------------------------------------------------------------
// Direct runs with a prepared fd 3.

fn run_direct(
    fds: &[RawFd],
    env: &[(&str, &str)],
    listen_pid_self: bool,
    args: &[String],
) -> ServerFamily {
    spawn_with_fds("direct", &hello_bin(), fds, env, listen_pid_self, args)
}

/// Outcome of a run expected to fail.
struct BadRun {
    exit: Option<Gone>,
    error_lines: Vec<String>,
    started: bool,
    stderr: String,
}

fn run_bad(fds: &[RawFd], env: &[(&str, &str)], args: &[String]) -> BadRun {
    let fam = run_direct(fds, env, true, args);
    // Wait for the exit, but give up early once it has printed a startup line (it serves).
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let exit = loop {
        if let Some(g) = fam.wait_gone(fam.root(), Duration::from_millis(100)) {
            break Some(g);
        }
        let served = fam
            .stdout
            .lines()
            .iter()
            .any(|l| parse_startup(l).is_some());
        if (served
            && fam
                .wait_gone(fam.root(), Duration::from_millis(500))
                .is_none())
            || std::time::Instant::now() > deadline
        {
            break None;
        }
    };
    // Let the capture threads drain the pipes.
    fam.stderr
        .wait_for_line(0, |_| false, Duration::from_millis(200));
    let error_lines = fam.stderr.find(0, |l| l.starts_with("hello: error: "));
    BadRun {
        exit,
        error_lines,
        started: fam
            .stdout
            .lines()
            .iter()
            .any(|l| parse_startup(l).is_some()),
        stderr: fam.stderr.tail(20),
    }
}

fn listen_args(port: u16) -> Vec<String> {
    vec!["--listen".into(), format!("127.0.0.1:{port}")]
}

/// Malformed variables refuse the whole set; a malformed fd is refused when it is claimed (here
/// by name): an unnamed fd that no bind asks for is left to the app (`inherited_fds.rs`).
#[test]
fn bad_socket_activation_input_is_refused_with_one_error_line() {
    let dir = TempDir::new("sa-bad");
    let file_path = dir.join("regular-file");
    std::fs::write(&file_path, b"not a socket").unwrap();
    let file = std::fs::File::open(&file_path).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(tcp_listener.local_addr().unwrap()).unwrap();
    let uds_path = dir.join("u.sock");
    let uds = UnixListener::bind(&uds_path).unwrap();
    let valid = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free_port();

    struct Case<'a> {
        name: &'a str,
        fds: Vec<RawFd>,
        env: Vec<(&'a str, &'a str)>,
        args: Vec<String>,
        /// Every group must match: each group is a list of alternatives (case-insensitive).
        want: Vec<Vec<&'a str>>,
    }
    let cases = vec![
        Case {
            name: "LISTEN_FDS=abc",
            fds: vec![valid.as_raw_fd()],
            env: vec![("LISTEN_FDS", "abc")],
            args: listen_args(port),
            want: vec![vec!["LISTEN_FDS"]],
        },
        Case {
            name: "LISTEN_FDS=-1",
            fds: vec![valid.as_raw_fd()],
            env: vec![("LISTEN_FDS", "-1")],
            args: listen_args(port),
            want: vec![vec!["LISTEN_FDS"]],
        },
        Case {
            name: "LISTEN_FDS=100000",
            fds: vec![valid.as_raw_fd()],
            env: vec![("LISTEN_FDS", "100000")],
            args: listen_args(port),
            want: vec![vec!["LISTEN_FDS", "fd 4"]],
        },
        Case {
            name: "LISTEN_FDS=2 but only fd 3 open",
            fds: vec![valid.as_raw_fd()],
            env: vec![("LISTEN_FDS", "2")],
            args: listen_args(port),
            want: vec![vec!["fd 4"]],
        },
        Case {
            name: "LISTEN_FDNAMES has 2 names for 1 fd",
            fds: vec![valid.as_raw_fd()],
            env: vec![("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "public:admin")],
            args: listen_args(port),
            want: vec![vec!["LISTEN_FDNAMES"]],
        },
        Case {
            name: "fd 3 named web is a regular file, web=127.0.0.1:P asked",
            fds: vec![file.as_raw_fd()],
            env: vec![("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "web")],
            args: vec!["--listen".into(), format!("web=127.0.0.1:{port}")],
            want: vec![vec!["fd 3"], vec!["not a socket"]],
        },
        Case {
            name: "fd 3 named web is a UDP socket, web=127.0.0.1:P asked",
            fds: vec![udp.as_raw_fd()],
            env: vec![("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "web")],
            args: vec!["--listen".into(), format!("web=127.0.0.1:{port}")],
            want: vec![vec!["fd 3"], vec!["datagram", "SOCK_DGRAM", "not a stream"]],
        },
        Case {
            name: "fd 3 named web is a connected TCP stream, web=... asked",
            fds: vec![connected.as_raw_fd()],
            env: vec![("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "web")],
            args: vec!["--listen".into(), format!("web=127.0.0.1:{port}")],
            want: vec![vec!["fd 3"], vec!["not listening"]],
        },
        Case {
            name: "fd 3 named public is a Unix listener, public=127.0.0.1:P asked",
            fds: vec![uds.as_raw_fd()],
            env: vec![("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "public")],
            args: vec!["--listen".into(), format!("public=127.0.0.1:{port}")],
            want: vec![vec!["Unix", "AF_UNIX", "family"]],
        },
    ];

    let mut problems = Vec::new();
    let mut table = Vec::new();
    for c in &cases {
        let r = run_bad(&c.fds, &c.env, &c.args);
        let msg = r.error_lines.first().cloned().unwrap_or_default();
        table.push(format!(
            "{:<62} | {}",
            c.name,
            if msg.is_empty() {
                "<no error line>"
            } else {
                &msg
            }
        ));
        let mut bad = Vec::new();
        match r.exit {
            Some(Gone::Reaped(Exit::Code(c))) if c != 0 => {}
            other => bad.push(format!(
                "exit: {other:?} (want a non-zero exit code within 8 s)"
            )),
        }
        if r.error_lines.len() != 1 {
            bad.push(format!(
                "{} `hello: error:` lines (want exactly 1): {:?}",
                r.error_lines.len(),
                r.error_lines
            ));
        }
        for group in &c.want {
            let low = msg.to_ascii_lowercase();
            if !group.iter().any(|w| low.contains(&w.to_ascii_lowercase())) {
                bad.push(format!("message lacks any of {group:?}"));
            }
        }
        if r.started {
            bad.push("it printed a startup line (it served)".into());
        }
        if !bad.is_empty() {
            problems.push(format!(
                "[{}] {}\n    stderr:\n{}",
                c.name,
                bad.join("; "),
                r.stderr
            ));
        }
    }
    println!("bad input -> message:\n{}", table.join("\n"));
    assert!(
        problems.is_empty(),
        "bad-input cases that misbehaved:\n{}",
        problems.join("\n")
    );
}

/// Inputs that are not errors: LISTEN_PID of another process, LISTEN_FDS=0, and a missing
/// LISTEN_PID (systemfd --no-pid), which must be accepted.
#[test]
fn direct_fd_handover_variants() {
    let me = std::process::id().to_string();
    // 1. LISTEN_PID = the test process: not ours -> bind fresh.
    {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let q = free_port();
        let fam = run_direct(
            &[held.as_raw_fd()],
            &[("LISTEN_FDS", "1"), ("LISTEN_PID", me.as_str())],
            false,
            &listen_args(q),
        );
        let st = startup_of(&fam);
        println!("foreign LISTEN_PID: {}", st.line);
        assert_eq!(
            st.listeners,
            vec![listener(format!("127.0.0.1:{q}"), false)]
        );
        let r = get_once(&tcp(q), "/", T).expect("request");
        assert_eq!((r.status, r.pid), (200, Some(fam.root())));
    }
    // 2. LISTEN_FDS=0 -> bind fresh.
    {
        let q = free_port();
        let fam = run_direct(&[], &[("LISTEN_FDS", "0")], true, &listen_args(q));
        let st = startup_of(&fam);
        println!("LISTEN_FDS=0: {}", st.line);
        assert_eq!(
            st.listeners,
            vec![listener(format!("127.0.0.1:{q}"), false)]
        );
    }
    // 3. LISTEN_PID unset (systemfd --no-pid): the fd is taken.
    {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = held.local_addr().unwrap().port();
        let fam = run_direct(
            &[held.as_raw_fd()],
            &[("LISTEN_FDS", "1")],
            false,
            &listen_args(p),
        );
        drop(held); // only hello holds it now
        let st = startup_of(&fam);
        println!("no LISTEN_PID: {}", st.line);
        assert_eq!(st.listeners, vec![listener(format!("127.0.0.1:{p}"), true)]);
        let r = get_once(&tcp(p), "/", T).expect("request");
        assert_eq!((r.status, r.pid), (200, Some(fam.root())));
    }
    // 4. LISTEN_PID = own pid, the normal case, over a Unix socket handed over directly.
    {
        let dir = TempDir::new("direct-uds");
        let path = dir.join("d.sock");
        let held = UnixListener::bind(&path).unwrap();
        let fam = run_direct(
            &[held.as_raw_fd()],
            &[("LISTEN_FDS", "1")],
            true,
            &["--listen".into(), format!("unix:{}", path.display())],
        );
        drop(held);
        let st = startup_of(&fam);
        println!("own LISTEN_PID, unix: {}", st.line);
        assert_eq!(
            st.listeners,
            vec![listener(format!("unix:{}", path.display()), true)]
        );
        let r = get_once(&Target::Unix(path.clone()), "/", T).expect("request");
        assert_eq!((r.status, r.pid), (200, Some(fam.root())));
    }
}

/// Not asserted (the spec leaves them open): print what hello does.
#[test]
fn informational_ambiguous_inputs() {
    let dir = TempDir::new("sa-info");
    let port = free_port();
    let uds = UnixListener::bind(dir.join("i.sock")).unwrap();
    let report = |name: &str, fam: ServerFamily| {
        let gone = fam.wait_gone(fam.root(), Duration::from_secs(3));
        let out = fam.stdout.lines().join(" | ");
        let err = fam
            .stderr
            .find(0, |l| l.starts_with("hello: error:"))
            .join(" | ");
        println!("INFO {name}: exit={gone:?} stdout=[{out}] error=[{err}]");
    };
    report(
        "unnamed Unix listener at fd 3, --listen 127.0.0.1:P",
        run_direct(
            &[uds.as_raw_fd()],
            &[("LISTEN_FDS", "1")],
            true,
            &listen_args(port),
        ),
    );
    if let Ok(v6) = TcpListener::bind("[::1]:0") {
        report(
            "IPv6 listener named public, --listen public=127.0.0.1:P",
            run_direct(
                &[v6.as_raw_fd()],
                &[("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "public")],
                true,
                &["--listen".into(), format!("public=127.0.0.1:{port}")],
            ),
        );
    }
}
