//! Every transition of the keeper, without a process: events in, the exact actions out (log
//! lines, `sd_notify` texts, signals, exit status). A generation's control pipe is its pid here.

use super::*;

const ME: u32 = 100;

fn pid(n: i32) -> Pid {
    Pid::from_raw(n)
}

/// A keeper whose upgrade signal is SIGUSR2 (and which also sends SIGWINCH to a replaced
/// generation), with a clock of its own.
struct Keeper {
    m: Machine<i32>,
    t0: Instant,
    now: Instant,
}

impl Keeper {
    fn new() -> Keeper {
        Keeper::with(libc::SIGUSR2, Some(Signal::SIGWINCH))
    }

    fn with(upgrade: i32, legacy: Option<Signal>) -> Keeper {
        let t0 = Instant::now();
        Keeper {
            m: Machine::new(ME, upgrade, legacy),
            t0,
            now: t0,
        }
    }

    /// Moves the clock to `ms` after the start.
    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = self.t0 + Duration::from_millis(ms);
        self
    }

    fn on(&mut self, event: Event<i32>) -> Vec<Action<i32>> {
        self.m.handle(self.now, event)
    }

    fn signal(&mut self, signal: Signal) -> Vec<Action<i32>> {
        self.on(Event::Signal(signal))
    }

    fn ready(&mut self, n: i32) -> Vec<Action<i32>> {
        self.on(Event::Started(Ok((pid(n), n))))
    }

    fn failed(&mut self, why: &str) -> Vec<Action<i32>> {
        self.on(Event::Started(Err(why.to_owned())))
    }

    fn exited(&mut self, n: i32, code: i32, how: &str) -> Vec<Action<i32>> {
        self.on(Event::Exited {
            pid: pid(n),
            code,
            how: how.to_owned(),
        })
    }

    fn tick(&mut self) -> Vec<Action<i32>> {
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
        assert_eq!(k.on(Event::Begin).last(), Some(&Action::Spawn(1)));
        k.ready(10);
        k
    }
}

fn info(text: &str) -> Action<i32> {
    Action::Log(Level::Info, text.to_owned())
}

fn warn(text: &str) -> Action<i32> {
    Action::Log(Level::Warn, text.to_owned())
}

fn error(text: &str) -> Action<i32> {
    Action::Log(Level::Error, text.to_owned())
}

fn notify(text: &str) -> Action<i32> {
    Action::Notify(text.to_owned())
}

fn exit(code: i32, why: &str) -> Action<i32> {
    Action::Exit {
        code,
        why: why.to_owned(),
    }
}

fn stopping(signal: &str, status: &str) -> Vec<Action<i32>> {
    vec![
        info(&format!("keeper: {signal}: stopping every generation")),
        notify(&format!(
            "STOPPING=1\nSTATUS={status}: stopping (keeper pid 100)"
        )),
    ]
}

fn spawns(actions: &[Action<i32>]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Spawn(_)))
        .count()
}

mod starts;
mod stops;
mod upgrades;
