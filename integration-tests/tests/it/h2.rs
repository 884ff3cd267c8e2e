//! HTTP/2 across live upgrades, with `hello-tls`: over TLS (ALPN `h2`, curl as the client) and
//! h2c (prior knowledge on an auto-h2c port, the `h2` crate as the client).
//!
//! What actix-web 4 allows, measured: actix-http's HTTP/2 dispatcher never sends GOAWAY on a
//! graceful stop (it does not watch the shutdown signal its HTTP/1 dispatcher uses), so an open
//! HTTP/2 connection is not told to move. The old process serves it on (new streams included)
//! until the client closes it or `shutdown_timeout` ends, then drops it without a GOAWAY. So:
//! clients that open a connection per burst of requests move over with zero failures; a client
//! that keeps one connection busy longer than the shutdown timeout loses the stream in flight
//! at the cut, then reconnects to the successor.
//!
//! Knob: `UPGRADES_H2` (default 5).

use integration_tests::hello::{exited_cleanly, upgrade_probed, Hello, Upgrade, UpgradeOpts};
use integration_tests::{
    bins, env_usize, heavy_lock, poll_until, run_output, sleep_ms, Target, TempDir,
};
use nix::sys::signal::Signal;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn hello_tls(args: &[&str]) -> (Hello, SocketAddr) {
    let h = Hello::start(&bins::locate("hello-tls", "HELLO_TLS_BIN"), args);
    let Target::Tcp(addr) = h.target else {
        panic!("TCP expected")
    };
    (h, addr)
}

/// How one HTTP/2 request went: the answering pid, or the error as the client saw it.
type Outcome = Result<i32, String>;

/// `n` requests of `path`, one after the other on one h2c connection (prior knowledge), each
/// with its time since `t0`. Stops at the first failure.
fn h2c_burst(addr: SocketAddr, path: &str, n: usize, t0: Instant) -> Vec<(Duration, Outcome)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut out = Vec::new();
        let tcp = match tokio::net::TcpStream::connect(addr).await {
            Ok(tcp) => tcp,
            Err(e) => return vec![(t0.elapsed(), Err(format!("connect: {e}")))],
        };
        let (client, conn) = match h2::client::handshake(tcp).await {
            Ok(pair) => pair,
            Err(e) => return vec![(t0.elapsed(), Err(format!("handshake: {e}")))],
        };
        let conn = tokio::spawn(conn);
        for _ in 0..n {
            let outcome = request(client.clone(), addr, path).await;
            let failed = outcome.is_err();
            out.push((t0.elapsed(), outcome));
            if failed {
                break;
            }
        }
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        out
    })
}

async fn request(
    client: h2::client::SendRequest<bytes::Bytes>,
    addr: SocketAddr,
    path: &str,
) -> Outcome {
    let show = |e: h2::Error| {
        format!(
            "{e} (GOAWAY: {}, reason: {:?}, io: {:?})",
            e.is_go_away(),
            e.reason(),
            e.get_io().map(|io| io.kind())
        )
    };
    let mut client = client.ready().await.map_err(show)?;
    let req = http::Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(req, true).map_err(show)?;
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(show)?;
    let pid = response
        .headers()
        .get("x-pid")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or("no X-Pid")?;
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(show)?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(pid)
}

/// The h2c probe for the upgrade helper: a fresh connection answered by `new`.
fn h2c_serves(addr: SocketAddr, new: i32) -> bool {
    poll_until(
        Duration::from_secs(15),
        || matches!(h2c_burst(addr, "/health", 1, Instant::now()).pop(), Some((_, Ok(p))) if p == new),
    )
}

/// `curl --http2` with `urls` on one TLS connection: the answering pids, or curl's error.
fn curl_h2(ca: &std::path::Path, urls: &[String]) -> Result<Vec<i32>, String> {
    let mut curl = Command::new("curl");
    curl.args(["--http2", "-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["-w", "%{http_version} %header{x-pid}\\n"])
        .args(urls.iter().flat_map(|u| ["-o", "/dev/null", u.as_str()]));
    let (exit, stdout, stderr) =
        run_output(curl, Duration::from_secs(20)).map_err(|e| format!("run curl: {e}"))?;
    let text = String::from_utf8_lossy(&stdout);
    if !exit.success() {
        return Err(format!(
            "curl {exit}: {} {text}",
            String::from_utf8_lossy(&stderr)
        ));
    }
    text.lines()
        .map(|l| match l.split_once(' ') {
            Some(("2", pid)) => pid.trim().parse().map_err(|_| format!("line {l:?}")),
            _ => Err(format!("not HTTP/2: {l:?}")),
        })
        .collect()
}

/// `UPGRADES_H2` upgrades with `serving` as the probe, while `client` runs in 3 threads
/// (bounded: 2 minutes); returns (requests ok, failures).
fn upgrades_under(
    h: &Hello,
    serving: impl Fn(i32) -> bool,
    client: impl Fn() -> Result<usize, String> + Send + Sync + 'static,
) -> (usize, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new((0usize, Vec::<String>::new())));
    let client = Arc::new(client);
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (stop, results, client) = (stop.clone(), results.clone(), client.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let r = client();
                    let mut res = results.lock().unwrap();
                    match r {
                        Ok(n) => res.0 += n,
                        Err(e) => res.1.push(e),
                    }
                }
            })
        })
        .collect();
    sleep_ms(300);
    let mut cur = h.pid();
    for i in 0..env_usize("UPGRADES_H2", 5) {
        let u: Upgrade = upgrade_probed(
            &h.family,
            cur,
            Signal::SIGUSR2,
            &UpgradeOpts::default(),
            &serving,
        )
        .unwrap_or_else(|e| panic!("upgrade {i}: {e}\n{}", h.family.output_tail(30)));
        assert!(exited_cleanly(&u), "old {cur} ended with {:?}", u.old_exit);
        cur = u.new;
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let res = std::mem::take(&mut *results.lock().unwrap());
    res
}

