//! What the successor starts with: a changed environment (`--env-file`, i.e.
//! `Graceful::successor_env_file`), a different set of listeners, another user, a binary whose
//! permissions changed.

use integration_tests::hello::{
    upgrade, upgrade_must_fail, wait_startup, Hello, Upgrade, UpgradeOpts,
};
use integration_tests::http::{get_once, wait_for_pid};
use integration_tests::load::{join_slow, spawn_slow};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    free_port, heavy_lock, private_copy, procfs, sleep_ms, Load, LoadConfig, LoadReport, Target,
};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn light_load(h: &Hello, target: &Target) -> Load {
    Load::start(LoadConfig::light(target.clone()).pids_into(h.family.pid_set()))
}

fn must_upgrade(h: &Hello, pid: i32, load: &Load) -> Upgrade {
    let u = upgrade(&h.family, &h.target, pid, &UpgradeOpts::default())
        .unwrap_or_else(|e| panic!("upgrade of {pid}: {e}\nload: {}", load.report().summary()));
    assert_eq!(u.old_exit, Some(Gone::Reaped(Exit::Code(0))), "old {pid}");
    u
}

/// SIGUSR2 `pid`; the `upgrade failed` line, which must contain every one of `want`.
fn failed_upgrade(h: &Hello, pid: i32, want: &[&str]) -> String {
    let line = upgrade_must_fail(&h.family, pid);
    println!("{line}");
    for w in want {
        assert!(line.contains(w), "{line:?} should contain {w:?}");
    }
    let p = wait_for_pid(&h.target, "/health", |p| p == pid, Duration::from_secs(5));
    assert_eq!(p, Some(pid), "{pid} should still serve");
    line
}

/// `GET /env?name=` on a fresh connection: (answering pid, value or None on 404).
fn env_of(target: &Target, name: &str) -> (Option<i32>, Option<String>) {
    let r = get_once(target, &format!("/env?name={name}"), Duration::from_secs(5))
        .unwrap_or_else(|f| panic!("GET /env: {f}"));
    match r.status {
        200 => (r.pid, Some(r.text())),
        404 => (r.pid, None),
        s => panic!("GET /env: status {s}"),
    }
}

fn assert_no_failures(rep: &LoadReport) {
    println!("load: {}", rep.summary());
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    assert!(rep.total > 0);
}

/// A variable the old process did not have reaches the successor through the env file, which
/// is re-read at every upgrade; a missing or malformed file fails the upgrade with the path
/// (and line) named, and the old process serves on.
#[test]
fn env_file_changes_the_successor_environment() {
    let _g = heavy_lock();
    let (dir, exe) = private_copy("envfile");
    let file = dir.join("app.env");
    let file_arg = file.display().to_string();
    let h = Hello::start(&exe, &["--listen", "127.0.0.1:0", "--env-file", &file_arg]);
    let g1 = h.pid();
    let load = light_load(&h, &h.target);
    assert_eq!(env_of(&h.target, "APP_COLOR"), (Some(g1), None));

    failed_upgrade(&h, g1, &["environment file", &file_arg, "No such file"]);
    std::fs::write(&file, "# the colour\nAPP_COLOR red\n").unwrap();
    failed_upgrade(&h, g1, &[&file_arg, "line 2: expected KEY=VALUE"]);
    std::fs::write(&file, "LISTEN_FDS=9\n").unwrap();
    failed_upgrade(&h, g1, &["line 1: LISTEN_FDS is set by the handoff"]);

    std::fs::write(
        &file,
        "# the colour\nAPP_COLOR=blue\nexport APP_TIER=gold # not a comment\n",
    )
    .unwrap();
    let g2 = must_upgrade(&h, g1, &load).new;
    assert_eq!(
        env_of(&h.target, "APP_COLOR"),
        (Some(g2), Some("blue".into()))
    );
    assert_eq!(
        env_of(&h.target, "APP_TIER"),
        (Some(g2), Some("gold # not a comment".into()))
    );
    assert_eq!(
        env_of(&h.target, "RUST_LOG"),
        (Some(g2), Some("info".into())),
        "the rest of the environment is inherited"
    );

    std::fs::write(&file, "APP_COLOR=green\n").unwrap();
    let g3 = must_upgrade(&h, g2, &load).new;
    assert_eq!(
        env_of(&h.target, "APP_COLOR"),
        (Some(g3), Some("green".into()))
    );
    // Inherited from g2, which had it from the file of its own upgrade.
    assert_eq!(
        env_of(&h.target, "APP_TIER").1.as_deref(),
        Some("gold # not a comment")
    );

    sleep_ms(200);
    assert_no_failures(&load.stop());
    assert_eq!(h.family.live_pids(), vec![g3]);
}

