//! systemd notifications (`sd_notify`) over the real protocol: the test binds the datagram
//! socket named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace), turns on
//! `SO_PASSCRED` so every datagram carries its sender's pid, and checks what a
//! `Type=notify-reload` service manager would see: `READY=1` + `MAINPID=` at start,
//! `RELOADING=1` + `MONOTONIC_USEC=` at an upgrade, `MAINPID=<successor>` + `READY=1` relayed
//! by the old main process (the successor says nothing itself), `READY=1` again after a
//! failed upgrade, and `STOPPING=1` only on SIGTERM; the fd store (`FDSTORE=1`); and a
//! manager that never reads its socket, which must not stall the server.

use integration_tests::hello::{exited_cleanly, upgrade, Hello, UpgradeOpts};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    heavy_lock, hello_bin, private_copy, replace_file, replace_with_copy, signal, TempDir,
};
use nix::sys::signal::Signal;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

/// CLOCK_MONOTONIC in microseconds, as `MONOTONIC_USEC=` is defined.
fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime with a valid out pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// One received notification.
#[derive(Clone, Debug)]
struct Datagram {
    /// The sender's pid (SCM_CREDENTIALS).
    pid: Option<i32>,
    /// The payload.
    text: String,
    /// CLOCK_MONOTONIC (µs) when the reader thread received it.
    recv_us: u64,
    /// Truncated (payload or control data)?
    truncated: bool,
    /// Descriptors attached with SCM_RIGHTS (`FDSTORE=1`), owned by the test now.
    fds: Vec<Arc<OwnedFd>>,
}

impl Datagram {
    /// The value of `KEY=` (the last one if repeated).
    fn get(&self, key: &str) -> Option<&str> {
        self.text
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .next_back()
    }
    /// Does it carry the exact line `kv` (e.g. `READY=1`)?
    fn has(&self, kv: &str) -> bool {
        self.text.lines().any(|l| l == kv)
    }
    /// `STATUS=` must read `generation <g> (pid <pid>): <state...>`; returns the state part.
    fn status_of(&self, generation: u32, pid: i32) -> &str {
        let status = self
            .get("STATUS")
            .unwrap_or_else(|| panic!("no STATUS= in {self:?}"));
        let prefix = format!("generation {generation} (pid {pid}): ");
        status
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("STATUS={status:?} does not start with {prefix:?}"))
    }
    fn mainpid(&self) -> Option<i32> {
        self.get("MAINPID").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad MAINPID in {self:?}"))
        })
    }
}

type Shared = Arc<(Mutex<Vec<Datagram>>, Condvar)>;

/// The test's end of `NOTIFY_SOCKET`: a bound datagram socket and a reader thread.
struct NotifySocket {
    /// The value for `NOTIFY_SOCKET`.
    env: String,
    shared: Shared,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: Option<TempDir>,
}

impl NotifySocket {
    /// Bound at a path in a fresh temp dir.
    fn at_path() -> NotifySocket {
        let dir = TempDir::new("notify");
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        NotifySocket::start(sock, path.display().to_string(), Some(dir))
    }

