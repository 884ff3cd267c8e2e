//! Bad deploys (issue 18): a new build that crashes a second after it reported ready, one
//! that cannot reach what it needs, one that answers 500s, one whose readiness check needs 2 s
//! to warm up, under load (8 keep-alive + 2 connection-per-request clients), with the
//! probation's edges: SIGTERM during it, an upgrade during it, an upgrade signal to the process
//! standing by, a death as it ends.
//!
//! The bad build is the good binary behind a wrapper script installed by a rename at the path
//! the server was started from, as a deploy would put it; it sets one of `hello`'s knobs
//! (`HELLO_UNHEALTHY`, `HELLO_FAIL_STATUS`, `HELLO_WARMUP_MS`) and `exec`s the real binary. A
//! crash is a SIGKILL from the test 1 s after the new process reported ready, at a known time,
//! so the take-back's latency is read from the old process's log against it.

use integration_tests::hello::{number_after, wait_exit_0, wait_spawned, Hello};
use integration_tests::http::{get_once, wait_for_pid};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    copy_hello, heavy_lock, median_p90, procfs, replace_file, replace_with_copy, shell_quote,
    signal, sleep_ms, FailKind, Load, LoadConfig, LoadReport, TempDir,
};
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The probation of these tests: long enough for a crash 1 s after ready and a 500 build's
/// 20 responses; the harness's default (300 ms) would end it first.
const PROBATION: &str = "10s";
/// The clients: as the measurements.
const KEEPALIVE: usize = 8;
const PER_REQUEST: usize = 2;

/// `hello` started from `<tmp>/hello`, a copy of the real binary at `<tmp>/hello.real`, with
/// [`PROBATION`] and a load running against it.
struct Rig {
    _dir: TempDir,
    exe: PathBuf,
    real: PathBuf,
    h: Hello,
    load: Option<Load>,
}

impl Rig {
    fn start(tag: &str, extra: &[&str]) -> Rig {
        let dir = TempDir::new(tag);
        let (exe, real) = (dir.join("hello"), dir.join("hello.real"));
        copy_hello(&exe);
        copy_hello(&real);
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--listen", "127.0.0.1:0", "--workers", "2"])
            .args(extra)
            .env(integration_tests::family::PROBATION_VAR, PROBATION);
        let h = Hello::start_cmd("hello", cmd);
        println!("started: {}", h.startup.line);
        let load = Load::start(LoadConfig {
            keepalive_clients: KEEPALIVE,
            per_request_loops: PER_REQUEST,
            max_duration: Duration::from_secs(120),
            ..LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set())
        });
        sleep_ms(300);
        Rig {
            _dir: dir,
            exe,
            real,
            h,
            load: Some(load),
        }
    }

    /// Installs a build that sets `env` (`NAME=VALUE` words) and `exec`s the real binary.
    fn deploy_bad(&self, env: &str) {
        let script = format!(
            "#!/bin/sh\nexport {env}\nexec {} \"$@\"\n",
            shell_quote(&self.real)
        );
        replace_file(&self.exe, script.as_bytes());
    }

    /// Installs the good build again.
    fn deploy_good(&self) {
        replace_with_copy(&self.exe, &self.real);
    }

    /// Sends the upgrade signal to `pid` and waits for `needle` in the log; the line.
    fn upgrade_until(&self, pid: i32, needle: &str, secs: u64) -> String {
        let mark = self.h.family.stderr.len();
        assert!(signal(pid, Signal::SIGUSR2));
        self.line(mark, needle, secs)
    }

    fn line(&self, from: usize, needle: &str, secs: u64) -> String {
        self.h.wait_line(from, needle, secs)
    }

    fn serves(&self, pid: i32, what: &str) {
        self.h.serves(pid, what);
    }

    fn stop_load(&mut self) -> LoadReport {
        let rep = self.load.take().expect("load").stop();
        println!("load: {}", rep.summary());
        rep
    }
}

