//! What the chosen strategies run: the server commands (the defaults are the workspace's
//! `hello` and `hello-plain`, or the user's own with `--cmd`), and the list of strategies in
//! the order asked, nginx's with the config the bench writes.

use crate::cli::{missing, Args};
use crate::strategy::{Kind, NginxRun, Strategy};
use std::path::{Path, PathBuf};

/// The server command templates (`{port}` not yet replaced) the chosen strategies need.
pub struct Commands {
    /// The graceful strategy's (empty when it is not chosen).
    pub graceful: String,
    /// The naive restart's; `None`: the graceful command itself.
    pub plain: Option<String>,
    /// The SO_REUSEPORT overlap's; `None`: skipped.
    pub reuseport: Option<String>,
    /// The baseline of the overhead comparison; `None`: skipped.
    pub overhead_plain: Option<String>,
}

impl Commands {
    /// Each binary is looked for only when a chosen strategy needs it; a missing one is one
    /// line with the command that builds it, and exit status 2.
    pub fn new(a: &Args) -> Commands {
        let graceful = match &a.cmd {
            Some(c) => c.clone(),
            None if a.wants("graceful") || a.wants("keeper") => default_cmd(
                a,
                integration_tests::bins::find("hello", "HELLO_BIN").unwrap_or_else(|e| missing(&e)),
                "",
            ),
            None => String::new(),
        };
        let plain = baseline(a, &a.plain_cmd, "", a.wants("naive"));
        let reuseport = baseline(a, &a.reuseport_cmd, " --reuseport", a.wants("reuseport"));
        let overhead_plain = overhead_plain(a, &plain);
        Commands {
            graceful,
            plain,
            reuseport,
            overhead_plain,
        }
    }
}

/// `BIN --listen 127.0.0.1:{port} --workers W` and `extra`.
fn default_cmd(a: &Args, bin: PathBuf, extra: &str) -> String {
    format!(
        "{} --listen 127.0.0.1:{{port}} --workers {}{extra}",
        bin.display(),
        a.workers
    )
}

fn hello_plain() -> Result<PathBuf, String> {
    integration_tests::bins::find("hello-plain", "HELLO_PLAIN_BIN")
}

/// A baseline: the command given, else hello-plain (when `needed`) unless the user runs
/// their own app.
fn baseline(a: &Args, given: &Option<String>, extra: &str, needed: bool) -> Option<String> {
    match (given, a.cmd.is_some()) {
        (Some(c), _) => Some(c.clone()),
        (None, true) => None,
        (None, false) if needed => Some(default_cmd(
            a,
            hello_plain().unwrap_or_else(|e| missing(&e)),
            extra,
        )),
        (None, false) => None,
    }
}

/// The overhead comparison's baseline. It is not a strategy: without hello-plain it is
/// skipped, with a note.
fn overhead_plain(a: &Args, plain: &Option<String>) -> Option<String> {
    match (
        plain,
        a.cmd.is_some(),
        a.overhead_rounds > 0 && a.wants("graceful"),
    ) {
        (_, _, false) => None,
        (Some(c), _, true) => Some(c.clone()),
        (None, true, true) => None,
        (None, false, true) => match hello_plain() {
            Ok(p) => Some(default_cmd(a, p, "")),
            Err(e) => {
                println!("note: overhead comparison skipped: {e}");
                None
            }
        },
    }
}

/// The strategies to run, in the order `--strategies` names them; the graceful one is
/// followed by a run per `--drain-timeouts` value. A strategy without its command or binary
/// is skipped with a note.
pub fn strategies(a: &Args, cmds: &Commands) -> Vec<Strategy> {
    let mut out = Vec::new();
    for name in &a.chosen {
        if name == "nginx" {
            out.extend(nginx(a));
            continue;
        }
        let (kind, template) = match name.as_str() {
            "graceful" => (Kind::Graceful, Some(cmds.graceful.clone())),
            "keeper" => (Kind::Keeper, Some(format!("{} --keeper", cmds.graceful))),
            "naive" => (
                Kind::Naive,
                cmds.plain.clone().or_else(|| Some(cmds.graceful.clone())),
            ),
            _ => (Kind::ReusePort, cmds.reuseport.clone()),
        };
        match template {
            Some(t) => out.push(strategy(name.clone(), kind, &t, a.port)),
            None => println!("note: {name} skipped (give --reuseport-cmd)"),
        }
        if kind == Kind::Graceful {
            for ms in &a.drain_timeouts {
                let cmd = format!("{} --drain-timeout-ms {ms}", cmds.graceful);
                out.push(strategy(
                    format!("graceful-drain-timeout-{ms}ms"),
                    kind,
                    &cmd,
                    a.port,
                ));
            }
        }
    }
    out
}

fn strategy(name: String, kind: Kind, template: &str, port: u16) -> Strategy {
    Strategy {
        name,
        kind,
        nginx: None,
        cmd: command(template, port),
    }
}

/// nginx's binary upgrade with a config written under `--svg-dir`; `None` (and a note)
/// without nginx.
fn nginx(a: &Args) -> Option<Strategy> {
    if !a.nginx.is_file() {
        println!(
            "note: nginx skipped: {} not found (Debian: apt-get install nginx-light; \
             or --nginx PATH)",
            a.nginx.display()
        );
        return None;
    }
    let dir = std::env::current_dir()
        .unwrap_or_default()
        .join(&a.svg_dir)
        .join("nginx");
    let conf = dir.join("nginx.conf");
    let config = nginx_config(&dir, a.port, a.workers, GOOD_LOCATIONS);
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&conf, config)) {
        missing(&format!("cannot write {}: {e}", conf.display()));
    }
    let (d, c, e) = (dir.display(), conf.display(), dir.join("error.log"));
    Some(Strategy {
        name: "nginx".into(),
        kind: Kind::Nginx,
        nginx: Some(NginxRun {
            pid_file: dir.join("nginx.pid"),
            conf: conf.clone(),
            dir: dir.clone(),
            port: a.port,
            workers: a.workers,
        }),
        cmd: command(
            &format!("{} -p {d} -e {} -c {c}", a.nginx.display(), e.display()),
            a.port,
        ),
    })
}

/// nginx serving what `hello` serves (`pid=<pid>` and `X-Pid`, the worker's pid), on
/// 127.0.0.1:`port`, as a daemon (it ignores USR2 in the foreground) with everything under
/// `dir`. Slow requests are answered at once: nginx has no sleep of its own. `locations` are
/// the `server`'s (`GOOD_LOCATIONS`, or a bad build's).
pub fn nginx_config(dir: &Path, port: u16, workers: usize, locations: &str) -> String {
    let d = dir.display();
    format!(
        "daemon on;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\n\
         error_log {d}/error.log notice;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  default_type text/plain;\n  keepalive_timeout 5s;\n  \
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         server {{\n    listen 127.0.0.1:{port};\n    {locations}\n  }}\n}}\n"
    )
}

/// The good build's nginx locations: every path answers `pid=<pid>` with `X-Pid`.
const GOOD_LOCATIONS: &str =
    "location / {\n      add_header X-Pid $pid always;\n      return 200 \"pid=$pid\\n\";\n    }";

/// `template` split at whitespace, `{port}` replaced.
pub fn command(template: &str, port: u16) -> Vec<String> {
    template
        .split_whitespace()
        .map(|w| w.replace("{port}", &port.to_string()))
        .collect()
}
