//! Bad builds deployed with `systemctl reload` under a real systemd manager (issue 18, points 6
//! and 9), for both shipped units as they are (`hello-handoff.service`, `hello.service`: hello's
//! default 10 s probation and every check it has), under load (8 keep-alive + 2
//! connection-per-request clients):
//! - a build that crashes 1 s after it is ready (the test SIGKILLs it 1 s after `systemctl
//!   reload` returned, which it does once the new process serves);
//! - an unhealthy build (`HELLO_UNHEALTHY=1`: its readiness check fails);
//! - a build that answers 500 (`HELLO_FAIL_STATUS=500`: the error-rate rule).
//!
//! Each asserts what systemd shows (`ActiveState`, `NRestarts`, `MainPID`, `StatusText`), what
//! `systemctl reload` returned, that the process serving before serves on, on the same pid,
//! past the end of the bad build's probation (no crash loop), and the requests failed.
//!
//! The bad build is the good binary behind a `#!/bin/sh` wrapper that sets the knob and `exec`s
//! it (`/usr/local/bin/hello.real` inside the manager's namespace), renamed over
//! `/usr/local/bin/hello` as a deploy would.
//!
//! Run: `cargo test -p integration-tests --all-features --test it systemd::rollback --
//! --nocapture` (as root; see `integration_tests::systemd`).

use super::svc::{Shape, Svc, T};
use integration_tests::http::wait_for_pid;
use integration_tests::systemd::Ctl;
use integration_tests::{
    heavy_lock, hello_bin, signal, sleep_ms, FailKind, Load, LoadConfig, LoadReport,
};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// The clients, as in the issue's measurements.
const KEEPALIVE: usize = 8;
const PER_REQUEST: usize = 2;
/// The bad builds' probation: hello's default 10 s, which the units keep, unless
/// `SYSTEMD_PROBATION_S` sets another through the tests' drop-in (CI: 3 s, the same checks in
/// less time).
fn probation() -> Duration {
    Duration::from_secs(integration_tests::env_usize("SYSTEMD_PROBATION_S", 10) as u64)
}

/// The drop-in line for [`probation`], when it is not hello's default.
fn probation_drop_in() -> String {
    match probation().as_secs() {
        10 => String::new(),
        s => format!("Environment=ACTIX_GRACEFUL_PROBATION={s}s"),
    }
}

/// The bad builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bad {
    /// The good build; the test SIGKILLs it 1 s after it is ready.
    CrashAfterReady,
    /// `HELLO_UNHEALTHY=1`.
    Unhealthy,
    /// `HELLO_FAIL_STATUS=500`.
    Status500,
    /// Killed as soon as it serves, by a watcher in its wrapper.
    DiesAtReady,
}

/// The wrapper of [`Bad::DiesAtReady`] (bash: `/dev/tcp`, and `exec N>&-` for any N): a watcher,
/// its inherited fds closed first (else it would hold the listener and the report channel),
/// sends `GET /` every 2 ms to `HELLO_LISTEN` and SIGKILLs the build once a response carries
/// its pid; it gives up after 30 s.
const DIES_AT_READY: &str = r#"#!/bin/bash
me=$$
(
    for fd in /proc/self/fd/*; do
        n=${fd##*/}
        if [ "$n" -gt 2 ] && [ "$n" -lt 255 ]; then eval "exec $n>&-" 2>/dev/null; fi
    done
    shopt -s nocasematch
    end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ] && sleep 0.002; do
        exec 9<>"/dev/tcp/${HELLO_LISTEN%:*}/${HELLO_LISTEN##*:}" 2>/dev/null || continue
        printf 'GET / HTTP/1.0\r\n\r\n' >&9
        answer=$(cat <&9)
        exec 9<&-
        case "$answer" in *"x-pid: $me"*) kill -KILL "$me"; exit 0 ;; esac
    done
) &
exec /usr/local/bin/hello.real "$@"
"#;

