//! The keeper's driver: the loop that waits for signals, reaps the generations by pid, collects
//! the start thread's results and the time, feeds them to the [`Machine`] and performs its
//! [`Action`]s with the real system calls. It decides nothing: every choice is the machine's.

use std::{
    os::fd::OwnedFd,
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    sys::{
        signal::kill,
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::Pid,
};

use super::{
    generation::REPLACED,
    machine::{Action, Event, Machine},
    starter::Starter,
    LOG_TARGET,
};
use crate::{
    process::{announce, handoff::Cancel, signals::Wake},
    protocol::notify::{monotonic_usec, sd_notify, PidFile},
};

/// The keeper's loop wakes at least this often (signals and finished starts wake it at once).
const TICK: Duration = Duration::from_secs(1);

/// How the keeper ended: its status and why.
pub(super) struct Ended {
    pub(super) code: i32,
    pub(super) why: String,
}

pub(super) struct Driver {
    machine: Machine<OwnedFd>,
    pub(super) starter: Starter,
    pub(super) pid_file: Option<PidFile>,
    fd_store: bool,
    /// Orphans come to the keeper (PID 1, or a child subreaper): reap any child.
    reap_orphans: bool,
    /// Stops the start in flight.
    cancel: Cancel,
    ended: Option<Ended>,
}

impl Driver {
    pub(super) fn new(
        machine: Machine<OwnedFd>,
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
            wake.wait(timeout);
            for signal in wake.take() {
                self.feed(Event::Signal(signal));
            }
            self.reap();
            if let Ok(result) = self.starter.results.try_recv() {
                let result = result
                    .map(|(pid, control)| (Pid::from_raw(pid), control))
                    .map_err(|err| err.to_string());
                self.feed(Event::Started(result));
                // The start's child may have exited meanwhile: look again now it is known.
                self.reap();
            }
            self.feed(Event::Tick);
            if let Some(ended) = self.ended.take() {
                return ended;
            }
        }
    }

    /// Hands `event` to the machine, now, and performs what it asks for.
    fn feed(&mut self, event: Event<OwnedFd>) {
        for action in self.machine.handle(Instant::now(), event) {
            self.perform(action);
        }
    }

    fn perform(&mut self, action: Action<OwnedFd>) {
        match action {
            Action::Log(level, text) => log::log!(target: LOG_TARGET, level, "{text}"),
            Action::Notify(message) => sd_notify(&message),
            Action::Reloading(status) => sd_notify(&format!(
                "RELOADING=1\nMONOTONIC_USEC={}\n{status}",
                monotonic_usec()
            )),
            Action::Announce(status) => {
                announce::serving(self.pid_file.as_ref(), self.fd_store, &status);
            }
            Action::Spawn(number) => {
                self.cancel = Cancel::default();
                if !self.starter.request(self.cancel.clone(), number) {
                    self.feed(Event::StarterGone);
                }
            }
            Action::CancelStart(signal) => self.cancel.stop_successor(signal),
            Action::Kill(pid, signal) => {
                let _ = kill(pid, signal);
            }
            Action::Replaced(pid, control) => replaced(pid, &control),
            Action::Exit { code, why } => self.ended = Some(Ended { code, why }),
        }
    }

    /// Reaps the generations that exited, by pid; any other child too (`waitpid(-1)`) when
    /// orphans come to the keeper, except while a start is in flight.
    fn reap(&mut self) {
        for pid in self.machine.generations() {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                // Not ours to wait for any more (other code of the process reaped it): gone.
                Err(Errno::ECHILD) => self.feed(Event::Exited {
                    pid,
                    code: 1,
                    how: "gone, reaped by other code of this process (status unknown)".to_owned(),
                }),
                Err(err) => log::warn!(target: LOG_TARGET, "keeper: waitpid({pid}) failed: {err}"),
                Ok(status) => self.exited(status),
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
                Ok(status) => self.exited(status),
            }
        }
    }

    /// A child ended with `status` (only an exit or a signal ends a process).
    fn exited(&mut self, status: WaitStatus) {
        let (pid, code, how) = match status {
            WaitStatus::Exited(pid, code) => (pid, code, format!("exit status {code}")),
            WaitStatus::Signaled(pid, signal, _) => (
                pid,
                128 + signal as i32,
                format!("killed by signal {signal}"),
            ),
            _ => return,
        };
        self.feed(Event::Exited { pid, code, how });
    }
}

/// Tells the generation that a newer one serves, on its control pipe: it drains at once.
fn replaced(pid: Pid, control: &OwnedFd) {
    loop {
        match nix::unistd::write(control, &[REPLACED]) {
            Err(Errno::EINTR) => continue,
            Err(err) => {
                log::warn!(target: LOG_TARGET, "cannot tell generation pid={pid} it was replaced: {err}");
            }
            Ok(_) => {}
        }
        break;
    }
}
