//! Probation: the replaced generation stands by, is released when the new one passes, takes
//! back when it fails or dies; with nobody standing by, the last good build starts; a crash
//! loop of a new build rolls back to the good one; quick upgrades keep one fallback.

use super::*;

/// Generation 1 (pid 10, build 10) serving and proven; generation 2 (pid 11, build 11) ready on
/// a 10 s probation at 1 000 ms, with 10 standing by.
fn on_probation() -> Keeper {
    let mut k = Keeper::serving();
    k.at(500).signal(Signal::SIGUSR2);
    let actions = k.at(1000).ready_on_probation(11, 10_000);
    assert!(
        actions.contains(&Action::Control(pid(10), Control::Replaced)),
        "{actions:?}"
    );
    assert!(
        !actions.contains(&Action::Control(pid(10), Control::Release)),
        "the replaced generation stands by: {actions:?}"
    );
    assert_eq!(k.m.generations(), [pid(11), pid(10)]);
    k
}

#[test]
fn passing_releases_the_generation_standing_by_and_makes_the_build_good() {
    let mut k = on_probation();
    assert_eq!(
        k.at(11_000).reports(11, Report::Passed { pid: pid(11) }),
        [
            info("keeper: generation pid=11 passed its probation after 10.0 s"),
            Action::Control(pid(10), Control::Release),
            notify("STATUS=generation 2 (pid 11): serving; probation passed (keeper pid 100)"),
        ]
    );
    // 11 is the good build now; 10, the one before, is kept for a crash loop of 11.
    assert_eq!(k.m.builds(), [10, 11]);
    assert_eq!(k.exited(10, 0, "exit status 0").len(), 1);
    assert_eq!(k.m.generations(), [pid(11)]);
}

#[test]
fn a_declared_failure_takes_back_at_once() {
    let mut k = on_probation();
    let reason = "12 of its 20 responses were 5xx";
    assert_eq!(
        k.at(2000).reports(
            11,
            Report::Failed {
                pid: pid(11),
                reason: reason.to_owned()
            }
        ),
        [
            error(&format!(
                "keeper: generation pid=11 failed its probation ({reason}); rolled back to the \
                 previous build: generation pid=10 serves again"
            )),
            Action::Control(pid(10), Control::TakeBack),
            notify(&format!(
                "READY=1\nSTATUS=generation 1 (pid 10): rolled back to the previous build \
                 ({reason}) (keeper pid 100)"
            )),
        ]
    );
    // The failed one drains and exits by itself; the one taken back is current again.
    assert_eq!(k.m.generations(), [pid(10), pid(11)]);
    assert_eq!(
        k.exited(11, 1, "exit status 1"),
        [info("keeper: old generation pid=11 exited (exit status 1)")]
    );
    // The next upgrade works as usual.
    assert_eq!(spawns(&k.signal(Signal::SIGUSR2)), 1);
}

#[test]
fn a_death_during_probation_takes_back() {
    let mut k = on_probation();
    let actions = k.at(2000).exited(11, 137, "killed by signal SIGKILL");
    assert_eq!(
        actions[0],
        error(
            "keeper: generation pid=11 failed its probation (it died (killed by signal \
             SIGKILL)); rolled back to the previous build: generation pid=10 serves again"
        )
    );
    assert_eq!(actions[1], Action::Control(pid(10), Control::TakeBack));
    assert_eq!(k.m.generations(), [pid(10)]);
    assert_eq!(
        k.m.take_events().last(),
        Some(&crate::events::Event::RolledBack {
            pid: 11,
            reason: "it died (killed by signal SIGKILL)".to_owned(),
            after: Duration::from_millis(1000),
        }),
        "the app hears of it"
    );
    assert_eq!(k.at(60_000).tick(), [], "no restart: the good one serves");
}