impl Bad {
    /// The wrapper script that installs this build.
    fn script(self) -> String {
        let env = match self {
            Bad::CrashAfterReady => "",
            Bad::Unhealthy => "export HELLO_UNHEALTHY=1\n",
            Bad::Status500 => "export HELLO_FAIL_STATUS=500\n",
            Bad::DiesAtReady => return DIES_AT_READY.to_owned(),
        };
        format!("#!/bin/sh\n{env}exec /usr/local/bin/hello.real \"$@\"\n")
    }
}

/// A unit serving under load, about to get a bad build.
struct Deploy {
    svc: Svc,
    shape: Shape,
    /// `MainPID` before the deploy: the old process (plain) or the keeper.
    main: i32,
    /// The pid serving before the deploy, which must serve on.
    serving: i32,
    /// `NRestarts` before the deploy.
    restarts: String,
    load: Option<Load>,
}

impl Deploy {
    /// The unit as shipped, started, with the good build beside the path and the load running.
    fn start(shape: Shape, bad: Bad) -> Option<Deploy> {
        let svc = Svc::shape(&format!("{bad:?}-{shape:?}"), shape, &probation_drop_in())?;
        let real = svc.m.bin_dir().join("hello.real");
        if std::fs::hard_link(hello_bin(), &real).is_err() {
            integration_tests::copy_hello(&real);
        }
        svc.start();
        if shape == Shape::Keeper {
            // The keeper's first generation is on probation itself at first, and
            // the keeper keeps only a generation that passed as the fallback: deploy after.
            svc.m
                .wait_prop(&svc.unit, "StatusText", probation() + T, |s| {
                    s.contains("probation passed")
                })
                .unwrap_or_else(|| panic!("first probation\n{}", svc.context()));
        }
        let main = svc.main_pid();
        let serving = svc.serving_pid().expect("serving after start");
        let restarts = svc.m.prop(&svc.unit, "NRestarts");
        let load = Load::start(LoadConfig {
            keepalive_clients: KEEPALIVE,
            per_request_loops: PER_REQUEST,
            max_duration: Duration::from_secs(120),
            ..LoadConfig::light(svc.target.clone())
        });
        sleep_ms(300);
        Some(Deploy {
            svc,
            shape,
            main,
            serving,
            restarts,
            load: Some(load),
        })
    }

    /// Installs `bad` and runs `systemctl reload`; its outcome, printed.
    fn reload(&self, bad: Bad) -> Ctl {
        self.svc.deploy_script(&bad.script());
        let c = self.svc.ctl("reload");
        println!(
            "{} {bad:?}: `systemctl reload` {} after {:.0} ms{}",
            self.svc.unit,
            c.exit,
            c.took.as_secs_f64() * 1e3,
            match c.stderr.trim() {
                "" => String::new(),
                e => format!(" ({e})"),
            }
        );
        c
    }

    /// Waits for a `StatusText` containing `needle`; the text.
    fn status_with(&self, needle: &str, timeout: Duration) -> String {
        self.status_with_any(&[needle], timeout)
    }

