//! Keeper mode: the first process stays a thin keeper that holds the listening sockets and runs
//! each generation of the server as its child, so the pid a foreground supervisor (supervisord,
//! runit, s6, Docker, PID 1 in a container) watches never changes. Blocking code, free of actix
//! types.
//!
//! Design:
//! - Entered in `Graceful::run`, after the app bound its listeners with `graceful_bind*` (the
//!   registry holds duplicates of them) and before actix starts anything: the keeper never runs
//!   a worker and never serves.
//! - Every generation is started with the ordinary handoff (`handoff::hand_over`: `LISTEN_FDS`
//!   sockets, readiness pipe, timeout) plus `ACTIX_GRACEFUL_KEEPER=<keeper pid>` and without
//!   `NOTIFY_SOCKET`: the keeper is the main pid, the only one that notifies systemd and writes
//!   the pid file. All starts run on one long-lived thread, so the generations' parent-death
//!   signal (set by [`attach`]) fires when the keeper dies, not when a helper thread ends.
//! - Each generation leads a process group of its own (see `handoff::spawn`), so a terminal's
//!   signals to its foreground group (SIGWINCH on every resize, SIGINT on Ctrl-C, SIGHUP) reach
//!   the keeper only, which passes on what means something: SIGTERM, SIGINT, SIGQUIT as they
//!   are, a hang-up (SIGHUP, unless it is the upgrade signal) as SIGTERM.
//! - Upgrade signal → a new generation, from the file now at the started path, which the
//!   keeper opens first and keeps open (its *build*). Once it is ready the previous one is told
//!   through its control pipe, a channel only the keeper holds (the pipe's read end is handed
//!   over after the readiness pipe, named by [`KEEPER_FD`](crate::protocol::env::KEEPER_FD);
//!   the words are `protocol::control`'s): `R`, replaced, and it drains at once, without the
//!   pre-stop delay that SIGTERM (the service stops) brings. No signal means "replaced": anyone
//!   can send a signal (a terminal sends SIGWINCH to a whole process group on each resize).
//! - Probation: while the new generation is on probation (it says so in its `ready` report),
//!   the one it replaced stands by after its drain; the new one's report channel says `passed`
//!   (the one standing by is told `X`, release, and exits) or `failed` (it is told `T`, take
//!   back, and serves again); a death during the probation is a failure too. With nobody
//!   standing by, the keeper starts the last good build (the newest that passed; the keeper
//!   keeps the last two open, so `execveat` runs them even after their files were replaced).
//!   A failed upgrade leaves the running generation alone. SIGTERM, SIGINT, SIGQUIT go to every
//!   generation; the keeper waits for all of them and ends with the last current generation's
//!   status (see [`KeeperExit`]).
//! - A generation that exits when nobody asked, after its probation, is replaced from the
//!   sockets the keeper holds, with the build that crashed: clients queue in the kernel's
//!   accept queue meanwhile. The first replacement starts at once, later ones after 250 ms,
//!   500 ms, 1 s, 2 s; once more than [`MAX_FAILURES`](machine::MAX_FAILURES) failures come in a
//!   row (the sixth: a start that never got ready, or a generation that died within
//!   [`STABLE`](machine::STABLE) of getting ready) the keeper goes back to the previous good
//!   build, or, with none at hand, gives up and exits with status 1 so that the supervisor
//!   notices.
//! - Reaping: only the known generations, by pid: the app's own children (a `Command` that `main`
//!   runs on another thread) are the app's to wait for. As PID 1, or as a child subreaper
//!   (`PR_SET_CHILD_SUBREAPER`, the app's choice), orphans are re-parented to the keeper and
//!   nothing else would reap them: then `waitpid(-1)` too, except while a start is in flight
//!   (the start's own `waitpid` must find its child).
//!
//! Files: `generation.rs`, a generation's side (its role, the link to its keeper); `machine.rs`
//! and `machine/steps.rs`, the keeper's decisions as a pure state machine (events in, actions
//! out, no system call); `driver.rs`, the loop that performs them (signals, reports, `waitpid`,
//! `kill`, control words, `sd_notify`) and holds the generations' pipes and the builds;
//! `starter.rs`, the start thread. This file: the entry point and its public outcome.

mod driver;
mod generation;
mod machine;
mod starter;

use std::{fmt, io};

pub(crate) use generation::{attach, claim_control_fd, forward_upgrade, role, KeeperLink, Role};

