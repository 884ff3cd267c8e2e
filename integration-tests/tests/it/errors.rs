//! How failures reach the app: keeper mode's end status and `run`'s errors are returned to
//! `main` (which reports them once, `hello: error: ...`, and exits with their status), and an
//! upgrade error returned to an `UpgradeHandle` caller is not also logged by the library. Every
//! test holds the global heavy lock.

use integration_tests::hello::Hello;
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    heavy_lock, hello_bin, private_copy, replace_file, run_output, signal, sleep_ms,
};
use nix::sys::signal::Signal;
use std::process::Command;
use std::time::{Duration, Instant};

/// Keeper mode ends by returning from `run` (the caller's destructors run, `main`
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

/// An error `run` returns is reported once, by the caller, not also logged by the
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

/// An upgrade error returned to an `UpgradeHandle` caller (`hello --admin`'s
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
