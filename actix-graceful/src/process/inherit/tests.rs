//! Tests of the inherited set on real descriptors, each in a child process (the set is read
//! once per process): claims by name of every kind, and the whole reading against libsystemd.

/// `take_fd`, `take_udp`, `close_unclaimed` and the registry on a real inherited set (a child
/// process with fds 3..5: a FIFO named `state`, a UDP socket `dns`, a TCP listener `web`).
#[cfg(all(test, target_os = "linux"))]
mod claims {
    use super::super::*;
    use std::os::fd::AsRawFd as _;

    const VAR: &str = "AG_CLAIMS_CHILD";

    #[test]
    fn child() {
        if std::env::var_os(VAR).is_none() {
            return;
        }
        let names = || {
            registry::handoff_set()
                .into_iter()
                .map(|(_, n)| n)
                .collect::<Vec<_>>()
        };
        println!();
        match take_udp("state") {
            Err(err) => println!("AGC udp-on-fifo {err}"),
            Ok(got) => println!("AGC udp-on-fifo took {got:?}"),
        }
        let state = take_fd("state").unwrap().expect("state");
        println!(
            "AGC state fd {} cloexec={}",
            state.as_raw_fd(),
            fd::is_cloexec(3)
        );
        println!("AGC state again {:?}", take_fd("state").unwrap());
        let dns = take_udp("dns").unwrap().expect("dns");
        println!("AGC dns {}", dns.local_addr().unwrap());
        println!("AGC handoff {:?}", names());
        drop(state);
        println!("AGC after drop {:?}", names());
        println!(
            "AGC closed {} open3={} open5={}",
            close_unclaimed(),
            fd::is_open(3),
            fd::is_open(5)
        );
        drop(dns);
    }