#[test]
fn with_nobody_standing_by_the_good_build_starts() {
    let mut k = on_probation();
    k.at(1500).exited(10, 137, "killed by signal SIGKILL");
    assert_eq!(k.m.generations(), [pid(11)]);
    let actions = k.at(2000).exited(11, 137, "killed by signal SIGKILL");
    assert!(
        actions.contains(&error(
            "keeper: generation pid=11 failed its probation (it died (killed by signal \
             SIGKILL)) and no generation stands by: starting the previous build"
        )),
        "{actions:?}"
    );
    assert_eq!(k.tick(), [Action::Spawn(3, Some(10))]);
    let actions = k.at(2100).ready(12);
    assert!(
        actions.contains(&notify(
            "STATUS=generation 3 (pid 12): serving; rolled back to the previous build \
             (keeper pid 100)"
        )),
        "{actions:?}"
    );
}

#[test]
fn no_verdict_by_the_probation_and_its_grace_counts_as_passed() {
    let mut k = on_probation();
    assert_eq!(k.m.deadline(), Some(k.t0 + Duration::from_millis(16_000)));
    assert_eq!(k.at(15_999).tick(), []);
    let actions = k.at(16_000).tick();
    assert!(
        actions.contains(&Action::Control(pid(10), Control::Release)),
        "{actions:?}"
    );
}

#[test]
fn quick_upgrades_keep_one_generation_standing_by_the_last_good_one() {
    let mut k = on_probation();
    for (n, at) in [(12, 2000), (13, 3000), (14, 4000)] {
        k.at(at - 100).signal(Signal::SIGUSR2);
        let actions = k.at(at).ready_on_probation(n, 10_000);
        let prev = pid(n - 1);
        assert!(
            actions.contains(&Action::Control(prev, Control::Replaced))
                && actions.contains(&Action::Control(prev, Control::Release)),
            "the unproven one is released: {actions:?}"
        );
        k.exited(n - 1, 0, "exit status 0");
        assert_eq!(k.m.generations(), [pid(n), pid(10)], "10 stands by");
    }
    let actions = k.at(5000).exited(14, 134, "killed by signal SIGABRT");
    assert!(
        actions.contains(&Action::Control(pid(10), Control::TakeBack)),
        "{actions:?}"
    );
}

#[test]
fn an_unproven_first_generation_stands_by_when_nothing_else_does() {
    let mut k = Keeper::new();
    k.on(Event::Begin);
    k.ready_on_probation(10, 10_000); // the first generation, on probation itself
    k.at(500).signal(Signal::SIGUSR2);
    let actions = k.at(1000).ready_on_probation(11, 10_000);
    assert!(
        !actions.contains(&Action::Control(pid(10), Control::Release)),
        "it stands by: {actions:?}"
    );
    let actions = k.at(2000).exited(11, 137, "killed by signal SIGKILL");
    assert!(
        actions.contains(&Action::Control(pid(10), Control::TakeBack)),
        "{actions:?}"
    );
}

#[test]
fn a_crash_loop_of_a_new_build_rolls_back_to_the_good_build() {
    let mut k = on_probation();
    k.at(11_000).reports(11, Report::Passed { pid: pid(11) });
    k.exited(10, 0, "exit status 0");
    // Build 12 (no probation: good at once) crash-loops: its restarts run build 12 again, then
    // the keeper goes back to build 11, the good one before it.
    k.at(11_500).signal(Signal::SIGUSR2);
    k.at(12_000).ready(12);
    k.exited(11, 0, "exit status 0");
    let mut t = 13_000;
    for n in 1..=MAX_FAILURES {
        k.at(t)
            .exited(11 + n as i32, 139, "killed by signal SIGSEGV");
        t += 3000;
        assert_eq!(
            k.at(t).tick(),
            [Action::Spawn(u64::from(n) + 3, Some(12))],
            "restart {n} runs the build that crashed"
        );
        k.ready_build(12 + n as i32, 12);
    }
    let actions = k
        .at(t + 1000)
        .exited(12 + MAX_FAILURES as i32, 139, "killed by signal SIGSEGV");
    assert!(
        actions.contains(&error(
            "keeper: 6 generations of this build failed in a row; rolled back to the previous \
             build"
        )),
        "{actions:?}"
    );
    assert_eq!(
        k.tick(),
        [Action::Spawn(u64::from(MAX_FAILURES) + 4, Some(11))]
    );
}
