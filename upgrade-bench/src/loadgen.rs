//! The load generator: one thread per connection, driving the harness's raw HTTP/1.1 client
//! (no pool, no retry). Every request is recorded once — when it started, how long it took,
//! and how it ended — so the analysis can slice by time.

use integration_tests::http::{Client, FailKind, Target};
use integration_tests::PidSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What kind of client sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// A keep-alive client (one connection reused until the server closes it).
    KeepAlive,
    /// A connection-per-request client.
    PerRequest,
    /// A slow request (`/sleep?ms=...`) fired shortly before an upgrade.
    Slow,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A 2xx response.
    Ok,
    /// A complete response with another status.
    Non2xx,
    /// A failure of the harness client's classes.
    Fail(FailKind),
}

/// The failure kinds, in table order (index = [`Outcome::fail_index`]).
pub const FAIL_KINDS: [(Outcome, &str); 7] = [
    (Outcome::Fail(FailKind::ConnectRefused), "refused"),
    (Outcome::Fail(FailKind::Reset), "reset"),
    (
        Outcome::Fail(FailKind::EofBeforeResponse),
        "eof before response",
    ),
    (Outcome::Fail(FailKind::Timeout), "timeout"),
    (Outcome::Non2xx, "non-2xx"),
    (Outcome::Fail(FailKind::Malformed), "malformed/truncated"),
    (Outcome::Fail(FailKind::Other), "other"),
];

impl Outcome {
    /// Index into [`FAIL_KINDS`]; `None` for success.
    pub fn fail_index(self) -> Option<usize> {
        FAIL_KINDS.iter().position(|(o, _)| *o == self)
    }
}

/// One request.
#[derive(Clone, Copy, Debug)]
pub struct Rec {
    /// Start, microseconds since the load started.
    pub start_us: u32,
    /// Duration, microseconds.
    pub lat_us: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// Was it sent on a reused keep-alive connection?
    pub reused: bool,
    /// Who sent it.
    pub class: Class,
}

/// A failure with its description (the first few per thread are kept).
#[derive(Clone, Debug)]
pub struct Sample {
    /// Start, seconds since the load started.
    pub at: f64,
    /// Thread name.
    pub thread: String,
    /// What happened.
    pub detail: String,
}

/// What to send.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The server.
    pub target: Target,
    /// Keep-alive client threads.
    pub keepalive: usize,
    /// Connection-per-request threads.
    pub per_request: usize,
    /// Path of the ordinary requests.
    pub path: String,
    /// Think time between two requests of one thread: uniform in `pause..=pause_max` (fixed
    /// when they are equal).
    pub pause: Duration,
    /// See `pause`.
    pub pause_max: Duration,
    /// Client connect/read/write timeout.
    pub timeout: Duration,
    /// Hard stop.
    pub max_duration: Duration,
}

type Thread = JoinHandle<Out>;

/// What one thread recorded.
#[derive(Default)]
struct Out {
    recs: Vec<Rec>,
    samples: Vec<Sample>,
    last_pid: Option<i32>,
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<Thread>,
    slow: Mutex<Vec<Thread>>,
    started: Instant,
    spec: Spec,
    pids: PidSet,
}

/// Everything recorded.
pub struct Recorded {
    /// Every request, in no particular order.
    pub recs: Vec<Rec>,
    /// The first failures of each thread.
    pub samples: Vec<Sample>,
    /// Start to stop.
    pub elapsed: Duration,
}

const SAMPLES_PER_THREAD: usize = 3;

