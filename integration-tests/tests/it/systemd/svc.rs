//! The harness of the tests of `examples/systemd/`'s units under a real manager: a unit
//! installed in a fresh private manager ([`Svc`]) with the tests' drop-in, and the load they run.
//!
//! The unit files are installed byte for byte. The templating step is a drop-in
//! (`<unit>.d/itest.conf`) that sets the addresses through the units' own `Environment=`
//! variables (loopback, free ports), sends the output to a file (`StandardOutput=append:`),
//! and, where a test says so, one more setting (a short upgrade timeout appended to the unit's
//! own `ExecStart=`, a longer `RestartSec=`). `/usr/local/bin` inside the manager's namespace is
//! the test's directory holding a copy of `hello`, so `ExecStart=/usr/local/bin/hello` runs it
//! and a deploy is a rename there.

use super::unit_text;
use integration_tests::http::{get_once, Target};
use integration_tests::systemd::Manager;
use integration_tests::{
    free_port, hello_bin, replace_file, replace_with_copy, Load, LoadConfig, LoadReport,
};
use std::path::PathBuf;
use std::time::Duration;

pub(super) const T: Duration = Duration::from_secs(20);

/// The two shapes of `examples/systemd/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// `hello.service`: keeper mode.
    Keeper,
    /// `hello-handoff.service`: plain handoff.
    Handoff,
}

impl Shape {
    pub(super) fn unit(self) -> &'static str {
        match self {
            Shape::Keeper => "hello.service",
            Shape::Handoff => "hello-handoff.service",
        }
    }
}

/// A unit of `examples/systemd/` installed in a fresh manager, with its addresses.
pub(super) struct Svc {
    pub(super) m: Manager,
    pub(super) unit: String,
    pub(super) target: Target,
    pub(super) admin: u16,
    log: PathBuf,
}

impl Svc {
    /// Install `unit` (and the `.socket` units in `sockets`) with the test's drop-in plus
    /// `extra` lines in its `[Service]` section. `None`: skipped (see `Manager::start_or_skip`).
    pub(super) fn install(tag: &str, unit: &str, sockets: &[&str], extra: &str) -> Option<Svc> {
        let m = Manager::start_or_skip(tag)?;
        // A hard link where the file systems allow (a deploy renames over it, leaving the
        // build's file alone), a copy otherwise.
        let exe = m.bin_dir().join("hello");
        if std::fs::hard_link(hello_bin(), &exe).is_err() {
            integration_tests::copy_hello(&exe);
        }
        let port = free_port();
        let admin = free_port();
        let log = m.path("hello.log");
        m.install_unit(unit, &unit_text(unit));
        m.install_drop_in(
            unit,
            &format!(
                "[Service]\n\
                 Environment=HELLO_LISTEN=127.0.0.1:{port} HELLO_PUBLIC=127.0.0.1:{port} HELLO_ADMIN=127.0.0.1:{admin}\n\
                 StandardOutput=append:{log}\n\
                 StandardError=inherit\n\
                 {extra}\n",
                log = log.display()
            ),
        );
        for s in sockets {
            m.install_unit(s, &unit_text(s));
            let p = if s.contains("admin") { admin } else { port };
            m.install_drop_in(
                s,
                &format!("[Socket]\nListenStream=\nListenStream=127.0.0.1:{p}\n"),
            );
        }
        m.must(&["daemon-reload"]);
        Some(Svc {
            m,
            unit: unit.to_owned(),
            target: Target::parse(&format!("127.0.0.1:{port}")).unwrap(),
            admin,
            log,
        })
    }

    pub(super) fn shape(tag: &str, shape: Shape, extra: &str) -> Option<Svc> {
        Svc::install(tag, shape.unit(), &[], extra)
    }

    pub(super) fn start(&self) {
        let c = self.m.must(&["start", &self.unit]);
        println!(
            "systemctl start {}: {:.0} ms",
            self.unit,
            c.took.as_secs_f64() * 1e3
        );
    }

    pub(super) fn ctl(&self, verb: &str) -> integration_tests::systemd::Ctl {
        self.m.systemctl(&[verb, &self.unit])
    }

    pub(super) fn main_pid(&self) -> i32 {
        self.m.main_pid(&self.unit)
    }

    pub(super) fn status_text(&self) -> String {
        self.m.prop(&self.unit, "StatusText")
    }

    /// The pid answering a fresh `GET /`.
    pub(super) fn serving_pid(&self) -> Option<i32> {
        get_once(&self.target, "/", Duration::from_secs(5))
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| r.pid)
    }

    pub(super) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Context for a failed assertion.
    pub(super) fn context(&self) -> String {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- {} output (tail) ---\n{}\n--- manager (tail) ---\n{}",
            self.unit,
            lines[lines.len().saturating_sub(40)..].join("\n"),
            self.m.manager_log_tail(40)
        )
    }

    /// Replace the installed binary (a rename, as a deploy does).
    pub(super) fn deploy_script(&self, script: &str) {
        replace_file(&self.m.bin_dir().join("hello"), script.as_bytes());
    }

    pub(super) fn deploy_good(&self) {
        replace_with_copy(&self.m.bin_dir().join("hello"), &hello_bin());
    }

    /// Wait until a fresh connection is answered by a pid other than `old` (and not refused).
    pub(super) fn wait_serving_other(&self, old: i32, timeout: Duration) -> Option<i32> {
        integration_tests::http::wait_for_pid(&self.target, "/", |p| p != old, timeout)
    }

    /// `SIGKILL`s seen by systemd for this unit (its "Killing process ... with signal SIGKILL").
    pub(super) fn sigkills(&self) -> usize {
        self.m
            .manager_log()
            .lines()
            .filter(|l| l.contains(&self.unit) && l.contains("SIGKILL"))
            .count()
    }
}

pub(super) fn light_load(target: &Target) -> Load {
    Load::start(LoadConfig {
        max_duration: Duration::from_secs(120),
        ..LoadConfig::light(target.clone())
    })
}

pub(super) fn assert_no_failures(what: &str, r: &LoadReport, svc: &Svc) {
    println!("{what}: {}", r.summary());
    assert_eq!(r.failed(), 0, "{what}: {}\n{}", r.summary(), svc.context());
    assert!(r.ok > 0, "{what}: no request answered");
}
