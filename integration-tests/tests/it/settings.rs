//! Configuration from the app's own file and the environment (`hello-config`:
//! `Graceful::with_settings` from a JSON file, then `Graceful::with_env`), as real processes:
//! a variable changes what the running server does and wins over the file; a bad value stops
//! the start with the variable (or key) and the value named, and exit status 1.

use integration_tests::bins;
use integration_tests::hello::Hello;
use integration_tests::http::get_once;
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{heavy_lock, poll_until, run_output, signal, sleep_ms, TempDir};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn hello_config() -> Command {
    let mut cmd = Command::new(bins::locate("hello-config", "HELLO_CONFIG_BIN"));
    // Only what each test sets.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ACTIX_GRACEFUL_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn write_config(path: &Path, graceful: &str) {
    std::fs::write(
        path,
        format!(r#"{{"listen": "127.0.0.1:0", "graceful": {graceful}}}"#),
    )
    .expect("write the config file");
}

/// Starts `hello-config`, checks that `pid_file` holds its pid, sends SIGTERM, and returns how
/// long the process kept serving (`/ready` 503, `/` 200 by the same pid) and how long until it
/// exited 0.
fn stop_timing(cmd: Command, pid_file: &Path) -> (Duration, Duration) {
    let h = Hello::start_cmd("hello-config", cmd);
    let pid = h.pid();
    // Written once serving, a moment after the start-up line.
    let read = || std::fs::read_to_string(pid_file).unwrap_or_default();
    poll_until(Duration::from_secs(5), || !read().is_empty());
    assert_eq!(read().trim(), pid.to_string(), "{}", pid_file.display());
    let probe = |path: &str| get_once(&h.target, path, Duration::from_secs(2));
    assert_eq!(probe("/ready").expect("GET /ready").status, 200);
    let t = Instant::now();
    assert!(signal(pid, Signal::SIGTERM));
    let mut served = Duration::ZERO;
    while t.elapsed() < Duration::from_secs(10) {
        match (probe("/ready"), probe("/")) {
            (Ok(ready), Ok(root)) if ready.status == 503 && root.status == 200 => {
                assert_eq!(root.pid, Some(pid));
                served = t.elapsed();
            }
            // The signal not handled yet.
            (Ok(ready), _) if ready.status == 200 && served.is_zero() => {}
            _ => break,
        }
        sleep_ms(20);
    }
    let gone = h.family.wait_gone(pid, Duration::from_secs(15));
    assert_eq!(
        gone,
        Some(Gone::Reaped(Exit::Code(0))),
        "{}",
        h.family.output_tail(20)
    );
    (served, t.elapsed())
}

/// The file sets a 100 ms pre-stop delay and a pid file; the environment sets 1.5 s and another
/// pid file: the environment's values are the ones in force, and without it the file's are.
#[test]
fn the_environment_wins_over_the_config_file() {
    let _g = heavy_lock();
    let dir = TempDir::new("settings");
    let config = dir.join("app.json");
    let (file_pid, env_pid) = (dir.join("file.pid"), dir.join("env.pid"));
    write_config(
        &config,
        &format!(
            r#"{{"pre_stop_delay": "100ms", "pid_file": {:?}}}"#,
            file_pid
        ),
    );

    let mut cmd = hello_config();
    cmd.arg("--config").arg(&config);
    let (served, took) = stop_timing(cmd, &file_pid);
    println!("file only: served {served:?} after SIGTERM, exited after {took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(!file_pid.exists(), "a pid file is removed on a final stop");

    let mut cmd = hello_config();
    cmd.arg("--config")
        .arg(&config)
        .env("ACTIX_GRACEFUL_PRE_STOP_DELAY", "1.5s")
        .env("ACTIX_GRACEFUL_PID_FILE", &env_pid);
    let (served, took) = stop_timing(cmd, &env_pid);
    assert!(!file_pid.exists(), "the file's pid file was written");
    println!("environment: served {served:?} after SIGTERM, exited after {took:?}");
    assert!(served >= Duration::from_millis(1000), "{served:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(!env_pid.exists());
}

/// A bad variable or key: no server, exit status 1, and stderr names it with its value.
#[test]
fn a_bad_value_stops_the_start_naming_the_variable_or_key() {
    let dir = TempDir::new("settings-bad");
    let config = dir.join("app.json");
    write_config(&config, r#"{"upgrade_timeout": "10s"}"#);
    let run = |cmd: Command| {
        let (exit, out, err) = run_output(cmd, Duration::from_secs(30)).expect("run hello-config");
        let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
        assert!(!out.contains("serving"), "it served: {out}");
        (exit, err.into_owned())
    };
    for (var, value, why) in [
        ("ACTIX_GRACEFUL_DRAIN_TIMEOUT", "5x", r#"unknown unit "x""#),
        (
            "ACTIX_GRACEFUL_UPGRADE_TIMEOUT",
            "30",
            r#""30" has no unit"#,
        ),
        ("ACTIX_GRACEFUL_KEEPER_MODE", "sometimes", "not a boolean"),
    ] {
        let mut cmd = hello_config();
        cmd.arg("--config").arg(&config).env(var, value);
        let (exit, err) = run(cmd);
        let want = format!("hello-config: error: {var}={value:?}: {why}");
        println!(
            "{var}={value}: {exit}: {}",
            err.lines().last().unwrap_or("")
        );
        assert_eq!(exit, Exit::Code(1), "{err}");
        assert!(err.contains(&want), "{want:?} not in {err}");
    }

    write_config(&config, r#"{"drain_timeout": "2 weeks"}"#);
    let mut cmd = hello_config();
    cmd.arg("--config").arg(&config);
    let (exit, err) = run(cmd);
    println!("file: {exit}: {}", err.lines().last().unwrap_or(""));
    assert_eq!(exit, Exit::Code(1), "{err}");
    assert!(
        err.contains(r#"drain_timeout: "2 weeks": "2" has no unit"#),
        "{err}"
    );
}
