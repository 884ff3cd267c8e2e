//! The report channel: the messages a process sends, one line each, to the process that waits
//! on it (its predecessor, its keeper, or the fallback of a generation on probation), and their
//! reader. Pure: no descriptor is read or written here.
//!
//! ```text
//! ready <pid> <probation ms>     serving; on probation this long (0: none, passed at once)
//! failed <pid> <reason>          not ready (readiness check, self-probe), or failed its
//!                                probation; it exits
//! passed <pid>                   probation passed: the fallback may go
//! stopping <pid>                 asked to stop for good: the fallback stops too
//! ```
//!
//! A line is at most [`MAX_LINE`] bytes, so one `write` of it on a pipe is atomic (POSIX
//! `PIPE_BUF` ≥ 512) even when two processes hold the write end. The end of the channel (every
//! write end closed) without `passed` or `stopping` means the sender died.

use std::{fmt, time::Duration};

use nix::unistd::Pid;

/// The longest line, newline included.
pub(crate) const MAX_LINE: usize = 512;

/// One message on the report channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// Serving; on probation for this long (zero: none).
    Ready { pid: Pid, probation: Duration },
    /// Not ready, or failed its probation, and why: it exits.
    Failed { pid: Pid, reason: String },
    /// Probation passed.
    Passed { pid: Pid },
    /// Asked to stop for good.
    Stopping { pid: Pid },
}

impl Report {
    /// The line to write, newline included, at most [`MAX_LINE`] bytes: a long reason is cut
    /// (at a character boundary, marked `...`) and its control characters become spaces.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut line = match self {
            Report::Ready { pid, probation } => {
                format!("ready {pid} {}", probation.as_millis())
            }
            Report::Failed { pid, reason } => {
                let reason: String = reason
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                let reason = Some(reason.trim()).filter(|r| !r.is_empty());
                format!("failed {pid} {}", reason.unwrap_or("(no reason given)"))
            }
            Report::Passed { pid } => format!("passed {pid}"),
            Report::Stopping { pid } => format!("stopping {pid}"),
        };
        if line.len() > MAX_LINE - 1 {
            let mut end = MAX_LINE - 4;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push_str("...");
        }
        line.push('\n');
        line.into_bytes()
    }

    /// Reads one line (without its newline).
    ///
    /// # Errors
    /// The line is not a message of this protocol.
    pub(crate) fn decode(line: &[u8]) -> Result<Report, BadReport> {
        let bad = || BadReport(String::from_utf8_lossy(line).chars().take(80).collect());
        let text = std::str::from_utf8(line).map_err(|_| bad())?;
        let (verb, rest) = text.split_once(' ').ok_or_else(bad)?;
        let (pid, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let pid = pid
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 0)
            .map(Pid::from_raw)
            .ok_or_else(bad)?;
        let report = match verb {
            "ready" => {
                let ms = rest.parse::<u64>().map_err(|_| bad())?;
                Report::Ready {
                    pid,
                    probation: Duration::from_millis(ms),
                }
            }
            "failed" if !rest.is_empty() => Report::Failed {
                pid,
                reason: rest.to_owned(),
            },
            "passed" if rest.is_empty() => Report::Passed { pid },
            "stopping" if rest.is_empty() => Report::Stopping { pid },
            _ => return Err(bad()),
        };
        Ok(report)
    }
}

/// A line that is not a message of this protocol (its start, for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadReport(pub(crate) String);

impl fmt::Display for BadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a report of handoff protocol 1: {:?}", self.0)
    }
}

/// Collects bytes read from the channel into whole messages.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    partial: Vec<u8>,
}