    /// Waits for a `StatusText` containing one of `needles`; the text.
    fn status_with_any(&self, needles: &[&str], timeout: Duration) -> String {
        let svc = &self.svc;
        svc.m
            .wait_prop(&svc.unit, "StatusText", timeout, |s| {
                needles.iter().any(|n| s.contains(n))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no StatusText with {needles:?} (now: {})\n{}",
                    svc.status_text(),
                    svc.context()
                )
            })
    }

    /// Until `until`, every 200 ms: the unit active, not restarted, its `MainPID` the one before
    /// the deploy, the old pid serving a fresh connection. The number of samples.
    fn stays_settled(&self, until: Instant) -> usize {
        let svc = &self.svc;
        let props = ["ActiveState", "MainPID", "NRestarts"];
        let want = [
            "active".to_owned(),
            self.main.to_string(),
            self.restarts.clone(),
        ];
        let mut samples = 0;
        loop {
            let now = svc.m.show(&svc.unit, &props);
            let got: Vec<&str> = props.iter().map(|p| now[*p].as_str()).collect();
            assert_eq!(
                got,
                want,
                "systemd's view after the rollback\n{}",
                svc.context()
            );
            assert_eq!(
                svc.serving_pid(),
                Some(self.serving),
                "the previous build should serve on, on the same pid\n{}",
                svc.context()
            );
            samples += 1;
            if Instant::now() >= until {
                return samples;
            }
            sleep_ms(200);
        }
    }

    /// What systemd shows now, printed with its lines about the unit.
    fn print_systemd(&self) {
        let svc = &self.svc;
        let props = ["ActiveState", "SubState", "MainPID", "NRestarts", "Result"];
        println!(
            "systemd: {:?}; StatusText={}",
            svc.m.show(&svc.unit, &props),
            svc.status_text()
        );
        println!("{}", svc.m.unit_log(&svc.unit, 6));
    }

    fn snapshot(&self) -> LoadReport {
        self.load.as_ref().expect("load").report()
    }

    fn stop_load(&mut self) -> LoadReport {
        let rep = self.load.take().expect("load").stop();
        println!("{} load: {}", self.svc.unit, rep.summary());
        rep
    }
}

/// The new process, right after `systemctl reload` returned: `MainPID` (plain) or the pid a
/// fresh connection reaches (keeper: `MainPID` is the keeper's).
///
/// Keeper: the keeper's `STATUS=` ends the reload as the new generation serves, and the
/// replaced one stops accepting once it has read the keeper's word, which can be later (388 ms
/// once, under two CPU hogs). Until then a fresh connection may reach either: a known gap
/// (README, "Under systemd"), asserted in `manager.rs`'s `keeper_reload_under_load`. This test
/// is about the rollback, so it waits for the new build, within the second before the crash.
fn new_process(d: &Deploy) -> i32 {
    let svc = &d.svc;
    let new = match d.shape {
        Shape::Handoff => svc.main_pid(),
        Shape::Keeper => {
            assert_eq!(svc.main_pid(), d.main, "the keeper's MainPID moved");
            let since = Instant::now();
            let new = wait_for_pid(&svc.target, "/", |p| p != d.serving, Duration::from_secs(1));
            let ms = since.elapsed().as_secs_f64() * 1e3;
            println!(
                "{}: a fresh connection reached the new build {ms:.0} ms after the reload returned",
                svc.unit
            );
            new.unwrap_or(d.serving)
        }
    };
    assert_ne!(
        new,
        d.serving,
        "the new build does not serve\n{}",
        svc.context()
    );
    new
}

/// SIGKILLs `new` 1 s after `ready`; how long until a fresh connection was answered by the
/// previous build (ms), and when it was killed.
fn crash(d: &Deploy, new: i32, ready: Instant) -> (f64, Instant) {
    let at = ready + Duration::from_secs(1);
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
    let killed = Instant::now();
    assert!(signal(new, Signal::SIGKILL), "{new} gone before the crash");
    let back = wait_for_pid(&d.svc.target, "/", |p| p == d.serving, T);
    assert_eq!(back, Some(d.serving), "no take-back\n{}", d.svc.context());
    (killed.elapsed().as_secs_f64() * 1e3, killed)
}

/// No connection refused; at most one failure per client connection, each at the crash.
fn assert_only_in_flight_lost(rep: &LoadReport, killed: Instant, what: &str) {
    assert_eq!(
        rep.count(FailKind::ConnectRefused),
        0,
        "{what}: {}",
        rep.summary()
    );
    assert_eq!(rep.non_200, 0, "{what}: {}", rep.summary());
    assert!(
        rep.failed() as usize <= KEEPALIVE + PER_REQUEST,
        "{what}: more failed than client connections: {}",
        rep.summary()
    );
    for s in &rep.samples {
        let after = s.instant.saturating_duration_since(killed);
        assert!(
            s.instant >= killed && after < Duration::from_secs(2),
            "{what}: a failure away from the crash ({:.0} ms after it): {s}",
            after.as_secs_f64() * 1e3
        );
    }
}

