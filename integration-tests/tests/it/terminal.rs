//! Where users run the server from a terminal: `hello --keeper` as the foreground job of a
//! real pseudo-terminal that is resized, gets ^C typed and hangs up, and a plain successor that
//! leads a process group of its own (so a terminal's signals reach only the process the user
//! started). Real processes, real signals, a real pseudo-terminal. Every test holds the global
//! heavy lock.

use integration_tests::hello::{upgrade, Hello, UpgradeOpts};
use integration_tests::http::get_once;
use integration_tests::pty::{pgid, Pty};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{heavy_lock, hello_bin, procfs, sleep_ms};
use std::process::Command;
use std::time::Duration;

/// `hello --keeper` started as the foreground job of a fresh 120x40 pseudo-terminal: the
/// terminal, the keeper, and the pid of its first generation.
fn keeper_in_a_terminal(name: &str) -> (Pty, Hello, i32) {
    let pty = Pty::open(120, 40).expect("openpty");
    let mut cmd = Command::new(hello_bin());
    cmd.args(["--keeper", "--listen", "127.0.0.1:0", "--workers", "1"]);
    pty.attach(&mut cmd);
    let h = Hello::start_cmd(name, cmd);
    let generation = h.first_generation();
    (pty, h, generation)
}

/// `hello --keeper` as the foreground job of a real pseudo-terminal, resized 20 times
/// (each a SIGWINCH to the terminal's foreground process group): the same generation serves
/// throughout and the keeper stays. Before the fix, each resize drained the generation ("you
/// were replaced") and the keeper gave up after six.
#[test]
fn keeper_survives_terminal_resizes() {
    let _g = heavy_lock();
    let (pty, h, generation) = keeper_in_a_terminal("hello-pty");
    let keeper = h.pid();
    let foreground = pty.foreground().expect("tcgetpgrp");
    println!(
        "keeper {keeper} (group {:?}), generation {generation} (group {:?}), terminal's foreground group {foreground}",
        pgid(keeper),
        pgid(generation)
    );
    assert_eq!(
        foreground, keeper,
        "the keeper is the terminal's foreground job"
    );
    let mark = h.family.stderr.len();
    for i in 0..20u16 {
        let (cols, rows) = if i % 2 == 0 { (100, 30) } else { (120, 40) };
        pty.resize(cols, rows).expect("TIOCSWINSZ");
        sleep_ms(100);
        let served = get_once(&h.target, "/", Duration::from_secs(5))
            .unwrap_or_else(|f| panic!("resize {i}: {f}\n{}", h.family.output_tail(30)));
        assert_eq!(
            served.pid,
            Some(generation),
            "resize {i}: another generation serves\n{}",
            h.family.output_tail(30)
        );
    }
    assert!(
        procfs::exists(keeper) && !procfs::is_zombie(keeper),
        "keeper gone"
    );
    let drained = h.family.stderr.find(mark, |l| {
        l.contains("exited unasked") || l.contains("draining") || l.contains("giving up")
    });
    assert!(drained.is_empty(), "after the resizes: {drained:?}");
    println!("20 resizes: generation {generation} served throughout, keeper {keeper} stays");

    // ^C typed at the terminal: the line discipline sends SIGINT to the foreground group, the
    // keeper alone; it passes it on.
    pty.type_bytes(b"\x03").expect("type ^C");
    let gone = h.family.wait_gone(keeper, Duration::from_secs(20));
    println!("^C: keeper {gone:?}");
    assert!(gone.is_some(), "keeper still there after ^C");
    assert!(
        h.family
            .wait_gone(generation, Duration::from_secs(5))
            .is_some(),
        "generation left behind"
    );
}

/// The terminal of `hello --keeper` hangs up (its master side is closed, as when the
/// window or the ssh session goes): the keeper gets SIGHUP and stops everything gracefully,
/// exit status 0. Before: SIGHUP's default action killed the keeper (and, in the same group,
/// the generation with it).
#[test]
fn keeper_stops_gracefully_on_terminal_hangup() {
    let _g = heavy_lock();
    let (pty, h, generation) = keeper_in_a_terminal("hello-hup");
    let keeper = h.pid();
    drop(pty);
    let keeper_gone = h.family.wait_gone(keeper, Duration::from_secs(20));
    let generation_gone = h.family.wait_gone(generation, Duration::from_secs(5));
    println!("hang-up: keeper {keeper_gone:?}, generation {generation_gone:?}");
    assert_eq!(keeper_gone, Some(Gone::Reaped(Exit::Code(0))));
    assert!(generation_gone.is_some(), "generation left behind");
    assert_eq!(
        h.family.stderr.count_containing(
            0,
            &format!("generation pid={generation} stopped (exit status 0)")
        ),
        1,
        "{}",
        h.family.output_tail(20)
    );
}

/// Plain mode: a successor leads a process group of its own, so a terminal's signals to
/// the group the user started (a resize, ^C) go to the process the user started, and a failed
/// successor can be killed with all it started.
#[test]
fn plain_successor_leads_its_own_process_group() {
    let _g = heavy_lock();
    let h = Hello::start(&hello_bin(), &["--listen", "127.0.0.1:0", "--workers", "1"]);
    let old = h.pid();
    let u = upgrade(&h.family, &h.target, old, &UpgradeOpts::default())
        .unwrap_or_else(|e| panic!("{e}\n{}", h.family.output_tail(30)));
    let group = pgid(u.new);
    println!("first {old}, successor {} in group {group:?}", u.new);
    assert_eq!(group, Some(u.new), "the successor leads its own group");
}
