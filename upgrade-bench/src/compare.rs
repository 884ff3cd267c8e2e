//! The graceful servers measured without load: the graceful command alone, or the `--compare`
//! commands side by side (one run, taking turns), for the handoff time of idle upgrades
//! (`--idle-upgrades`) and the fallback's cost (`--fallback-cost`).

use crate::cli::Args;
use crate::plan::command;
use crate::report::{cpu_pressure, loadavg, mp};
use crate::strategy::{self, Handoff, RunCfg};
use std::time::Duration;

/// A graceful server to measure.
pub struct Subject {
    /// Its name in the tables.
    pub name: String,
    /// Its command, `{port}` replaced.
    pub cmd: Vec<String>,
}

/// The `--compare` commands, else the graceful command (when that strategy was chosen).
pub fn subjects(a: &Args, graceful: &str) -> Vec<Subject> {
    if !a.compare.is_empty() {
        return a
            .compare
            .iter()
            .map(|(name, cmd)| Subject {
                name: name.clone(),
                cmd: command(cmd, a.port),
            })
            .collect();
    }
    if graceful.is_empty() || !a.wants("graceful") {
        return Vec::new();
    }
    vec![Subject {
        name: "graceful".into(),
        cmd: command(graceful, a.port),
    }]
}

/// Upgrades without load, 300 ms apart.
const SPACING: Duration = Duration::from_millis(300);
/// Side by side, each command does this many upgrades in a row, then the next one's turn.
const BLOCK: usize = 5;

/// The handoff time of `n` upgrades without load per subject, and where it went. Side by side,
/// the subjects take turns in blocks of [`BLOCK`] (each block a fresh process), the first of a
/// round rotating, so that the machine's load falls on each alike.
pub fn idle_handoffs(subjects: &[Subject], n: usize, cfg: &RunCfg) {
    let mut got: Vec<Vec<Handoff>> = subjects.iter().map(|_| Vec::new()).collect();
    let block = if subjects.len() > 1 { BLOCK } else { n };
    for round in 0..n.div_ceil(block) {
        let this = block.min(n - round * block);
        for j in 0..subjects.len() {
            let i = (j + round) % subjects.len();
            match strategy::idle_handoffs(&subjects[i].cmd, this, SPACING, cfg) {
                Ok(h) => got[i].extend(h),
                Err(e) => {
                    println!("\nidle handoff of {}: {e}", subjects[i].name);
                    return;
                }
            }
        }
    }
    let ready = |h: &[Handoff]| h.iter().filter_map(|h| h.ready_ms).collect::<Vec<f64>>();
    if let [only] = &got[..] {
        let v = ready(only);
        println!(
            "\nidle handoff (no load, {} upgrades 300 ms apart): trigger → ready ms {} median / p90, min {:.1} (load average {}, {})",
            v.len(),
            mp(&v),
            v.iter().copied().fold(f64::INFINITY, f64::min),
            loadavg(),
            cpu_pressure()
        );
        crate::report::print_successor_cpu(only);
        return;
    }
    print_side_by_side(subjects, &got, n);
}

/// The side-by-side table: trigger → ready per subject, and its ratios to the first's.
fn print_side_by_side(subjects: &[Subject], got: &[Vec<Handoff>], n: usize) {
    println!(
        "\nidle handoff (no load; {n} upgrades per command, 300 ms apart, in blocks of {BLOCK}, the commands taking turns; load average {}, {}): trigger → ready, ms (the library's log)",
        loadavg(),
        cpu_pressure()
    );
    let stats = |h: &[Handoff]| {
        let v: Vec<f64> = h.iter().filter_map(|h| h.ready_ms).collect();
        let (med, p90) = crate::stats::median_p90(&v).unwrap_or((f64::NAN, f64::NAN));
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (v.len(), med, p90, min, max)
    };
    let (_, ref_med, ref_p90, _, _) = stats(&got[0]);
    println!(
        "| command | upgrades | median | p90 | min | max | median / {0}'s | p90 / {0}'s |",
        subjects[0].name
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (s, h) in subjects.iter().zip(got) {
        let (n, med, p90, min, max) = stats(h);
        println!(
            "| {} | {n} | {med:.2} | {p90:.2} | {min:.2} | {max:.2} | {:.3} | {:.3} |",
            s.name,
            med / ref_med,
            p90 / ref_p90
        );
    }
    for (s, h) in subjects.iter().zip(got) {
        println!("{}:", s.name);
        crate::report::print_successor_cpu(h);
    }
}