/// The wall-clock time of an `env_logger` line (`[2026-12-02T19:22:02.422Z INFO ...`).
fn logged_at(line: &str) -> Option<SystemTime> {
    let stamp = line.strip_prefix('[')?.split_whitespace().next()?;
    let (date, time) = stamp.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|v| v.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, millis) = time.split_once('.')?;
    let mut t = hms.split(':').map(|v| v.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 + s;
    let ms = millis.parse::<u64>().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_millis(ms))
}

/// From `then` to the time logged on `line`, in ms (negative: logged before).
fn ms_after(then: SystemTime, line: &str) -> f64 {
    let at = logged_at(line).unwrap_or_else(|| panic!("no time on {line:?}"));
    match at.duration_since(then) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}

/// At most one failed request per client connection and crash, none refused.
fn assert_only_in_flight_lost(rep: &LoadReport, crashes: usize, what: &str) {
    assert_eq!(
        rep.count(FailKind::ConnectRefused),
        0,
        "{what}: {}",
        rep.summary()
    );
    assert!(
        rep.failed() as usize <= (KEEPALIVE + PER_REQUEST) * crashes,
        "{what}: more failed than client connections per crash: {}",
        rep.summary()
    );
}

/// A crash 1 s after ready, `rounds` times: the old process takes back each time; the
/// take-back's latency from the kill, in ms.
fn crash_after_ready(r: &Rig, serving: i32, rounds: usize) -> Vec<f64> {
    let mut latencies = Vec::new();
    for round in 0..rounds {
        r.deploy_good(); // the build that crashes is a good one: the crash is the test's
        let line = r.upgrade_until(serving, "ready after", 20);
        let new = number_after(&line, "pid=").expect("successor pid") as i32;
        r.h.family.add_pid(new);
        sleep_ms(1000);
        let mark = r.h.family.stderr.len();
        let killed_at = SystemTime::now();
        assert!(signal(new, Signal::SIGKILL));
        let back = r.line(mark, "rolled back", 10);
        let ms = ms_after(killed_at, &back);
        println!("round {round}: successor {new} SIGKILLed; {ms:.0} ms later: {back}");
        latencies.push(ms);
        r.serves(serving, "the process that took back");
    }
    latencies
}

/// Plain handoff: a build that crashes 1 s after it reported ready costs only the requests in
/// flight on its own connections; the old process takes back within 50 ms (median), on the
/// same pid, and the next upgrade works.
#[test]
fn a_crash_after_ready_is_rolled_back_plain() {
    let _g = heavy_lock();
    let mut r = Rig::start("crash-plain", &[]);
    let old = r.h.pid();
    let latencies = crash_after_ready(&r, old, 5);
    let rep = r.stop_load();
    let (median, p90) = median_p90(&latencies).expect("rounds");
    println!("take-back after the death: median {median:.0} ms, p90 {p90:.0} ms");
    assert!(median <= 50.0, "take-back median {median:.0} ms");
    assert_only_in_flight_lost(&rep, 5, "5 crashes after ready");
    assert!(procfs::exists(old), "the first process serves on");
    r.deploy_good();
    let line = r.upgrade_until(old, "ready after", 20);
    println!("the next upgrade: {line}");
}

/// Keeper mode: the same crash; the generation the keeper replaced stands by and takes back;
/// the keeper's pid, the serving generation's pid and the build are the same afterwards, and
/// no generation is started (no crash loop).
#[test]
fn a_crash_after_ready_is_rolled_back_keeper() {
    let _g = heavy_lock();
    let mut r = Rig::start("crash-keeper", &["--keeper"]);
    let keeper = r.h.pid();
    let generation = r.h.first_generation();
    sleep_ms(500);
    let mut latencies = Vec::new();
    for round in 0..5 {
        let line = r.upgrade_until(keeper, "upgrade: successor pid=", 20);
        let new = number_after(&line, "successor pid=").expect("pid") as i32;
        r.h.family.add_pid(new);
        sleep_ms(1000);
        let mark = r.h.family.stderr.len();
        let killed_at = SystemTime::now();
        assert!(signal(new, Signal::SIGKILL));
        let back = r.line(mark, "rolled back to the previous build", 10);
        latencies.push(ms_after(killed_at, &back));
        println!("round {round}: {new} SIGKILLed; {back}");
        r.serves(generation, "the generation taken back");
        assert_eq!(
            r.h.family
                .stderr
                .count_containing(mark, "spawned successor"),
            0,
            "no generation started: the one standing by took back"
        );
    }
    let rep = r.stop_load();
    let (median, p90) = median_p90(&latencies).expect("rounds");
    println!("keeper take-back after the death: median {median:.0} ms, p90 {p90:.0} ms");
    assert!(median <= 50.0, "take-back median {median:.0} ms");
    assert_only_in_flight_lost(&rep, 5, "5 crashes after ready, keeper");
    assert!(procfs::exists(keeper) && procfs::exists(generation));
}

