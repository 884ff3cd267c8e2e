//! Capture of a child's stdout/stderr into a shared line buffer, filled by a reader thread.
//!
//! All generations of a server inherit the same pipes, so one [`Capture`] sees the lines of
//! every generation, in the order they were written. Set `ITEST_ECHO=1` to also echo every
//! line to the test's stderr as it arrives.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A growing list of lines read from one pipe.
#[derive(Clone)]
pub struct Capture {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    lines: Mutex<Vec<String>>,
    cv: Condvar,
    eof: AtomicBool,
}

impl Capture {
    /// An empty capture called `name` (used as a prefix when echoing).
    pub fn new(name: &str) -> Capture {
        Capture {
            inner: Arc::new(Inner {
                name: name.to_string(),
                lines: Mutex::new(Vec::new()),
                cv: Condvar::new(),
                eof: AtomicBool::new(false),
            }),
        }
    }

    /// Start a reader thread that appends every line of `r` and calls `on_line` for each.
    pub fn attach<R, F>(&self, r: R, on_line: F)
    where
        R: Read + Send + 'static,
        F: Fn(&str) + Send + 'static,
    {
        let inner = self.inner.clone();
        let echo = std::env::var_os("ITEST_ECHO").is_some();
        std::thread::Builder::new()
            .name(format!("capture-{}", inner.name))
            .spawn(move || {
                let mut r = BufReader::new(r);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match r.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf)
                                .trim_end_matches(['\n', '\r'])
                                .to_string();
                            if echo {
                                eprintln!("[{}] {}", inner.name, line);
                            }
                            on_line(&line);
                            inner
                                .lines
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(line);
                            inner.cv.notify_all();
                        }
                    }
                }
                inner.eof.store(true, Ordering::SeqCst);
                inner.cv.notify_all();
            })
            .expect("spawn capture thread");
    }

    /// Number of lines so far: use it as a mark for [`Capture::wait_for_line`].
    pub fn len(&self) -> usize {
        self.inner
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// No line yet?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Has every writer closed the pipe?
    pub fn eof(&self) -> bool {
        self.inner.eof.load(Ordering::SeqCst)
    }

    /// Wait (at most `timeout`) until every writer has closed the pipe and every line is read;
    /// whether that happened.
    pub fn wait_eof(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lines = self.inner.lines.lock().unwrap_or_else(|e| e.into_inner());
        while !self.eof() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let step = (deadline - now).min(Duration::from_millis(50));
            lines = self
                .inner
                .cv
                .wait_timeout(lines, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// A copy of all lines.
    pub fn lines(&self) -> Vec<String> {
        self.inner
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A copy of the lines from index `from` on.
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        let l = self.inner.lines.lock().unwrap_or_else(|e| e.into_inner());
        l.get(from..).map(|s| s.to_vec()).unwrap_or_default()
    }

    /// Lines from `from` on that satisfy `pred`.
    pub fn find(&self, from: usize, pred: impl Fn(&str) -> bool) -> Vec<String> {
        self.lines_from(from)
            .into_iter()
            .filter(|l| pred(l))
            .collect()
    }

    /// Count of lines from `from` on containing `needle`.
    pub fn count_containing(&self, from: usize, needle: &str) -> usize {
        self.find(from, |l| l.contains(needle)).len()
    }

    /// Wait (at most `timeout`) for a line at index >= `from` that satisfies `pred`; returns
    /// its index and text. Returns `None` on timeout or when the pipe is closed without such
    /// a line.
    pub fn wait_for_line(
        &self,
        from: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<(usize, String)> {
        let deadline = Instant::now() + timeout;
        let mut checked = from;
        let mut lines = self.inner.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            while checked < lines.len() {
                if pred(&lines[checked]) {
                    return Some((checked, lines[checked].clone()));
                }
                checked += 1;
            }
            let now = Instant::now();
            if now >= deadline || self.eof() {
                return None;
            }
            let step = (deadline - now).min(Duration::from_millis(50));
            lines = self
                .inner
                .cv
                .wait_timeout(lines, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The last `n` lines joined with newlines (for failure messages).
    pub fn tail(&self, n: usize) -> String {
        let l = self.lines();
        let start = l.len().saturating_sub(n);
        l[start..].join("\n")
    }
}
