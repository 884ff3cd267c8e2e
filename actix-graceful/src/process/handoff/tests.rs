//! The handoff alone, without a server: a plan with a real listener, a successor that is a
//! shell script (it checks what it was given and reports ready, or fails), and what
//! [`hand_over`] returns. Each test starts and reaps its own processes.

use std::{
    ffi::OsString,
    io::Write as _,
    net::TcpListener,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::PathBuf,
    time::{Duration, Instant},
};

use nix::{
    sys::{
        signal::{kill, Signal},
        wait::waitpid,
    },
    unistd::Pid,
};

use super::{hand_over, Cancel, Plan, Readiness};

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ag-handoff-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One handoff at a time, as in a server: a successor forked by one test must not inherit a
/// pipe another test's thread has just made (the readiness wait reads its end-of-file).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A plan that runs `script` with `/bin/sh` and hands over `listeners`.
fn plan(script: &str, listeners: Vec<(i32, String)>, cwd: &std::path::Path) -> Plan {
    Plan {
        listeners,
        generation: 7,
        exe: PathBuf::from("/bin/sh"),
        exe_fd: None,
        args: vec!["sh".into(), "-c".into(), OsString::from(script)],
        cwd: cwd.to_path_buf(),
        upgrade_signal: libc::SIGUSR2,
        readiness: Readiness::Reported,
        timeout: Duration::from_secs(10),
        env: Vec::new(),
        env_file: None,
        control: None,
        fallback: None,
    }
}

/// Stops and reaps a successor that reported ready.
fn stop(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// Reports ready (a `ready` line with no probation on the channel the protocol names), then
/// waits to be stopped.
const REPORT_READY: &str =
    r#"eval "printf 'ready %s 0\n' $$ >&$ACTIX_GRACEFUL_READY_FD"; exec sleep 30"#;

#[test]
fn nothing_to_hand_over_is_refused_before_any_process_starts() {
    let _serial = serial();
    let dir = TempDir::new("none");
    let marker = dir.0.join("started");
    let script = format!("touch {}; {REPORT_READY}", marker.display());
    let err = hand_over(&plan(&script, Vec::new(), &dir.0), &Cancel::default()).unwrap_err();
    assert!(err.to_string().contains("nothing to hand over"), "{err}");
    assert!(!marker.exists(), "a successor was started");
}

#[test]
fn the_successor_gets_the_plans_listeners_by_the_protocol_and_its_report_is_ready() {
    let _serial = serial();
    let dir = TempDir::new("ok");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let inode = std::fs::metadata(format!("/proc/self/fd/{}", listener.as_raw_fd()))
        .map(|m| m.ino())
        .ok();
    let seen = dir.0.join("seen");
    // What the successor found: its variables and the file behind its fd 3.
    let script = format!(
        "{{ echo \"$LISTEN_FDS $LISTEN_FDNAMES $ACTIX_GRACEFUL_GENERATION\"; \
           [ \"$LISTEN_PID\" = \"$$\" ] && echo pid-ok; \
           stat -L -c %i /proc/$$/fd/3; }} > {}; {REPORT_READY}",
        seen.display()
    );
    let plan = plan(&script, Vec::new(), &dir.0)
        .with_listeners(vec![(listener.as_raw_fd(), "web".to_owned())]);
    let pid = hand_over(&plan, &Cancel::default()).expect("ready").pid;
    let text = std::fs::read_to_string(&seen).unwrap_or_default();
    stop(pid);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"1 web 7"), "{text}");
    assert_eq!(lines.get(1), Some(&"pid-ok"), "{text}");
    if let Some(inode) = inode {
        assert_eq!(lines.get(2), Some(&inode.to_string().as_str()), "{text}");
    }
    // The listener is still this process's.
    assert!(listener.local_addr().is_ok());
}

#[test]
fn a_successor_that_exits_before_ready_is_an_error_with_its_status() {
    let _serial = serial();
    let dir = TempDir::new("exit");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let plan = plan(
        "exit 3",
        vec![(listener.as_raw_fd(), "web".to_owned())],
        &dir.0,
    );
    let err = hand_over(&plan, &Cancel::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("exited before it was ready (exit status 3)"),
        "{err}"
    );
}

#[test]
fn a_successor_never_ready_is_killed_at_the_plans_timeout() {
    let _serial = serial();
    let dir = TempDir::new("hang");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut plan = plan(
        "exec sleep 30",
        vec![(listener.as_raw_fd(), "web".to_owned())],
        &dir.0,
    );
    plan.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = hand_over(&plan, &Cancel::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("was not ready within 300ms; killed it"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_plans_environment_file_reaches_the_successor_and_a_bad_one_starts_nothing() {
    let _serial = serial();
    let dir = TempDir::new("env");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fds = vec![(listener.as_raw_fd(), "web".to_owned())];
    let env_file = dir.0.join("env");
    let seen = dir.0.join("seen");
    let script = format!(
        "echo \"$AG_FROM_FILE\" > {}; {REPORT_READY}",
        seen.display()
    );

    std::fs::File::create(&env_file)
        .and_then(|mut f| f.write_all(b"AG_FROM_FILE=deployed\n"))
        .expect("env file");
    let mut good = plan(&script, fds.clone(), &dir.0);
    good.env_file = Some(env_file.clone());
    let pid = hand_over(&good, &Cancel::default()).expect("ready").pid;
    stop(pid);
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap_or_default(),
        "deployed\n"
    );

    std::fs::remove_file(&seen).expect("rm");
    std::fs::write(&env_file, "LISTEN_FDS=9\n").expect("env file");
    let err = hand_over(&good, &Cancel::default()).unwrap_err();
    assert!(err.to_string().contains("LISTEN_FDS"), "{err}");
    assert!(!seen.exists(), "a successor was started");
}

/// Keeper mode's rollback: the build held open runs, though its path holds another file now; a
/// script keeps working (its interpreter reads it through `/dev/fd`).
#[test]
fn a_held_build_runs_after_its_path_was_replaced() {
    use std::os::unix::fs::PermissionsExt as _;
    let _serial = serial();
    let dir = TempDir::new("held");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let exe = dir.0.join("app");
    let seen = dir.0.join("seen");
    let write_build = |which: &str| {
        let tmp = dir.0.join("app.new");
        let script = format!(
            "#!/bin/sh\necho {which} > {}\n{REPORT_READY}\n",
            seen.display()
        );
        std::fs::write(&tmp, script).expect("write");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&tmp, &exe).expect("deploy"); // a new inode, as a deploy installs it
    };
    write_build("good");
    let held = std::fs::File::open(&exe).expect("hold the good build");
    write_build("bad");
    let mut plan = plan("", vec![(listener.as_raw_fd(), "web".to_owned())], &dir.0);
    plan.exe = exe.clone();
    plan.args = vec![exe.clone().into()];
    plan.exe_fd = Some(held.as_raw_fd());
    let pid = hand_over(&plan, &Cancel::default()).expect("ready").pid;
    stop(pid);
    assert_eq!(std::fs::read_to_string(&seen).unwrap_or_default(), "good\n");
    plan.exe_fd = None;
    let pid = hand_over(&plan, &Cancel::default()).expect("ready").pid;
    stop(pid);
    assert_eq!(std::fs::read_to_string(&seen).unwrap_or_default(), "bad\n");
}