/// A build that cannot reach what it needs: its readiness check fails before it accepts
/// anything; not one request fails, the old pid serves on, the reason reaches the log and the
/// `UpgradeHandle` caller.
#[test]
fn an_unhealthy_build_is_never_taken_into_service() {
    let _g = heavy_lock();
    let mut r = Rig::start("unhealthy", &["--admin"]);
    let old = r.h.pid();
    r.deploy_bad("HELLO_UNHEALTHY=1");
    let line = r.upgrade_until(old, "upgrade failed", 20);
    println!("{line}");
    assert!(
        line.contains("is not ready: readiness check: HELLO_UNHEALTHY"),
        "{line}"
    );
    // Through the handle: the typed error's text.
    let answer =
        integration_tests::http::post_once(&r.h.target, "/admin/upgrade", Duration::from_secs(30))
            .expect("POST /admin/upgrade");
    println!("POST /admin/upgrade: {} {}", answer.status, answer.text());
    assert_eq!(answer.status, 409);
    assert!(answer
        .text()
        .contains("is not ready: readiness check: HELLO_UNHEALTHY"));
    sleep_ms(500);
    let rep = r.stop_load();
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    assert_eq!(rep.pids.iter().copied().collect::<Vec<_>>(), [old]);
    r.deploy_good();
}

/// A build whose self-probe fails (its `/health` answers 503; no readiness check): not one
/// request reaches it, the old pid serves every one.
#[test]
fn a_build_failing_its_self_probe_answers_no_request() {
    let _g = heavy_lock();
    let dir = TempDir::new("probe");
    let env_file = dir.join("env");
    std::fs::write(&env_file, "").expect("env file");
    let fixture = integration_tests::fixture_bin();
    let mut cmd = std::process::Command::new(&fixture);
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--self-probe",
        "/health",
        "--env-file",
    ])
    .arg(&env_file)
    .env(integration_tests::family::PROBATION_VAR, PROBATION);
    let h = Hello::start_cmd("hello-fixture", cmd);
    let old = h.pid();
    let load = Load::start(LoadConfig {
        keepalive_clients: KEEPALIVE,
        per_request_loops: PER_REQUEST,
        ..LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set())
    });
    sleep_ms(300);
    std::fs::write(&env_file, "HELLO_UNHEALTHY=1\n").expect("env file");
    for round in 0..5 {
        let mark = h.family.stderr.len();
        assert!(signal(old, Signal::SIGUSR2));
        let succ = wait_spawned(&h.family, mark, Duration::from_secs(10)).expect("spawned");
        let line = h.wait_line(mark, "upgrade failed", 20);
        println!("round {round}: {line}");
        assert!(line.contains(&format!(
            "successor pid={succ} is not ready: self-probe: GET /health answered 503"
        )));
    }
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    assert_eq!(
        rep.pids.iter().copied().collect::<Vec<_>>(),
        [old],
        "answered by the new build"
    );
}