use self::{driver::Driver, machine::Machine, starter::Starter};
use super::{
    handoff::Plan,
    registry,
    signals::{self, Wake},
};
use crate::protocol::{env::KEEPER, notify::PidFile};

/// The target of the keeper's log lines, whichever file writes them.
const LOG_TARGET: &str = module_path!();

/// What the keeper needs to know.
pub(crate) struct Config {
    /// How to start a generation.
    pub(crate) plan: Plan,
    /// Written (with the keeper's pid) once the first generation serves.
    pub(crate) pid_file: Option<PidFile>,
    /// Hand the listeners to systemd's fd store once the first generation serves.
    pub(crate) fd_store: bool,
}

/// How keeper mode ended, when not with status 0: the error [`Graceful::run`] returns in the
/// keeper, as the source of an [`io::Error`] (kind `Other`), so that `main` runs its
/// destructors and exits with [`code`](Self::code) (the library never calls
/// `std::process::exit`).
///
/// # Examples
///
/// ```no_run
/// use std::process::ExitCode;
/// use actix_graceful::{Graceful, GracefulBind as _, KeeperExit};
/// use actix_web::{App, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> ExitCode {
///     let run = async {
///         let server = HttpServer::new(|| App::new().wrap(actix_graceful::LameDuck))
///             .graceful_bind("0.0.0.0:8080")?;
///         Graceful::new().keeper(true).run(server).await
///     };
///     match run.await {
///         Ok(()) => ExitCode::SUCCESS,
///         Err(err) => {
///             eprintln!("error: {err}");
///             match KeeperExit::from_io(&err) {
///                 Some(exit) => ExitCode::from(exit.code()),
///                 None => ExitCode::FAILURE,
///             }
///         }
///     }
/// }
/// ```
///
/// [`Graceful::run`]: crate::Graceful::run
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperExit {
    code: u8,
    why: String,
}

impl KeeperExit {
    /// The status for the process: the last generation's exit status (128 + the signal number
    /// when a signal killed it), or 1 when the keeper gave up on a crash loop.
    #[must_use]
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The `KeeperExit` an error returned by [`Graceful::run`](crate::Graceful::run) carries,
    /// if it is one.
    #[must_use]
    pub fn from_io(err: &io::Error) -> Option<&KeeperExit> {
        err.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for KeeperExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keeper mode ended with status {}: {}",
            self.code, self.why
        )
    }
}

impl std::error::Error for KeeperExit {}

/// Runs the keeper until every generation has exited.
///
/// # Errors
/// A [`KeeperExit`] when the status for the process is not 0 (the last current generation's,
/// or 1 when the keeper gave up on a crash loop); no listener was bound with `graceful_bind*`;
/// the signal handlers or the start thread cannot be set up.
pub(crate) fn run(config: Config) -> io::Result<()> {
    let Config {
        mut plan,
        pid_file,
        fd_store,
    } = config;
    if registry::handoff_set().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "keeper mode needs listeners bound with graceful_bind*: nothing to hold",
        ));
    }
    plan.env
        .push((KEEPER, Some(std::process::id().to_string())));
    plan.env.push(("NOTIFY_SOCKET", None));
    let upgrade = plan.upgrade_signal;
    let mut caught = vec![
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGCHLD,
        upgrade,
    ];
    if upgrade != libc::SIGHUP {
        caught.push(libc::SIGHUP);
    }
    let wake = Wake::install(&caught)?;
    signals::release_usr2_unless(upgrade);
    let starter = Starter::spawn(plan)?;
    let machine = Machine::new(std::process::id(), upgrade);
    let mut driver = Driver::new(machine, starter, pid_file, fd_store, reaps_orphans());
    let driver::Ended { code, why } = driver.run(&wake);
    if let Some(pid_file) = &driver.pid_file {
        pid_file.remove_if_ours();
    }
    driver.starter.shut_down();
    log::info!(
        "keeper pid={}: every generation has exited; exit status {code}",
        std::process::id()
    );
    match u8::try_from(code) {
        Ok(0) => Ok(()),
        code => Err(io::Error::other(KeeperExit {
            code: code.unwrap_or(1),
            why,
        })),
    }
}

/// Whether orphans come to the keeper, so that it must reap any child: as PID 1, or as a child
/// subreaper.
fn reaps_orphans() -> bool {
    if std::process::id() == 1 {
        return true;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut on: libc::c_int = 0;
        // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the valid pointer.
        let rc = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut on as *mut libc::c_int) };
        if rc == 0 && on != 0 {
            return true;
        }
    }
    false
}
