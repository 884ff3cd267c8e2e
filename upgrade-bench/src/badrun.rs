//! A bad deploy, step by step (`--bad-build`): install the bad build, restart the strategy's
//! way, kill the new server a set time after it serves (a crash), and for actix-graceful wait
//! for the old process to take back; then what the service looks like at the end of the run.

use crate::badbuild::{BadBuild, Deploy};
use crate::strategy::{self, sleep_until, Gens, Kind, RunCfg, Strategy};
use integration_tests::hello::number_after;
use integration_tests::http::{get_once, Target};
use integration_tests::{procfs, signal, ServerFamily};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant, SystemTime};

/// How long the load goes on after the last bad deploy settled, at least.
pub const TAIL: Duration = Duration::from_secs(3);

/// What one bad deploy did.
#[derive(Clone, Debug, Default)]
pub struct BadOutcome {
    /// Trigger → the new server ready, ms (as the strategy's restarts report it).
    pub ready_ms: Option<f64>,
    /// The new server process (keeper: its generation; nginx: its master), once it served.
    pub new: Option<i32>,
    /// Why it was not taken into service (the library's line), if it was not.
    pub refused: Option<String>,
    /// When the bench killed it (a crash), seconds since the load started.
    pub killed_at: Option<f64>,
    /// The kill (a crash) or its readiness (another bad build) → the old process accepting
    /// again, ms: the timestamp of its log line less the bench's clock at the event.
    pub take_back_ms: Option<f64>,
    /// The take-back's log line, or what was seen instead.
    pub take_back: Option<String>,
}

/// One bad deploy: install it, restart, crash it if that is the bad build, follow the
/// take-back. An error only when the strategy cannot restart at all.
pub fn deploy(
    s: &Strategy,
    gens: &mut Gens,
    d: &mut Deploy,
    cfg: &RunCfg,
    t0: Instant,
) -> Result<BadOutcome, String> {
    d.install()?;
    let mark = gens.families[0].stderr.len();
    let done = match strategy::restart(s, gens, cfg) {
        Ok(done) => done,
        Err(e) if strategy::upgrade_failed(&e) => {
            return Ok(BadOutcome {
                refused: Some(e),
                ..BadOutcome::default()
            })
        }
        Err(e) => return Err(e),
    };
    let ready = (Instant::now(), SystemTime::now());
    d.mark_bad(done.new);
    if s.kind == Kind::Nginx {
        procfs::children_of(done.new)
            .into_iter()
            .for_each(|w| d.mark_bad(w));
    }
    let mut out = BadOutcome {
        ready_ms: done.ready_ms,
        new: Some(done.new),
        ..BadOutcome::default()
    };
    let since = match d.bad.crash_after() {
        Some(after) => {
            sleep_until(ready.0 + after);
            let wall = kill(s.kind, done.new);
            out.killed_at = Some(t0.elapsed().as_secs_f64());
            wall
        }
        None => ready.1,
    };
    if matches!(s.kind, Kind::Graceful | Kind::Keeper) && d.bad != BadBuild::Unhealthy {
        match wait_take_back(gens, s.kind, mark, cfg) {
            Ok(line) => {
                out.take_back_ms = log_time(&line).map(|at| signed_ms(since, at));
                out.take_back = Some(line);
            }
            Err(e) => out.take_back = Some(format!("no take-back seen: {e}")),
        }
    }
    Ok(out)
}

/// A deploy onto a service that has run a while: when the first process is on probation itself
/// (keeper mode's first generation is), wait until it passed. Until then it is no good build
/// to roll back to, nor does it stand by for its successor.
pub fn wait_first_probation(fam: &ServerFamily) -> Result<(), String> {
    let on = |l: &str| l.contains("on probation for");
    if fam
        .stderr
        .wait_for_line(0, on, Duration::from_secs(1))
        .is_none()
    {
        return Ok(());
    }
    let passed = |l: &str| l.contains("passed its probation");
    match fam.stderr.wait_for_line(0, passed, PROBATION_WAIT) {
        Some(_) => Ok(()),
        None => Err(format!(
            "the first process did not pass its probation within {PROBATION_WAIT:?}"
        )),
    }
}