/// A build that answers 500 to every request: the error-rate rule (≥ 50 % of ≥ 20 responses)
/// rolls it back within its probation; the bad answers are about the 20 the rule needs, plus
/// those racing its verdict; no connection fails.
#[test]
fn a_build_answering_500s_is_rolled_back_by_the_error_rate_rule() {
    let _g = heavy_lock();
    let mut r = Rig::start("status-500", &[]);
    let old = r.h.pid();
    r.deploy_bad("HELLO_FAIL_STATUS=500");
    let line = r.upgrade_until(old, "ready after", 20);
    let bad = number_after(&line, "pid=").expect("pid") as i32;
    r.h.family.add_pid(bad);
    let back = r.line(0, "rolled back", 10);
    println!("{back}");
    assert!(
        back.contains("were 5xx (error-rate rule: 50% of at least 20 responses)"),
        "{back}"
    );
    r.serves(old, "the old build after the rollback");
    // It drains its clients and exits 1 (failed its probation); its parent reaps it.
    let exited = r.line(0, &format!("successor pid={bad} exited"), 15);
    assert!(exited.contains("(exit status 1)"), "{exited}");
    sleep_ms(500);
    let rep = r.stop_load();
    println!("500 answers: {}", rep.non_200);
    assert!(
        rep.non_200 >= 20 && rep.non_200 <= 20 + (KEEPALIVE + PER_REQUEST) as u64 * 4,
        "bad answers: {}",
        rep.summary()
    );
    assert_eq!(
        rep.failed() - rep.non_200,
        0,
        "connections failed: {}",
        rep.summary()
    );
    r.deploy_good();
}

/// A readiness check that needs 2 s to warm up: the old process serves meanwhile; no request
/// waits (the slowest answer stays far below the warm-up) and none fails.
#[test]
fn a_two_second_warm_up_makes_no_request_wait() {
    let _g = heavy_lock();
    let mut r = Rig::start("warm-up", &[]);
    let old = r.h.pid();
    r.deploy_bad("HELLO_WARMUP_MS=2000");
    let mark = r.h.family.stderr.len();
    let t0 = Instant::now();
    assert!(signal(old, Signal::SIGUSR2));
    let mut slowest = Duration::ZERO;
    while t0.elapsed() < Duration::from_millis(2500) {
        let t = Instant::now();
        let got = get_once(&r.h.target, "/", Duration::from_secs(5)).expect("GET /");
        slowest = slowest.max(t.elapsed());
        assert_eq!(got.status, 200);
        sleep_ms(10);
    }
    let line = r.line(mark, "ready after", 20);
    println!("{line}; the slowest fresh GET / meanwhile: {slowest:?}");
    let ready_ms = number_after(&line, "ready after").expect("ms");
    assert!(ready_ms >= 2000.0, "ready before the warm-up: {line}");
    assert!(
        slowest < Duration::from_millis(500),
        "a request waited {slowest:?}"
    );
    let rep = r.stop_load();
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    r.deploy_good();
}

/// SIGTERM to the new process during its probation: the service is meant to stop, so both
/// processes drain and exit 0.
#[test]
fn sigterm_during_the_probation_stops_both() {
    let _g = heavy_lock();
    let mut r = Rig::start("term-probation", &[]);
    let old = r.h.pid();
    let line = r.upgrade_until(old, "ready after", 20);
    let new = number_after(&line, "pid=").expect("pid") as i32;
    r.h.family.add_pid(new);
    sleep_ms(500);
    assert!(signal(new, Signal::SIGTERM));
    let line = r.line(0, "stops for good: so does this process", 10);
    println!("{line}");
    let rep = r.stop_load();
    println!("after the stop: {}", rep.summary());
    assert_eq!(
        r.h.family.wait_gone(old, Duration::from_secs(20)),
        Some(Gone::Reaped(Exit::Code(0)))
    );
    wait_exit_0(&r.h.family, new, Duration::from_secs(20)).expect("the new one exits 0");
}