/// `systemctl reload` of a build that crashes 1 s after it is ready: the previous build takes
/// back, systemd shows the unit active, not restarted, `MainPID` the old process (plain) or the
/// keeper, `StatusText` rolled back; the previous build serves on past the bad build's
/// probation; only requests in flight at the crash fail; the next deploy works.
fn crash_after_ready(shape: Shape) {
    let _g = heavy_lock();
    let Some(mut d) = Deploy::start(shape, Bad::CrashAfterReady) else {
        return;
    };
    let c = d.reload(Bad::CrashAfterReady);
    let ready = Instant::now();
    assert!(c.ok(), "reload: {}\n{}", c.stderr, d.svc.context());
    let new = new_process(&d);
    let (back_ms, killed) = crash(&d, new, ready);
    let status = d.status_with("rolled back", T);
    println!(
        "{}: new build pid {new} SIGKILLed 1 s after `systemctl reload` returned; pid {} \
         answered a fresh connection {back_ms:.0} ms later; StatusText={status}",
        d.svc.unit, d.serving
    );
    assert!(
        status.contains("died (killed by signal SIGKILL)"),
        "{status}"
    );
    let samples = d.stays_settled(ready + probation() + Duration::from_secs(2));
    d.print_systemd();
    let rep = d.snapshot();
    println!(
        "{} crash after ready: {} ({samples} checks of systemd and the serving pid over {:.1} s)",
        d.svc.unit,
        rep.summary(),
        ready.elapsed().as_secs_f64()
    );
    assert_only_in_flight_lost(&rep, killed, "crash after ready");
    // The next deploy works as usual and loses nothing.
    d.svc.deploy_good();
    let c = d.svc.ctl("reload");
    assert!(c.ok(), "the next reload: {}\n{}", c.stderr, d.svc.context());
    let next = d
        .svc
        .wait_serving_other(d.serving, T)
        .expect("the next build");
    sleep_ms(500);
    let end = d.stop_load();
    println!(
        "the next reload: {} after {:.0} ms, pid {next} serves",
        c.exit,
        c.took.as_secs_f64() * 1e3
    );
    assert_eq!(
        end.failed(),
        rep.failed(),
        "the next deploy lost requests: {}",
        end.summary()
    );
}

#[test]
fn handoff_reload_of_a_crash_after_ready_build_rolls_back() {
    crash_after_ready(Shape::Handoff);
}

#[test]
fn keeper_reload_of_a_crash_after_ready_build_rolls_back() {
    crash_after_ready(Shape::Keeper);
}

/// `systemctl reload` of a build whose readiness check fails: the reload fails, `StatusText`
/// says why, the old pid serves every request, none fails.
fn unhealthy(shape: Shape) {
    let _g = heavy_lock();
    let Some(mut d) = Deploy::start(shape, Bad::Unhealthy) else {
        return;
    };
    let c = d.reload(Bad::Unhealthy);
    let status = d.status_with("upgrade failed", T);
    println!("{}: StatusText={status}", d.svc.unit);
    assert!(
        !c.ok(),
        "the reload of an unhealthy build succeeded\n{}",
        d.svc.context()
    );
    assert!(
        status.contains("is not ready: readiness check: HELLO_UNHEALTHY"),
        "{status}"
    );
    d.stays_settled(Instant::now() + Duration::from_secs(3));
    d.print_systemd();
    let rep = d.stop_load();
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    let pids: Vec<i32> = rep.pids.iter().copied().collect();
    assert_eq!(
        pids,
        [d.serving],
        "answered by another process than the old one"
    );
}

#[test]
fn handoff_reload_of_an_unhealthy_build_fails_and_loses_nothing() {
    unhealthy(Shape::Handoff);
}

#[test]
fn keeper_reload_of_an_unhealthy_build_fails_and_loses_nothing() {
    unhealthy(Shape::Keeper);
}

