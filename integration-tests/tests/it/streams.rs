//! Long-lived responses across live upgrades, with the `events` example (server-sent events):
//! the stream ends cleanly when the old process starts its drain (`actix_graceful::Draining`),
//! the client reconnects with `Last-Event-ID` to the successor and misses no event; a stream
//! that ignores the drain is served on by the old process and cut only at the shutdown timeout.
//!
//! The same with a WebSocket (`/ws`, the tungstenite client): Close 1012 on the drain, the
//! client reconnects with `?from=<next>` to the successor and misses no message.
//!
//! Knob: `UPGRADES_STREAMS` (default 5).

use integration_tests::hello::{exited_cleanly, upgrade, Hello, UpgradeOpts};
use integration_tests::{bins, env_usize, heavy_lock, sleep_ms, Target};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn events_bin() -> std::path::PathBuf {
    bins::locate("events", "EVENTS_BIN")
}

fn addr(h: &Hello) -> SocketAddr {
    match h.target {
        Target::Tcp(a) => a,
        Target::Unix(_) => panic!("TCP expected"),
    }
}

/// One SSE connection, as a client saw it.
#[derive(Debug)]
struct Stream {
    pid: Option<i32>,
    ids: Vec<u64>,
    retry_ms: Option<u64>,
    /// `Ok` when the server ended the response with the last chunk; else what went wrong.
    end: Result<(), String>,
    ended_at: Instant,
}

/// `GET path` with `Last-Event-ID: last` and the events read until the response ends.
fn sse(addr: SocketAddr, path: &str, last: Option<u64>) -> Stream {
    let mut s = Stream {
        pid: None,
        ids: Vec::new(),
        retry_ms: None,
        end: Err("not connected".into()),
        ended_at: Instant::now(),
    };
    s.end = read_sse(addr, path, last, &mut s);
    s.ended_at = Instant::now();
    s
}

fn read_sse(addr: SocketAddr, path: &str, last: Option<u64>, s: &mut Stream) -> Result<(), String> {
    let e = |what: &'static str| move |err: std::io::Error| format!("{what}: {err}");
    let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(e("connect"))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(e("setsockopt"))?;
    let last = last
        .map(|l| format!("Last-Event-ID: {l}\r\n"))
        .unwrap_or_default();
    (&conn)
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{last}\r\n"
            )
            .as_bytes(),
        )
        .map_err(e("write"))?;
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    let mut next_line = |r: &mut BufReader<TcpStream>| -> Result<String, String> {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => Err("eof".into()),
            Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_owned()),
            Err(err) => Err(format!("read: {err}")),
        }
    };
    let status = next_line(&mut r)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("status {status:?}"));
    }
    loop {
        let h = next_line(&mut r)?;
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("x-pid:") {
            s.pid = v.trim().parse().ok();
        }
    }
    // Chunked body; events are whole lines ending in a blank line.
    let mut text = String::new();
    loop {
        let size = next_line(&mut r).map_err(|e| format!("chunk size: {e}"))?;
        let size =
            usize::from_str_radix(size.trim(), 16).map_err(|_| format!("chunk size {size:?}"))?;
        if size == 0 {
            return if next_line(&mut r)?.is_empty() && text.is_empty() {
                Ok(())
            } else {
                Err(format!("stream ended inside an event: {text:?}"))
            };
        }
        let mut chunk = vec![0; size + 2];
        r.read_exact(&mut chunk)
            .map_err(|e| format!("chunk: {e}"))?;
        text.push_str(&String::from_utf8_lossy(&chunk[..size]));
        while let Some(end) = text.find("\n\n") {
            for field in text[..end].lines() {
                if let Some(id) = field.strip_prefix("id: ") {
                    s.ids.push(id.parse().map_err(|_| format!("id {id:?}"))?);
                } else if let Some(ms) = field.strip_prefix("retry: ") {
                    s.retry_ms = ms.parse().ok();
                }
            }
            text.drain(..end + 2);
        }
    }
}

/// `n` upgrades, 200 ms apart, once the client has read for 300 ms; then `stop` for the
/// client and SIGTERM to the last generation, whose drain ends its stream the way the upgrades
/// ended the others. Returns each old pid with the time its upgrade was signalled, and every
/// generation's pid in order.
fn upgrade_then_stop(h: &Hello, n: usize, stop: &AtomicBool) -> (Vec<(i32, Instant)>, Vec<i32>) {
    sleep_ms(300);
    let mut cur = h.pid();
    let mut signalled = Vec::new();
    for i in 0..n {
        let u = upgrade(&h.family, &h.target, cur, &UpgradeOpts::default())
            .unwrap_or_else(|e| panic!("upgrade {i}: {e}\n{}", h.family.output_tail(30)));
        assert!(exited_cleanly(&u), "old {cur} ended with {:?}", u.old_exit);
        signalled.push((cur, u.signalled_at));
        cur = u.new;
        sleep_ms(200);
    }
    stop.store(true, Ordering::SeqCst);
    assert!(integration_tests::signal(
        cur,
        nix::sys::signal::Signal::SIGTERM
    ));
    let mut all: Vec<i32> = signalled.iter().map(|(p, _)| *p).collect();
    all.push(cur);
    (signalled, all)
}

