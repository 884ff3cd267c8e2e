//! Inherited descriptors that are not HTTP listeners (issue 12, item 3): a socket unit that
//! also passes a UDP socket, a FIFO or a memfd; an app that claims a UDP socket by name or
//! registers one it made; and that socket through live upgrades.
//!
//! The sockets are real: made by the test and placed at fds 3.. of `hello` as systemd would
//! (`spawn_with_fds`, `LISTEN_PID` = hello's own pid), or opened by the real
//! `systemd-socket-activate --datagram`. The UDP echo is `hello --udp-echo NAME=ADDR`.

use integration_tests::activation::{launcher, socket_activate, spawn_with_fds};
use integration_tests::hello::{upgrade, wait_startup, Listener, Startup, UpgradeOpts};
use integration_tests::http::get_once;
use integration_tests::{hello_bin, ServerFamily, Target};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

/// The inode of the UDP socket bound at `port` on 127.0.0.1 (from /proc/net/udp), if any.
fn udp_inode(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local = f.get(1)?;
        let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
        (p == port).then(|| f.get(9)?.parse().ok()).flatten()
    })
}

/// Whether `pid` holds the socket with inode `inode`.
fn holds(pid: i32, inode: u64) -> bool {
    integration_tests::procfs::socket_inodes(pid).contains(&inode)
}

/// A `hello udp NAME ADDR (origin)` line at stdout index >= `from`: the address and whether it
/// was inherited.
fn udp_line(fam: &ServerFamily, from: usize, name: &str) -> (SocketAddr, bool) {
    let prefix = format!("hello udp {name} ");
    let (_, line) = fam
        .stdout
        .wait_for_line(from, |l| l.starts_with(&prefix), T)
        .unwrap_or_else(|| panic!("no `{prefix}` line\n{}", fam.output_tail(30)));
    let rest = &line[prefix.len()..];
    let (addr, origin) = rest.split_once(' ').expect("addr and origin");
    (addr.parse().expect("udp address"), origin == "(inherited)")
}

/// Sends `payload` to `server` and returns the pid in the echo, or `None` without one in 1 s.
fn echo(client: &UdpSocket, server: SocketAddr, payload: &str) -> Option<i32> {
    client.send_to(payload.as_bytes(), server).ok()?;
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let Ok((n, _)) = client.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        let (pid, echoed) = text.strip_prefix("pid=")?.split_once(' ')?;
        if echoed == payload {
            return pid.parse().ok();
        }
    }
    None
}

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    c
}

fn startup_of(fam: &ServerFamily, from: usize) -> Startup {
    wait_startup(fam, from, T)
        .unwrap_or_else(|| panic!("no startup line from hello\n{}", fam.output_tail(30)))
}

/// `upgrades` live upgrades of `fam` (serving HTTP at `http`), each checked on the UDP socket
/// at `udp` with inode `inode`: the successor takes the same socket (same port, same inode,
/// `(inherited)`), a datagram sent after the upgrade is answered by the successor (the old
/// process stops reading when its drain starts), and the old process is gone.
fn udp_through_upgrades(
    fam: &ServerFamily,
    first: i32,
    http: &Target,
    udp: SocketAddr,
    inode: u64,
    upgrades: usize,
) {
    let c = client();
    assert_eq!(
        echo(&c, udp, "gen-1"),
        Some(first),
        "first generation echoes"
    );
    let mut pid = first;
    for i in 0..upgrades {
        let mark = fam.stdout.len();
        let u = upgrade(fam, http, pid, &UpgradeOpts::default())
            .unwrap_or_else(|e| panic!("upgrade {}: {e}\n{}", i + 1, fam.output_tail(30)));
        let (addr, inherited) = udp_line(fam, mark, "dns");
        assert_eq!(addr, udp, "upgrade {}: same UDP address", i + 1);
        assert!(
            inherited,
            "upgrade {}: the successor inherited the UDP socket",
            i + 1
        );
        assert!(
            holds(u.new, inode),
            "upgrade {}: successor holds the same socket",
            i + 1
        );
        assert_eq!(
            udp_inode(udp.port()),
            Some(inode),
            "still the one socket on the port"
        );
        for n in 0..10 {
            let payload = format!("after-upgrade-{}-{n}", i + 1);
            assert_eq!(
                echo(&c, udp, &payload),
                Some(u.new),
                "upgrade {}: datagram {n} answered by the successor",
                i + 1
            );
        }
        println!(
            "upgrade {}: {} -> {}, UDP {udp} inode {inode} answered by the successor",
            i + 1,
            u.old,
            u.new
        );
        pid = u.new;
    }
}

