//! The bad-build run's tables (`--bad-build`): each bad deploy of a strategy, and the
//! strategies side by side (Markdown, for the README), with one machine-readable line each.

use crate::loadgen::{Outcome as Req, FAIL_KINDS};
use crate::report::{mp, Outcome};
use crate::stats::Summary;
use integration_tests::http::FailKind;

/// Failures of the kinds `kinds`, new and reused connections together.
fn count(s: &Summary, kinds: &[Req]) -> u64 {
    FAIL_KINDS
        .iter()
        .enumerate()
        .filter(|(_, (o, _))| kinds.contains(o))
        .map(|(i, _)| s.fails[i][0] + s.fails[i][1])
        .sum()
}

/// Refused, reset or EOF, non-2xx, and the rest.
fn by_kind(s: &Summary) -> [u64; 4] {
    let refused = count(s, &[Req::Fail(FailKind::ConnectRefused)]);
    let reset = count(
        s,
        &[
            Req::Fail(FailKind::Reset),
            Req::Fail(FailKind::EofBeforeResponse),
        ],
    );
    let non_2xx = count(s, &[Req::Non2xx]);
    [
        refused,
        reset,
        non_2xx,
        s.failed() - refused - reset - non_2xx,
    ]
}

/// The take-back times of a run's bad deploys, ms.
fn take_backs(o: &Outcome) -> Vec<f64> {
    o.run
        .handoffs
        .iter()
        .filter_map(|h| h.bad.as_ref()?.take_back_ms)
        .collect()
}

/// `3.2 (max 4.0)`, or `-`.
fn median_max(v: &[f64]) -> String {
    let max = v.iter().copied().fold(f64::NAN, f64::max);
    match crate::stats::median_p90(v) {
        Some((m, _)) => format!("{m:.1} (max {max:.1})"),
        None => "-".into(),
    }
}

/// `1234.5 ms (from 8.512 s, to the end)`.
fn outage(o: &Outcome) -> String {
    match o.outage {
        Some(x) => format!(
            "{:.1} ms (from {:.3} s{})",
            x.longest_ms,
            x.from_s,
            if x.to_end {
                ", to the end of the run"
            } else {
                ""
            }
        ),
        None => "-".into(),
    }
}

/// The gaps of at least 100 ms added up, seconds.
fn down(o: &Outcome) -> String {
    o.outage
        .map_or("-".into(), |x| format!("{:.1} s", x.down_ms / 1e3))
}

/// One strategy's bad deploys, each on a line, then its outage and its end.
pub fn print_deploys(o: &Outcome) {
    let [refused, reset, non_2xx, other] = by_kind(&o.summary);
    println!(
        "  failed by kind         refused {refused}, reset or EOF {reset}, non-2xx {non_2xx}, other {other}"
    );
    for (i, h) in o.run.handoffs.iter().enumerate() {
        let Some(b) = &h.bad else { continue };
        let what = match (&b.refused, b.new) {
            (Some(why), _) => format!("not taken into service: {why}"),
            (None, Some(pid)) => {
                let mut s = format!(
                    "pid {pid} ready after {} ms",
                    b.ready_ms.map_or("?".into(), |ms| format!("{ms:.1}"))
                );
                if let Some(at) = b.killed_at {
                    s.push_str(&format!("; SIGKILLed at {at:.3} s"));
                }
                if let Some(ms) = b.take_back_ms {
                    s.push_str(&format!("; taken back {ms:.0} ms later"));
                }
                if let Some(line) = &b.take_back {
                    s.push_str(&format!(": {line}"));
                }
                s
            }
            (None, None) => "?".into(),
        };
        println!("  deploy {:<3} at {:>6.2} s {what}", i + 1, h.at);
    }
    println!("  longest outage         {}", outage(o));
    println!(
        "  time down              {} (gaps of {} ms or more without a successful request, added up)",
        down(o),
        crate::badrun::DOWN_GAP_MS
    );
    if let Some(end) = &o.run.end {
        println!("  at the end             {}", end.describe());
    }
}

/// The side-by-side table (Markdown, for the README).
pub fn print_table(outs: &[Outcome]) {
    println!("\n| strategy | bad deploys | requests | failed | refused | reset or EOF | non-2xx | longest outage | time down | at the end | take-back ms: median (max) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for o in outs {
        let [refused, reset, non_2xx, _] = by_kind(&o.summary);
        println!(
            "| {} | {} | {} | {} | {refused} | {reset} | {non_2xx} | {} | {} | {} | {} |",
            o.strategy.name,
            o.run.handoffs.len(),
            o.summary.total,
            o.summary.failed(),
            outage(o),
            down(o),
            o.run.end.as_ref().map_or("-".into(), |e| e.describe()),
            median_max(&take_backs(o)),
        );
    }
}

/// A machine-readable `badbuild` line per strategy (after their `summary` lines).
pub fn print_lines(outs: &[Outcome]) {
    for o in outs {
        let end = o.run.end.as_ref();
        println!(
            "badbuild strategy={} outage_ms={:.1} down_ms={:.1} up={} bad_build_serves={} take_back_ms={}",
            o.strategy.name,
            o.outage.map_or(f64::NAN, |x| x.longest_ms),
            o.outage.map_or(f64::NAN, |x| x.down_ms),
            end.is_some_and(|e| e.up()),
            end.and_then(|e| e.bad)
                .map_or("?".into(), |b| b.to_string()),
            mp(&take_backs(o)).replace(' ', ""),
        );
    }
}
