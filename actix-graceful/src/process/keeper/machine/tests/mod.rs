//! Every transition of the keeper, without a process: events in, the exact actions out (log
//! lines, `sd_notify` texts, signals, control words, exit status). Generation `n` runs build
//! `n` here (a start from a held build says which).

use super::*;

const ME: u32 = 100;

fn pid(n: i32) -> Pid {
    Pid::from_raw(n)
}

/// A keeper whose upgrade signal is SIGUSR2, with a clock of its own.
struct Keeper {
    m: Machine,
    t0: Instant,
    now: Instant,
}

impl Keeper {
    fn new() -> Keeper {
        Keeper::with(libc::SIGUSR2)
    }

    fn with(upgrade: i32) -> Keeper {
        let t0 = Instant::now();
        Keeper {
            m: Machine::new(ME, upgrade),
            t0,
            now: t0,
        }
    }

    /// Moves the clock to `ms` after the start.
    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = self.t0 + Duration::from_millis(ms);
        self
    }

    fn on(&mut self, event: Event) -> Vec<Action> {
        self.m.handle(self.now, event)
    }

    fn signal(&mut self, signal: Signal) -> Vec<Action> {
        self.on(Event::Signal(signal))
    }

    /// Generation `n` got ready, running build `n`, with no probation.
    fn ready(&mut self, n: i32) -> Vec<Action> {
        self.ready_on_probation(n, 0)
    }

    /// Generation `n` got ready, running build `n`, on probation for `ms`.
    fn ready_on_probation(&mut self, n: i32, ms: u64) -> Vec<Action> {
        self.on(Event::Started(Ok(Ready {
            pid: pid(n),
            build: Some(n as u64),
            probation: Duration::from_millis(ms),
        })))
    }

    /// Generation `n` got ready, running `build` (a restart's), with no probation.
    fn ready_build(&mut self, n: i32, build: BuildId) -> Vec<Action> {
        self.on(Event::Started(Ok(Ready {
            pid: pid(n),
            build: Some(build),
            probation: Duration::ZERO,
        })))
    }

    /// Generation `n` reports on its channel.
    fn reports(&mut self, n: i32, report: Report) -> Vec<Action> {
        self.on(Event::Report {
            pid: pid(n),
            heard: Heard::Report(report),
        })
    }

    fn failed(&mut self, why: &str) -> Vec<Action> {
        self.on(Event::Started(Err(why.to_owned())))
    }

    /// Generation `n` exited with `code` for the process, described as `how`.
    fn exited(&mut self, n: i32, code: i32, how: &str) -> Vec<Action> {
        let status = if how.starts_with("killed by signal") {
            ExitStatus::Signal {
                signal: code - 128,
                core_dumped: false,
            }
        } else if how.starts_with("exit status") {
            ExitStatus::Code(code)
        } else {
            ExitStatus::Unknown
        };
        assert_eq!(status.to_string(), how, "the status the test means");
        self.on(Event::Exited {
            pid: pid(n),
            status,
        })
    }

    fn tick(&mut self) -> Vec<Action> {
        self.on(Event::Tick)
    }

    /// The next tick ends the keeper with `code`, the last generation having ended with `how`.
    fn ends_with(&mut self, code: i32, how: &str) {
        let why = format!("the last generation ended with {how}");
        assert_eq!(self.tick(), [exit(code, &why)]);
    }

    /// Begun, with generation 1 (pid 10) serving since 0 ms.
    fn serving() -> Keeper {
        let mut k = Keeper::new();
        assert_eq!(k.on(Event::Begin).last(), Some(&Action::Spawn(1, None)));
        k.ready(10);
        k
    }
}

fn info(text: &str) -> Action {
    Action::Log(Level::Info, text.to_owned())
}

fn warn(text: &str) -> Action {
    Action::Log(Level::Warn, text.to_owned())
}

fn error(text: &str) -> Action {
    Action::Log(Level::Error, text.to_owned())
}

fn notify(text: &str) -> Action {
    Action::Notify(text.to_owned())
}

fn exit(code: i32, why: &str) -> Action {
    Action::Exit {
        code,
        why: why.to_owned(),
    }
}

fn stopping(signal: &str, status: &str) -> Vec<Action> {
    vec![
        info(&format!("keeper: {signal}: stopping every generation")),
        notify(&format!(
            "STOPPING=1\nSTATUS={status}: stopping (keeper pid 100)"
        )),
    ]
}

fn spawns(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Spawn(..)))
        .count()
}

mod probation;
mod starts;
mod stops;
mod upgrades;
