//! Every transition of the keeper, without a process: events in, the exact actions out (log
//! lines, `sd_notify` texts, signals, exit status). A generation's control pipe is its pid here.

use super::*;

const ME: u32 = 100;

fn pid(n: i32) -> Pid {
    Pid::from_raw(n)
}

/// A keeper whose upgrade signal is SIGUSR2 (and which also sends SIGWINCH to a replaced
/// generation), with a clock of its own.
struct Keeper {
    m: Machine<i32>,
    t0: Instant,
    now: Instant,
}

impl Keeper {
    fn new() -> Keeper {
        Keeper::with(libc::SIGUSR2, Some(Signal::SIGWINCH))
    }

    fn with(upgrade: i32, legacy: Option<Signal>) -> Keeper {
        let t0 = Instant::now();
        Keeper {
            m: Machine::new(ME, upgrade, legacy),
            t0,
            now: t0,
        }
    }

    /// Moves the clock to `ms` after the start.
    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = self.t0 + Duration::from_millis(ms);
        self
    }

    fn on(&mut self, event: Event<i32>) -> Vec<Action<i32>> {
        self.m.handle(self.now, event)
    }

    fn signal(&mut self, signal: Signal) -> Vec<Action<i32>> {
        self.on(Event::Signal(signal))
    }

    fn ready(&mut self, n: i32) -> Vec<Action<i32>> {
        self.on(Event::Started(Ok((pid(n), n))))
    }

    fn failed(&mut self, why: &str) -> Vec<Action<i32>> {
        self.on(Event::Started(Err(why.to_owned())))
    }

    fn exited(&mut self, n: i32, code: i32, how: &str) -> Vec<Action<i32>> {
        self.on(Event::Exited {
            pid: pid(n),
            code,
            how: how.to_owned(),
        })
    }

    fn tick(&mut self) -> Vec<Action<i32>> {
        self.on(Event::Tick)
    }

    /// Begun, with generation 1 (pid 10) serving since 0 ms.
    fn serving() -> Keeper {
        let mut k = Keeper::new();
        assert_eq!(k.on(Event::Begin).last(), Some(&Action::Spawn(1)));
        k.ready(10);
        k
    }
}

fn info(text: &str) -> Action<i32> {
    Action::Log(Level::Info, text.to_owned())
}

fn warn(text: &str) -> Action<i32> {
    Action::Log(Level::Warn, text.to_owned())
}

fn error(text: &str) -> Action<i32> {
    Action::Log(Level::Error, text.to_owned())
}

fn notify(text: &str) -> Action<i32> {
    Action::Notify(text.to_owned())
}

fn exit(code: i32, why: &str) -> Action<i32> {
    Action::Exit {
        code,
        why: why.to_owned(),
    }
}

fn stopping(signal: &str, status: &str) -> Vec<Action<i32>> {
    vec![
        info(&format!("keeper: {signal}: stopping every generation")),
        notify(&format!(
            "STOPPING=1\nSTATUS={status}: stopping (keeper pid 100)"
        )),
    ]
}

fn spawns(actions: &[Action<i32>]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Spawn(_)))
        .count()
}

#[test]
fn first_start_ok_announces_the_keeper() {
    let mut k = Keeper::new();
    assert_eq!(
        k.on(Event::Begin),
        [
            info("keeper pid=100: starting the first generation"),
            Action::Spawn(1)
        ]
    );
    assert!(k.m.is_starting());
    assert_eq!(k.tick(), []);
    assert_eq!(
        k.at(42).ready(10),
        [
            info("keeper: generation pid=10 ready after 42.0 ms"),
            Action::Announce("STATUS=generation 1 (pid 10): serving (keeper pid 100)".to_owned()),
            info("keeper pid=100: serving through generation pid=10"),
        ]
    );
    assert!(!k.m.is_starting());
    assert_eq!(k.m.generations(), [pid(10)]);
    assert_eq!(k.m.deadline(), None);
    assert_eq!(k.at(60_000).tick(), []);
}

