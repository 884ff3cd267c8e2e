//! Process hygiene where users run the crate (issue 12): a terminal that resizes and sends
//! Ctrl-C to its foreground group, a successor that is a wrapper script with a child of its
//! own, app threads started before the crate's first use, the app's own children, and how
//! keeper mode and `run` report their end to `main`. Real processes, real signals, a real
//! pseudo-terminal. Every test holds the global heavy lock.

use integration_tests::hello::{upgrade, Hello, UpgradeOpts};
use integration_tests::http::{get_once, wait_for_pid};
use integration_tests::pty::{pgid, Pty};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    heavy_lock, hello_bin, private_copy, procfs, replace_file, run_output, signal, sleep_ms,
    FailKind,
};
use nix::sys::signal::Signal;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// Every process (but the test itself) with an open fd on a socket listening on `port`.
fn holders(port: u16) -> BTreeSet<i32> {
    let listening: BTreeSet<u64> = procfs::tcp_listen_inodes(port).into_iter().collect();
    let me = std::process::id() as i32;
    procfs::all_pids()
        .into_iter()
        .filter(|&p| p != me)
        .filter(|&p| !procfs::socket_inodes(p).is_disjoint(&listening))
        .collect()
}

/// Item 1: `hello --keeper` as the foreground job of a real pseudo-terminal, resized 20 times
/// (each a SIGWINCH to the terminal's foreground process group): the same generation serves
/// throughout and the keeper stays. Before the fix, each resize drained the generation ("you
/// were replaced") and the keeper gave up after six.
#[test]
fn keeper_survives_terminal_resizes() {
    let _g = heavy_lock();
    let pty = Pty::open(120, 40).expect("openpty");
    let mut cmd = Command::new(hello_bin());
    cmd.args(["--keeper", "--listen", "127.0.0.1:0", "--workers", "1"]);
    pty.attach(&mut cmd);
    let h = Hello::start_cmd("hello-pty", cmd);
    let keeper = h.pid();
    let generation = h.first_generation();
    let foreground = pty.foreground().expect("tcgetpgrp");
    println!(
        "keeper {keeper} (group {:?}), generation {generation} (group {:?}), terminal's foreground group {foreground}",
        pgid(keeper),
        pgid(generation)
    );
    assert_eq!(
        foreground, keeper,
        "the keeper is the terminal's foreground job"
    );
    let mark = h.family.stderr.len();
    for i in 0..20u16 {
        let (cols, rows) = if i % 2 == 0 { (100, 30) } else { (120, 40) };
        pty.resize(cols, rows).expect("TIOCSWINSZ");
        sleep_ms(100);
        let served = get_once(&h.target, "/", Duration::from_secs(5))
            .unwrap_or_else(|f| panic!("resize {i}: {f}\n{}", h.family.output_tail(30)));
        assert_eq!(
            served.pid,
            Some(generation),
            "resize {i}: another generation serves\n{}",
            h.family.output_tail(30)
        );
    }
    assert!(
        procfs::exists(keeper) && !procfs::is_zombie(keeper),
        "keeper gone"
    );
    let drained = h.family.stderr.find(mark, |l| {
        l.contains("exited unasked") || l.contains("draining") || l.contains("giving up")
    });
    assert!(drained.is_empty(), "after the resizes: {drained:?}");
    println!("20 resizes: generation {generation} served throughout, keeper {keeper} stays");

    // ^C typed at the terminal: the line discipline sends SIGINT to the foreground group, the
    // keeper alone; it passes it on.
    pty.type_bytes(b"\x03").expect("type ^C");
    let gone = h.family.wait_gone(keeper, Duration::from_secs(20));
    println!("^C: keeper {gone:?}");
    assert!(gone.is_some(), "keeper still there after ^C");
    assert!(
        h.family
            .wait_gone(generation, Duration::from_secs(5))
            .is_some(),
        "generation left behind"
    );
}

/// Item 1: the terminal of `hello --keeper` hangs up (its master side is closed, as when the
/// window or the ssh session goes): the keeper gets SIGHUP and stops everything gracefully,
/// exit status 0. Before: SIGHUP's default action killed the keeper (and, in the same group,
/// the generation with it).
#[test]
fn keeper_stops_gracefully_on_terminal_hangup() {
    let _g = heavy_lock();
    let pty = Pty::open(120, 40).expect("openpty");
    let mut cmd = Command::new(hello_bin());
    cmd.args(["--keeper", "--listen", "127.0.0.1:0", "--workers", "1"]);
    pty.attach(&mut cmd);
    let h = Hello::start_cmd("hello-hup", cmd);
    let keeper = h.pid();
    let generation = h.first_generation();
    drop(pty);
    let keeper_gone = h.family.wait_gone(keeper, Duration::from_secs(20));
    let generation_gone = h.family.wait_gone(generation, Duration::from_secs(5));
    println!("hang-up: keeper {keeper_gone:?}, generation {generation_gone:?}");
    assert_eq!(keeper_gone, Some(Gone::Reaped(Exit::Code(0))));
    assert!(generation_gone.is_some(), "generation left behind");
    assert_eq!(
        h.family.stderr.count_containing(
            0,
            &format!("generation pid={generation} stopped (exit status 0)")
        ),
        1,
        "{}",
        h.family.output_tail(20)
    );
}