/// Bound on [`wait_first_probation`].
const PROBATION_WAIT: Duration = Duration::from_secs(120);

/// SIGKILLs the new server `pid` (nginx: the master and its workers); the clock at the kill.
fn kill(kind: Kind, pid: i32) -> SystemTime {
    let mut pids = vec![pid];
    if kind == Kind::Nginx {
        pids.extend(procfs::children_of(pid));
    }
    let at = SystemTime::now();
    for p in pids {
        signal(p, Signal::SIGKILL);
    }
    at
}

/// Waits for the line that says the old process accepts again: plain handoff, the old
/// process's `rolled back: ... accepting again, pid=M serves` (M serves on: the next trigger's
/// target); keeper mode, the generation standing by taking back, or the keeper's start of the
/// previous build getting ready.
fn wait_take_back(
    gens: &mut Gens,
    kind: Kind,
    mark: usize,
    cfg: &RunCfg,
) -> Result<String, String> {
    let fam = &gens.families[0];
    let line = if kind == Kind::Keeper {
        strategy::wait_line(
            fam,
            mark,
            |l| {
                l.contains("the keeper rolled the newer generation back: accepting again")
                    || (l.contains("keeper: generation pid=") && l.contains("ready after"))
            },
            cfg,
            "no take-back line from the keeper's generations",
            || {},
        )?
    } else {
        strategy::wait_line(
            fam,
            mark,
            |l| l.contains("rolled back: successor pid="),
            cfg,
            "no `rolled back: successor pid=` line",
            || {},
        )?
    };
    if let Some(pid) = number_after(&line, "accepting again, pid=") {
        gens.cur = pid as i32;
    }
    Ok(line)
}

