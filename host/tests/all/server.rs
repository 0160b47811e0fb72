//! The public HTTP server under a slow-client flood: half-sent requests neither starve
//! `/healthz` nor cost more than the connection cap in file descriptors.

use axum::Router;
use axum::routing::get;
use callhook::server::{DEFAULT_MAX_CONNECTIONS, HttpServer, ServerLimits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Half-sent requests the flood opens (fewer only if the descriptor limit is too low).
const FLOOD: usize = 2000;
/// The header time-out the test serves with, short so the flood drains in seconds.
const HEADER_READ_TIMEOUT: Duration = Duration::from_millis(500);
/// Descriptors kept free for everything else the test process holds.
const SPARE_FDS: usize = 256;

/// This process's soft limit on open files (Linux), if it can be read.
fn fd_soft_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// This process's open file descriptors now (Linux), if they can be counted.
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_neither_starve_healthz_nor_exhaust_descriptors() {
    let test_started = Instant::now();
    // The clients live in this process too: `FLOOD` of them plus the server's share must fit.
    let clients = match fd_soft_limit() {
        Some(limit) => FLOOD.min(limit.saturating_sub(DEFAULT_MAX_CONNECTIONS + SPARE_FDS)),
        None => FLOOD,
    };
    assert!(
        clients >= 100,
        "too few descriptors for a flood: {:?}",
        fd_soft_limit()
    );
    if clients < FLOOD {
        eprintln!("the descriptor limit allows {clients} half-sent requests, not {FLOOD}");
    }

    let limits = ServerLimits {
        header_read_timeout: HEADER_READ_TIMEOUT,
        ..ServerLimits::default()
    };
    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .unwrap()
        .with_limits(limits);
    let (addr, open) = (server.local_addr().unwrap(), server.open_connections());
    let router = Router::new().route("/healthz", get(|| async { "ok" }));
    tokio::spawn(server.run(router, std::future::pending()));
    let baseline_fds = open_fds();

    // Watch the server's connections and the process's descriptors throughout.
    let (most_open, most_fds, watching) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(true)),
    );
    let watcher = tokio::spawn({
        let (most_open, most_fds, watching) =
            (most_open.clone(), most_fds.clone(), watching.clone());
        async move {
            while watching.load(Ordering::Relaxed) {
                most_open.fetch_max(open.get(), Ordering::Relaxed);
                most_fds.fetch_max(open_fds().unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    // The flood: each connection sends half a head, then nothing.
    let mut flood = JoinSet::new();
    for n in 0..clients {
        flood.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{n}: ");
            stream.write_all(head.as_bytes()).await.unwrap();
            stream
        });
    }
    let mut stalled = Vec::with_capacity(clients);
    while let Some(stream) = flood.join_next().await {
        stalled.push(stream.unwrap());
    }
    let flooded = test_started.elapsed();

    // `/healthz` still answers: it waits at most for the flood to time out, cap by cap.
    let asked = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(8), async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    })
    .await
    .expect("/healthz did not answer within 8 s of the flood");
    let answered_in = asked.elapsed();
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("ok"), "{reply}");

    // Every half-sent request was closed by the server (end of stream or reset).
    let mut closing = JoinSet::new();
    for mut stream in stalled {
        closing.spawn(async move {
            let mut sink = Vec::new();
            tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut sink))
                .await
                .is_ok()
        });
    }
    let mut still_open = 0;
    while let Some(closed) = closing.join_next().await {
        if !closed.unwrap() {
            still_open += 1;
        }
    }
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();
    assert_eq!(still_open, 0, "half-sent requests the server left open");

    let (most_open, most_fds) = (
        most_open.load(Ordering::Relaxed),
        most_fds.load(Ordering::Relaxed),
    );
    assert!(
        most_open <= DEFAULT_MAX_CONNECTIONS,
        "{most_open} connections open at once"
    );
    if let Some(baseline) = baseline_fds {
        // The clients' own sockets, the server's (at most the cap) and a little slack; without
        // the cap the server would hold one descriptor per client as well.
        let bound = baseline + clients + DEFAULT_MAX_CONNECTIONS + 64;
        assert!(
            most_fds <= bound,
            "{most_fds} descriptors open, more than {bound}"
        );
    }
    eprintln!(
        "{clients} half-sent requests opened in {flooded:?}; /healthz answered in \
         {answered_in:?}; at most {most_open} connections and {most_fds} descriptors open; \
         {:?} in all",
        test_started.elapsed()
    );
}
