//! The example binaries' and upgrade-bench's flags (issue 14, item 6): one parser (clap), so a
//! bad value is an error naming the flag with exit status 2 (never a silent default), and
//! `--help` lists every flag with exit status 0. Real processes, each bounded by a timeout.

use integration_tests::reaper::Exit;
use integration_tests::{bins, fixture_bin, hello_bin, run_output};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs `bin args...`: how it ended, its stdout and its stderr.
fn run(bin: &Path, args: &[&str]) -> (Exit, String, String) {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    let (exit, out, err) = run_output(cmd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", bin.display()));
    (
        exit,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// `bin args...` is refused with exit status 2 and a message naming `flag`.
fn refused(bin: &Path, args: &[&str], flag: &str) {
    let (exit, out, err) = run(bin, args);
    assert_eq!(
        exit,
        Exit::Code(2),
        "{} {args:?}: {exit}\nstdout: {out}\nstderr: {err}",
        bin.display()
    );
    assert!(
        err.contains(flag) && err.contains("error"),
        "{} {args:?}: the error does not name {flag}:\n{err}",
        bin.display()
    );
}

/// `bin --help` exits 0 and its output lists every one of `flags`.
fn help_lists(bin: &Path, flags: &[&str]) {
    let (exit, out, err) = run(bin, &["--help"]);
    assert_eq!(
        exit,
        Exit::Code(0),
        "{} --help: {exit}\n{err}",
        bin.display()
    );
    for flag in flags.iter().chain(&["--help"]) {
        assert!(
            out.contains(flag),
            "{} --help does not list {flag}:\n{out}",
            bin.display()
        );
    }
}

#[test]
fn hello_refuses_bad_values_naming_the_flag() {
    let hello = hello_bin();
    refused(&hello, &["--workers", "x"], "--workers");
    refused(&hello, &["--upgrade-signal", "USR3"], "--upgrade-signal");
    refused(&hello, &["--drain-timeout-ms", "1.5"], "--drain-timeout-ms");
    refused(&hello, &["--no-such-flag"], "--no-such-flag");
    // A test knob is the fixture's, not the example's.
    refused(&hello, &["--early-thread"], "--early-thread");
}

#[test]
fn hello_help_lists_its_flags() {
    help_lists(
        &hello_bin(),
        &[
            "--listen",
            "HELLO_LISTEN",
            "--workers",
            "--upgrade-timeout-ms",
            "--drain-timeout-ms",
            "--shutdown-timeout-s",
            "--pid-file",
            "--upgrade-signal",
            "--pre-stop-ms",
            "--fd-store",
            "--keeper",
            "--env-file",
            "--admin",
            "--udp-echo",
            "--keep-unclaimed",
        ],
    );
}

#[test]
fn the_fixture_has_the_test_knobs() {
    let fixture = fixture_bin();
    help_lists(
        &fixture,
        &[
            "--listen",
            "--workers",
            "--keeper",
            "--ready-after-ms",
            "--ipv6-only",
            "--early-thread",
            "--delay-run-ms",
            "--child-wait-ms",
        ],
    );
    // Before clap, anything but `on` silently meant off.
    refused(&fixture, &["--ipv6-only", "yes"], "--ipv6-only");
    refused(&fixture, &["--child-wait-ms", "x"], "--child-wait-ms");
}

#[test]
fn the_other_examples_have_help_and_refuse_bad_values() {
    let examples: [(&str, &str, &[&str]); 4] = [
        (
            "hello-tls",
            "HELLO_TLS_BIN",
            &[
                "--tls",
                "--cert",
                "--key",
                "--listen",
                "--workers",
                "--drain-timeout-ms",
                "--shutdown-timeout-s",
            ],
        ),
        (
            "events",
            "EVENTS_BIN",
            &[
                "--listen",
                "--interval-ms",
                "--drain-timeout-ms",
                "--shutdown-timeout-s",
            ],
        ),
        (
            "hello-plain",
            "HELLO_PLAIN_BIN",
            &["--listen", "--workers", "--reuseport"],
        ),
        (
            "hello-config",
            "HELLO_CONFIG_BIN",
            &["--config", "--listen"],
        ),
    ];
    for (name, env, flags) in examples {
        let bin = bins::locate(name, env);
        help_lists(&bin, flags);
        refused(&bin, &["--no-such-flag"], "--no-such-flag");
    }
    let tls = bins::locate("hello-tls", "HELLO_TLS_BIN");
    refused(&tls, &["--tls", "gnutls"], "--tls");
    let plain = bins::locate("hello-plain", "HELLO_PLAIN_BIN");
    refused(&plain, &["--listen", "unix:/x"], "--listen");
}

#[test]
fn upgrade_bench_help_and_bounds() {
    let bench = &bins::upgrade_bench();
    help_lists(
        bench,
        &[
            "--upgrades",
            "--seconds",
            "--keepalive",
            "--per-request",
            "--slow",
            "--slow-path",
            "--slow-lead-ms",
            "--path",
            "--pause-ms",
            "--think-ms",
            "--timeout-ms",
            "--workers",
            "--strategies",
            "--nginx",
            "--drain-timeouts",
            "--port",
            "--cmd",
            "--plain-cmd",
            "--reuseport-cmd",
            "--ready-line",
            "--upgrade-signal",
            "--overhead-rounds",
            "--overhead-seconds",
            "--idle-upgrades",
            "--svg-dir",
            "--verbose",
        ],
    );
    // Out of bounds is an error like a bad flag: status 2, the flag named.
    refused(bench, &["--upgrades", "10001"], "--upgrades");
    refused(bench, &["--seconds", "0"], "--seconds");
    refused(bench, &["--think-ms", "9-3"], "--think-ms");
    refused(bench, &["--think-ms", "5"], "--think-ms");
    refused(
        bench,
        &["--keepalive", "1000", "--per-request", "100"],
        "--keepalive",
    );
    refused(
        bench,
        &["--strategies", "graceful,blue-green"],
        "--strategies",
    );
    refused(bench, &["--upgrade-signal", "TERM"], "--upgrade-signal");
}
