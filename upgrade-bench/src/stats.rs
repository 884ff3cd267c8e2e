//! Turning the records of one strategy's run into the figures of its table and timeline.

use crate::loadgen::{Class, Rec, FAIL_KINDS};

/// Half-width of an upgrade window, seconds.
pub const WINDOW_S: f64 = 1.0;
/// Requests starting before this are warm-up, left out of the steady-state latency.
pub const WARMUP_S: f64 = 1.0;
/// Timeline bin, seconds.
pub const BIN_S: f64 = 0.1;

/// Latency percentiles of a set of successful requests, milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lat {
    /// How many.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Lat {
    fn of(mut us: Vec<u32>) -> Lat {
        if us.is_empty() {
            return Lat::default();
        }
        us.sort_unstable();
        let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
        Lat {
            n: us.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Counts and latencies of one run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// All requests.
    pub total: u64,
    /// By class: keep-alive, per-request, slow.
    pub by_class: [u64; 3],
    /// 2xx.
    pub ok: u64,
    /// Failures by kind (index of [`FAIL_KINDS`]): on a new connection, on a reused one.
    pub fails: [[u64; 2]; FAIL_KINDS.len()],
    /// Slow requests: sent, 2xx.
    pub slow: (u64, u64),
    /// Run time, seconds.
    pub seconds: f64,
    /// Latency of successful ordinary requests outside every upgrade window (after warm-up).
    pub steady: Lat,
    /// Latency of successful ordinary requests within ±[`WINDOW_S`] of a trigger.
    pub window: Lat,
}

impl Summary {
    /// Failed requests of every kind.
    pub fn failed(&self) -> u64 {
        self.fails.iter().map(|f| f[0] + f[1]).sum()
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.total as f64 / self.seconds.max(1e-9)
    }

    /// Successful requests per second.
    pub fn ok_rate(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }
}

/// Is `t` (seconds) within ±[`WINDOW_S`] of a trigger? `triggers` sorted.
fn in_window(t: f64, triggers: &[f64]) -> bool {
    let i = triggers.partition_point(|&x| x < t - WINDOW_S);
    triggers.get(i).is_some_and(|&x| x <= t + WINDOW_S)
}

/// Summarize `recs`; `triggers` are seconds since the load started (any order).
pub fn summarize(recs: &[Rec], triggers: &[f64], seconds: f64) -> Summary {
    let mut triggers = triggers.to_vec();
    triggers.sort_by(f64::total_cmp);
    let mut s = Summary {
        seconds,
        ..Summary::default()
    };
    let mut steady = Vec::with_capacity(recs.len());
    let mut window = Vec::new();
    for r in recs {
        s.total += 1;
        s.by_class[r.class as usize] += 1;
        if r.class == Class::Slow {
            s.slow.0 += 1;
        }
        match r.outcome.fail_index() {
            Some(i) => s.fails[i][usize::from(r.reused)] += 1,
            None => {
                s.ok += 1;
                if r.class == Class::Slow {
                    s.slow.1 += 1;
                    continue;
                }
                let t = r.start_us as f64 / 1e6;
                if in_window(t, &triggers) {
                    window.push(r.lat_us);
                } else if t >= WARMUP_S {
                    steady.push(r.lat_us);
                }
            }
        }
    }
    s.steady = Lat::of(steady);
    s.window = Lat::of(window);
    s
}

/// Per [`BIN_S`] bin: successful completions, and failures by kind (by the time the request
/// ended, so a timeout shows when it was noticed). Whole bins only: what ended in the last
/// partial bin is left out.
pub fn timeline(recs: &[Rec], seconds: f64) -> (Vec<u32>, Vec<[u32; FAIL_KINDS.len()]>) {
    let bins = ((seconds / BIN_S + 1e-9).floor() as usize).max(1);
    let mut ok = vec![0u32; bins];
    let mut fails = vec![[0u32; FAIL_KINDS.len()]; bins];
    for r in recs {
        let end = (r.start_us as f64 + r.lat_us as f64) / 1e6;
        let b = (end / BIN_S) as usize;
        if b >= bins {
            continue;
        }
        match r.outcome.fail_index() {
            None => ok[b] += 1,
            Some(i) => fails[b][i] += 1,
        }
    }
    (ok, fails)
}

/// How many generations were alive at once, as a share of the run: `(n, share)` for each `n`
/// seen, from the handoffs' triggers (a successor is born then) and their old processes'
/// exits (`exited_ms` after the trigger). The first generation is alive from 0, the last one
/// to the end of the run (`seconds`).
pub fn alive_shares(handoffs: &[crate::strategy::Handoff], seconds: f64) -> Vec<(usize, f64)> {
    // (time s, +1 / -1)
    let mut events: Vec<(f64, i32)> = vec![(0.0, 1)];
    for h in handoffs {
        events.push((h.at, 1));
        let died = h.exited_ms.map_or(seconds, |ms| h.at + ms / 1000.0);
        events.push((died.min(seconds), -1));
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut time_at = std::collections::BTreeMap::<usize, f64>::new();
    let (mut alive, mut last) = (0i32, 0.0f64);
    for (t, d) in events {
        let t = t.clamp(0.0, seconds);
        if alive > 0 && t > last {
            *time_at.entry(alive as usize).or_default() += t - last;
        }
        alive += d;
        last = last.max(t);
    }
    if alive > 0 && seconds > last {
        *time_at.entry(alive as usize).or_default() += seconds - last;
    }
    let total: f64 = time_at.values().sum();
    time_at
        .into_iter()
        .map(|(n, t)| (n, if total > 0.0 { t / total } else { 0.0 }))
        .collect()
}

/// Median and 90th percentile.
pub fn median_p90(v: &[f64]) -> Option<(f64, f64)> {
    integration_tests::median_p90(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::Outcome;

    fn rec(start_ms: u32, lat_ms: u32, outcome: Outcome) -> Rec {
        Rec {
            start_us: start_ms * 1000,
            lat_us: lat_ms * 1000,
            outcome,
            reused: false,
            class: Class::KeepAlive,
        }
    }

    #[test]
    fn generations_alive_at_once() {
        let h = |at: f64, exited_ms: f64| crate::strategy::Handoff {
            at,
            exited_ms: Some(exited_ms),
            ..Default::default()
        };
        // 10 s; restarts at 2 s (old gone 1 s later) and 6 s (old gone at once, 0 ms).
        let shares = alive_shares(&[h(2.0, 1000.0), h(6.0, 0.0)], 10.0);
        assert_eq!(shares.len(), 2, "{shares:?}");
        assert!(
            (shares[0].1 - 0.9).abs() < 1e-9 && shares[0].0 == 1,
            "{shares:?}"
        );
        assert!(
            (shares[1].1 - 0.1).abs() < 1e-9 && shares[1].0 == 2,
            "{shares:?}"
        );
    }

    #[test]
    fn windows_and_percentiles() {
        let recs: Vec<Rec> = (0..10_000)
            .map(|i| rec(i, if i % 1000 == 5000 % 1000 { 9 } else { 1 }, Outcome::Ok))
            .chain([rec(5000, 1, Outcome::Non2xx)])
            .collect();
        let s = summarize(&recs, &[5.0], 10.0);
        assert_eq!(s.total, 10_001);
        assert_eq!(s.failed(), 1);
        assert_eq!(s.window.n, 2001);
        assert_eq!(s.steady.n, 10_000 - 2001 - 1000);
        assert_eq!(s.steady.p50, 1.0);
        assert_eq!(s.window.max, 9.0);
        assert!(in_window(4.0, &[5.0]) && !in_window(3.99, &[5.0]));
        let (ok, fails) = timeline(&recs, 10.0);
        assert_eq!(ok.len(), 100);
        assert_eq!(ok.iter().sum::<u32>(), 9_999, "the last one ends at 10.0 s");
        assert_eq!(fails[50][Outcome::Non2xx.fail_index().unwrap()], 1);
    }
}