/// Upgrades during a probation hand the fallback on: the first process (the last that passed)
/// stays the one standing by, so however many upgrades, two processes are left once the
/// replaced ones drained (the first and the newest), and the newest one's death brings the
/// first back.
#[test]
fn upgrades_during_a_probation_keep_one_fallback() {
    let _g = heavy_lock();
    let mut r = Rig::start("chain", &[]);
    let first = r.h.pid();
    let mut serving = first;
    for round in 0..6 {
        let line = r.upgrade_until(serving, "ready after", 20);
        let replaced = serving;
        serving = number_after(&line, "pid=").expect("pid") as i32;
        r.h.family.add_pid(serving);
        if replaced != first {
            // Not a fallback: it drains and exits, its parent reaps it.
            wait_exit_0(&r.h.family, replaced, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        let live = r.h.family.live_pids();
        println!("round {round}: live {live:?}");
        assert_eq!(
            live.len(),
            2,
            "round {round}: only the first and the newest: {live:?}"
        );
    }
    let mark = r.h.family.stderr.len();
    assert!(signal(serving, Signal::SIGKILL));
    let back = r.line(mark, "rolled back", 10);
    println!("{back}");
    assert!(back.contains(&format!("pid={first} serves")), "{back}");
    r.serves(first, "the first process, the last that passed");
    let rep = r.stop_load();
    assert_only_in_flight_lost(&rep, 1, "the newest killed");
}

/// An upgrade signal to the process standing by is refused (it is not in charge); after a
/// take-back the next upgrade works as usual.
#[test]
fn the_fallback_refuses_upgrades_until_it_takes_back() {
    let _g = heavy_lock();
    let mut r = Rig::start("fallback-signal", &[]);
    let old = r.h.pid();
    let line = r.upgrade_until(old, "ready after", 20);
    let new = number_after(&line, "pid=").expect("pid") as i32;
    r.h.family.add_pid(new);
    let refused = r.upgrade_until(old, "upgrade refused", 10);
    println!("{refused}");
    let mark = r.h.family.stderr.len();
    assert!(signal(new, Signal::SIGKILL));
    r.line(mark, "rolled back", 10);
    let again = r.upgrade_until(old, "ready after", 20);
    println!("after the take-back: {again}");
    let rep = r.stop_load();
    assert_only_in_flight_lost(&rep, 1, "the successor killed");
}

/// The successor dies just as its probation ends, 10 rounds around the end: every time, either
/// the old process takes back (the death came first) or it had let go (the verdict came first:
/// then it exits 0 and nobody serves, the documented limit of plain mode); never both.
#[test]
fn a_death_as_the_probation_ends_is_either_a_take_back_or_a_release() {
    let _g = heavy_lock();
    let dir = TempDir::new("probation-end");
    let exe = dir.join("hello");
    copy_hello(&exe);
    let (mut taken_back, mut released) = (0, 0);
    for round in 0..10u64 {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--listen", "127.0.0.1:0", "--probation-ms", "500"]);
        let h = Hello::start_cmd("hello", cmd);
        let old = h.pid();
        let mark = h.family.stderr.len();
        assert!(signal(old, Signal::SIGUSR2));
        let (_, line) = h
            .family
            .stderr
            .wait_for_line(mark, |l| l.contains("ready after"), Duration::from_secs(20))
            .expect("ready");
        let new = number_after(&line, "pid=").expect("pid") as i32;
        h.family.add_pid(new);
        sleep_ms(490 + round * 2); // 490..508 ms after ready
        assert!(signal(new, Signal::SIGKILL));
        let (_, verdict) = h
            .family
            .stderr
            .wait_for_line(
                mark,
                |l| l.contains("rolled back") || l.contains("passed its probation after"),
                Duration::from_secs(10),
            )
            .expect("a verdict");
        if verdict.contains("rolled back") {
            taken_back += 1;
            assert_eq!(
                wait_for_pid(&h.target, "/health", |p| p == old, Duration::from_secs(5)),
                Some(old)
            );
        } else {
            released += 1;
            assert_eq!(
                h.family.wait_gone(old, Duration::from_secs(10)),
                Some(Gone::Reaped(Exit::Code(0)))
            );
        }
        let verdicts = h.family.stderr.count_containing(mark, "rolled back")
            + h.family
                .stderr
                .count_containing(mark, "passed its probation after");
        assert_eq!(verdicts, 1, "round {round}: {}", h.family.output_tail(20));
    }
    println!("taken back {taken_back}, released {released}");
}
