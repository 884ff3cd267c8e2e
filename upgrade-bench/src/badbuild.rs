//! Bad-build runs (`--bad-build`): every restart deploys a bad build instead of the same one,
//! installed as a deploy would install it. For the actix servers that is the good binary behind
//! a `#!/bin/sh` wrapper that sets the bad build's knobs (`examples::knobs`: `HELLO_UNHEALTHY`,
//! `HELLO_FAIL_STATUS`) and `exec`s it, put over the path the server was started from; for
//! nginx, a config that answers the bad status, or fails its `/health`. A crash is the bench's
//! own SIGKILL of the new server process (nginx: the new master and its workers) a set time
//! after it serves, the same for every strategy.

use crate::strategy::{Kind, Strategy};
use integration_tests::TempDir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The variable every bad build carries (the wrapper sets it), so `/proc/<pid>/environ` tells
/// which build a process runs.
pub const MARKER: &str = "UPGRADE_BENCH_BUILD";

/// What is wrong with the build each restart deploys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadBuild {
    /// It serves, then is SIGKILLed this long after it serves: a crash under real traffic.
    Crash {
        /// From serving to the kill.
        after: Duration,
    },
    /// `/health` answers 503 and hello's readiness check fails.
    Unhealthy,
    /// Every `/` answers this status.
    Status(u16),
}

/// `--bad-build`: `crash-after-ready[=MS]`, `unhealthy` or `status=CODE` (400..=599).
pub fn parse(v: &str) -> Result<BadBuild, String> {
    let v = v.trim();
    let number = |s: &str, lo: u64, hi: u64| match s.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number in {lo}..={hi}")),
    };
    match v.split_once('=') {
        None if v == "crash-after-ready" => Ok(BadBuild::Crash {
            after: Duration::from_millis(1000),
        }),
        None if v == "unhealthy" => Ok(BadBuild::Unhealthy),
        Some(("crash-after-ready", ms)) => Ok(BadBuild::Crash {
            after: Duration::from_millis(number(ms, 0, 600_000)?),
        }),
        Some(("status", code)) => Ok(BadBuild::Status(number(code, 400, 599)? as u16)),
        _ => Err("not crash-after-ready[=MS], unhealthy or status=CODE".into()),
    }
}

impl BadBuild {
    /// The wrapper's variables: the marker and the knob.
    fn knobs(self) -> Vec<(&'static str, String)> {
        let mut v = vec![(MARKER, "bad".to_owned())];
        match self {
            BadBuild::Crash { .. } => {}
            BadBuild::Unhealthy => v.push(("HELLO_UNHEALTHY", "1".to_owned())),
            BadBuild::Status(code) => v.push(("HELLO_FAIL_STATUS", code.to_string())),
        }
        v
    }

    /// What the build does, in words.
    pub fn describe(self) -> String {
        match self {
            BadBuild::Crash { after } => format!(
                "serves, then is SIGKILLed {} ms after it serves",
                after.as_millis()
            ),
            BadBuild::Unhealthy => "/health answers 503, its readiness check fails".into(),
            BadBuild::Status(code) => format!("every / answers {code}"),
        }
    }

    /// The kill's delay, for a crash.
    pub fn crash_after(self) -> Option<Duration> {
        match self {
            BadBuild::Crash { after } => Some(after),
            _ => None,
        }
    }

    /// nginx's `server` locations for this bad build; `None`: the good config (a crash).
    pub fn nginx_locations(self) -> Option<String> {
        let answer = |status: u16, text: &str| {
            format!("add_header X-Pid $pid always;\n      return {status} \"{text} pid=$pid\\n\";")
        };
        match self {
            BadBuild::Crash { .. } => None,
            BadBuild::Unhealthy => Some(format!(
                "location = /health {{\n      {}\n    }}\n    location / {{\n      {}\n    }}",
                answer(503, "unhealthy"),
                answer(200, "ok")
            )),
            BadBuild::Status(code) => Some(format!(
                "location / {{\n      {}\n    }}",
                answer(code, "bad build")
            )),
        }
    }
}

/// How a strategy's bad build is installed.
enum How {
    /// The file at `path`, which the servers start from (a copy of the good binary), is
    /// replaced by a wrapper that sets the knobs and `exec`s `good`, a second copy.
    Binary {
        _dir: TempDir,
        path: PathBuf,
        good: PathBuf,
    },
    /// nginx's config file is rewritten before the upgrade (its new master reads it).
    Nginx { conf: PathBuf, bad: String },
    /// Nothing to install (nginx's crash: the same config, then the kill).
    Nothing,
}

/// One strategy's bad deploy: installed before its first bad restart, and remembered, to tell
/// which build a process runs.
pub struct Deploy {
    /// What is wrong with it.
    pub bad: BadBuild,
    how: How,
    installed: bool,
    /// Processes known to run the bad build (nginx's new masters and their workers).
    bad_pids: BTreeSet<i32>,
}