impl Reader {
    /// Takes `bytes` just read; returns the messages they complete, in order. A line longer than
    /// [`MAX_LINE`] is a bad report (and is dropped).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<Result<Report, BadReport>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                out.push(Report::decode(&self.partial));
                self.partial.clear();
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            } else if self.partial.len() == MAX_LINE {
                out.push(Err(BadReport("a line longer than 512 bytes".to_owned())));
                self.partial.push(b); // one past: drop the rest of this line silently
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(n: i32) -> Pid {
        Pid::from_raw(n)
    }

    #[test]
    fn every_message_reads_back() {
        for report in [
            Report::Ready {
                pid: pid(42),
                probation: Duration::from_millis(10_000),
            },
            Report::Ready {
                pid: pid(1),
                probation: Duration::ZERO,
            },
            Report::Failed {
                pid: pid(7),
                reason: "readiness check: database unreachable".to_owned(),
            },
            Report::Passed { pid: pid(8) },
            Report::Stopping { pid: pid(9) },
        ] {
            let line = report.encode();
            assert_eq!(line.last(), Some(&b'\n'));
            let mut reader = Reader::default();
            assert_eq!(reader.push(&line), vec![Ok(report)]);
        }
        assert_eq!(
            Report::Passed { pid: pid(8) }.encode(),
            b"passed 8\n".to_vec()
        );
    }

    #[test]
    fn a_long_or_multi_line_reason_stays_one_line() {
        let report = Report::Failed {
            pid: pid(3),
            reason: format!("first\nsecond {}", "é".repeat(600)),
        };
        let line = report.encode();
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let Ok(Report::Failed { reason, .. }) = Report::decode(&line[..line.len() - 1]) else {
            panic!("unreadable")
        };
        assert!(reason.starts_with("first second é") && reason.ends_with("..."));
    }

    #[test]
    fn bad_lines_are_errors() {
        for line in [
            &b"R"[..],
            b"ready",
            b"ready 0 5",
            b"ready -3 5",
            b"ready 4 x",
            b"ready 4",
            b"failed 4",
            b"passed 4 extra",
            b"hello 4",
            b"\xff\xfe",
        ] {
            assert!(Report::decode(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn messages_split_across_reads_and_overlong_lines() {
        let mut reader = Reader::default();
        assert!(reader.push(b"passed").is_empty());
        assert_eq!(
            reader.push(b" 5\nstop"),
            vec![Ok(Report::Passed { pid: pid(5) })]
        );
        assert_eq!(
            reader.push(b"ping 6\n"),
            vec![Ok(Report::Stopping { pid: pid(6) })]
        );
        let long = [vec![b'x'; 2000], b"\npassed 1\n".to_vec()].concat();
        let got = reader.push(&long);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].is_err() && got[1].is_err());
        assert_eq!(got[2], Ok(Report::Passed { pid: pid(1) }));
    }
}

/// Property tests: whatever bytes arrive, the reader never panics, and whatever is sent reads
/// back as sent.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..700), 0..6)) {
            let mut reader = Reader::default();
            for chunk in &chunks {
                let _ = reader.push(chunk);
            }
        }

        #[test]
        fn a_failure_reads_back(pid in 1i32..i32::MAX, reason in "\\PC{1,100}", split in 0usize..600) {
            let sent = Report::Failed { pid: Pid::from_raw(pid), reason };
            let line = sent.encode();
            let (a, b) = line.split_at(split.min(line.len()));
            let mut reader = Reader::default();
            let mut got = reader.push(a);
            got.extend(reader.push(b));
            prop_assert_eq!(got.len(), 1);
            let Ok(Report::Failed { pid: got_pid, reason: got_reason }) = &got[0] else {
                return Err(TestCaseError::fail(format!("{got:?}")));
            };
            prop_assert_eq!(*got_pid, Pid::from_raw(pid));
            let Report::Failed { reason, .. } = &sent else { unreachable!() };
            // Control characters become spaces and the ends are trimmed.
            let clean: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            let clean = Some(clean.trim()).filter(|r| !r.is_empty()).unwrap_or("(no reason given)");
            prop_assert_eq!(got_reason.as_str(), clean);
        }
    }
}
