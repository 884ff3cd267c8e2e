//! Long-lived responses across live upgrades, with the `events` example (server-sent events):
//! the stream ends cleanly when the old process starts its drain (`actix_graceful::Draining`),
//! the client reconnects with `Last-Event-ID` to the successor and misses no event; a stream
//! that ignores the drain is served on by the old process and cut only at the shutdown timeout.
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
    // The client is reading the last generation's stream: end it the way upgrades do, with
    // SIGTERM's drain, so the last stream ends cleanly too.
    stop.store(true, Ordering::SeqCst);
    assert!(integration_tests::signal(
        cur,
        nix::sys::signal::Signal::SIGTERM
    ));
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
    let mut all = vec![h.pid()];
    all.extend(signalled.iter().skip(1).map(|(p, _)| *p));
    all.push(cur);
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
        cut >= Duration::from_millis(1900),
        "cut before the 2 s shutdown timeout: {cut:?}"
    );
    assert!(cut < Duration::from_secs(6), "cut late: {cut:?}");
}
