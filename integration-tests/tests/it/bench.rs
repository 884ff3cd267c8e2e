//! The benchmark program in its short mode, so it cannot rot: a few seconds and a few
//! restarts per strategy, in whatever profile the tests were built with. Our strategy must
//! lose no request; the baselines only have to run.

use integration_tests::reaper::{self, Exit, Gone};
use integration_tests::{bins, env_usize, heavy_lock, hello_bin, ServerFamily, TempDir};
use std::process::Command;
use std::time::Duration;

/// The `key=value` fields of the `summary strategy=<name> ...` line.
fn summary(lines: &[String], name: &str) -> Vec<(String, String)> {
    let prefix = format!("summary strategy={name} ");
    let line = lines
        .iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no summary line for {name}:\n{}", lines.join("\n")));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
}

/// `upgrade-bench`, told where this test build's servers are. Left to find them itself, it
/// would build the examples with its own feature set (its harness has no `openssl` feature):
/// a rebuild of `target/<profile>/hello*` under the feet of the tests running them, and a
/// `hello-tls` without OpenSSL for the TLS test.
fn bench_command() -> Command {
    let mut cmd = Command::new(bins::upgrade_bench());
    cmd.env("HELLO_BIN", hello_bin())
        .env(
            "HELLO_PLAIN_BIN",
            bins::locate("hello-plain", "HELLO_PLAIN_BIN"),
        )
        .env("ITEST_NO_BUILD", "1");
    cmd
}

#[test]
fn short_bench_loses_nothing_with_actix_graceful() {
    let _heavy = heavy_lock();
    let upgrades = env_usize("BENCH_UPGRADES", 3).to_string();
    let dir = TempDir::new("bench");
    let mut cmd = bench_command();
    cmd.args(["--upgrades", &upgrades])
        .args(["--seconds", "4", "--keepalive", "24", "--per-request", "4"])
        .args([
            "--slow",
            "2",
            "--overhead-rounds",
            "1",
            "--overhead-seconds",
            "1",
        ])
        .args(["--idle-upgrades", "2", "--svg-dir"])
        .arg(dir.path());
    let bench = ServerFamily::spawn("upgrade-bench", cmd).expect("spawn upgrade-bench");
    let gone = reaper::wait_gone(bench.root(), bench.started, Duration::from_secs(180));
    // The reader thread may still be taking the last lines (the summaries) from the pipe.
    integration_tests::poll_until(Duration::from_secs(10), || bench.stdout.eof());
    let out = bench.stdout.lines();
    assert!(
        matches!(gone, Some(Gone::Reaped(Exit::Code(0)))),
        "upgrade-bench ended with {gone:?}\n{}\n{}",
        out.join("\n"),
        bench.stderr.tail(20)
    );
    let ours = summary(&out, "graceful");
    assert_eq!(field(&ours, "restarts"), upgrades, "{}", out.join("\n"));
    assert_eq!(field(&ours, "errors"), "0", "{}", out.join("\n"));
    assert_eq!(field(&ours, "failed"), "0", "{}", out.join("\n"));
    let (ok, sent) = field(&ours, "slow_ok").split_once('/').expect("n/m");
    assert_eq!(ok, sent, "slow requests failed: {}", out.join("\n"));
    assert!(field(&ours, "requests").parse::<u64>().unwrap() > 1000);
    // nginx's binary upgrade is measured where nginx is installed (always under CI).
    let nginx = std::path::Path::new("/usr/sbin/nginx").is_file();
    if !nginx {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must measure nginx: apt-get install nginx-light"
        );
        assert!(
            out.iter().any(|l| l.starts_with("note: nginx skipped")),
            "{}",
            out.join("\n")
        );
    }
    let mut names = vec!["graceful", "naive", "reuseport"];
    if nginx {
        names.push("nginx");
    }
    for &baseline in &names[1..] {
        let s = summary(&out, baseline);
        assert_eq!(field(&s, "restarts"), upgrades, "{}", out.join("\n"));
    }
    for name in names {
        let svg = std::fs::read_to_string(dir.join(&format!("{name}.svg"))).expect("timeline");
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    }
    assert!(out.iter().any(|l| l.starts_with("steady-state overhead")));
    assert!(out.iter().any(|l| l.starts_with("idle handoff")));
}

/// Run directly, as a user would run it against their own app: it needs only what the chosen
/// strategies need, and says in one line what is missing.
#[test]
fn bench_needs_only_what_the_chosen_strategies_need() {
    let _heavy = heavy_lock();
    let run = |strategies: &str| {
        let mut cmd = bench_command();
        cmd.args([
            "--strategies",
            strategies,
            "--upgrades",
            "1",
            "--seconds",
            "1",
        ])
        .args(["--keepalive", "2", "--per-request", "0", "--slow", "0"])
        .args(["--overhead-rounds", "1", "--idle-upgrades", "0"])
        .env("HELLO_PLAIN_BIN", "/nonexistent/hello-plain");
        integration_tests::run_output(cmd, Duration::from_secs(120)).expect("run upgrade-bench")
    };
    let (exit, out, err) = run("naive");
    let err = String::from_utf8_lossy(&err);
    assert_eq!(exit, Exit::Code(2), "{err}");
    assert!(
        err.lines().any(
            |l| l.starts_with("upgrade-bench: binary `hello-plain` not found")
                && l.contains("cargo build")
                && l.contains("-p examples --bin hello-plain")
        ),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));

    let (exit, out, err) = run("graceful");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(
        exit,
        Exit::Code(0),
        "{out}\n{}",
        String::from_utf8_lossy(&err)
    );
    assert!(out.contains("note: overhead comparison skipped"), "{out}");
    assert!(
        out.contains("summary strategy=graceful restarts=1 errors=0"),
        "{out}"
    );
}