/// The successor's listener set differs (`HELLO_LISTEN` changed through the env file): a
/// listener renamed at the same address is inherited (matched by address), a new one is bound
/// fresh, and a removed one is closed by the successor (`not claimed ... closing it`) and
/// stops listening when the old process exits. No failed request on the kept listener.
#[test]
fn successor_with_a_different_listener_set() {
    let _g = heavy_lock();
    let (dir, exe) = private_copy("listeners");
    let file = dir.join("app.env");
    let mut cmd = Command::new(&exe);
    cmd.args(["--env-file", &file.display().to_string()])
        .env("HELLO_LISTEN", "web=127.0.0.1:0,old=127.0.0.1:0");
    let h = Hello::start_cmd("hello", cmd);
    println!("started: {}", h.startup.line);
    let [web, removed] = [0, 1].map(|i| h.startup.listeners[i].target());
    let (web_port, removed_port) = (web.port().unwrap(), removed.port().unwrap());
    let load = light_load(&h, &web);
    // Requests in flight on the listener about to be removed finish in the old process.
    let slow = spawn_slow(&removed, 1500, 2, Some(h.family.pid_set()));
    sleep_ms(200);

    // An explicit new port: a port-0 request would take the unclaimed `old` socket (same IP).
    let extra_port = free_port();
    std::fs::write(
        &file,
        format!("HELLO_LISTEN=site=127.0.0.1:{web_port},extra=127.0.0.1:{extra_port}\n"),
    )
    .unwrap();
    let mark = h.family.stdout.len();
    let err_mark = h.family.stderr.len();
    let u = must_upgrade(&h, h.pid(), &load);
    let st = wait_startup(&h.family, mark, Duration::from_secs(5)).expect("successor startup");
    println!("successor: {}", st.line);
    assert_eq!(st.listeners.len(), 2, "{}", st.line);
    assert_eq!(st.listeners[0].addr, format!("127.0.0.1:{web_port}"));
    assert!(
        st.listeners[0].inherited,
        "renamed listener not inherited: {}",
        st.line
    );
    assert!(
        !st.listeners[1].inherited,
        "added listener should be bound: {}",
        st.line
    );
    let added = st.listeners[1].target();
    assert_eq!(added.port(), Some(extra_port));
    assert_eq!(
        wait_for_pid(&added, "/health", |p| p == u.new, Duration::from_secs(5)),
        Some(u.new)
    );
    let closing = h.family.stderr.find(err_mark, |l| {
        l.contains("was not claimed") && l.contains("\"old\"")
    });
    println!("{closing:?}");
    assert_eq!(
        closing.len(),
        1,
        "the successor should close the removed listener"
    );
    assert!(
        procfs::tcp_listen_inodes(removed_port).is_empty(),
        "the removed listener (port {removed_port}) still listens"
    );
    for r in join_slow(slow) {
        let r = r.unwrap_or_else(|f| panic!("slow request on the removed listener: {f}"));
        assert_eq!((r.status, r.pid), (200, Some(u.old)));
    }
    sleep_ms(200);
    assert_no_failures(&load.stop());
}

/// Run as an unprivileged user (`setpriv` to nobody when the tests run as root): upgrades
/// work. Then the binary loses its execute permission: the upgrade fails with "Permission
/// denied" and the old process serves on; executable again, the next upgrade works.
#[test]
fn non_root_user_and_binary_permission_changes() {
    let _g = heavy_lock();
    let (dir, exe) = private_copy("nonroot");
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    let is_root = euid == 0;
    let mut cmd;
    if is_root {
        let setpriv = Path::new("/usr/bin/setpriv");
        assert!(
            setpriv.exists(),
            "setpriv (util-linux) is needed to drop root"
        );
        // The copy and its directory must be reachable by nobody.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        cmd = Command::new(setpriv);
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe);
    } else {
        println!("not root: running as uid {euid} as is");
        cmd = Command::new(&exe);
    }
    cmd.args(["--listen", "127.0.0.1:0"]);
    let h = Hello::start_cmd("hello", cmd);
    let g1 = h.pid();
    let uid = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
            })
            .unwrap_or_default()
    };
    let want_uid = if is_root { 65534 } else { euid }.to_string();
    assert_eq!(uid(g1), want_uid, "first generation's effective uid");
    let load = light_load(&h, &h.target);

    let g2 = must_upgrade(&h, g1, &load).new;
    assert_eq!(uid(g2), want_uid, "successor's effective uid");

    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o644)).unwrap();
    failed_upgrade(&h, g2, &["could not execute", "Permission denied"]);
    if is_root {
        // Executable, but only by its owner (root): still not for nobody.
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o700)).unwrap();
        failed_upgrade(&h, g2, &["could not execute", "Permission denied"]);
    }
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let g3 = must_upgrade(&h, g2, &load).new;
    assert_eq!(uid(g3), want_uid);
    sleep_ms(200);
    assert_no_failures(&load.stop());
    assert_eq!(h.family.live_pids(), vec![g3]);
    let z = h.family.lasting_zombies();
    assert!(z.is_empty(), "zombies: {z:?}");
}