/// The unit: `LISTEN_FDS=2`, `LISTEN_FDNAMES=web:dns`, fd 3 a TCP listener, fd 4 a UDP
/// socket. Before: hello exited with `inherited fd 4 is not a stream socket but a datagram
/// (UDP) socket`. Now: HTTP on `web`, UDP echo on `dns`, both inherited, and the UDP socket
/// goes through 3 upgrades.
#[test]
fn mixed_unit_tcp_and_udp_serves_both_through_three_upgrades() {
    let _heavy = integration_tests::heavy_lock();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (port, uaddr) = (tcp.local_addr().unwrap().port(), udp.local_addr().unwrap());
    let inode = udp_inode(uaddr.port()).expect("udp inode");
    let fam = spawn_with_fds(
        "mixed",
        &hello_bin(),
        &[tcp.as_raw_fd(), udp.as_raw_fd()],
        &[
            ("LISTEN_FDS", "2"),
            ("LISTEN_FDNAMES", "web:dns"),
            ("RUST_LOG", "info"),
        ],
        true,
        &[
            "--listen".into(),
            format!("web=127.0.0.1:{port}"),
            "--udp-echo".into(),
            "dns=127.0.0.1:1".into(),
        ],
    );
    drop((tcp, udp)); // hello holds them alone now
    let st = startup_of(&fam, 0);
    println!("{}", st.line);
    assert_eq!(
        st.listeners,
        vec![Listener {
            addr: format!("127.0.0.1:{port}"),
            inherited: true
        }]
    );
    assert_eq!(udp_line(&fam, 0, "dns"), (uaddr, true));
    let http = Target::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    let r = get_once(&http, "/", T).expect("HTTP on the inherited web socket");
    assert_eq!(r.pid, Some(st.pid));
    udp_through_upgrades(&fam, st.pid, &http, uaddr, inode, 3);
}

/// Nothing inherited: the app binds a UDP socket itself and registers it under a name
/// (`register_fd`); every successor takes that same socket.
#[test]
fn fresh_udp_socket_registered_by_the_app_survives_three_upgrades() {
    let _heavy = integration_tests::heavy_lock();
    let mut cmd = std::process::Command::new(hello_bin());
    cmd.args(["--listen", "127.0.0.1:0", "--udp-echo", "dns=127.0.0.1:0"])
        .env("RUST_LOG", "info");
    for k in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        cmd.env_remove(k);
    }
    let fam = ServerFamily::spawn("fresh-udp", cmd).expect("spawn hello");
    let st = startup_of(&fam, 0);
    let (uaddr, inherited) = udp_line(&fam, 0, "dns");
    assert!(!inherited, "bound fresh: nothing was inherited");
    let inode = udp_inode(uaddr.port()).expect("udp inode");
    let http = st.listeners[0].target();
    udp_through_upgrades(&fam, st.pid, &http, uaddr, inode, 3);
}