/// `systemctl reload` of a build that answers 500: the error-rate rule rolls it back within its
/// probation; the bad answers are about the 20 the rule needs; no connection fails.
fn status_500(shape: Shape) {
    let _g = heavy_lock();
    let Some(mut d) = Deploy::start(shape, Bad::Status500) else {
        return;
    };
    let c = d.reload(Bad::Status500);
    let ready = Instant::now();
    let status = d.status_with("rolled back", probation());
    let back = wait_for_pid(&d.svc.target, "/", |p| p == d.serving, T);
    println!(
        "{}: rolled back {:.0} ms after `systemctl reload` returned ({}); StatusText={status}",
        d.svc.unit,
        ready.elapsed().as_secs_f64() * 1e3,
        c.exit
    );
    assert_eq!(back, Some(d.serving), "{}", d.svc.context());
    assert!(status.contains("were 5xx"), "{status}");
    d.stays_settled(ready + probation() + Duration::from_secs(2));
    d.print_systemd();
    let rep = d.stop_load();
    println!("{}: {} answers 500", d.svc.unit, rep.non_200);
    assert_eq!(
        rep.failed(),
        rep.non_200,
        "connections failed: {}",
        rep.summary()
    );
    let most = 20 + (KEEPALIVE + PER_REQUEST) as u64 * 4;
    assert!(
        (20..=most).contains(&rep.non_200),
        "bad answers {} (20..={most})",
        rep.non_200
    );
}

#[test]
fn handoff_reload_of_a_500_build_is_rolled_back_by_the_error_rate_rule() {
    status_500(Shape::Handoff);
}

#[test]
fn keeper_reload_of_a_500_build_is_rolled_back_by_the_error_rate_rule() {
    status_500(Shape::Keeper);
}

/// `systemctl reload` of a build that dies as soon as it serves, racing the `ExecReload=`
/// command's 50 ms poll of `StatusText`: whichever status it sees first, the new process
/// serving (exit 0) or the rollback (exit 1), the reload returns at once (not at
/// `TimeoutStartSec=`), and the previous build serves on. When the death comes before the old
/// process heard the new one's ready report, it is a failed upgrade (exit 1).
fn dies_at_ready(shape: Shape) {
    let _g = heavy_lock();
    let Some(mut d) = Deploy::start(shape, Bad::DiesAtReady) else {
        return;
    };
    let c = d.reload(Bad::DiesAtReady);
    let status = d.status_with_any(&["rolled back", "upgrade failed"], T);
    let back = wait_for_pid(&d.svc.target, "/", |p| p == d.serving, T);
    println!("{}: StatusText={status}", d.svc.unit);
    assert_eq!(back, Some(d.serving), "{}", d.svc.context());
    assert!(status.contains("(killed by signal SIGKILL)"), "{status}");
    if status.contains("upgrade failed") {
        assert!(!c.ok(), "a failed upgrade, a successful reload");
    }
    assert!(
        c.took < T,
        "`systemctl reload` took {:?}\n{}",
        c.took,
        d.svc.context()
    );
    d.stays_settled(Instant::now() + Duration::from_secs(2));
    d.print_systemd();
    let rep = d.stop_load();
    assert_eq!(rep.count(FailKind::ConnectRefused), 0, "{}", rep.summary());
    assert!(
        rep.failed() as usize <= KEEPALIVE + PER_REQUEST,
        "{}\n{}",
        rep.summary(),
        d.svc.context()
    );
}

#[test]
fn handoff_reload_of_a_build_dying_at_ready_returns_at_once() {
    dies_at_ready(Shape::Handoff);
}

#[test]
fn keeper_reload_of_a_build_dying_at_ready_returns_at_once() {
    dies_at_ready(Shape::Keeper);
}

