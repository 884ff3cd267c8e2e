//! Upgrades: the replacement, a failed one, refused ones, signal storms.

use super::*;

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
            Action::Spawn(2, None),
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
            Action::Control(pid(10), Control::Replaced),
            Action::Control(pid(10), Control::Release),
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
fn the_control_pipe_alone_says_replaced_whatever_the_upgrade_signal() {
    let mut k = Keeper::with(libc::SIGWINCH);
    k.on(Event::Begin);
    k.ready(10);
    assert_eq!(spawns(&k.signal(Signal::SIGWINCH)), 1);
    let actions = k.ready(11);
    assert!(
        actions.contains(&Action::Control(pid(10), Control::Replaced)),
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
    assert_eq!(
        k.signal(Signal::SIGUSR2).last(),
        Some(&Action::Spawn(3, None))
    );
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
    k.ends_with(0, "exit status 0");
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
    assert_eq!(
        k.tick(),
        [Action::Spawn(2, Some(10))],
        "the build that crashed"
    );
    k.at(20_001).failed("boom"); // failure 2: a replacement in 250 ms
    assert_eq!(k.m.deadline(), Some(k.now + Duration::from_millis(250)));
    assert_eq!(
        k.at(20_002).signal(Signal::SIGUSR2),
        [info(
            "upgrade signal while no generation runs: starting one now"
        )]
    );
    assert_eq!(k.m.deadline(), Some(k.now));
    assert_eq!(
        k.tick(),
        [Action::Spawn(3, None)],
        "an upgrade: the file at the path"
    );
    // A restart after the first announcement: READY=1 is not sent again.
    assert_eq!(
        k.at(20_100).ready(12),
        [
            info("keeper: generation pid=12 ready after 98.0 ms"),
            notify("STATUS=generation 3 (pid 12): serving (keeper pid 100)"),
        ]
    );
}
