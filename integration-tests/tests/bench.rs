//! The benchmark program in its short mode, so it cannot rot: a few seconds and a few
//! restarts per strategy, in whatever profile the tests were built with. Our strategy must
//! lose no request; the baselines only have to run.

use integration_tests::reaper::{self, Exit, Gone};
use integration_tests::{env_usize, heavy_lock, ServerFamily, TempDir};
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

#[test]
fn short_bench_loses_nothing_with_actix_graceful() {
    let _heavy = heavy_lock();
    // Builds the example binaries of this profile if needed (before the timed part).
    integration_tests::hello_bin();
    integration_tests::bins::locate("hello-plain", "HELLO_PLAIN_BIN");
    let upgrades = env_usize("BENCH_UPGRADES", 3).to_string();
    let dir = TempDir::new("bench");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upgrade-bench"));
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
    for baseline in ["naive", "reuseport"] {
        let s = summary(&out, baseline);
        assert_eq!(field(&s, "restarts"), upgrades, "{}", out.join("\n"));
    }
    for name in ["graceful", "naive", "reuseport"] {
        let svg = std::fs::read_to_string(dir.join(&format!("{name}.svg"))).expect("timeline");
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    }
    assert!(out.iter().any(|l| l.starts_with("steady-state overhead")));
    assert!(out.iter().any(|l| l.starts_with("idle handoff")));
}
