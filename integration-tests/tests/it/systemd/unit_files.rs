//! The example units in `examples/systemd/`: checked by the real `systemd-analyze verify`
//! (unknown keys, bad values, missing binaries, broken references between the units), and their
//! `ExecStart=` command lines run for real: `hello.service`'s and `hello-handoff.service`'s
//! directly (their `${VAR}`s expanded from `Environment=`, as systemd does), the socket-activated
//! pair's under `systemd-socket-activate` with the `.socket` units' names, whose upgrade
//! endpoint only the admin socket serves.

use super::{unit_text, units_dir};
use integration_tests::activation::socket_activate;
use integration_tests::hello::{number_after, wait_startup, Hello, Startup};
use integration_tests::http::{get_once, post_once, wait_for_pid, Target};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    free_port, heavy_lock, hello_bin, run_output, signal, ServerFamily, TempDir,
};
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);
const INSTALLED: &str = "/usr/local/bin/hello";

/// The unit's `Environment=` assignments (`KEY=VALUE`, space-separated, no quoting), with
/// `overrides` applied on top.
fn unit_env(unit_text: &str, overrides: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = unit_text
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (k, v) in overrides {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.clone()));
    }
    env
}

/// The arguments of the unit's `ExecStart=` after the binary, as systemd would pass them:
/// `${KEY}` expanded from `env`, `%t` (the runtime directory) replaced by `runtime_dir`.
fn exec_args(unit_text: &str, env: &[(String, String)], runtime_dir: &str) -> Vec<String> {
    let line = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    let mut words = line.split_whitespace().map(|w| {
        let mut w = w.replace("%t", runtime_dir);
        for (k, v) in env {
            w = w.replace(&format!("${{{k}}}"), v);
        }
        assert!(!w.contains("${"), "unexpanded variable in {w:?}");
        w
    });
    assert_eq!(words.next().as_deref(), Some(INSTALLED));
    words.collect()
}

/// The major version `systemd-analyze --version` prints (`systemd 252 (...)`).
fn systemd_version() -> u32 {
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("--version");
    let (_, stdout, _) = run_output(cmd, Duration::from_secs(30))
        .expect("run systemd-analyze (install the `systemd` package)");
    let text = String::from_utf8_lossy(&stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unexpected version output {text:?}"))
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let version = systemd_version();
    let dir = TempDir::new("units");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(units_dir()).expect("examples/systemd") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("read unit");
        let bin = hello_bin();
        std::fs::write(
            dir.join(&name),
            text.replace(INSTALLED, &bin.display().to_string()),
        )
        .expect("write unit copy");
        names.push(name);
    }
    names.sort();
    assert!(names.len() >= 4, "units: {names:?}");
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["verify", "--man=no"])
        .args(&names)
        .current_dir(dir.path());
    let (exit, _, stderr) = run_output(cmd, Duration::from_secs(60)).expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&stderr);
    println!("systemd {version}; verify {names:?}:\n{stderr}");
    // Settings newer than this machine's systemd are reported as unknown; nothing else may be.
    let newer = [
        (253, "notify-reload"),
        (253, "'ReloadSignal'"),
        (254, "'FileDescriptorStorePreserve'"),
    ];
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !newer.iter().any(|(v, key)| version < *v && l.contains(key)))
        .collect();
    assert!(exit.success(), "verify ended {exit}:\n{stderr}");
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify:\n{complaints:#?}"
    );
}

/// `hello.service` (keeper mode) and `hello-handoff.service` run as their units say, with
/// loopback addresses for their `Environment=` variables: they serve and write the pid file
/// (the keeper's pid in keeper mode, the serving process's otherwise).
#[test]
fn service_command_lines_serve_and_write_their_pid_files() {
    for name in ["hello.service", "hello-handoff.service"] {
        run_service_command_line(name);
    }
}

fn run_service_command_line(name: &str) {
    let _g = heavy_lock();
    let dir = TempDir::new("unit-run");
    let port = free_port();
    let text = unit_text(name);
    let env = unit_env(
        &text,
        &[
            ("HELLO_LISTEN", format!("127.0.0.1:{port}")),
            ("HELLO_PUBLIC", format!("127.0.0.1:{port}")),
            ("HELLO_ADMIN", format!("127.0.0.1:{}", free_port())),
        ],
    );
    let runtime_dir = dir.path().display().to_string();
    let args = exec_args(&text, &env, &runtime_dir);
    let pid_file = args
        .iter()
        .skip_while(|a| *a != "--pid-file")
        .nth(1)
        .map(PathBuf::from)
        .expect("--pid-file");
    std::fs::create_dir_all(pid_file.parent().unwrap()).expect("RuntimeDirectory=");
    println!("{name}: {env:?} hello {}", args.join(" "));
    let mut cmd = Command::new(hello_bin());
    cmd.args(&args).envs(env.iter().map(|(k, v)| (k, v)));
    let h = Hello::start_cmd("hello", cmd);
    let keeper = args.iter().any(|a| a == "--keeper");
    let r = get_once(&h.target, "/", T).expect("GET /");
    assert_eq!(r.status, 200);
    // In keeper mode a generation (the keeper's child) answers; otherwise the process itself.
    assert_eq!(
        r.pid == Some(h.pid()),
        !keeper,
        "{name}: answered by {:?}",
        r.pid
    );
    // Written once serving, just after the start-up line.
    let deadline = std::time::Instant::now() + T;
    let written = loop {
        match std::fs::read_to_string(&pid_file) {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() > deadline => panic!("pid file: {e}"),
            Err(_) => integration_tests::sleep_ms(10),
        }
    };
    assert_eq!(written.trim(), h.pid().to_string());
    assert!(signal(h.pid(), Signal::SIGTERM));
    assert_eq!(
        h.family.wait_gone(h.pid(), T),
        Some(Gone::Reaped(Exit::Code(0)))
    );
}

