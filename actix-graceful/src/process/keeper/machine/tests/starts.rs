//! Starts: the first, failing ones, the crash loop and its backoff, deaths within or after
//! STABLE.

use super::*;

#[test]
fn first_start_ok_announces_the_keeper() {
    let mut k = Keeper::new();
    assert_eq!(
        k.on(Event::Begin),
        [
            info("keeper pid=100: starting the first generation"),
            Action::Spawn(1, None)
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
    assert_eq!(k.tick(), [Action::Spawn(2, None)]);
    assert_eq!(
        k.at(10).failed("boom")[1],
        warn("keeper: starting a new generation in 250ms (failure 2 of at most 5 in a row)")
    );
    assert_eq!(k.at(259).tick(), []);
    assert_eq!(k.at(260).tick(), [Action::Spawn(3, None)]);
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
        assert_eq!(k.at(t).tick(), [Action::Spawn(u64::from(n) + 1, None)]);
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

impl Keeper {
    /// Begun, the first start failed, generation 2 (pid 11) serving since 100 ms.
    fn serving_after_a_failure() -> Keeper {
        let mut k = Keeper::new();
        k.on(Event::Begin);
        k.failed("boom"); // failure 1
        k.tick();
        k.at(100).ready(11);
        k
    }
}

#[test]
fn a_generation_that_dies_within_stable_counts_as_a_failure() {
    let mut k = Keeper::serving_after_a_failure();
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
    let mut k = Keeper::serving_after_a_failure();
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
    assert_eq!(
        k.tick(),
        [Action::Spawn(3, Some(11))],
        "a restart runs the build that crashed"
    );
}

#[test]
fn a_late_start_result_is_ignored() {
    let mut k = Keeper::serving();
    assert_eq!(k.ready(99), []);
    assert_eq!(k.m.generations(), [pid(10)]);
}