    /// Bound to the abstract name `itest-<pid>-<n>` (`NOTIFY_SOCKET=@itest-<pid>-<n>`).
    fn abstract_name() -> NotifySocket {
        use std::os::linux::net::SocketAddrExt;
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "itest-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract address");
        let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract notify socket");
        NotifySocket::start(sock, format!("@{name}"), None)
    }

    fn start(sock: UnixDatagram, env: String, dir: Option<TempDir>) -> NotifySocket {
        setsockopt(&sock, sockopt::PassCred, &true).expect("SO_PASSCRED");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("SO_RCVTIMEO");
        let shared: Shared = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("notify-reader".into())
            .spawn(move || read_loop(sock, sh, st))
            .expect("spawn notify reader");
        NotifySocket {
            env,
            shared,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    fn all(&self) -> Vec<Datagram> {
        self.shared
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn len(&self) -> usize {
        self.shared
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    fn from(&self, i: usize) -> Vec<Datagram> {
        self.all().get(i..).map(|s| s.to_vec()).unwrap_or_default()
    }

    /// Wait for a datagram at index >= `from` satisfying `pred`: its index and itself.
    fn wait_for(
        &self,
        from: usize,
        pred: impl Fn(&Datagram) -> bool,
        timeout: Duration,
    ) -> Option<(usize, Datagram)> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.shared;
        let mut v = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = (from..v.len()).find(|&i| pred(&v[i])) {
                return Some((i, v[i].clone()));
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            v = cv
                .wait_timeout(v, (deadline - now).min(Duration::from_millis(50)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every datagram so far, one per line, for messages.
    fn dump(&self) -> String {
        self.all()
            .iter()
            .enumerate()
            .map(|(i, d)| format!("  #{i} from pid {:?}: {:?}", d.pid, d.text))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_loop(sock: UnixDatagram, shared: Shared, stop: Arc<AtomicBool>) {
    let fd = sock.as_raw_fd();
    while !stop.load(Ordering::SeqCst) {
        let mut buf = [0u8; 8192];
        let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials, [RawFd; 8]);
        let (bytes, pid, truncated, fds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            // Close-on-exec: a stored listener must not leak into processes other tests start.
            match recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(msg) => {
                    let mut pid = None;
                    let mut fds = Vec::new();
                    for c in msg.cmsgs().into_iter().flatten() {
                        match c {
                            ControlMessageOwned::ScmCredentials(cred) => pid = Some(cred.pid()),
                            ControlMessageOwned::ScmRights(raw) => {
                                // SAFETY: received just now; nothing else owns these fds.
                                fds.extend(
                                    raw.into_iter()
                                        .map(|fd| unsafe { Arc::new(OwnedFd::from_raw_fd(fd)) }),
                                );
                            }
                            _ => {}
                        }
                    }
                    let truncated = msg
                        .flags
                        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                    (msg.bytes, pid, truncated, fds)
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                Err(e) => panic!("recvmsg on the notify socket: {e}"),
            }
        };
        let d = Datagram {
            pid,
            text: String::from_utf8_lossy(&buf[..bytes]).into_owned(),
            recv_us: monotonic_us(),
            truncated,
            fds,
        };
        let (lock, cv) = &*shared;
        lock.lock().unwrap_or_else(|e| e.into_inner()).push(d);
        cv.notify_all();
    }
}

/// `RELOADING=1` from `sender` with a `MONOTONIC_USEC` taken between `before` (read just
/// before the signal) and the datagram's arrival.
fn check_reloading(d: &Datagram, sender: i32, before: u64, n: &NotifySocket) {
    assert!(d.has("RELOADING=1"), "{d:?}");
    assert_eq!(
        d.pid,
        Some(sender),
        "RELOADING=1 should come from the main process\n{}",
        n.dump()
    );
    let usec: u64 = d
        .get("MONOTONIC_USEC")
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {d:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("MONOTONIC_USEC is not a number: {d:?}"));
    assert!(
        before <= usec && usec <= d.recv_us,
        "MONOTONIC_USEC={usec} is not CLOCK_MONOTONIC between the signal ({before}) and the \
         datagram's arrival ({}): off by {} µs",
        d.recv_us,
        if usec < before {
            before - usec
        } else {
            usec - d.recv_us
        }
    );
    println!(
        "RELOADING=1 from {sender}: MONOTONIC_USEC {} µs after the signal, received {} µs later",
        usec - before,
        d.recv_us - usec
    );
}

fn notify_protocol(n: NotifySocket) {
    let _g = heavy_lock();
    println!("NOTIFY_SOCKET={}", n.env);
    let (dir, exe) = private_copy("notify-exe");
    let pid_file = dir.join("hello.pid");
    let mut cmd = Command::new(&exe);
    cmd.args(["--listen", "127.0.0.1:0", "--workers", "2"])
        .args(["--upgrade-timeout-ms", "5000"])
        .arg("--pid-file")
        .arg(&pid_file)
        .env("NOTIFY_SOCKET", &n.env);
    let read_pid_file = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    };
    let h = Hello::start_cmd("hello", cmd);
    let old = h.pid();
    println!("started: {}", h.startup.line);

    // 1) Start: READY=1 with MAINPID=<own pid>, first and alone.
    let (i, ready) = n
        .wait_for(0, |d| d.has("READY=1"), T)
        .unwrap_or_else(|| panic!("no READY=1 at start\n{}", n.dump()));
    assert_eq!(i, 0, "READY=1 should be the first datagram\n{}", n.dump());
    assert_eq!(ready.mainpid(), Some(old), "{ready:?}");
    assert_eq!(ready.pid, Some(old), "sender of the start READY=1");
    assert_eq!(ready.status_of(1, old), "serving", "{ready:?}");
    assert_eq!(read_pid_file(), Some(old), "pid file once serving");

    // 2) A failed upgrade: RELOADING=1, then READY=1 again from the old process.
    replace_file(&exe, b"#!/bin/sh\nexit 1\n");
    let mark = n.len();
    let err_mark = h.family.stderr.len();
    let before = monotonic_us();
    assert!(signal(old, Signal::SIGUSR2));
    h.family
        .stderr
        .wait_for_line(err_mark, |l| l.contains("upgrade failed"), T)
        .unwrap_or_else(|| panic!("no `upgrade failed` line\n{}", h.family.output_tail(20)));
    let (i1, reloading) = n
        .wait_for(mark, |d| d.has("RELOADING=1"), T)
        .unwrap_or_else(|| panic!("no RELOADING=1 on SIGUSR2\n{}", n.dump()));
    check_reloading(&reloading, old, before, &n);
    assert_eq!(
        reloading.status_of(1, old),
        "upgrading: starting generation 2"
    );
    let (i2, again) = n
        .wait_for(i1 + 1, |d| d.has("READY=1"), T)
        .unwrap_or_else(|| panic!("no READY=1 after the failed upgrade\n{}", n.dump()));
    assert_eq!(
        (i1, i2),
        (mark, mark + 1),
        "after a failed upgrade: exactly RELOADING=1 then READY=1\n{}",
        n.dump()
    );
    assert_eq!(again.pid, Some(old), "READY=1 after a failure: sender");
    assert!(
        again.mainpid().map_or(true, |p| p == old),
        "READY=1 after a failed upgrade names another main pid: {again:?}"
    );
    assert!(
        again
            .status_of(1, old)
            .starts_with("serving; upgrade failed: "),
        "{again:?}"
    );
    assert_eq!(
        read_pid_file(),
        Some(old),
        "pid file after a failed upgrade"
    );
    println!("after the failed upgrade: {:?}", again.text);

    // 3) A good upgrade: RELOADING=1, then MAINPID=<successor> + READY=1, both from the old
    //    process; the successor sends nothing itself, the old one no STOPPING=1.
    replace_with_copy(&exe, &hello_bin());
    let mark = n.len();
    let before = monotonic_us();
    let u = upgrade(&h.family, &h.target, old, &UpgradeOpts::default())
        .unwrap_or_else(|e| panic!("upgrade: {e}\n{}", n.dump()));
    assert!(exited_cleanly(&u), "old ended with {:?}", u.old_exit);
    let new = u.new;
    let (i1, reloading) = n
        .wait_for(mark, |d| d.has("RELOADING=1"), T)
        .unwrap_or_else(|| panic!("no RELOADING=1 on SIGUSR2\n{}", n.dump()));
    check_reloading(&reloading, old, before, &n);
    let (i2, handed) = n
        .wait_for(i1 + 1, |d| d.get("MAINPID").is_some(), T)
        .unwrap_or_else(|| panic!("no MAINPID= after the upgrade\n{}", n.dump()));
    assert_eq!(handed.mainpid(), Some(new), "{handed:?}");
    assert!(
        handed.has("READY=1"),
        "MAINPID= without READY=1: {handed:?}"
    );
    assert_eq!(
        handed.pid,
        Some(old),
        "MAINPID=<successor> must be sent by the old main process\n{}",
        n.dump()
    );
    assert_eq!(
        handed.status_of(2, new),
        format!("serving; pid {old} draining"),
        "STATUS= after the handoff names the successor"
    );
    assert_eq!(read_pid_file(), Some(new), "pid file after the upgrade");
    println!(
        "MAINPID={new} + READY=1 {} µs after RELOADING=1",
        handed.recv_us - reloading.recv_us
    );
    // The successor serves and the old process is gone: give a stray notification time.
    integration_tests::sleep_ms(500);
    let since = n.from(mark);
    assert_eq!(
        (i1, i2, since.len()),
        (mark, mark + 1, 2),
        "an upgrade should notify exactly RELOADING=1 then MAINPID+READY\n{}",
        n.dump()
    );

    // 4) SIGTERM: STOPPING=1 from the (new) main process.
    let mark = n.len();
    assert!(signal(new, Signal::SIGTERM));
    let (i, stopping) = n
        .wait_for(mark, |d| d.has("STOPPING=1"), T)
        .unwrap_or_else(|| panic!("no STOPPING=1 on SIGTERM\n{}", n.dump()));
    assert_eq!(i, mark, "{}", n.dump());
    assert_eq!(stopping.pid, Some(new), "sender of STOPPING=1");
    assert_eq!(stopping.status_of(2, new), "stopping: draining");
    let g = h.family.wait_gone(new, Duration::from_secs(20));
    assert_eq!(g, Some(Gone::Reaped(Exit::Code(0))), "successor {new}");
    integration_tests::sleep_ms(200);
    assert_eq!(n.len(), mark + 1, "after STOPPING=1\n{}", n.dump());
    assert_eq!(read_pid_file(), None, "pid file removed by the final stop");

    let all = n.all();
    assert!(
        all.iter().all(|d| !d.truncated),
        "truncated datagram\n{}",
        n.dump()
    );
    println!("datagrams:\n{}", n.dump());
}

#[test]
fn notify_socket_at_a_path() {
    notify_protocol(NotifySocket::at_path());
}

#[test]
fn notify_socket_in_the_abstract_namespace() {
    notify_protocol(NotifySocket::abstract_name());
}

/// The manager's queue is full (it never reads; the kernel keeps `max_dgram_qlen` datagrams):
/// before, `sd_notify`'s blocking `sendmsg` of `READY=1` hung the runtime thread for good, so
/// the server never handled SIGUSR2 or SIGTERM. Now the notification is dropped with one
/// warning per process, and upgrades and the stop work.
#[test]
fn a_manager_that_never_reads_does_not_stall_the_server() {
    let _g = heavy_lock();
    let dir = TempDir::new("notify-full");
    let path = dir.join("notify.sock");
    let _manager = UnixDatagram::bind(&path).unwrap(); // never read
    let filler = UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut queued = 0;
    while filler.send_to(b"STATUS=filler", &path).is_ok() {
        queued += 1;
        assert!(queued < 100_000, "the queue never filled");
    }
    println!("manager queue full after {queued} datagrams");
    let mut cmd = Command::new(hello_bin());
    cmd.args(["--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &path);
    let h = Hello::start_cmd("notify-full", cmd);
    let fam = &h.family;
    let u = upgrade(fam, &h.target, h.pid(), &UpgradeOpts::default()).unwrap_or_else(|e| {
        panic!(
            "upgrade with a full manager queue: {e}\n{}",
            fam.output_tail(30)
        )
    });
    let t0 = Instant::now();
    assert!(signal(u.new, Signal::SIGTERM));
    let gone = fam.wait_gone(u.new, Duration::from_secs(10));
    println!("successor stopped after {:?}: {gone:?}", t0.elapsed());
    assert!(
        matches!(gone, Some(Gone::Reaped(Exit::Code(0)))),
        "the successor stops on SIGTERM: {gone:?}\n{}",
        fam.output_tail(30)
    );
    let warnings = fam.stderr.count_containing(0, "queue is full");
    println!("`queue is full` warnings: {warnings} (2 processes)");
    assert!(
        (1..=2).contains(&warnings),
        "one warning per process at most, and at least one: {warnings}"
    );
}

/// The fd store (`--fd-store`): once serving, hello hands each listener to the notify socket
/// with `FDSTORE=1` + `FDNAME=` and the fd attached, as systemd's fd store receives them. The
/// test keeps those fds, SIGKILLs hello, connects clients while no process runs (they must
/// queue, not be refused), then starts a new hello with the stored fds passed back the way
/// systemd does (fds 3.., `LISTEN_FDS`, `LISTEN_FDNAMES` = the stored names, `LISTEN_PID`): the
/// queued requests are answered by it.
#[test]
fn fd_store_keeps_the_sockets_across_a_crash() {
    use integration_tests::activation::spawn_with_fds;
    use integration_tests::hello::wait_startup;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let _g = heavy_lock();
    let n = NotifySocket::at_path();
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "admin=127.0.0.1:0",
        "--workers",
        "1",
        "--fd-store",
    ]
    .map(String::from)
    .to_vec();
    let mut cmd = Command::new(hello_bin());
    cmd.args(&args).env("NOTIFY_SOCKET", &n.env);
    let h = Hello::start_cmd("fd-store", cmd);
    let first = h.pid();
    let addrs: Vec<String> = h.startup.listeners.iter().map(|l| l.addr.clone()).collect();
    assert_eq!(addrs.len(), 2, "{}", h.startup.line);

    // 1) Two FDSTORE=1 datagrams from hello, one fd each, named as systemd would store them.
    let mut stored = Vec::new();
    let mut from = 0;
    while stored.len() < 2 {
        let (i, d) = n
            .wait_for(from, |d| d.has("FDSTORE=1"), T)
            .unwrap_or_else(|| panic!("fewer than 2 FDSTORE=1 datagrams\n{}", n.dump()));
        from = i + 1;
        assert_eq!(d.pid, Some(first), "FDSTORE=1 sender");
        assert_eq!(d.fds.len(), 1, "one fd per FDSTORE=1 datagram: {d:?}");
        stored.push(d);
    }
    let names: Vec<&str> = stored.iter().map(|d| d.get("FDNAME").unwrap()).collect();
    assert_eq!(names, ["stored", "admin"], "FDNAME= of each listener");
    for (d, addr) in stored.iter().zip(&addrs) {
        let local: nix::sys::socket::SockaddrIn =
            nix::sys::socket::getsockname(d.fds[0].as_raw_fd()).expect("getsockname");
        assert_eq!(&local.to_string(), addr, "the stored fd is that listener");
    }
    println!("stored: {}", n.dump());

    // 2) Crash: nothing serves, but the stored sockets still listen. Clients connect and send.
    assert!(signal(first, Signal::SIGKILL));
    let g = h.family.wait_gone(first, T);
    assert_eq!(g, Some(Gone::Reaped(Exit::Signal(9))), "first hello");
    let mut waiting = Vec::new();
    for i in 0..16 {
        let addr = &addrs[i % 2];
        let mut s = TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("connect {addr} while no process runs: {e}"));
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("send request");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        waiting.push(s);
    }
    integration_tests::sleep_ms(300);
    println!("{} connections queued while no process ran", waiting.len());

    // 3) Restart with the stored fds, as systemd passes them back.
    let fds: Vec<RawFd> = stored.iter().map(|d| d.fds[0].as_raw_fd()).collect();
    let fdnames = names.join(":");
    let family = spawn_with_fds(
        "fd-store-restart",
        &hello_bin(),
        &fds,
        &[("LISTEN_FDS", "2"), ("LISTEN_FDNAMES", fdnames.as_str())],
        true,
        &args,
    );
    let again = wait_startup(&family, 0, T)
        .unwrap_or_else(|| panic!("no startup line\n{}", family.output_tail(20)));
    assert!(
        again.listeners.iter().all(|l| l.inherited),
        "both sockets inherited: {}",
        again.line
    );
    let again_addrs: Vec<String> = again.listeners.iter().map(|l| l.addr.clone()).collect();
    assert_eq!(again_addrs, addrs, "same addresses after the restart");

    // 4) Every queued request is answered by the new process.
    for (i, mut s) in waiting.into_iter().enumerate() {
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .unwrap_or_else(|e| panic!("queued request {i}: {e}"));
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "queued request {i}: {reply:?}"
        );
        assert!(
            reply.contains(&format!("pid={}", again.pid)),
            "queued request {i} answered by the new process: {reply:?}"
        );
    }
    println!("16 queued requests answered by pid {}", again.pid);
    assert!(signal(again.pid, Signal::SIGTERM));
    let g = family.wait_gone(again.pid, T);
    assert_eq!(g, Some(Gone::Reaped(Exit::Code(0))), "restarted hello");
}