/// Item 1, plain mode: a successor leads a process group of its own, so a terminal's signals to
/// the group the user started (a resize, ^C) go to the process the user started, and a failed
/// successor can be killed with all it started.
#[test]
fn plain_successor_leads_its_own_process_group() {
    let _g = heavy_lock();
    let h = Hello::start(&hello_bin(), &["--listen", "127.0.0.1:0", "--workers", "1"]);
    let old = h.pid();
    let u = upgrade(&h.family, &h.target, old, &UpgradeOpts::default())
        .unwrap_or_else(|e| panic!("{e}\n{}", h.family.output_tail(30)));
    let group = pgid(u.new);
    println!("first {old}, successor {} in group {group:?}", u.new);
    assert_eq!(group, Some(u.new), "the successor leads its own group");
}

/// Item 2: the successor is a wrapper script that starts a child without `exec` and never gets
/// ready. After the timeout the library kills the script's whole process group: nothing but
/// the server holds the listener, and once the server stops the port refuses connections.
/// Before the fix, the orphaned `sleep` kept fd 3 and connections hung in its accept queue.
#[test]
fn failed_wrapper_successor_leaves_nothing_holding_the_port() {
    let _g = heavy_lock();
    let (_dir, exe) = private_copy("wrapper");
    let h = Hello::start(
        &exe,
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--upgrade-timeout-ms",
            "1000",
        ],
    );
    let server = h.pid();
    let port = h.target.port().expect("tcp port");
    replace_file(&exe, b"#!/bin/sh\nsleep 3600\n");
    let mark = h.family.stderr.len();
    assert!(signal(server, Signal::SIGUSR2));
    let failed = h
        .family
        .stderr
        .wait_for_line(
            mark,
            |l| l.contains("upgrade failed"),
            Duration::from_secs(15),
        )
        .map(|(_, l)| l)
        .unwrap_or_else(|| panic!("no `upgrade failed`\n{}", h.family.output_tail(30)));
    println!("{failed}");
    // The kill and the reaping are done when the line is logged; give /proc a moment.
    sleep_ms(200);
    let after_failure = holders(port);
    println!("holding port {port} after the failed upgrade: {after_failure:?}");
    assert!(signal(server, Signal::SIGTERM));
    let gone = h.family.wait_gone(server, Duration::from_secs(20));
    sleep_ms(200);
    let after_stop = holders(port);
    let connect = get_once(&h.target, "/", Duration::from_secs(2));
    println!("server {gone:?}; holding after the stop: {after_stop:?}; connect: {connect:?}");
    for pid in &after_stop {
        signal(*pid, Signal::SIGKILL); // what the old code left behind
    }
    assert_eq!(
        after_failure,
        BTreeSet::from([server]),
        "only the server holds the port"
    );
    assert!(
        after_stop.is_empty(),
        "left holding the port: {after_stop:?}"
    );
    assert!(
        matches!(&connect, Err(f) if f.kind == FailKind::ConnectRefused),
        "connect after the stop: {connect:?}"
    );
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
}

/// Item 5: the app starts a thread before the crate's first use (so with the signal mask the
/// process started with) and gets SIGUSR2 between binding and `run`. The process must not die
/// (the default action of SIGUSR2), and the upgrade happens once `run` serves.
#[test]
fn early_upgrade_signal_with_a_thread_started_before_bind() {
    let _g = heavy_lock();
    let h = Hello::start(
        &hello_bin(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--early-thread",
            "--delay-run-ms",
            "1500",
        ],
    );
    let old = h.pid();
    // The startup line comes before the delay: this SIGUSR2 arrives before `run`.
    let u = upgrade(&h.family, &h.target, old, &UpgradeOpts::default()).unwrap_or_else(|e| {
        let exit = h.family.wait_gone(old, Duration::from_secs(1));
        panic!("{e}; first process: {exit:?}\n{}", h.family.output_tail(30))
    });
    println!(
        "SIGUSR2 before run: successor {} serving {:.0} ms after the signal; old {:?}",
        u.new,
        u.serving_after.as_secs_f64() * 1e3,
        u.old_exit
    );
    assert_eq!(
        h.family
            .stderr
            .count_containing(0, "arrived before the server ran"),
        1,
        "{}",
        h.family.output_tail(30)
    );
    assert_eq!(u.old_exit, Some(Gone::Reaped(Exit::Code(0))));
}