    #[test]
    fn claims_by_name_of_any_kind_and_handoff_follows_what_stays_open() {
        if std::env::var_os(VAR).is_some() {
            return;
        }
        let (fifo, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let out = super::child::run(
            "process::inherit::tests::claims::child",
            &[
                (VAR, "1"),
                ("LISTEN_FDS", "3"),
                ("LISTEN_FDNAMES", "state:dns:web"),
            ],
            Some(("", "")),
            &[fifo.as_raw_fd(), udp.as_raw_fd(), web.as_raw_fd()],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = |tag: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(tag))
                .unwrap_or_else(|| {
                    panic!(
                        "no {tag:?} in\n{text}\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
                .to_owned()
        };
        assert_eq!(
            line("AGC udp-on-fifo "),
            "inherited fd 3 (name \"state\") is not a UDP socket but a pipe"
        );
        assert_eq!(line("AGC state fd "), "3 cloexec=true");
        assert_eq!(line("AGC state again "), "None");
        assert_eq!(line("AGC dns "), udp.local_addr().unwrap().to_string());
        assert_eq!(line("AGC handoff "), r#"["state", "dns"]"#);
        assert_eq!(
            line("AGC after drop "),
            r#"["dns"]"#,
            "a closed fd is not handed over"
        );
        assert_eq!(
            line("AGC closed "),
            "1 open3=false open5=false",
            "only web was unclaimed"
        );
    }
}

/// Running one unit test of this binary in a child process with a prepared environment and fds
/// at 3.., as a service manager starts a service: for tests of what reads the process
/// environment once (the inherited set).
#[cfg(all(test, target_os = "linux"))]
pub(crate) mod child {
    use std::{io, os::fd::RawFd, os::unix::process::CommandExt as _, process::Command};

    /// Runs test `test` (its full path) of this binary with `env` set (every `LISTEN_*` removed
    /// first), `fds` placed at 3.. (nothing else open from there on) and, with `own_pid`,
    /// `LISTEN_PID` set by `/bin/sh` to the child's own pid between the two texts.
    pub(crate) fn run(
        test: &str,
        env: &[(&str, &str)],
        own_pid: Option<(&str, &str)>,
        fds: &[RawFd],
    ) -> std::process::Output {
        assert!(fds.len() <= 16);
        let exe = std::env::current_exe().expect("current_exe");
        let pid_line = match own_pid {
            Some((before, after)) => {
                format!("LISTEN_PID='{before}'$$'{after}'; export LISTEN_PID; ")
            }
            None => String::new(),
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("{pid_line}exec \"$0\" \"$@\""))
            .arg(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("LISTEN_FDS")
            .envs(env.iter().copied());
        let raw = fds.to_vec();
        // SAFETY: only async-signal-safe calls (fcntl, dup2, close, close_range) between fork
        // and exec, on memory allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let mut high = [0 as RawFd; 16];
                for (i, &fd) in raw.iter().enumerate() {
                    high[i] = libc::fcntl(fd, libc::F_DUPFD, 100);
                    if high[i] < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                for (i, &h) in high.iter().take(raw.len()).enumerate() {
                    if libc::dup2(h, 3 + i as RawFd) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // Nothing else open from 3+n on (a huge count must meet closed fds).
                let first = 3 + raw.len() as libc::c_uint;
                if libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) != 0 {
                    for fd in first..1024 {
                        libc::close(fd as libc::c_int);
                    }
                }
                Ok(())
            });
        }
        cmd.output().expect("run the child")
    }
}

/// The parser against libsystemd itself: `sd_listen_fds_with_names(0, &names)` from
/// `libsystemd.so.0` (loaded with `dlopen`) and [`load`] on the same environment and fds, each
/// case in a child process (this test binary re-executed, since both read the process
/// environment), with the fds placed at 3.. and `LISTEN_PID` set by `/bin/sh` to the child's
/// own pid where a case asks. Where we differ on purpose the case says so and asserts both
/// answers. Under `CI=true` a missing libsystemd fails the test; elsewhere it is skipped.
#[cfg(all(test, target_os = "linux"))]
mod libsystemd {
    use super::super::*;
    use std::ffi::{c_char, c_int, CStr};

    const CHILD_VAR: &str = "AG_LIBSYSTEMD_CHILD";
    const SO: &[u8] = b"libsystemd.so.0\0";

    type SdListenFdsWithNames = unsafe extern "C" fn(c_int, *mut *mut *mut c_char) -> c_int;

    /// `sd_listen_fds_with_names` of the loaded libsystemd, or `None` when it is not there.
    fn sd_listen_fds_with_names() -> Option<SdListenFdsWithNames> {
        // SAFETY: dlopen/dlsym with NUL-terminated names; the library is never unloaded, so
        // the symbol stays valid; its C signature is `int (int, char ***)` (sd-daemon.h).
        unsafe {
            let lib = libc::dlopen(SO.as_ptr().cast(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if lib.is_null() {
                return None;
            }
            let sym = libc::dlsym(lib, b"sd_listen_fds_with_names\0".as_ptr().cast());
            if sym.is_null() {
                return None;
            }
            Some(std::mem::transmute::<*mut libc::c_void, SdListenFdsWithNames>(sym))
        }
    }

    /// What one side answered: the names (their `Debug` text), or an error.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Answer {
        Names(String),
        Error(String),
    }

    /// Child side: prints both answers for the environment it was started with.
    #[test]
    fn child() {
        if std::env::var_os(CHILD_VAR).is_none() {
            return;
        }
        let ours = match load() {
            Ok(slots) => format!("ok {:?}", slots.iter().map(|s| &s.name).collect::<Vec<_>>()),
            Err(err) => format!("err {err}"),
        };
        println!("\nAGDIFF ours {ours}");
        let f = sd_listen_fds_with_names().expect("libsystemd vanished");
        let mut names: *mut *mut c_char = std::ptr::null_mut();
        // SAFETY: unset_environment=0 leaves the environment alone; `names` receives a
        // NULL-terminated array of malloc'd strings (or stays NULL), freed below with free().
        let n = unsafe { f(0, &mut names) };
        let sd = if n < 0 {
            format!("err errno {}", -n)
        } else {
            let mut got = Vec::new();
            if !names.is_null() {
                // SAFETY: a NULL-terminated array from libsystemd, each entry a C string we
                // own now; each is read once and freed, then the array.
                unsafe {
                    let mut p = names;
                    while !(*p).is_null() {
                        got.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
                        libc::free((*p).cast());
                        p = p.add(1);
                    }
                    libc::free(names.cast());
                }
            }
            assert_eq!(usize::try_from(n).ok(), Some(got.len()), "one name per fd");
            format!("ok {got:?}")
        };
        println!("AGDIFF sd {sd}");
    }

    /// `ok ["a", ""]` (the names, as `Debug` prints them) or `err ...`.
    fn answer(line: &str) -> Answer {
        match line.strip_prefix("ok ") {
            Some(names) => Answer::Names(names.to_owned()),
            None => Answer::Error(line.to_owned()),
        }
    }

    /// How `LISTEN_PID` is set for a case.
    #[derive(Clone, Copy)]
    enum Pid {
        Unset,
        /// The child's own pid with this text before and after it (`$$` in the shell).
        Own(&'static str, &'static str),
        Literal(&'static str),
    }

    struct Case {
        what: &'static str,
        fds: &'static str,
        pid: Pid,
        names: Option<&'static str>,
        open: usize,
        /// `None`: both must agree. `Some((ours_ok, sd_ok))`: a deliberate difference.
        differs: Option<(&'static str, bool, bool)>,
    }

    fn run(case: &Case, sockets: &[std::net::UdpSocket]) -> (Answer, Answer) {
        let mut env = vec![(CHILD_VAR, "1")];
        if case.fds != "<unset>" {
            env.push(("LISTEN_FDS", case.fds));
        }
        if let Pid::Literal(v) = case.pid {
            env.push(("LISTEN_PID", v));
        }
        if let Some(n) = case.names {
            env.push(("LISTEN_FDNAMES", n));
        }
        let own = match case.pid {
            Pid::Own(before, after) => Some((before, after)),
            _ => None,
        };
        let raw: Vec<RawFd> = sockets[..case.open]
            .iter()
            .map(|s| {
                use std::os::fd::AsRawFd as _;
                s.as_raw_fd()
            })
            .collect();
        let out = super::child::run(
            "process::inherit::tests::libsystemd::child",
            &env,
            own,
            &raw,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let pick = |tag: &str| {
            text.lines()
                .find_map(|l| l.split_once(tag).map(|(_, rest)| rest))
                .map(answer)
                .unwrap_or_else(|| {
                    panic!(
                        "[{}] no {tag:?} line in:\n{text}\n{}",
                        case.what,
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
        };
        (pick("AGDIFF ours "), pick("AGDIFF sd "))
    }

    /// Inputs on which the parser and libsystemd must agree.
    fn agreeing_cases() -> Vec<Case> {
        let own = Pid::Own("", "");
        let c = |what, fds, pid, names, open| Case {
            what,
            fds,
            pid,
            names,
            open,
            differs: None,
        };
        vec![
            c("nothing set", "<unset>", Pid::Unset, None, 0),
            c("LISTEN_FDS unset, own pid", "<unset>", own, Some("a"), 1),
            c("1 fd, no names", "1", own, None, 1),
            c("2 fds, named", "2", own, Some("web:dns"), 2),
            c("other pid", "1", Pid::Literal("1"), None, 1),
            c(
                "other pid, garbage count",
                "abc",
                Pid::Literal("1"),
                Some("x:y"),
                1,
            ),
            c("-1", "-1", own, None, 1),
            c("+1", "+1", own, None, 1),
            c("' 1'", " 1", own, None, 1),
            c("'1 '", "1 ", own, None, 1),
            c("01", "01", own, None, 1),
            c("010 (octal 8)", "010", own, None, 8),
            c("0x2 (hex)", "0x2", own, None, 2),
            c("0b10 (binary)", "0b10", own, None, 2),
            c("08 (not octal)", "08", own, None, 8),
            c("abc", "abc", own, None, 1),
            c("empty count", "", own, None, 1),
            c("2 names for 1 fd", "1", own, Some("a:b"), 1),
            c("1 name for 2 fds", "2", own, Some("a"), 2),
            c("empty LISTEN_FDNAMES, 1 fd", "1", own, Some(""), 1),
            c("empty LISTEN_FDNAMES, 2 fds", "2", own, Some(""), 2),
            c("':' for 2 fds", "2", own, Some(":"), 2),
            c("a::b for 3 fds", "3", own, Some("a::b"), 3),
            c("count beyond the open fds", "3", own, None, 2),
            c("huge count 100000", "100000", own, None, 1),
            c("huge count 2147483647", "2147483647", own, None, 1),
            c("count beyond int", "99999999999", own, None, 1),
            c("pid garbage", "1", Pid::Literal("abc"), None, 1),
            c(
                "pid garbage, LISTEN_FDS unset",
                "<unset>",
                Pid::Literal("abc"),
                None,
                0,
            ),
            c("pid 0", "1", Pid::Literal("0"), None, 1),
            c("pid -1", "1", Pid::Literal("-1"), None, 1),
            c("pid '+own'", "1", Pid::Own("+", ""), None, 1),
            c("pid ' own'", "1", Pid::Own(" ", ""), None, 1),
            c("pid 'own '", "1", Pid::Own("", " "), None, 1),
        ]
    }

    /// Inputs on which the parser differs from libsystemd on purpose, each with why.
    fn differing_cases() -> Vec<Case> {
        let own = Pid::Own("", "");
        // (what, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, why, ours answers, libsystemd answers)
        let refused = "names systemd itself refuses are refused (we pass names on)";
        let long_name: &'static str = Box::leak("x".repeat(256).into_boxed_str());
        #[rustfmt::skip]
        let cases = [
            ("no LISTEN_PID", "1", Pid::Unset, None,
             "systemfd --no-pid: fds without LISTEN_PID are ours", true, true),
            ("no LISTEN_PID, garbage count", "abc", Pid::Unset, None,
             "without LISTEN_PID we read the count (systemfd); libsystemd stops at the pid",
             false, true),
            ("LISTEN_FDS=0", "0", own, None,
             "0 means nothing handed over, not an error", true, false),
            ("invalid name (tab)", "1", own, Some("tab\there"), refused, false, true),
            ("invalid name (256 bytes)", "1", own, Some(long_name), refused, false, true),
        ];
        cases
            .into_iter()
            .map(|(what, fds, pid, names, why, ours_ok, sd_ok)| Case {
                what,
                fds,
                pid,
                names,
                open: usize::from(fds != "0"),
                differs: Some((why, ours_ok, sd_ok)),
            })
            .collect()
    }

    #[test]
    fn parser_agrees_with_libsystemd_except_where_documented() {
        if std::env::var_os(CHILD_VAR).is_some() {
            return;
        }
        if sd_listen_fds_with_names().is_none() {
            let msg = "libsystemd.so.0 cannot be loaded (install libsystemd0)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
            println!("SKIPPED: {msg}");
            return;
        }
        let sockets: Vec<_> = (0..10)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let cases = agreeing_cases().into_iter().chain(differing_cases());
        let mut table = Vec::new();
        let mut bad = Vec::new();
        for case in cases {
            let (ours, sd) = run(&case, &sockets);
            table.push(format!(
                "{:<32} ours {:<40} libsystemd {:?}",
                case.what,
                format!("{ours:?}"),
                sd
            ));
            match case.differs {
                None => {
                    let agree = match (&ours, &sd) {
                        (Answer::Names(a), Answer::Names(b)) => a == b,
                        (Answer::Error(_), Answer::Error(_)) => true,
                        _ => false,
                    };
                    if !agree {
                        bad.push(format!("{}: ours {ours:?}, libsystemd {sd:?}", case.what));
                    }
                }
                Some((why, ours_ok, sd_ok)) => {
                    let ours_names = matches!(&ours, Answer::Names(_));
                    let sd_names = matches!(&sd, Answer::Names(_));
                    // A deliberate difference: both answers as documented, and really different.
                    if ours_names != ours_ok || sd_names != sd_ok || ours == sd {
                        bad.push(format!(
                            "{} ({why}): ours {ours:?}, libsystemd {sd:?}",
                            case.what
                        ));
                    }
                }
            }
        }
        println!("{}", table.join("\n"));
        assert!(
            bad.is_empty(),
            "disagreements with libsystemd:\n{}",
            bad.join("\n")
        );
    }
}