#[test]
fn sse_client_reconnects_across_upgrades_and_misses_no_event() {
    let _g = heavy_lock();
    let n = env_usize("UPGRADES_STREAMS", 5);
    let h = Hello::start(
        &events_bin(),
        &["--listen", "127.0.0.1:0", "--interval-ms", "10"],
    );
    let addr = addr(&h);
    // The client: an EventSource in a loop, reconnecting after `retry` with the last id seen.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut streams, mut last) = (Vec::<Stream>::new(), None);
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let s = sse(addr, "/events", last);
                last = s.ids.last().copied().or(last);
                let retry = s.retry_ms.unwrap_or(100);
                let failed = s.end.is_err();
                streams.push(s);
                if failed {
                    break;
                }
                sleep_ms(retry);
            }
            streams
        })
    };
    let (signalled, all) = upgrade_then_stop(&h, n, &stop);
    let streams = client.join().unwrap();

    for s in &streams {
        println!(
            "stream from pid {:?}: ids {:?}..{:?} ({} events), end {:?}",
            s.pid,
            s.ids.first(),
            s.ids.last(),
            s.ids.len(),
            s.end
        );
    }
    for (old, at) in &signalled {
        if let Some(s) = streams.iter().find(|s| s.pid == Some(*old)) {
            println!(
                "pid {old}: stream ended {:.1} ms after the upgrade signal",
                s.ended_at.duration_since(*at).as_secs_f64() * 1e3
            );
        }
    }
    assert!(
        streams.iter().all(|s| s.end.is_ok()),
        "a stream did not end cleanly"
    );
    let ids: Vec<u64> = streams.iter().flat_map(|s| s.ids.iter().copied()).collect();
    let expected: Vec<u64> = (0..ids.len() as u64).collect();
    assert!(ids == expected, "events missed or repeated: {ids:?}");
    let pids: Vec<i32> = streams.iter().filter_map(|s| s.pid).collect();
    for p in &all {
        assert!(pids.contains(p), "no stream from generation {p}: {pids:?}");
    }
    println!(
        "{} events over {} streams from {} generations, none missed",
        ids.len(),
        streams.len(),
        all.len()
    );
}

/// A stream holds the old process through the drain timeout (1 s here), then actix's graceful
/// stop lets it run until the shutdown timeout (2 s) cuts it: about 3 s after the signal.
#[test]
fn a_stream_that_ignores_the_drain_is_cut_only_at_the_shutdown_timeout() {
    let _g = heavy_lock();
    let h = Hello::start(
        &events_bin(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--interval-ms",
            "10",
            "--drain-timeout-ms",
            "1000",
            "--shutdown-timeout-s",
            "2",
        ],
    );
    let addr = addr(&h);
    let reader = std::thread::spawn(move || sse(addr, "/events?ignore_drain=1", None));
    sleep_ms(300);
    let opts = UpgradeOpts {
        wait_old_exit: Some(Duration::from_secs(20)),
        ..UpgradeOpts::default()
    };
    let u = upgrade(&h.family, &h.target, h.pid(), &opts).expect("upgrade");
    let s = reader.join().unwrap();
    let cut = s.ended_at.duration_since(u.signalled_at);
    println!(
        "ignoring the drain: {} events from pid {:?}, cut {:.0} ms after the signal ({:?}); \
         the successor served {:.0} ms after it; old process {:?}",
        s.ids.len(),
        s.pid,
        cut.as_secs_f64() * 1e3,
        s.end,
        u.serving_after.as_secs_f64() * 1e3,
        u.old_exit
    );
    assert_eq!(s.pid, Some(h.pid()));
    assert!(
        s.end.is_err(),
        "the stream was expected to be cut, not ended"
    );
    assert!(
        cut >= Duration::from_millis(2900),
        "cut before the 1 s drain timeout + 2 s shutdown timeout: {cut:?}"
    );
    assert!(cut < Duration::from_secs(7), "cut late: {cut:?}");
}

/// One WebSocket connection to `/ws`, as a client saw it.
#[derive(Debug)]
struct WsConn {
    pid: Option<i32>,
    ids: Vec<u64>,
    pong: bool,
    /// The Close frame's code, if the server sent one.
    close: Option<u16>,
    /// How the connection ended after that (or instead): a read error or `closed`.
    end: String,
    closed_at: Instant,
}

