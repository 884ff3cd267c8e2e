//! File-descriptor exhaustion: the running server's `RLIMIT_NOFILE` is lowered from outside
//! (`prlimit(2)` on its pid, what `prlimit --pid` does) so that an upgrade runs out of fds, in
//! the old process (the readiness pipe) or in the successor (placing its listeners). The
//! upgrade fails with a clear error, the old process serves on without a failed request and
//! without a leaked fd, and once the limit is back the next upgrade works.
//!
//! The load is keep-alive only, opened before the limit is lowered: a process at its fd limit
//! cannot accept a new connection either (actix retries the accept), which is the kernel's
//! doing, not the handoff's.

use integration_tests::hello::{upgrade, upgrade_must_fail, Hello, UpgradeOpts};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{heavy_lock, hello_bin, procfs, sleep_ms, Load, LoadConfig};

/// Sets the soft `RLIMIT_NOFILE` of `pid` (hard limit unchanged); returns the previous soft one.
fn set_soft_nofile(pid: i32, soft: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new limit only reads the current one into `old`, which we own.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit read: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: both pointers are to valid rlimit values on our stack.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit set: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

/// The `k` lowest fd numbers not open in `pid`.
fn free_fds(pid: i32, k: usize) -> Vec<i32> {
    let open: std::collections::BTreeSet<i32> = procfs::fd_targets(pid)
        .into_iter()
        .map(|(fd, _)| fd)
        .collect();
    (0..).filter(|fd| !open.contains(fd)).take(k).collect()
}

/// The total of requests made by `load` grows by at least 50 within 5 s: still served.
fn assert_load_progresses(load: &Load, what: &str) {
    let before = load.total();
    for _ in 0..100 {
        sleep_ms(50);
        if load.total() >= before + 50 {
            return;
        }
    }
    panic!(
        "{what}: the keep-alive load stopped progressing: {}",
        load.report().summary()
    );
}

#[test]
fn fd_exhaustion_fails_the_upgrade_cleanly_and_the_old_process_serves_on() {
    let _g = heavy_lock();
    let h = Hello::start(&hello_bin(), &["--listen", "127.0.0.1:0", "--workers", "2"]);
    let pid = h.pid();
    let load = Load::start(LoadConfig {
        per_request_loops: 0,
        ..LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set())
    });
    sleep_ms(500);
    let fds_before = procfs::fd_count(pid).expect("fd count");

    // a) No fd left for the readiness pipe in the old process.
    let first_free = free_fds(pid, 1)[0];
    let original = set_soft_nofile(pid, first_free as u64);
    println!("old process: {fds_before} fds, soft RLIMIT_NOFILE {original} -> {first_free}");
    let line = upgrade_must_fail(&h.family, pid);
    println!("{line}");
    assert!(
        line.contains("cannot start the successor") && line.contains("Too many open files"),
        "{line}"
    );
    assert_load_progresses(&load, "after the pipe failure");

    // b) Room for the old process's two pipes (4 fds) but none for the successor, which must
    //    duplicate its listeners above them before exec.
    set_soft_nofile(pid, original);
    let four = free_fds(pid, 4);
    set_soft_nofile(pid, four[3] as u64 + 1);
    println!("soft RLIMIT_NOFILE -> {} (free fds {four:?})", four[3] + 1);
    let line = upgrade_must_fail(&h.family, pid);
    println!("{line}");
    assert!(
        line.contains("cannot place the listeners") && line.contains("Too many open files"),
        "{line}"
    );
    assert_load_progresses(&load, "after the successor's dup failure");

    // c) Limit restored: nothing leaked, and the next upgrade works.
    set_soft_nofile(pid, original);
    let fds_after = procfs::fd_count(pid).expect("fd count");
    assert_eq!(
        fds_after,
        fds_before,
        "fds leaked: {:?}",
        procfs::fd_targets(pid)
    );
    let u = upgrade(&h.family, &h.target, pid, &UpgradeOpts::default()).expect("upgrade");
    assert_eq!(u.old_exit, Some(Gone::Reaped(Exit::Code(0))));
    sleep_ms(300);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    assert_eq!(h.family.live_pids(), vec![u.new]);
}
