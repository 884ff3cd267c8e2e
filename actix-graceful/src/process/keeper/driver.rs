//! The keeper's driver: the loop that waits for signals and the generations' reports, reaps the
//! generations by pid, collects the start thread's results and the time, feeds them to the
//! [`Machine`] and performs its [`Action`]s with the real system calls. It holds what the
//! machine names: each generation's links (control pipe, report channel) and the builds. It
//! decides nothing: every choice is the machine's.

use std::{
    collections::HashMap,
    os::fd::{AsFd, OwnedFd},
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    poll::{poll, PollFd, PollFlags, PollTimeout},
    sys::{
        signal::kill,
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::Pid,
};

use super::{
    machine::{Action, BuildId, Event, Machine, Ready},
    starter::{Generation, Request, Starter},
    LOG_TARGET,
};
use crate::{
    events,
    process::{
        announce,
        child::{self, describe, Group},
        handoff::{Cancel, Channel, Heard},
        signals::Wake,
    },
    protocol::{
        control::Control,
        notify::{monotonic_usec, sd_notify, PidFile},
    },
};

/// The keeper's loop wakes at least this often (signals, reports and finished starts wake it
/// at once).
const TICK: Duration = Duration::from_secs(1);

/// How the keeper ended: its status and why.
pub(super) struct Ended {
    pub(super) code: i32,
    pub(super) why: String,
}

/// A generation's links to the keeper.
struct Link {
    /// The write end of its control pipe.
    control: OwnedFd,
    /// Its report channel, until it closes.
    channel: Option<Channel>,
}

pub(super) struct Driver {
    machine: Machine,
    pub(super) starter: Starter,
    pub(super) pid_file: Option<PidFile>,
    fd_store: bool,
    /// Orphans come to the keeper (PID 1, or a child subreaper): reap any child.
    reap_orphans: bool,
    /// Stops the start in flight.
    cancel: Cancel,
    /// The build the start in flight runs, if a held one.
    starting_build: Option<BuildId>,
    links: HashMap<Pid, Link>,
    builds: HashMap<BuildId, OwnedFd>,
    next_build: BuildId,
    ended: Option<Ended>,
}

impl Driver {
    pub(super) fn new(
        machine: Machine,
        starter: Starter,
        pid_file: Option<PidFile>,
        fd_store: bool,
        reap_orphans: bool,
    ) -> Driver {
        Driver {
            machine,
            starter,
            pid_file,
            fd_store,
            reap_orphans,
            cancel: Cancel::default(),
            starting_build: None,
            links: HashMap::new(),
            builds: HashMap::new(),
            next_build: 1,
            ended: None,
        }
    }

    /// Starts the first generation and runs until every generation has exited.
    pub(super) fn run(&mut self, wake: &Wake) -> Ended {
        self.feed(Event::Begin);
        loop {
            let now = Instant::now();
            let timeout = self
                .machine
                .deadline()
                .map_or(TICK, |at| at.saturating_duration_since(now).min(TICK));
            self.wait(wake, timeout);
            for signal in wake.arrived() {
                self.feed(Event::Signal(signal));
            }
            // Reports first: a generation that says why it fails, then exits, is heard.
            self.read_reports();
            self.reap();
            if let Ok(result) = self.starter.results.try_recv() {
                self.started(result);
                // The start's child may have exited meanwhile: look again now it is known.
                self.reap();
            }
            self.feed(Event::Tick);
            if let Some(ended) = self.ended.take() {
                return ended;
            }
        }
    }

    /// Sleeps until a signal, a report, the start thread, or `timeout`.
    fn wait(&self, wake: &Wake, timeout: Duration) {
        let mut fds = vec![PollFd::new(wake.fd(), PollFlags::POLLIN)];
        fds.extend(
            self.links
                .values()
                .filter_map(|link| link.channel.as_ref())
                .map(|channel| PollFd::new(channel.as_fd(), PollFlags::POLLIN)),
        );
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let _ = poll(&mut fds, ms);
        wake.clear();
    }

    /// Hands `event` to the machine, now, performs what it asks for, and lets go of the links
    /// and builds it no longer names.
    fn feed(&mut self, event: Event) {
        for action in self.machine.handle(Instant::now(), event) {
            self.perform(action);
        }
        for event in self.machine.take_events() {
            events::emit(event);
        }
        let generations = self.machine.generations();
        self.links.retain(|pid, _| generations.contains(pid));
        let builds = self.machine.builds();
        self.builds.retain(|id, _| builds.contains(id));
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Log(level, text) => log::log!(target: LOG_TARGET, level, "{text}"),
            Action::Notify(message) => sd_notify(&message),
            Action::Reloading(status) => sd_notify(&format!(
                "RELOADING=1\nMONOTONIC_USEC={}\n{status}",
                monotonic_usec()
            )),
            Action::Announce(status) => {
                announce::serving(
                    self.pid_file.as_ref(),
                    self.fd_store,
                    &status,
                    Duration::ZERO,
                );
            }
            Action::Spawn(number, build) => self.spawn(number, build),
            Action::CancelStart(signal) => self.cancel.stop_successor(signal),
            Action::Kill(pid, signal) => {
                let _ = kill(pid, signal);
            }
            Action::Control(pid, word) => self.say(pid, word),
            Action::Exit { code, why } => self.ended = Some(Ended { code, why }),
        }
    }

    fn spawn(&mut self, number: u64, build: Option<BuildId>) {
        self.cancel = Cancel::default();
        self.starting_build = build;
        let copy = build
            .and_then(|id| self.builds.get(&id))
            .and_then(|fd| fd.try_clone().ok());
        if build.is_some() && copy.is_none() {
            log::warn!(target: LOG_TARGET, "keeper: the held build is gone; starting the file at the path");
        }
        let request = Request {
            cancel: self.cancel.clone(),
            number,
            build: copy,
        };
        if !self.starter.request(request) {
            self.feed(Event::StarterGone);
        }
    }

    /// A start ended: keeps the new generation's links and build, and tells the machine.
    fn started(&mut self, result: Result<Generation, crate::UpgradeError>) {
        let result = result
            .map(|generation| {
                let build = match generation.opened {
                    Some(fd) => {
                        let id = self.next_build;
                        self.next_build += 1;
                        self.builds.insert(id, fd);
                        Some(id)
                    }
                    None => self.starting_build,
                };
                let link = Link {
                    control: generation.control,
                    channel: Some(generation.channel),
                };
                self.links.insert(generation.pid, link);
                Ready {
                    pid: generation.pid,
                    build,
                    probation: generation.probation,
                }
            })
            .map_err(|err| err.to_string());
        self.feed(Event::Started(result));
    }

    /// Feeds what the generations said on their report channels.
    fn read_reports(&mut self) {
        let mut heard = Vec::new();
        for (pid, link) in &mut self.links {
            while let Some(channel) = &mut link.channel {
                match channel.next() {
                    Some(Heard::Closed) => link.channel = None,
                    Some(what) => heard.push((*pid, what)),
                    None => break,
                }
            }
        }
        for (pid, heard) in heard {
            self.feed(Event::Report { pid, heard });
        }
    }

    /// Says `word` on the generation's control pipe.
    fn say(&mut self, pid: Pid, word: Control) {
        let Some(link) = self.links.get(&pid) else {
            log::warn!(target: LOG_TARGET, "keeper: no control pipe to generation pid={pid}");
            return;
        };
        loop {
            match nix::unistd::write(&link.control, &[word.byte()]) {
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    log::warn!(target: LOG_TARGET, "cannot tell generation pid={pid} {word:?}: {err}");
                }
                Ok(_) => {}
            }
            return;
        }
    }

    /// Reaps the generations that exited, by pid; any other child too (`waitpid(-1)`) when
    /// orphans come to the keeper, except while a start is in flight.
    fn reap(&mut self) {
        for pid in self.machine.generations() {
            if let Some(status) = child::try_reap(pid, Group::KillOnFailure) {
                self.feed(Event::Exited { pid, status });
            }
        }
        if !self.reap_orphans || self.machine.is_starting() {
            return;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    log::warn!(target: LOG_TARGET, "keeper: waitpid failed: {err}");
                    return;
                }
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    if let Some(pid) = status.pid() {
                        let status = describe(status);
                        self.feed(Event::Exited { pid, status });
                    }
                }
                Ok(_) => {}
            }
        }
    }
}
