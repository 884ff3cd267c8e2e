//! The reading side of a report channel: the read end of the pipe a successor (or generation)
//! writes its [`Report`]s on, and what has been read of it. Non-blocking reads only; waiting
//! for it is the caller's (a blocking `poll` in the handoff and the keeper, the runtime's
//! reactor in the server).

use std::{
    collections::VecDeque,
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    time::Duration,
};

use nix::{
    errno::Errno,
    fcntl::{fcntl, FcntlArg, OFlag},
    poll::{poll, PollFd, PollFlags, PollTimeout},
};

use crate::protocol::report::{BadReport, Reader, Report};

/// What came on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Heard {
    /// A message.
    Report(Report),
    /// A line that is no message of this protocol.
    Bad(BadReport),
    /// Every write end is closed: the sender ended (or closed it).
    Closed,
}

/// The read end of a report channel.
#[derive(Debug)]
pub(crate) struct Channel {
    fd: OwnedFd,
    reader: Reader,
    heard: VecDeque<Heard>,
    closed: bool,
}

impl Channel {
    /// Reads reports from `fd`, a pipe's read end (made non-blocking).
    ///
    /// # Errors
    /// Its flags cannot be changed.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Channel> {
        let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(Channel {
            fd,
            reader: Reader::default(),
            heard: VecDeque::new(),
            closed: false,
        })
    }

    /// The next thing heard, reading what the pipe holds now; `None` when nothing is there
    /// yet. After [`Heard::Closed`], `Closed` again.
    pub(crate) fn next(&mut self) -> Option<Heard> {
        if self.heard.is_empty() && !self.closed {
            self.read_available();
        }
        match self.heard.pop_front() {
            Some(heard) => Some(heard),
            None if self.closed => Some(Heard::Closed),
            None => None,
        }
    }

    /// [`next`](Self::next), waiting up to `timeout` for it.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Option<Heard> {
        if let Some(heard) = self.next() {
            return Some(heard);
        }
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) | Err(_) => None,
            Ok(_) => self.next(),
        }
    }

    /// Reads until the pipe is empty or closed.
    fn read_available(&mut self) {
        let mut buf = [0u8; 1024];
        loop {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(n) => self
                    .heard
                    .extend(
                        self.reader
                            .push(&buf[..n])
                            .into_iter()
                            .map(|read| match read {
                                Ok(report) => Heard::Report(report),
                                Err(bad) => Heard::Bad(bad),
                            }),
                    ),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(err) => {
                    log::warn!("cannot read the report channel: {err}; taking it as closed");
                    self.closed = true;
                    return;
                }
            }
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use nix::{
        fcntl::OFlag,
        unistd::{pipe2, Pid},
    };

    use super::*;

    #[test]
    fn reports_then_closed() {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let mut channel = Channel::new(r).expect("channel");
        assert_eq!(channel.next(), None);
        assert_eq!(channel.wait(Duration::from_millis(10)), None);
        nix::unistd::write(&w, b"ready 5 100\nbogus\npass").expect("write");
        let pid = Pid::from_raw(5);
        assert_eq!(
            channel.next(),
            Some(Heard::Report(Report::Ready {
                pid,
                probation: Duration::from_millis(100)
            }))
        );
        assert!(matches!(channel.next(), Some(Heard::Bad(_))));
        assert_eq!(channel.next(), None, "a partial line waits");
        nix::unistd::write(&w, b"ed 5\n").expect("write");
        drop(w);
        assert_eq!(
            channel.wait(Duration::from_secs(5)),
            Some(Heard::Report(Report::Passed { pid }))
        );
        // A process another test's thread forks holds `w` until its `exec`: wait for the end.
        assert_eq!(channel.wait(Duration::from_secs(5)), Some(Heard::Closed));
        assert_eq!(channel.next(), Some(Heard::Closed));
    }
}