/// `GET /ws?from=N` over 127.0.0.1 with tungstenite; one ping, then messages until the end.
fn ws_conn(addr: SocketAddr, from: u64) -> WsConn {
    use tungstenite::{error::Error as WsError, Message};
    let mut c = WsConn {
        pid: None,
        ids: Vec::new(),
        pong: false,
        close: None,
        end: String::new(),
        closed_at: Instant::now(),
    };
    let tcp = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(tcp) => tcp,
        Err(err) => {
            c.end = format!("connect: {err}");
            return c;
        }
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let (mut ws, res) = match tungstenite::client(format!("ws://{addr}/ws?from={from}"), tcp) {
        Ok(ok) => ok,
        Err(err) => {
            c.end = format!("handshake: {err}");
            c.closed_at = Instant::now();
            return c;
        }
    };
    c.pid = res
        .headers()
        .get("x-pid")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    if let Err(err) = ws.send(Message::Ping(b"are you there".as_slice().into())) {
        c.end = format!("ping: {err}");
        return c;
    }
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => match t.strip_prefix("event ").map(str::parse) {
                Some(Ok(n)) => c.ids.push(n),
                _ => {
                    c.end = format!("unexpected message {t:?}");
                    break;
                }
            },
            Ok(Message::Pong(p)) => c.pong |= p.as_ref() == b"are you there",
            Ok(Message::Close(frame)) => {
                c.closed_at = Instant::now();
                c.close = Some(frame.map_or(1005, |f| f.code.into()));
                // Keep reading: tungstenite answers the Close and reports the end.
            }
            Ok(other) => {
                c.end = format!("unexpected {other:?}");
                break;
            }
            Err(WsError::ConnectionClosed) => {
                c.end = "closed".into();
                break;
            }
            Err(err) => {
                c.end = format!("read: {err}");
                break;
            }
        }
    }
    if c.close.is_none() {
        c.closed_at = Instant::now();
    }
    c
}

#[test]
fn websocket_client_reconnects_on_close_1012_across_upgrades_and_misses_no_event() {
    let _g = heavy_lock();
    let n = env_usize("UPGRADES_STREAMS", 5);
    let h = Hello::start(
        &events_bin(),
        &["--listen", "127.0.0.1:0", "--interval-ms", "20"],
    );
    let addr = addr(&h);
    // The client: reconnects at once with `?from=<last + 1>` whenever a connection ends.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut conns = Vec::<WsConn>::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut failures = 0;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && failures < 20 {
                let next = conns
                    .iter()
                    .rev()
                    .find_map(|c| c.ids.last())
                    .map_or(0, |l| l + 1);
                let c = ws_conn(addr, next);
                if c.pid.is_none() {
                    failures += 1;
                    sleep_ms(50);
                }
                conns.push(c);
            }
            conns
        })
    };
    let (signalled, all) = upgrade_then_stop(&h, n, &stop);
    let started = Instant::now();
    let conns = client.join().unwrap();

    for c in &conns {
        println!(
            "ws from pid {:?}: events {:?}..{:?} ({}), pong {}, close {:?}, then {}",
            c.pid,
            c.ids.first(),
            c.ids.last(),
            c.ids.len(),
            c.pong,
            c.close,
            c.end
        );
    }
    for (old, at) in &signalled {
        if let Some(c) = conns.iter().find(|c| c.pid == Some(*old)) {
            println!(
                "pid {old}: Close {:?} {:.1} ms after the upgrade signal",
                c.close,
                c.closed_at.duration_since(*at).as_secs_f64() * 1e3
            );
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the last connection was not closed on SIGTERM"
    );
    assert!(
        conns.iter().all(|c| c.close == Some(1012)),
        "a connection ended without Close 1012"
    );
    assert!(conns.iter().all(|c| c.pong), "a ping went unanswered");
    let ids: Vec<u64> = conns.iter().flat_map(|c| c.ids.iter().copied()).collect();
    let expected: Vec<u64> = (0..ids.len() as u64).collect();
    assert!(ids == expected, "events missed or repeated: {ids:?}");
    let pids: Vec<i32> = conns.iter().filter_map(|c| c.pid).collect();
    assert_eq!(all.len(), n + 1);
    for p in &all {
        assert!(
            pids.contains(p),
            "no connection to generation {p}: {pids:?}"
        );
    }
    // After each Close, the next connection lands on a newer generation, never the old one.
    for w in conns.windows(2) {
        let gen = |c: &WsConn| all.iter().position(|p| Some(*p) == c.pid);
        assert!(
            gen(&w[1]) > gen(&w[0]),
            "reconnected to the same or an older generation: {:?} then {:?}",
            w[0].pid,
            w[1].pid
        );
    }
    println!(
        "{} events over {} WebSocket connections from {} generations ({} reconnects), none missed",
        ids.len(),
        conns.len(),
        all.len(),
        conns.len() - 1
    );
}
