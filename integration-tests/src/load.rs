//! A bounded load generator: keep-alive client threads plus connection-per-request loops,
//! counting every outcome by class, and a helper for slow requests.

use crate::family::PidSet;
use crate::http::{Client, FailKind, Failure, Response, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How much load, for how long.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Where to send it (loopback).
    pub target: Target,
    /// Threads each holding one keep-alive connection.
    pub keepalive_clients: usize,
    /// Threads opening a new connection for every request.
    pub per_request_loops: usize,
    /// Hard stop after this long.
    pub max_duration: Duration,
    /// Hard stop after this many requests in total (`None`: no limit).
    pub max_requests: Option<u64>,
    /// Path to request.
    pub path: String,
    /// Pause between two requests of one thread (zero: as fast as possible).
    pub pause: Duration,
    /// Client timeouts.
    pub timeout: Duration,
    /// Where to register every pid that answered (a [`crate::ServerFamily`]'s set).
    pub pid_sink: Option<PidSet>,
    /// How many failure samples to keep.
    pub max_samples: usize,
}

impl LoadConfig {
    /// Full load: 32 keep-alive clients + 4 connection-per-request loops, flat out,
    /// bounded to 10 minutes.
    pub fn heavy(target: Target) -> LoadConfig {
        LoadConfig {
            target,
            keepalive_clients: 32,
            per_request_loops: 4,
            max_duration: Duration::from_secs(600),
            max_requests: None,
            path: "/".into(),
            pause: Duration::ZERO,
            timeout: Duration::from_secs(10),
            pid_sink: None,
            max_samples: 20,
        }
    }

    /// Light load: 4 keep-alive clients + 1 connection-per-request loop, 2 ms pause.
    pub fn light(target: Target) -> LoadConfig {
        LoadConfig {
            keepalive_clients: 4,
            per_request_loops: 1,
            pause: Duration::from_millis(2),
            ..LoadConfig::heavy(target)
        }
    }

    /// Register answering pids into `pids`.
    pub fn pids_into(mut self, pids: PidSet) -> LoadConfig {
        self.pid_sink = Some(pids);
        self
    }
}

/// One recorded failure.
#[derive(Clone, Debug)]
pub struct FailureSample {
    /// When, relative to the load's start.
    pub at: Duration,
    /// When, as an instant (to correlate with upgrades).
    pub instant: Instant,
    /// Which thread (`ka-N` keep-alive, `pr-N` per-request).
    pub thread: String,
    /// The failure; a non-200 status is recorded as kind `Other` with the status in detail.
    pub failure: Failure,
    /// Request number on that thread.
    pub seq: u64,
}

impl fmt::Display for FailureSample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={:.3}s {} req#{}: {}",
            self.at.as_secs_f64(),
            self.thread,
            self.seq,
            self.failure
        )
    }
}

#[derive(Default)]
struct Shared {
    total: AtomicU64,
    ok: AtomicU64,
    non_200: AtomicU64,
    fails: [AtomicU64; 6],
    pids: Mutex<BTreeSet<i32>>,
    samples: Mutex<Vec<FailureSample>>,
    last_failure: Mutex<Option<Instant>>,
}

/// Totals of a load run (or a snapshot of a running one).
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Requests completed or failed.
    pub total: u64,
    /// 200 responses.
    pub ok: u64,
    /// Responses with another status.
    pub non_200: u64,
    /// Failures by class.
    pub failures: BTreeMap<FailKind, u64>,
    /// Every `X-Pid` that answered.
    pub pids: BTreeSet<i32>,
    /// The first failures, with timestamps.
    pub samples: Vec<FailureSample>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Failed requests of any class plus non-200 responses.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum::<u64>() + self.non_200
    }

    /// Failures of one class.
    pub fn count(&self, k: FailKind) -> u64 {
        self.failures.get(&k).copied().unwrap_or(0)
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.total as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Multi-line human summary including samples.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "requests={} ok={} non200={} failed={} [{}] rate={:.0}/s elapsed={:.1}s pids={}",
            self.total,
            self.ok,
            self.non_200,
            self.failed(),
            FailKind::ALL
                .iter()
                .map(|k| format!("{k}={}", self.count(*k)))
                .collect::<Vec<_>>()
                .join(" "),
            self.rate(),
            self.elapsed.as_secs_f64(),
            self.pids.len()
        );
        for smp in &self.samples {
            s.push_str(&format!("\n  failure {smp}"));
        }
        s
    }
}

/// A running load. Stops (and joins its threads) on [`Load::stop`] or on drop.
pub struct Load {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    started: Instant,
    stopped_at: Option<Instant>,
}