impl Deploy {
    /// Prepares `s`'s bad deploy; the strategy to run instead (an actix server starts from a
    /// private copy of its binary, so the deploy can replace it).
    pub fn prepare(s: &Strategy, bad: BadBuild) -> Result<(Deploy, Strategy), String> {
        let mut s = s.clone();
        let how = match (s.kind, &s.nginx) {
            (Kind::Nginx, Some(n)) => match bad.nginx_locations() {
                Some(locations) => How::Nginx {
                    conf: n.conf.clone(),
                    bad: crate::plan::nginx_config(&n.dir, n.port, n.workers, &locations),
                },
                None => How::Nothing,
            },
            _ => private_copy(&mut s)?,
        };
        let deploy = Deploy {
            bad,
            how,
            installed: false,
            bad_pids: BTreeSet::new(),
        };
        Ok((deploy, s))
    }

    /// Puts the bad build in place (once: it stays for every later restart).
    pub fn install(&mut self) -> Result<(), String> {
        if self.installed {
            return Ok(());
        }
        match &self.how {
            How::Binary { path, good, .. } => {
                let mut script = format!(
                    "#!/bin/sh\n# upgrade-bench --bad-build: the good build, {}\nexport",
                    self.bad.describe()
                );
                for (k, v) in self.bad.knobs() {
                    script.push_str(&format!(" {k}={v}"));
                }
                script.push_str(&format!(
                    "\nexec {} \"$@\"\n",
                    integration_tests::shell_quote(good)
                ));
                put(path, script.as_bytes(), 0o755)?;
            }
            How::Nginx { conf, bad } => put(conf, bad.as_bytes(), 0o644)?,
            How::Nothing => {}
        }
        self.installed = true;
        Ok(())
    }

    /// Remembers `pid` as running the bad build.
    pub fn mark_bad(&mut self, pid: i32) {
        self.bad_pids.insert(pid);
    }

    /// Does `pid` run the bad build? Its environment says so (the wrapper's marker), or it or
    /// its parent was marked (nginx rewrites its environment's memory for its process titles).
    pub fn is_bad(&self, pid: i32) -> bool {
        let parent = integration_tests::procfs::stat(pid).map(|s| s.ppid);
        self.bad_pids.contains(&pid)
            || parent.is_some_and(|p| self.bad_pids.contains(&p))
            || marked(pid)
    }
}

/// `s`'s program copied twice into a temporary directory (`NAME`, which `s` now starts from,
/// and `NAME.good`, which the wrapper will run).
fn private_copy(s: &mut Strategy) -> Result<How, String> {
    let prog = PathBuf::from(s.cmd.first().ok_or("empty server command")?);
    let name = prog
        .file_name()
        .ok_or_else(|| format!("{} names no file", prog.display()))?
        .to_string_lossy()
        .into_owned();
    let dir = TempDir::new(&format!("bad-build-{}", s.name));
    let (path, good) = (dir.join(&name), dir.join(&format!("{name}.good")));
    for to in [&path, &good] {
        let bytes = std::fs::read(&prog).map_err(|e| format!("read {}: {e}", prog.display()))?;
        put(to, &bytes, 0o755)?;
    }
    s.cmd[0] = path.display().to_string();
    Ok(How::Binary {
        _dir: dir,
        path,
        good,
    })
}

/// Writes `bytes` beside `to` and renames the file over it, as a deploy does.
fn put(to: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = to.with_extension("bench-new");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
        .and_then(|()| std::fs::rename(&tmp, to))
        .map_err(|e| format!("install {}: {e}", to.display()))
}

/// Whether `pid`'s environment carries the bad build's marker.
fn marked(pid: i32) -> bool {
    let wanted = format!("{MARKER}=bad");
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == wanted.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let ms = Duration::from_millis;
        assert_eq!(
            parse("crash-after-ready"),
            Ok(BadBuild::Crash { after: ms(1000) })
        );
        assert_eq!(
            parse("crash-after-ready=250"),
            Ok(BadBuild::Crash { after: ms(250) })
        );
        assert_eq!(parse(" unhealthy "), Ok(BadBuild::Unhealthy));
        assert_eq!(parse("status=500"), Ok(BadBuild::Status(500)));
        for bad in [
            "status=200",
            "status=",
            "crash",
            "crash-after-ready=x",
            "unhealthy=1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            BadBuild::Status(503).knobs(),
            vec![
                (MARKER, "bad".to_owned()),
                ("HELLO_FAIL_STATUS", "503".to_owned())
            ]
        );
        assert!(BadBuild::Crash { after: ms(1) }.nginx_locations().is_none());
        assert!(BadBuild::Status(500)
            .nginx_locations()
            .is_some_and(|l| l.contains("return 500")));
    }
}