#[test]
fn a_failing_first_start_is_retried_at_once_then_with_backoff() {
    let mut k = Keeper::new();
    k.on(Event::Begin);
    assert_eq!(
        k.at(7).failed("boom"),
        [
            error("keeper: starting a generation failed after 7.0 ms: boom"),
            warn("keeper: starting a new generation now (failure 1 of at most 5 in a row)"),
        ]
    );
    assert_eq!(k.m.deadline(), Some(k.now));
    assert_eq!(k.tick(), [Action::Spawn(2)]);
    assert_eq!(
        k.at(10).failed("boom")[1],
        warn("keeper: starting a new generation in 250ms (failure 2 of at most 5 in a row)")
    );
    assert_eq!(k.at(259).tick(), []);
    assert_eq!(k.at(260).tick(), [Action::Spawn(3)]);
    // Ready at last: the keeper announces as for a first start.
    let ready = k.at(300).ready(12);
    assert!(matches!(ready[1], Action::Announce(_)), "{ready:?}");
    assert_eq!(k.m.deadline(), None);
}

#[test]
fn a_start_that_never_gets_ready_counts_as_a_failure() {
    let mut k = Keeper::new();
    k.on(Event::Begin);
    for s in 1..5 {
        assert_eq!(
            k.at(s * 1000).tick(),
            [],
            "no second start while one is in flight"
        );
    }
    assert_eq!(
        k.at(5000).failed("not ready within 5s"),
        [
            error("keeper: starting a generation failed after 5000.0 ms: not ready within 5s"),
            warn("keeper: starting a new generation now (failure 1 of at most 5 in a row)"),
        ]
    );
}

#[test]
fn the_start_thread_gone_counts_as_a_failure() {
    let mut k = Keeper::new();
    k.on(Event::Begin);
    assert_eq!(
        k.on(Event::StarterGone),
        [
            error("keeper: the start thread is gone; cannot start a generation"),
            warn("keeper: starting a new generation now (failure 1 of at most 5 in a row)"),
        ]
    );
    assert!(!k.m.is_starting());
}

#[test]
fn a_crash_loop_backs_off_then_gives_up_with_status_1() {
    let mut k = Keeper::new();
    k.on(Event::Begin);
    let mut t = 0;
    let mut delays = Vec::new();
    for n in 1..=MAX_FAILURES {
        let last = k.at(t).failed("boom").pop().unwrap();
        let at = k.m.deadline().unwrap();
        delays.push(at - k.now);
        let when = match n {
            1 => "now".to_owned(),
            _ => format!("in {:?}", at - k.now),
        };
        assert_eq!(
            last,
            warn(&format!(
                "keeper: starting a new generation {when} (failure {n} of at most 5 in a row)"
            ))
        );
        t += (at - k.now).as_millis() as u64;
        assert_eq!(k.at(t).tick(), [Action::Spawn(u64::from(n) + 1)]);
    }
    let ms = Duration::from_millis;
    assert_eq!(delays, [ms(0), ms(250), ms(500), ms(1000), ms(2000)]);
    let status = "generation 0 (pid 0)";
    let mut expected = vec![
        error("keeper: starting a generation failed after 0.0 ms: boom"),
        error("keeper: 6 generations failed in a row; giving up"),
        notify(&format!(
            "STATUS={status}: crash loop: giving up (keeper pid 100)"
        )),
    ];
    expected.extend(stopping("SIGTERM", status));
    assert_eq!(k.failed("boom"), expected);
    assert_eq!(k.m.deadline(), None);
    assert_eq!(
        k.tick(),
        [exit(1, "gave up after 6 failed generations in a row")]
    );
}

#[test]
fn backoff_doubles_after_an_immediate_first_retry() {
    assert_eq!(backoff(1), Duration::ZERO);
    assert_eq!(backoff(2), Duration::from_millis(250));
    assert_eq!(backoff(3), Duration::from_millis(500));
    assert_eq!(backoff(5), Duration::from_secs(2));
    assert!(backoff(u32::MAX) > Duration::from_secs(1000));
}

