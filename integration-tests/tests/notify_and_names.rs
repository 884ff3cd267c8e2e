//! Two protocol edges (issue 12, item 7): a service manager that reads its notification socket
//! slowly must not stall the server, and `unix:@name` means Linux's abstract namespace, as
//! `NOTIFY_SOCKET=@name` does.

use integration_tests::hello::{upgrade, upgrade_probed, wait_startup, UpgradeOpts};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{hello_bin, signal, ServerFamily, TempDir};
use nix::sys::signal::Signal;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn hello(name: &str, args: &[&str], env: &[(&str, &str)], cwd: Option<&TempDir>) -> ServerFamily {
    let mut cmd = std::process::Command::new(hello_bin());
    cmd.args(args).env("RUST_LOG", "info");
    for k in [
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    if let Some(dir) = cwd {
        cmd.current_dir(dir.path());
    }
    ServerFamily::spawn(name, cmd).expect("spawn hello")
}

/// The manager's queue is full (it never reads; the kernel keeps `max_dgram_qlen` datagrams):
/// before, `sd_notify`'s blocking `sendmsg` of `READY=1` hung the runtime thread for good, so
/// the server never handled SIGUSR2 or SIGTERM. Now the notification is dropped with one
/// warning per process, and upgrades and the stop work.
#[test]
fn a_manager_that_never_reads_does_not_stall_the_server() {
    let _heavy = integration_tests::heavy_lock();
    let dir = TempDir::new("notify-full");
    let path = dir.join("notify.sock");
    let _manager = UnixDatagram::bind(&path).unwrap(); // never read
    let filler = UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut queued = 0;
    while filler.send_to(b"STATUS=filler", &path).is_ok() {
        queued += 1;
        assert!(queued < 100_000, "the queue never filled");
    }
    println!("manager queue full after {queued} datagrams");
    let notify = path.display().to_string();
    let fam = hello(
        "notify-full",
        &["--listen", "127.0.0.1:0"],
        &[("NOTIFY_SOCKET", notify.as_str())],
        None,
    );
    let st = wait_startup(&fam, 0, T)
        .unwrap_or_else(|| panic!("no startup line\n{}", fam.output_tail(30)));
    let target = st.listeners[0].target();
    let u = upgrade(&fam, &target, st.pid, &UpgradeOpts::default()).unwrap_or_else(|e| {
        panic!(
            "upgrade with a full manager queue: {e}\n{}",
            fam.output_tail(30)
        )
    });
    let t0 = Instant::now();
    assert!(signal(u.new, Signal::SIGTERM));
    let gone = fam.wait_gone(u.new, Duration::from_secs(10));
    println!("successor stopped after {:?}: {gone:?}", t0.elapsed());
    assert!(
        matches!(gone, Some(Gone::Reaped(Exit::Code(0)))),
        "the successor stops on SIGTERM: {gone:?}\n{}",
        fam.output_tail(30)
    );
    let warnings = fam.stderr.count_containing(0, "queue is full");
    println!("`queue is full` warnings: {warnings} (2 processes)");
    assert!(
        (1..=2).contains(&warnings),
        "one warning per process at most, and at least one: {warnings}"
    );
}

/// `GET /` over the abstract socket `name` (without the `@`); the pid that answered.
fn get_abstract(name: &str) -> Option<i32> {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).ok()?;
    let mut s = std::os::unix::net::UnixStream::connect_addr(&addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.trim().parse().ok())
}

/// `--listen unix:@name`: before, a file called `@name` appeared in the working directory
/// (while `ListenAddr` and `NOTIFY_SOCKET` read `@` as abstract). Now it is the abstract
/// socket, no file, and a successor inherits it.
#[test]
fn at_name_is_the_abstract_namespace_and_survives_an_upgrade() {
    let _heavy = integration_tests::heavy_lock();
    let dir = TempDir::new("abstract");
    let name = format!("ag-abstract-{}", std::process::id());
    let spec = format!("unix:@{name}");
    let fam = hello("abstract", &["--listen", &spec], &[], Some(&dir));
    let st = wait_startup(&fam, 0, T)
        .unwrap_or_else(|| panic!("no startup line\n{}", fam.output_tail(30)));
    println!("{}", st.line);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        files.is_empty(),
        "files in hello's working directory: {files:?}"
    );
    assert_eq!(st.listeners[0].addr, spec);
    assert_eq!(
        get_abstract(&name),
        Some(st.pid),
        "served over the abstract socket"
    );
    let mark = fam.stdout.len();
    let u = upgrade_probed(
        &fam,
        st.pid,
        Signal::SIGUSR2,
        &UpgradeOpts::default(),
        |new| {
            let deadline = Instant::now() + T;
            while Instant::now() < deadline {
                if get_abstract(&name) == Some(new) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        },
    )
    .unwrap_or_else(|e| panic!("upgrade: {e}\n{}", fam.output_tail(30)));
    let next = wait_startup(&fam, mark, T).expect("successor's startup line");
    assert_eq!(next.pid, u.new);
    assert_eq!(next.listeners[0].addr, spec);
    assert!(next.listeners[0].inherited, "{}", next.line);
}
