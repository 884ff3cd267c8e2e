//! nginx's binary upgrade: its master found through its pid file, its workers through /proc.

use crate::strategy::{Gens, NginxRun, RunCfg, Strategy};
use integration_tests::{procfs, signal, ServerFamily, Target};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::{Duration, Instant};

/// The pid in nginx's pid file, if it names a live process.
pub fn live_master(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    procfs::stat(pid)
        .is_some_and(|s| s.state != 'Z')
        .then_some(pid)
}

/// Waits until `master` runs at least one worker; registers them with `fam`.
pub fn workers(fam: &ServerFamily, master: i32, deadline: Instant) -> Result<(), String> {
    loop {
        let workers = procfs::children_of(master);
        if !workers.is_empty() {
            for w in workers {
                fam.add_pid(w);
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nginx master {master} started no worker"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The first nginx: the launcher forks the daemon and exits; the master (an orphan, so a
/// child of the bench, a subreaper) is read from the pid file and serves once `/` answers.
pub fn started(
    fam: &ServerFamily,
    n: &NginxRun,
    target: &Target,
    cfg: &RunCfg,
) -> Result<i32, String> {
    let deadline = Instant::now() + cfg.step_timeout;
    let master = loop {
        if let Some(pid) = live_master(&n.pid_file) {
            break pid;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nginx wrote no pid file {} with a live master:\n{}",
                n.pid_file.display(),
                fam.output_tail(10)
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    fam.add_pid(master);
    workers(fam, master, deadline)?;
    let probe = |_: i32| true;
    integration_tests::http::wait_for_pid(target, "/", probe, cfg.step_timeout)
        .ok_or_else(|| format!("nginx master {master}: / does not answer"))?;
    Ok(master)
}

/// USR2 to the master; once a new master (its child) has written the pid file and runs
/// workers, QUIT the old master.
pub fn upgrade(gens: &mut Gens, s: &Strategy, cfg: &RunCfg) -> Result<Option<f64>, String> {
    let n = s
        .nginx
        .as_ref()
        .ok_or("nginx strategy without its pid file")?;
    let fam = &gens.families[0];
    let old = gens.cur;
    // nginx ignores USR2 while the master it replaced still runs ("signal 12 (SIGUSR2)
    // received, ignoring"): wait, as an operator must, until the previous old master (named by
    // `nginx.pid.oldbin` while it lives) is gone.
    let oldbin = n.pid_file.with_extension("pid.oldbin");
    let deadline = Instant::now() + cfg.step_timeout;
    while live_master(&oldbin).is_some() {
        if Instant::now() > deadline {
            return Err(format!(
                "the previous nginx master is still draining after {:?}",
                cfg.step_timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let t = Instant::now();
    if !signal(old, Signal::SIGUSR2) {
        return Err(format!("nginx master {old} is gone"));
    }
    let deadline = t + cfg.step_timeout;
    let new = loop {
        match live_master(&n.pid_file) {
            Some(pid) if pid != old => break pid,
            _ if Instant::now() > deadline => {
                return Err(format!("no new nginx master within {:?}", cfg.step_timeout))
            }
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    fam.add_pid(new);
    workers(fam, new, deadline)?;
    let ready = t.elapsed();
    signal(old, Signal::SIGQUIT);
    gens.cur = new;
    Ok(Some(ready.as_secs_f64() * 1e3))
}