#[test]
fn upgrade_replaces_the_old_generation_once_the_new_one_is_ready() {
    let mut k = Keeper::serving();
    assert_eq!(
        k.at(1000).signal(Signal::SIGUSR2),
        [
            info("upgrade: starting generation 2"),
            Action::Reloading(
                "STATUS=generation 1 (pid 10): upgrading: starting generation 2 (keeper pid 100)"
                    .to_owned()
            ),
            Action::Spawn(2),
        ]
    );
    assert_eq!(
        k.m.generations(),
        [pid(10)],
        "untouched while the new one starts"
    );
    assert_eq!(
        k.at(1500).ready(11),
        [
            info("upgrade: successor pid=11 ready after 500.0 ms; draining generation pid=10"),
            Action::Replaced(pid(10), 10),
            Action::Kill(pid(10), Signal::SIGWINCH),
            notify(
                "READY=1\nSTATUS=generation 2 (pid 11): serving; generation 1 draining (keeper pid 100)"
            ),
        ]
    );
    assert_eq!(k.m.generations(), [pid(11), pid(10)]);
    assert_eq!(
        k.exited(10, 0, "exit status 0"),
        [info("keeper: old generation pid=10 exited (exit status 0)")]
    );
    assert_eq!(k.m.generations(), [pid(11)]);
    assert_eq!(k.tick(), []);
}

#[test]
fn without_a_legacy_signal_the_control_pipe_alone_says_replaced() {
    let mut k = Keeper::with(libc::SIGWINCH, None);
    k.on(Event::Begin);
    k.ready(10);
    assert_eq!(spawns(&k.signal(Signal::SIGWINCH)), 1);
    let actions = k.ready(11);
    assert!(
        actions.contains(&Action::Replaced(pid(10), 10)),
        "{actions:?}"
    );
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Kill(..))),
        "{actions:?}"
    );
}

#[test]
fn a_failed_upgrade_leaves_the_running_generation_alone() {
    let mut k = Keeper::serving();
    k.at(1000).signal(Signal::SIGUSR2);
    assert_eq!(
        k.at(1250).failed("timed out"),
        [
            error("upgrade failed after 250.0 ms: timed out; generation pid=10 keeps serving"),
            notify(
                "READY=1\nSTATUS=generation 1 (pid 10): serving; upgrade failed: timed out (keeper pid 100)"
            ),
        ]
    );
    assert_eq!(k.m.generations(), [pid(10)]);
    assert_eq!(k.m.deadline(), None, "not a failure: no replacement");
    assert_eq!(k.tick(), []);
    // The next upgrade is the third generation.
    assert_eq!(k.signal(Signal::SIGUSR2).last(), Some(&Action::Spawn(3)));
}

#[test]
fn an_upgrade_storm_starts_one_generation() {
    let mut k = Keeper::serving();
    let mut actions = Vec::new();
    for _ in 0..10 {
        actions.extend(k.signal(Signal::SIGUSR2));
    }
    assert_eq!(spawns(&actions), 1);
    let refused = warn("upgrade refused: an upgrade is already in progress");
    assert_eq!(actions.iter().filter(|&a| *a == refused).count(), 9);
    assert_eq!(k.tick(), []);
    assert_eq!(spawns(&k.ready(11)), 0);
    assert_eq!(k.m.generations(), [pid(11), pid(10)]);
}