/// The real `systemd-socket-activate --datagram` opens the UDP socket; it execs hello on the
/// first datagram, which hello then answers (it waited in the socket's queue).
#[test]
fn socket_activated_datagram_socket_survives_three_upgrades() {
    let _heavy = integration_tests::heavy_lock();
    let _ = launcher();
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let uaddr = SocketAddr::from(([127, 0, 0, 1], port));
    let fam = socket_activate(
        &[uaddr.to_string()],
        &["--datagram".into(), "--fdname=dns".into()],
        &hello_bin(),
        &[
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--udp-echo".into(),
            "dns=127.0.0.1:1".into(),
        ],
    );
    let c = client();
    let inode = udp_inode(port).expect("the launcher's UDP socket");
    // This datagram makes the launcher exec hello; it waits in the queue and gets its answer.
    c.send_to(b"wake", uaddr).unwrap();
    let st = startup_of(&fam, 0);
    assert_eq!(udp_line(&fam, 0, "dns"), (uaddr, true));
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + T;
    let woke = loop {
        if let Ok((n, _)) = c.recv_from(&mut buf) {
            break String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no answer to the waking datagram"
        );
    };
    assert_eq!(woke, format!("pid={} wake", st.pid));
    let http = st.listeners[0].target();
    udp_through_upgrades(&fam, st.pid, &http, uaddr, inode, 3);
}

/// Fds nothing claims (a UDP socket, a FIFO) are left open, as they were, and are not handed to
/// a successor; with hello's default (`close_unclaimed`) they are closed on purpose instead.
/// Before: hello refused the whole set at start (`inherited fd 4 is not a stream socket`).
#[test]
fn unclaimed_fds_are_left_alone_unless_the_app_closes_them() {
    let _heavy = integration_tests::heavy_lock();
    for keep in [true, false] {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (fifo_r, _fifo_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let port = tcp.local_addr().unwrap().port();
        let inode = udp_inode(udp.local_addr().unwrap().port()).unwrap();
        let pipe = std::fs::read_link(format!("/proc/self/fd/{}", fifo_r.as_raw_fd()))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut args = vec!["--listen".to_string(), format!("web=127.0.0.1:{port}")];
        if keep {
            args.push("--keep-unclaimed".into());
        }
        let fam = spawn_with_fds(
            "unclaimed",
            &hello_bin(),
            &[tcp.as_raw_fd(), udp.as_raw_fd(), fifo_r.as_raw_fd()],
            &[
                ("LISTEN_FDS", "3"),
                ("LISTEN_FDNAMES", "web:metrics:fifo"),
                ("RUST_LOG", "info"),
            ],
            true,
            &args,
        );
        drop((tcp, udp, fifo_r));
        let st = startup_of(&fam, 0);
        fam.stderr
            .wait_for_line(0, |l| l.contains("serving, pid="), T)
            .expect("serving log line");
        let fds = integration_tests::procfs::fd_targets(st.pid);
        let target = |fd: i32| fds.iter().find(|(n, _)| *n == fd).map(|(_, t)| t.clone());
        println!(
            "keep={keep}: fd 4 -> {:?}, fd 5 -> {:?}",
            target(4),
            target(5)
        );
        let warned = fam.stderr.find(0, |l| l.contains("was not claimed"));
        assert_eq!(warned.len(), 2, "one line per unclaimed fd: {warned:?}");
        let (udp_open, fifo_open) = (
            target(4) == Some(format!("socket:[{inode}]")),
            target(5) == Some(pipe.clone()),
        );
        if keep {
            assert!(
                udp_open && fifo_open,
                "UDP and FIFO left open at fds 4 and 5"
            );
            assert!(warned.iter().all(|l| l.contains("left open")), "{warned:?}");
        } else {
            // (the numbers may be reused by hello's own fds since)
            assert!(!udp_open && !fifo_open, "closed by close_unclaimed");
            assert!(
                warned.iter().all(|l| l.contains("closing it")),
                "{warned:?}"
            );
        }
        // Only what was claimed goes on: the successor gets `web` alone.
        let http = Target::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
        let u = upgrade(&fam, &http, st.pid, &UpgradeOpts::default())
            .unwrap_or_else(|e| panic!("upgrade: {e}\n{}", fam.output_tail(30)));
        let environ = std::fs::read(format!("/proc/{}/environ", u.new)).unwrap();
        let names: Vec<String> = environ
            .split(|&b| b == 0)
            .filter_map(|v| v.strip_prefix(b"LISTEN_FDNAMES="))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["web".to_string()],
            "the successor's LISTEN_FDNAMES"
        );
        assert!(
            !holds(u.new, inode),
            "the unclaimed UDP socket is not handed over"
        );
    }
}