/// The wall-clock time of a log line of the examples' logger (`[2026-12-01T20:33:30.123Z
/// INFO ...`, UTC, milliseconds).
pub fn log_time(line: &str) -> Option<SystemTime> {
    let stamp = line.strip_prefix('[')?.split_whitespace().next()?;
    let (date, time) = stamp.strip_suffix('Z')?.split_once('T')?;
    let num = |s: &str| s.parse::<i64>().ok();
    let mut d = date.splitn(3, '-').map(num);
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(num);
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    let nanos = format!("{frac:0<9}").get(..9)?.parse::<u64>().ok()?;
    let secs = days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `to - from` in milliseconds, negative when `to` is earlier.
fn signed_ms(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}

/// The pid that answers `/` now (`X-Pid`), if any.
pub fn answering_pid(target: &Target) -> Option<i32> {
    get_once(target, "/", Duration::from_secs(2)).ok()?.pid
}

/// The service at the end of a bad-build run.
#[derive(Clone, Debug)]
pub struct EndState {
    /// `/`: its status and `X-Pid`, or the failure.
    pub root: Result<(u16, Option<i32>), String>,
    /// `/health`'s status, if it answered.
    pub health: Option<u16>,
    /// Whether the answering process runs the bad build.
    pub bad: Option<bool>,
    /// Whether it is the process that answered before the first restart (nginx: a worker
    /// of the same master).
    pub first: bool,
}

impl EndState {
    /// Whether the service answers `/` with a 2xx.
    pub fn up(&self) -> bool {
        matches!(self.root, Ok((status, _)) if (200..300).contains(&status))
    }

    /// In a few words, for the tables.
    pub fn describe(&self) -> String {
        let (status, pid) = match &self.root {
            Ok(r) => *r,
            Err(e) => return format!("down (/ {e})"),
        };
        let build = match self.bad {
            Some(true) => "bad build",
            Some(false) => "good build",
            None => "build unknown",
        };
        let who = match pid {
            Some(pid) if self.first => format!("pid {pid}, {build}, the first process"),
            Some(pid) => format!("pid {pid}, {build}"),
            None => build.to_owned(),
        };
        let health = self
            .health
            .map_or_else(|| "no answer".to_owned(), |h| h.to_string());
        let word = if self.up() { "up" } else { "down" };
        format!("{word}: / {status}, /health {health}; {who}")
    }
}

/// Asks the service (fresh connections, up to 3 tries for `/`) what serves at the end.
pub fn end_state(d: &Deploy, kind: Kind, target: &Target, first: Option<i32>) -> EndState {
    let timeout = Duration::from_secs(2);
    let mut root = Err("not asked".to_owned());
    for _ in 0..3 {
        root = get_once(target, "/", timeout)
            .map(|r| (r.status, r.pid))
            .map_err(|f| f.kind.to_string());
        if root.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = root.as_ref().ok().and_then(|r| r.1);
    let parent = |p: i32| procfs::stat(p).map(|s| s.ppid);
    let first = match (pid, first) {
        (Some(p), Some(f)) if kind == Kind::Nginx => parent(p).is_some() && parent(p) == parent(f),
        (Some(p), Some(f)) => p == f,
        _ => false,
    };
    EndState {
        root,
        health: get_once(target, "/health", timeout).ok().map(|r| r.status),
        bad: pid.map(|p| d.is_bad(p)),
        first,
    }
}

/// The gaps between successful requests of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outage {
    /// The longest time without a successful request, ms.
    pub longest_ms: f64,
    /// When it began, seconds since the load started.
    pub from_s: f64,
    /// Whether it lasted to the end of the run.
    pub to_end: bool,
    /// All the gaps of at least [`DOWN_GAP_MS`] added up, ms.
    pub down_ms: f64,
}

/// A gap between two successful requests counted as time down (under the load a gap is
/// sub-millisecond; a take-back's a few tens of milliseconds).
pub const DOWN_GAP_MS: f64 = 100.0;

/// The gaps between the ends of successful requests (and from the last one to the end of the
/// run, `elapsed` seconds).
pub fn outage(recs: &[crate::loadgen::Rec], elapsed: f64) -> Outage {
    let mut ends: Vec<f64> = recs
        .iter()
        .filter(|r| r.outcome == crate::loadgen::Outcome::Ok)
        .map(|r| (r.start_us as f64 + r.lat_us as f64) / 1e6)
        .collect();
    ends.sort_by(f64::total_cmp);
    let mut o = Outage::default();
    let mut last = 0.0;
    for t in ends.into_iter().chain([elapsed]) {
        let gap_ms = (t - last) * 1e3;
        if gap_ms > o.longest_ms {
            (o.longest_ms, o.from_s, o.to_end) = (gap_ms, last, t == elapsed);
        }
        if gap_ms >= DOWN_GAP_MS {
            o.down_ms += gap_ms;
        }
        last = t.max(last);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::{Class, Outcome, Rec};

    #[test]
    fn log_timestamps() {
        let line =
            "[2026-12-01T20:33:30.123Z INFO  actix_graceful::server::controller] rolled back";
        let t = log_time(line).unwrap();
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // date -u -d 2026-12-01T20:33:30Z +%s
        assert!((secs - 1_796_157_210.123).abs() < 1e-6, "{secs}");
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert!(log_time("hello pid=1 serving").is_none());
        let a = SystemTime::UNIX_EPOCH + Duration::from_millis(10);
        assert_eq!(signed_ms(a, a + Duration::from_millis(3)), 3.0);
        assert_eq!(signed_ms(a + Duration::from_millis(2), a), -2.0);
    }

    #[test]
    fn longest_outage() {
        let rec = |start_ms: u32, outcome| Rec {
            start_us: start_ms * 1000,
            lat_us: 1000,
            outcome,
            reused: false,
            class: Class::KeepAlive,
        };
        let fail = Outcome::Fail(integration_tests::http::FailKind::ConnectRefused);
        let recs = [rec(0, Outcome::Ok), rec(100, fail), rec(500, Outcome::Ok)];
        let o = outage(&recs, 0.6);
        assert!((o.longest_ms - 500.0).abs() < 1e-6 && (o.from_s - 0.001).abs() < 1e-9);
        assert!(!o.to_end && (o.down_ms - 500.0).abs() < 1e-6, "{o:?}");
        let o = outage(&recs[..2], 2.0);
        assert!((o.longest_ms - 1999.0).abs() < 1e-6 && o.to_end, "{o:?}");
        assert!((o.down_ms - 1999.0).abs() < 1e-6, "{o:?}");
    }
}