#[test]
fn a_stop_during_an_upgrade_storm_stops_everything() {
    let mut k = Keeper::serving();
    k.signal(Signal::SIGUSR2);
    k.signal(Signal::SIGUSR2);
    let mut expected = stopping("SIGTERM", "generation 1 (pid 10)");
    expected.push(Action::CancelStart(Signal::SIGTERM));
    expected.push(Action::Kill(pid(10), Signal::SIGTERM));
    assert_eq!(k.signal(Signal::SIGTERM), expected);
    assert_eq!(
        k.signal(Signal::SIGUSR2),
        [warn("upgrade refused: the keeper is stopping")]
    );
    // The successor got ready just as the stop came: it stops too.
    assert_eq!(
        k.ready(11),
        [
            info("keeper: generation pid=11 got ready while stopping: sending SIGTERM"),
            Action::Kill(pid(11), Signal::SIGTERM),
        ]
    );
    assert_eq!(
        k.exited(10, 0, "exit status 0"),
        [info("keeper: generation pid=10 stopped (exit status 0)")]
    );
    assert_eq!(k.tick(), [], "pid 11 still runs");
    assert_eq!(
        k.exited(11, 143, "killed by signal SIGTERM"),
        [info(
            "keeper: old generation pid=11 exited (killed by signal SIGTERM)"
        )]
    );
    assert_eq!(
        k.tick(),
        [exit(0, "the last generation ended with exit status 0")]
    );
}

#[test]
fn a_refused_upgrade_while_the_first_generation_starts() {
    let mut k = Keeper::new();
    k.on(Event::Begin);
    assert_eq!(
        k.signal(Signal::SIGUSR2),
        [warn("upgrade refused: a generation is being started")]
    );
}

#[test]
fn an_upgrade_while_no_generation_runs_starts_one_now() {
    let mut k = Keeper::serving();
    k.at(20_000).exited(10, 1, "exit status 1"); // failure 1: a replacement now
    assert_eq!(k.tick(), [Action::Spawn(2)]);
    k.at(20_001).failed("boom"); // failure 2: a replacement in 250 ms
    assert_eq!(k.m.deadline(), Some(k.now + Duration::from_millis(250)));
    assert_eq!(
        k.at(20_002).signal(Signal::SIGUSR2),
        [info(
            "upgrade signal while no generation runs: starting one now"
        )]
    );
    assert_eq!(k.m.deadline(), Some(k.now));
    assert_eq!(k.tick(), [Action::Spawn(3)]);
    // A restart after the first announcement: READY=1 is not sent again.
    assert_eq!(
        k.at(20_100).ready(12),
        [
            info("keeper: generation pid=12 ready after 98.0 ms"),
            notify("STATUS=generation 3 (pid 12): serving (keeper pid 100)"),
        ]
    );
}

#[test]
fn stop_signals_during_a_start_cancel_it() {
    for (signal, name) in [
        (Signal::SIGTERM, "SIGTERM"),
        (Signal::SIGINT, "SIGINT"),
        (Signal::SIGQUIT, "SIGQUIT"),
    ] {
        let mut k = Keeper::new();
        k.on(Event::Begin);
        let mut expected = stopping(name, "generation 0 (pid 0)");
        expected.push(Action::CancelStart(signal));
        assert_eq!(k.signal(signal), expected);
        assert_eq!(k.tick(), [], "the start has not reported yet");
        assert_eq!(
            k.failed("stopped"),
            [info("keeper: start abandoned for the stop: stopped")]
        );
        assert_eq!(
            k.tick(),
            [exit(0, "the last generation ended with exit status 0")]
        );
    }
}

#[test]
fn a_stop_while_generations_drain_waits_for_all_of_them() {
    let mut k = Keeper::serving();
    k.signal(Signal::SIGUSR2);
    k.ready(11);
    let mut expected = stopping("SIGINT", "generation 2 (pid 11)");
    expected.push(Action::Kill(pid(11), Signal::SIGINT));
    expected.push(Action::Kill(pid(10), Signal::SIGINT));
    assert_eq!(k.signal(Signal::SIGINT), expected);
    // A second stop signal: passed on, not announced again.
    assert_eq!(
        k.signal(Signal::SIGTERM),
        [
            Action::Kill(pid(11), Signal::SIGTERM),
            Action::Kill(pid(10), Signal::SIGTERM)
        ]
    );
    assert_eq!(
        k.exited(11, 3, "exit status 3"),
        [info("keeper: generation pid=11 stopped (exit status 3)")]
    );
    assert_eq!(k.tick(), []);
    k.exited(10, 0, "exit status 0");
    assert_eq!(
        k.tick(),
        [exit(3, "the last generation ended with exit status 3")]
    );
}

