//! The start thread: runs `handoff::hand_over` for each start the driver requests, one at a
//! time, and hands back the new generation's pid and control pipe. It only starts: it must not
//! decide anything (the machine does) nor signal or reap generations (the driver does).

use std::{
    io,
    os::fd::{AsRawFd, OwnedFd},
    sync::mpsc,
    thread::JoinHandle,
};

use nix::{fcntl::OFlag, unistd::pipe2};

use crate::{
    process::{
        handoff::{self, Cancel, Plan},
        registry, signals,
    },
    protocol::env::GENERATION,
    UpgradeError,
};

/// Runs `hand_over` for each request, one at a time, on one thread that lives as long as the
/// keeper (the generations' parent-death signal follows the thread that forked them).
pub(super) struct Starter {
    requests: Option<mpsc::Sender<(Cancel, u64)>>,
    pub(super) results: mpsc::Receiver<Started>,
    thread: Option<JoinHandle<()>>,
}

/// A started generation: its pid and the write end of its control pipe.
pub(super) type Started = Result<(i32, OwnedFd), UpgradeError>;

/// Starts one generation with a fresh control pipe; returns the pipe's write end with its pid.
fn start_generation(plan: &Plan, cancel: &Cancel) -> Started {
    // Both ends close-on-exec here; the spawn places the read end in the child for it.
    let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| UpgradeError::Spawn(e.into()))?;
    let mut plan = plan.clone().with_listeners(registry::handoff_set());
    plan.control = Some(read.as_raw_fd());
    let pid = handoff::hand_over(&plan, cancel)?;
    drop(read);
    Ok((pid, write))
}

impl Starter {
    pub(super) fn spawn(plan: Plan) -> io::Result<Starter> {
        let (requests, inbox) = mpsc::channel::<(Cancel, u64)>();
        let (outbox, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("keeper-start".into())
            .spawn(move || {
                for (cancel, generation) in inbox {
                    let mut plan = plan.clone();
                    plan.env.push((GENERATION, Some(generation.to_string())));
                    let result = start_generation(&plan, &cancel);
                    if outbox.send(result).is_err() {
                        break;
                    }
                    signals::wake();
                }
            })?;
        Ok(Starter {
            requests: Some(requests),
            results,
            thread: Some(thread),
        })
    }

    pub(super) fn request(&self, cancel: Cancel, generation: u64) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|tx| tx.send((cancel, generation)).is_ok())
    }

    pub(super) fn shut_down(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