impl Load {
    /// Start the threads.
    pub fn start(cfg: LoadConfig) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let started = Instant::now();
        let mut handles = Vec::new();
        let threads = (0..cfg.keepalive_clients)
            .map(|i| (format!("ka-{i}"), true))
            .chain((0..cfg.per_request_loops).map(|i| (format!("pr-{i}"), false)));
        for (name, keep_alive) in threads {
            let cfg = cfg.clone();
            let stop = stop.clone();
            let shared = shared.clone();
            let h = std::thread::Builder::new()
                .name(name.clone())
                .stack_size(256 * 1024)
                .spawn(move || worker(name, keep_alive, cfg, stop, shared, started))
                .expect("spawn load thread");
            handles.push(h);
        }
        Load {
            stop,
            shared,
            handles,
            started,
            stopped_at: None,
        }
    }

    /// Totals so far.
    pub fn report(&self) -> LoadReport {
        let s = &self.shared;
        let mut failures = BTreeMap::new();
        for k in FailKind::ALL {
            let n = s.fails[k.index()].load(Ordering::Relaxed);
            if n > 0 {
                failures.insert(k, n);
            }
        }
        LoadReport {
            total: s.total.load(Ordering::Relaxed),
            ok: s.ok.load(Ordering::Relaxed),
            non_200: s.non_200.load(Ordering::Relaxed),
            failures,
            pids: s.pids.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            samples: s.samples.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            elapsed: self.stopped_at.unwrap_or_else(Instant::now) - self.started,
        }
    }

    /// Instant of the most recent failure, if any.
    pub fn last_failure(&self) -> Option<Instant> {
        *self
            .shared
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Requests so far.
    pub fn total(&self) -> u64 {
        self.shared.total.load(Ordering::Relaxed)
    }

    /// Stop, join the threads, return the totals.
    pub fn stop(mut self) -> LoadReport {
        self.halt();
        self.report()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        if self.stopped_at.is_none() {
            self.stopped_at = Some(Instant::now());
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.halt();
    }
}

fn worker(
    name: String,
    keep_alive: bool,
    cfg: LoadConfig,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    started: Instant,
) {
    let mut client = Client::new(cfg.target.clone())
        .keep_alive(keep_alive)
        .timeout(cfg.timeout);
    let mut last_pid = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < cfg.max_duration {
        if let Some(max) = cfg.max_requests {
            if shared.total.fetch_add(1, Ordering::Relaxed) >= max {
                shared.total.fetch_sub(1, Ordering::Relaxed);
                break;
            }
        } else {
            shared.total.fetch_add(1, Ordering::Relaxed);
        }
        seq += 1;
        let res = client.get(&cfg.path);
        let failure = match res {
            Ok(r) => {
                if let Some(p) = r.pid {
                    if last_pid != Some(p) {
                        last_pid = Some(p);
                        shared
                            .pids
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(p);
                        if let Some(sink) = &cfg.pid_sink {
                            sink.add(p);
                        }
                    }
                }
                if r.status == 200 {
                    shared.ok.fetch_add(1, Ordering::Relaxed);
                    None
                } else {
                    shared.non_200.fetch_add(1, Ordering::Relaxed);
                    Some(Failure {
                        kind: FailKind::Other,
                        reused: false,
                        detail: format!("status {} body {:?}", r.status, r.text()),
                    })
                }
            }
            Err(f) => {
                shared.fails[f.kind.index()].fetch_add(1, Ordering::Relaxed);
                Some(f)
            }
        };
        if let Some(f) = failure {
            let now = Instant::now();
            *shared
                .last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(now);
            let refused = f.kind == FailKind::ConnectRefused;
            let mut samples = shared.samples.lock().unwrap_or_else(|e| e.into_inner());
            if samples.len() < cfg.max_samples {
                samples.push(FailureSample {
                    at: now - started,
                    instant: now,
                    thread: name.clone(),
                    failure: f,
                    seq,
                });
            }
            drop(samples);
            if refused {
                // Nobody listening: do not spin.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if !cfg.pause.is_zero() {
            std::thread::sleep(cfg.pause);
        }
    }
}

/// Fire `n` requests to `/sleep?ms=<ms>`, each on its own fresh connection in its own
/// thread. Each thread returns the outcome; the client timeout is `ms` + 15 s. Answering
/// pids are registered in `pids` if given.
pub fn spawn_slow(
    target: &Target,
    ms: u64,
    n: usize,
    pids: Option<PidSet>,
) -> Vec<JoinHandle<Result<Response, Failure>>> {
    (0..n)
        .map(|i| {
            let target = target.clone();
            let pids = pids.clone();
            std::thread::Builder::new()
                .name(format!("slow-{i}"))
                .spawn(move || {
                    let r = Client::new(target)
                        .keep_alive(false)
                        .timeout(Duration::from_millis(ms) + Duration::from_secs(15))
                        .get(&format!("/sleep?ms={ms}"));
                    if let (Ok(resp), Some(p)) = (&r, &pids) {
                        if let Some(pid) = resp.pid {
                            p.add(pid);
                        }
                    }
                    r
                })
                .expect("spawn slow thread")
        })
        .collect()
}

/// Join slow-request threads, turning a panicked thread into a failure.
pub fn join_slow(hs: Vec<JoinHandle<Result<Response, Failure>>>) -> Vec<Result<Response, Failure>> {
    hs.into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(Failure {
                    kind: FailKind::Other,
                    reused: false,
                    detail: "slow-request thread panicked".into(),
                })
            })
        })
        .collect()
}