#[test]
fn the_exit_status_is_the_last_current_generations() {
    let mut k = Keeper::serving();
    k.signal(Signal::SIGQUIT);
    k.exited(10, 131, "killed by signal SIGQUIT");
    assert_eq!(
        k.tick(),
        [exit(
            131,
            "the last generation ended with killed by signal SIGQUIT"
        )]
    );
}

#[test]
fn a_stop_while_a_replacement_waits_ends_with_the_dead_ones_status() {
    let mut k = Keeper::serving();
    k.at(20_000).exited(10, 2, "exit status 2");
    assert_eq!(k.m.deadline(), Some(k.now));
    k.signal(Signal::SIGTERM);
    assert_eq!(k.m.deadline(), None);
    assert_eq!(
        k.at(30_000).tick(),
        [exit(2, "the last generation ended with exit status 2")]
    );
}

#[test]
fn a_generation_that_dies_within_stable_counts_as_a_failure() {
    let mut k = Keeper::new();
    k.on(Event::Begin);
    k.failed("boom"); // failure 1
    k.tick();
    k.at(100).ready(11);
    assert_eq!(
        k.at(100 + 9_900).exited(11, 1, "exit status 1"),
        [
            error(
                "keeper: generation pid=11 exited unasked (exit status 1) after 9.9 s of serving; \
                 the keeper holds the sockets, clients queue"
            ),
            notify(
                "STATUS=generation 2 (pid 11): died (exit status 1); starting a new generation (keeper pid 100)"
            ),
            warn("keeper: starting a new generation in 250ms (failure 2 of at most 5 in a row)"),
        ]
    );
    assert_eq!(k.m.deadline(), Some(k.now + Duration::from_millis(250)));
}

#[test]
fn a_generation_that_dies_after_stable_is_a_one_off_crash() {
    let mut k = Keeper::new();
    k.on(Event::Begin);
    k.failed("boom"); // failure 1
    k.tick();
    k.at(100).ready(11);
    let actions = k
        .at(100 + STABLE.as_millis() as u64)
        .exited(11, 1, "exit status 1");
    assert_eq!(
        actions.last(),
        Some(&warn(
            "keeper: starting a new generation now (failure 1 of at most 5 in a row)"
        ))
    );
    assert_eq!(k.m.deadline(), Some(k.now));
    assert_eq!(k.tick(), [Action::Spawn(3)]);
}

#[test]
fn sighup_stops_as_sigterm() {
    let mut k = Keeper::serving();
    let mut expected = vec![info("keeper: SIGHUP (hang-up): stopping as on SIGTERM")];
    expected.extend(stopping("SIGTERM", "generation 1 (pid 10)"));
    expected.push(Action::Kill(pid(10), Signal::SIGTERM));
    assert_eq!(k.signal(Signal::SIGHUP), expected);
}

#[test]
fn sighup_upgrades_when_it_is_the_upgrade_signal() {
    let mut k = Keeper::with(libc::SIGHUP, Some(Signal::SIGWINCH));
    k.on(Event::Begin);
    k.ready(10);
    assert_eq!(k.signal(Signal::SIGHUP).last(), Some(&Action::Spawn(2)));
}

#[test]
fn other_signals_and_other_children_change_nothing() {
    let mut k = Keeper::serving();
    assert_eq!(k.signal(Signal::SIGCHLD), []);
    assert_eq!(
        k.signal(Signal::SIGWINCH),
        [Action::Log(
            Level::Debug,
            "keeper: ignoring SIGWINCH".to_owned()
        )]
    );
    assert_eq!(
        k.exited(77, 0, "exit status 0"),
        [Action::Log(
            Level::Debug,
            "keeper: reaped pid=77 (exit status 0)".to_owned()
        )]
    );
    assert_eq!(k.m.generations(), [pid(10)]);
    assert_eq!(k.tick(), []);
}

#[test]
fn a_late_start_result_is_ignored() {
    let mut k = Keeper::serving();
    assert_eq!(k.ready(99), []);
    assert_eq!(k.m.generations(), [pid(10)]);
}