/// An `ExecReload=` (drop-in) that ends exactly as the successor dies: it sends the upgrade
/// signal, waits for `MainPID` to name the successor, SIGKILLs it, and exits 0 as soon as the
/// successor is a zombie, before its parent, the old process, has reaped it and sent the
/// take-back's `MAINPID=`.
const RELOAD_ENDING_AT_THE_DEATH: &str = "ExecReload=\n\
    ExecReload=/bin/sh -c 'old=$$MAINPID; kill -USR2 \"$$old\" || exit 1; new=$$old; \
    while [ \"$$new\" = \"$$old\" ]; do sleep 0.01; \
    new=$$(systemctl --user show -p MainPID --value %n); done; kill -KILL \"$$new\"; \
    while [ -e /proc/$$new ] && ! grep -q \"^State:.*Z\" /proc/$$new/status 2>/dev/null; do :; done'";

/// A plain-handoff unit (`unit`, with its `.socket` units `sockets`): `rounds` reloads whose
/// `ExecReload=` ends as the successor dies ([`RELOAD_ENDING_AT_THE_DEATH`]), with `extra` in
/// the drop-in. How many of them left the unit stopped (each one is started again for the next
/// round).
fn reload_ending_at_the_death(
    tag: &str,
    (unit, sockets): (&str, &[&str]),
    extra: &str,
    rounds: usize,
) -> Option<usize> {
    let extra = format!("{RELOAD_ENDING_AT_THE_DEATH}\n{extra}");
    let svc = Svc::install(tag, unit, sockets, &extra)?;
    svc.start();
    let mut stopped = 0;
    for round in 0..rounds {
        let old = svc.main_pid();
        let c = svc.ctl("reload");
        let settled = svc.m.wait_prop(&svc.unit, "ActiveState", T, |s| {
            s != "active" && s != "reloading" || svc.status_text().contains("rolled back")
        });
        sleep_ms(300);
        let props = ["ActiveState", "SubState", "MainPID", "Result", "NRestarts"];
        let now = svc.m.show(&svc.unit, &props);
        println!(
            "{tag} round {round}: reload {}; old {old}, serving {:?}; {now:?}; {}",
            c.exit,
            svc.serving_pid(),
            svc.status_text()
        );
        assert!(settled.is_some(), "{}", svc.context());
        if now["ActiveState"] != "active" {
            stopped += 1;
            println!("{}", svc.m.unit_log(&svc.unit, 8));
            // Five starts within 10 s are systemd's default start limit.
            svc.m.must(&["reset-failed", &svc.unit]);
            svc.start();
        } else {
            assert_eq!(now["MainPID"], old.to_string(), "{}", svc.context());
            assert_eq!(svc.serving_pid(), Some(old), "{}", svc.context());
        }
    }
    Some(stopped)
}

/// The measurement behind the plain-handoff units' `ExitType=cgroup`: with systemd's default
/// `ExitType=main` (drop-in), a reload that ends while `MainPID` names a successor that just
/// died makes systemd 252 find the main process dead and stop the unit, a success, no restart
/// (`service_enter_running()`: `service_good()` is false). Printed, not asserted (systemd's
/// behaviour, 252 here); the units as shipped stay active every time.
#[test]
fn handoff_reload_ending_as_the_successor_dies() {
    let _g = heavy_lock();
    let (rounds, unit) = (10, (Shape::Handoff.unit(), &[][..]));
    let Some(stopped) =
        reload_ending_at_the_death("death-exit-main", unit, "ExitType=main", rounds)
    else {
        return;
    };
    println!("ExitType=main: the unit stopped after {stopped} of {rounds} such reloads");
    let shipped = reload_ending_at_the_death("death-shipped", unit, "", rounds);
    println!("as shipped (ExitType=cgroup): stopped after {shipped:?} of {rounds}");
    assert_eq!(shipped, Some(0));
}

/// The same for the socket-activated unit as shipped.
#[test]
fn activated_reload_ending_as_the_successor_dies() {
    let _g = heavy_lock();
    let sockets = ["hello-public.socket", "hello-admin.socket"];
    let unit = ("hello-activated.service", &sockets[..]);
    let stopped = reload_ending_at_the_death("death-activated", unit, "", 10);
    println!("hello-activated.service: stopped after {stopped:?} of 10 such reloads");
    assert!(matches!(stopped, None | Some(0)));
}
