//! The start thread: runs `handoff::hand_over` for each start the driver requests, one at a
//! time, and hands back the new generation with its links and the build it runs. It only
//! starts: it must not decide anything (the machine does) nor signal or reap generations (the
//! driver does).

use std::{
    io,
    os::fd::{AsRawFd, OwnedFd},
    sync::mpsc,
    thread::JoinHandle,
    time::Duration,
};

use nix::{
    fcntl::OFlag,
    unistd::{pipe2, Pid},
};

use crate::{
    process::{
        handoff::{self, Cancel, Channel, Plan},
        registry, signals,
    },
    UpgradeError,
};

/// One start the driver asks for.
pub(super) struct Request {
    pub(super) cancel: Cancel,
    /// The generation's number.
    pub(super) number: u64,
    /// The build to run (a copy of the driver's fd); none: the file at the started path.
    pub(super) build: Option<OwnedFd>,
}

/// A generation that got ready.
pub(super) struct Generation {
    pub(super) pid: Pid,
    /// The write end of its control pipe.
    pub(super) control: OwnedFd,
    /// Its report channel.
    pub(super) channel: Channel,
    /// The probation it announced (zero for a generation that does not report one).
    pub(super) probation: Duration,
    /// The file it was started from, opened just before, when it was started from the path.
    pub(super) opened: Option<OwnedFd>,
}

/// Runs `hand_over` for each request, one at a time, on one thread that lives as long as the
/// keeper (the generations' parent-death signal follows the thread that forked them).
pub(super) struct Starter {
    requests: Option<mpsc::Sender<Request>>,
    pub(super) results: mpsc::Receiver<Result<Generation, UpgradeError>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts one generation with a fresh control pipe.
fn start_generation(plan: &Plan, request: Request) -> Result<Generation, UpgradeError> {
    // Both ends close-on-exec here; the spawn places the read end in the child for it.
    let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| UpgradeError::Spawn(e.into()))?;
    let mut plan = plan.clone().with_listeners(registry::handoff_set());
    plan.control = Some(read.as_raw_fd());
    plan.generation = request.number;
    plan.exe_fd = request.build.as_ref().map(AsRawFd::as_raw_fd);
    let opened = match &request.build {
        Some(_) => None,
        None => hold(&plan),
    };
    let started = handoff::hand_over(&plan, &request.cancel)?;
    drop(read);
    Ok(Generation {
        pid: started.pid,
        control: write,
        channel: started.channel,
        probation: started.probation.unwrap_or(Duration::ZERO),
        opened,
    })
}

/// Opens the file at the plan's path, to run it again later (a rollback) whatever the path
/// holds by then. Linux only (`execveat`); `None` elsewhere or when it cannot be opened.
fn hold(plan: &Plan) -> Option<OwnedFd> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return None;
    }
    match std::fs::File::open(&plan.exe) {
        Ok(file) => Some(file.into()),
        Err(err) => {
            log::warn!(
                "keeper: cannot hold {} open for a rollback: {err}",
                plan.exe.display()
            );
            None
        }
    }
}

impl Starter {
    pub(super) fn spawn(plan: Plan) -> io::Result<Starter> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (outbox, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("keeper-start".into())
            .spawn(move || {
                for request in inbox {
                    let result = start_generation(&plan, request);
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

    pub(super) fn request(&self, request: Request) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|tx| tx.send(request).is_ok())
    }

    pub(super) fn shut_down(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