/// `hello-activated.service` as systemd starts it on the first connection to its sockets:
/// the unit's `ExecStart=` under `systemd-socket-activate` with the `.socket` units' names
/// (`public`, then `admin`), on loopback ports other than the unit's.
struct Activated {
    fam: ServerFamily,
    startup: Startup,
    public: Target,
    admin: Target,
}

impl Activated {
    /// Starts it; returns once the first request (`GET /` on the public socket) is answered.
    fn start() -> Activated {
        let (public, admin) = (free_port(), free_port());
        // The .socket units' names, in the order systemd would pass them.
        let name_of = |socket_unit: &str| {
            unit_text(socket_unit)
                .lines()
                .find_map(|l| l.strip_prefix("FileDescriptorName="))
                .map(str::to_owned)
                .expect("FileDescriptorName=")
        };
        let fdnames = format!(
            "--fdname={}:{}",
            name_of("hello-public.socket"),
            name_of("hello-admin.socket")
        );
        let text = unit_text("hello-activated.service");
        let env = unit_env(&text, &[]);
        let args: Vec<String> = exec_args(&text, &env, "/run")
            .into_iter()
            // Different ports than the unit's fallbacks: only the names can find the sockets.
            .map(|a| a.replace("8080", "1").replace("8081", "2"))
            .collect();
        let listen = [format!("127.0.0.1:{public}"), format!("127.0.0.1:{admin}")];
        let fam = socket_activate(&listen, &[fdnames], &hello_bin(), &args);
        // The launcher starts the service on the first connection.
        let public = Target::parse(&listen[0]).unwrap();
        let r = get_once(&public, "/", T).expect("GET / on the public socket");
        let startup = wait_startup(&fam, 0, T)
            .unwrap_or_else(|| panic!("no startup line\n{}", fam.output_tail(20)));
        println!("{}", startup.line);
        assert_eq!(r.pid, Some(startup.pid));
        let admin = Target::parse(&listen[1]).unwrap();
        Activated {
            fam,
            startup,
            public,
            admin,
        }
    }
}

#[test]
fn socket_activated_units_hand_hello_its_named_sockets() {
    let _g = heavy_lock();
    let a = Activated::start();
    let addrs: Vec<(String, bool)> = a
        .startup
        .listeners
        .iter()
        .map(|l| (l.addr.clone(), l.inherited))
        .collect();
    let want = [a.public.to_string(), a.admin.to_string()];
    assert_eq!(
        addrs,
        [(want[0].clone(), true), (want[1].clone(), true)],
        "both sockets taken over by name"
    );
    let r = get_once(&a.admin, "/health", T).expect("GET /health on the admin socket");
    assert_eq!(r.status, 200);
    assert!(signal(a.startup.pid, Signal::SIGTERM));
    let gone = a.fam.wait_gone(a.startup.pid, T);
    assert_eq!(gone, Some(Gone::Reaped(Exit::Code(0))));
}

/// The unit's `--admin` endpoint, `POST /admin/upgrade`, is served on the socket named `admin`
/// alone: the public one answers 404 (though on loopback here: the names decide), before and
/// after the upgrade the admin one triggers.
#[test]
fn the_upgrade_endpoint_is_served_on_the_admin_socket_only() {
    let _g = heavy_lock();
    let a = Activated::start();
    let old = a.startup.pid;
    let post = |target: &Target| {
        post_once(target, "/admin/upgrade", Duration::from_secs(30))
            .unwrap_or_else(|f| panic!("POST {target}: {f}\n{}", a.fam.output_tail(20)))
    };
    let public = post(&a.public);
    println!("public: {} {:?}", public.status, public.text());
    assert_eq!(public.status, 404, "{}", a.fam.output_tail(20));
    assert!(
        a.fam
            .stderr
            .find(0, |l| l.contains("spawned successor"))
            .is_empty(),
        "the public POST started an upgrade"
    );
    let upgraded = post(&a.admin);
    let body = upgraded.text();
    println!("admin: {} {body:?}", upgraded.status);
    assert_eq!(upgraded.status, 200, "{body}");
    let new = number_after(&body, "upgraded to pid=").expect("the successor's pid") as i32;
    a.fam.add_pid(new);
    assert_eq!(
        wait_for_pid(&a.public, "/", |p| p == new, T),
        Some(new),
        "the successor serves the public socket"
    );
    assert_eq!(post(&a.public).status, 404, "the successor's public socket");
    assert_eq!(
        a.fam.wait_gone(old, T),
        Some(Gone::Reaped(Exit::Code(0))),
        "{}",
        a.fam.output_tail(20)
    );
    assert!(signal(new, Signal::SIGTERM));
    assert_eq!(a.fam.wait_gone(new, T), Some(Gone::Reaped(Exit::Code(0))));
}
