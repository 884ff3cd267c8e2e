//! Readers of `/proc/<pid>` for the handoff figures: CPU time, scheduler accounting, children,
//! what a late successor is doing.

use integration_tests::procfs;

/// Milliseconds on a CPU and waiting for one in a run queue, per thread of `pid`.
pub fn task_sched(pid: i32) -> std::collections::BTreeMap<i32, (f64, f64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Default::default();
    };
    dir.filter_map(|e| {
        let tid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
        let mut f = s.split_whitespace().map(|v| v.parse::<f64>().ok());
        Some((tid, (f.next()?? / 1e6, f.next()?? / 1e6)))
    })
    .collect()
}

/// The children of every thread of `pid` (`/proc/<pid>/task/*/children`).
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// `state wchan syscall majflt` of `pid`'s main thread, from /proc.
pub fn proc_state(pid: i32) -> String {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{f}"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into())
    };
    let state = procfs::stat(pid).map_or('?', |s| s.state);
    let syscall = read("syscall");
    let nr = syscall.split_whitespace().next().unwrap_or("?").to_owned();
    format!(
        "state {state} wchan {} syscall {nr} major faults {}",
        read("wchan"),
        major_faults(pid).map_or("?".into(), |n| n.to_string())
    )
}

/// Major page faults of `pid` (pages read from disk), `/proc/<pid>/stat` field 12.
pub fn major_faults(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(9)?
        .parse()
        .ok()
}

/// Milliseconds since `pid` started (`/proc/<pid>/stat` start time against `/proc/uptime`;
/// 10 ms resolution).
pub fn age_ms(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the command: state is field 3, starttime field 22.
    let start: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| (uptime - start / hz as f64) * 1e3)
}

/// CPU time (user + system, all threads) `pid` has used, seconds.
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}