impl Load {
    /// Start the client threads; answering pids (`X-Pid`) are added to `pids`.
    pub fn start(spec: Spec, pids: PidSet) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let threads = (0..spec.keepalive)
            .map(|i| (format!("ka-{i}"), Class::KeepAlive))
            .chain((0..spec.per_request).map(|i| (format!("pr-{i}"), Class::PerRequest)))
            .map(|(name, class)| {
                let spec = spec.clone();
                let stop = stop.clone();
                let pids = pids.clone();
                std::thread::Builder::new()
                    .name(name.clone())
                    .stack_size(256 * 1024)
                    .spawn(move || client_loop(&name, class, &spec, &stop, &pids, started))
                    .expect("spawn load thread")
            })
            .collect();
        Load {
            stop,
            threads,
            slow: Mutex::new(Vec::new()),
            started,
            spec,
            pids,
        }
    }

    /// When the load started (the time origin of every record).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Fire `n` requests to `path` at once, each on a fresh connection in its own thread.
    pub fn fire_slow(&self, n: usize, path: &str, timeout: Duration) {
        let mut slow = self.slow.lock().unwrap_or_else(|e| e.into_inner());
        for i in 0..n {
            let mut spec = self.spec.clone();
            spec.path = path.to_owned();
            spec.timeout = timeout;
            let pids = self.pids.clone();
            let started = self.started;
            let name = format!("slow-{}", slow.len() + i);
            let h = std::thread::Builder::new()
                .name(name.clone())
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut client = Client::new(spec.target.clone())
                        .keep_alive(false)
                        .timeout(spec.timeout);
                    let mut out = Out::default();
                    one(
                        &mut client,
                        &name,
                        Class::Slow,
                        &spec,
                        &pids,
                        started,
                        &mut out,
                    );
                    out
                })
                .expect("spawn slow-request thread");
            slow.push(h);
        }
    }

    /// Stop every client thread (slow requests are waited for), and return the records.
    pub fn stop(self) -> Recorded {
        self.stop.store(true, Ordering::SeqCst);
        let elapsed = self.started.elapsed();
        let mut recs = Vec::new();
        let mut samples = Vec::new();
        let slow = std::mem::take(&mut *self.slow.lock().unwrap_or_else(|e| e.into_inner()));
        for h in self.threads.into_iter().chain(slow) {
            if let Ok(out) = h.join() {
                recs.extend(out.recs);
                samples.extend(out.samples);
            }
        }
        samples.sort_by(|a, b| a.at.total_cmp(&b.at));
        Recorded {
            recs,
            samples,
            elapsed,
        }
    }
}

fn client_loop(
    name: &str,
    class: Class,
    spec: &Spec,
    stop: &AtomicBool,
    pids: &PidSet,
    started: Instant,
) -> Out {
    let mut client = Client::new(spec.target.clone())
        .keep_alive(class == Class::KeepAlive)
        .timeout(spec.timeout);
    let mut out = Out {
        recs: Vec::with_capacity(1 << 16),
        ..Out::default()
    };
    let mut think = Think::new(name, spec.pause, spec.pause_max);
    while !stop.load(Ordering::Relaxed) && started.elapsed() < spec.max_duration {
        let refused = one(&mut client, name, class, spec, pids, started, &mut out)
            == Outcome::Fail(FailKind::ConnectRefused);
        if refused {
            // Nobody listening: do not spin.
            std::thread::sleep(Duration::from_millis(1));
        }
        let pause = think.next();
        if !pause.is_zero() {
            // In steps, so a long think time does not hold up the end of the load.
            let until = Instant::now() + pause;
            while !stop.load(Ordering::Relaxed) {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
        }
    }
    out
}

/// Think times uniform in `min..=max`, from a xorshift generator seeded by the thread's name
/// and the clock (no new dependency for one random number per request).
struct Think {
    min: Duration,
    span_us: u64,
    state: u64,
}

impl Think {
    fn new(name: &str, min: Duration, max: Duration) -> Think {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = name.bytes().fold(clock ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Think {
            min,
            span_us: max.saturating_sub(min).as_micros() as u64,
            state: seed | 1,
        }
    }

    fn next(&mut self) -> Duration {
        if self.span_us == 0 {
            return self.min;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.min + Duration::from_micros(self.state % (self.span_us + 1))
    }
}

/// One request on `client`, recorded in `out`.
fn one(
    client: &mut Client,
    name: &str,
    class: Class,
    spec: &Spec,
    pids: &PidSet,
    started: Instant,
    out: &mut Out,
) -> Outcome {
    let reused_before = client.connected();
    let t = Instant::now();
    let res = client.get(&spec.path);
    let lat = t.elapsed();
    let (outcome, reused, detail) = match res {
        Ok(r) => {
            if r.pid.is_some() && r.pid != out.last_pid {
                out.last_pid = r.pid;
                pids.add(r.pid.unwrap_or_default());
            }
            if (200..300).contains(&r.status) {
                (Outcome::Ok, reused_before, None)
            } else {
                (
                    Outcome::Non2xx,
                    reused_before,
                    Some(format!("status {}", r.status)),
                )
            }
        }
        Err(f) => (Outcome::Fail(f.kind), f.reused, Some(f.to_string())),
    };
    let start_us = u32::try_from((t - started).as_micros()).unwrap_or(u32::MAX);
    out.recs.push(Rec {
        start_us,
        lat_us: u32::try_from(lat.as_micros()).unwrap_or(u32::MAX),
        outcome,
        reused,
        class,
    });
    if let Some(detail) = detail {
        if out.samples.len() < SAMPLES_PER_THREAD {
            out.samples.push(Sample {
                at: start_us as f64 / 1e6,
                thread: name.to_owned(),
                detail,
            });
        }
    }
    outcome
}