#[test]
fn h2_over_tls_connections_per_burst_move_over_with_zero_failures() {
    let _g = heavy_lock();
    let dir = TempDir::new("h2tls");
    let sh =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem \
              -out cert.pem -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
              -addext basicConstraints=critical,CA:FALSE 2>/dev/null";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", sh]).current_dir(dir.path());
    let (exit, _, err) = run_output(cmd, Duration::from_secs(60)).expect("openssl CLI");
    assert!(exit.success(), "openssl: {}", String::from_utf8_lossy(&err));
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (h, addr) = hello_tls(&[
        "--tls",
        "rustls",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let url = |path: &str| format!("https://localhost:{}{path}", addr.port());
    let ca = cert.clone();
    let serving = |new: i32| {
        poll_until(Duration::from_secs(15), || {
            curl_h2(&ca, &[url("/health")]) == Ok(vec![new])
        })
    };
    let urls: Vec<String> = (0..5).map(|_| url("/")).collect();
    let ca = cert.clone();
    let (ok, failed) = upgrades_under(&h, serving, move || curl_h2(&ca, &urls).map(|p| p.len()));
    assert_all_ok("h2 over TLS (curl, 5 streams a connection)", ok, &failed);
}

fn assert_all_ok(what: &str, ok: usize, failed: &[String]) {
    println!("{what}: {ok} ok, {} failed", failed.len());
    assert!(ok > 0, "{what}: no request");
    assert!(failed.is_empty(), "{what}: {failed:?}");
}

#[test]
fn h2c_connections_per_burst_move_over_with_zero_failures() {
    let _g = heavy_lock();
    let (h, addr) = hello_tls(&["--tls", "h2c", "--listen", "127.0.0.1:0"]);
    let (ok, failed) = upgrades_under(
        &h,
        |new| h2c_serves(addr, new),
        move || {
            let burst = h2c_burst(addr, "/", 5, Instant::now());
            match burst.iter().find(|(_, o)| o.is_err()) {
                Some((_, Err(e))) => Err(e.clone()),
                _ => Ok(burst.len()),
            }
        },
    );
    assert_all_ok("h2c (h2 crate, 5 streams a connection)", ok, &failed);
}

/// The limit, measured: a busy HTTP/2 connection is served by the old process after the
/// successor took over (no GOAWAY moves it) and is dropped at the shutdown timeout.
#[test]
fn a_busy_h2_connection_stays_on_the_old_process_until_the_shutdown_timeout() {
    let _g = heavy_lock();
    let (h, addr) = hello_tls(&[
        "--tls",
        "h2c",
        "--listen",
        "127.0.0.1:0",
        "--shutdown-timeout-s",
        "2",
    ]);
    let t0 = Instant::now();
    // 100 ms requests, one after another, for up to 8 s.
    let busy = std::thread::spawn(move || h2c_burst(addr, "/sleep?ms=100", 80, t0));
    sleep_ms(500);
    let u = upgrade_probed(
        &h.family,
        h.pid(),
        Signal::SIGUSR2,
        &UpgradeOpts::default(),
        |new| h2c_serves(addr, new),
    )
    .expect("upgrade");
    let burst = busy.join().unwrap();
    let drained_at = u.signalled_at.duration_since(t0);
    let served_after: Vec<_> = burst
        .iter()
        .filter(|(at, o)| *at > drained_at && o.as_ref() == Ok(&h.pid()))
        .collect();
    let (cut_at, last) = burst.last().cloned().unwrap();
    println!(
        "busy h2c connection: {} streams ok, {} of them on the old pid after the upgrade signal; \
         the connection ended {:.0} ms after the signal with {last:?}; the old process {:?}",
        burst.iter().filter(|(_, o)| o.is_ok()).count(),
        served_after.len(),
        (cut_at - drained_at).as_secs_f64() * 1e3,
        u.old_exit
    );
    assert!(burst
        .iter()
        .all(|(_, o)| o.as_ref().map_or(true, |p| *p == h.pid())));
    assert!(
        served_after.len() >= 10,
        "the old process kept serving the connection"
    );
    let err = last.expect_err("the connection is cut at the shutdown timeout");
    assert!(
        !err.contains("GOAWAY: true"),
        "actix now sends GOAWAY: update the docs ({err})"
    );
    assert!(
        cut_at - drained_at >= Duration::from_millis(1900),
        "cut before the timeout"
    );
    // The client's way out: a new connection, served by the successor.
    assert!(h2c_serves(addr, u.new));
}