/// Item 6: in keeper mode the app (here: a thread of `main`, started before `run`) waits for a
/// child of its own; it gets the child's status, not ECHILD from a keeper that reaped it.
#[test]
fn keeper_leaves_the_apps_children_to_the_app() {
    let _g = heavy_lock();
    let h = Hello::start(
        &hello_bin(),
        &[
            "--keeper",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--child-wait-ms",
            "2500",
        ],
    );
    let keeper = h.pid();
    let generation = h.first_generation();
    let key = format!("hello pid={keeper} child: ");
    let (_, line) = h
        .family
        .stdout
        .wait_for_line(0, |l| l.contains(&key), Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no child line\n{}", h.family.output_tail(30)));
    println!("keeper {keeper}, generation {generation}: {line}");
    assert!(line.ends_with("exit status: 7"), "{line}");
    assert_eq!(
        wait_for_pid(&h.target, "/", |p| p == generation, Duration::from_secs(3)),
        Some(generation),
        "the generation serves on"
    );
}

/// Item 7: keeper mode ends by returning from `run` (the caller's destructors run, `main`
/// prints the error once and exits with the status the error carries) instead of calling
/// `std::process::exit` inside the library. A crash loop: exit status 1.
#[test]
fn keeper_end_status_is_returned_to_main() {
    let _g = heavy_lock();
    let (dir, exe) = private_copy("keeper-exit");
    let env_file = dir.join("env");
    std::fs::write(&env_file, "").expect("env file");
    let env_arg = env_file.to_string_lossy().into_owned();
    let args = ["--keeper", "--listen", "127.0.0.1:0", "--workers", "1"];
    let h = Hello::start(&exe, &[&args[..], &["--env-file", &env_arg]].concat());
    let keeper = h.pid();
    let generation = h.first_generation();
    // Every restart (of the build the keeper holds) fails: a bad setting for the generations.
    std::fs::write(&env_file, "ACTIX_GRACEFUL_DRAIN_TIMEOUT=bogus\n").expect("env file");
    let t0 = Instant::now();
    assert!(signal(generation, Signal::SIGKILL));
    let gone = h.family.wait_gone(keeper, Duration::from_secs(30));
    let printed = h
        .family
        .stderr
        .wait_for_line(
            0,
            // The generations' own start errors are printed as `hello: error: ...` too.
            |l| l.starts_with("hello: error: keeper mode ended"),
            Duration::from_secs(5),
        )
        .map(|(_, l)| l);
    println!(
        "keeper {gone:?} after {:.1} s; main printed {printed:?}",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(gone, Some(Gone::Reaped(Exit::Code(1))));
    let printed =
        printed.unwrap_or_else(|| panic!("main got no error\n{}", h.family.output_tail(30)));
    assert!(
        printed.contains("keeper mode ended with status 1"),
        "{printed}"
    );
}

/// Item 7: an error `run` returns is reported once, by the caller, not also logged by the
/// library. A generation variable meant for this process that is no pid.
#[test]
fn an_error_from_run_is_reported_once() {
    let _g = heavy_lock();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        r#"export LISTEN_PID=$$; exec "$0" --keeper --listen 127.0.0.1:0 --workers 1"#,
    ])
    .arg(hello_bin())
    .env("ACTIX_GRACEFUL_KEEPER", "x")
    .env("RUST_LOG", "info");
    let (exit, _out, err) = run_output(cmd, Duration::from_secs(20)).expect("run hello");
    let err = String::from_utf8_lossy(&err);
    let reports: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("is not a keeper's process id"))
        .collect();
    println!("{exit}; reports: {reports:#?}");
    assert_eq!(exit, Exit::Code(1), "{err}");
    assert_eq!(reports.len(), 1, "{err}");
    assert!(reports[0].starts_with("hello: error: "), "{err}");
}

/// Item 7: an upgrade error returned to an `UpgradeHandle` caller (`hello --admin`'s
/// `POST /admin/upgrade`, which answers it in the body) is not also logged by the library: its
/// log says only that the upgrade failed.
#[test]
fn an_upgrade_error_returned_to_a_handle_is_not_also_logged() {
    let _g = heavy_lock();
    let (_dir, exe) = private_copy("handle-error");
    let h = Hello::start(
        &exe,
        &["--admin", "--listen", "127.0.0.1:0", "--workers", "1"],
    );
    replace_file(&exe, b"#!/bin/sh\nexit 3\n");
    let mark = h.family.stderr.len();
    let r =
        integration_tests::http::post_once(&h.target, "/admin/upgrade", Duration::from_secs(20))
            .unwrap_or_else(|f| panic!("POST: {f}\n{}", h.family.output_tail(20)));
    let body = r.text();
    sleep_ms(200);
    let logged: Vec<String> = h.family.stderr.find(mark, |l| l.contains("upgrade failed"));
    println!("{} {body:?}; logged: {logged:#?}", r.status);
    assert_eq!(r.status, 409);
    assert!(body.contains("exit status 3"), "{body:?}");
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        !logged[0].contains("exit status 3"),
        "logged twice: {logged:?}"
    );
}
