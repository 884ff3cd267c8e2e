//! Stops (SIGTERM, SIGINT, SIGQUIT, SIGHUP) during a start, while generations drain; the exit
//! status.

use super::*;

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
        k.ends_with(0, "exit status 0");
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
    k.ends_with(3, "exit status 3");
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
    k.at(30_000).ends_with(2, "exit status 2");
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
    let mut k = Keeper::with(libc::SIGHUP);
    k.on(Event::Begin);
    k.ready(10);
    assert_eq!(
        k.signal(Signal::SIGHUP).last(),
        Some(&Action::Spawn(2, None))
    );
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
