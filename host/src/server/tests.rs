//! The server's limits, each on a real socket with short time-outs.

use super::*;
use axum::routing::get;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHORT: Duration = Duration::from_millis(300);

/// `/healthz` answers `ok`; `/big` answers 64 MiB, more than any socket buffer holds.
fn router() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/big", get(|| async { vec![b'x'; 64 << 20] }))
}

/// A plain server on 127.0.0.1 with `limits`; its address and gauge.
async fn start(limits: ServerLimits) -> (SocketAddr, OpenConnections) {
    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .unwrap()
        .with_limits(limits);
    let (addr, open) = (server.local_addr().unwrap(), server.open_connections());
    tokio::spawn(server.run(router(), std::future::pending()));
    (addr, open)
}

/// Waits until the server closes `stream` (end of stream or reset); how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut sink)).await {
        Ok(_) => Some(started.elapsed()),
        Err(_) => None,
    }
}

/// Sends one whole `GET /healthz` and reads the reply's status line.
async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = [0; 256];
    let n = stream.read(&mut reply).await.unwrap();
    String::from_utf8_lossy(&reply[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn defaults_are_the_documented_constants() {
    let limits = ServerLimits::default();
    assert_eq!(limits.max_connections, 512);
    assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(limits.tls_handshake_timeout, Duration::from_secs(10));
}

#[tokio::test]
async fn closes_a_half_sent_head_after_the_header_time_out() {
    let limits = ServerLimits {
        header_read_timeout: SHORT,
        ..ServerLimits::default()
    };
    let (addr, open) = start(limits).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let took = closed_within(&mut stream, Duration::from_secs(5)).await;
    let took = took.expect("the server keeps a half-sent head open");
    assert!(
        took >= SHORT - Duration::from_millis(50),
        "closed after {took:?}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(open.get(), 0);
}

#[tokio::test]
async fn closes_a_kept_alive_connection_without_a_next_request() {
    let limits = ServerLimits {
        header_read_timeout: SHORT,
        ..ServerLimits::default()
    };
    let (addr, _) = start(limits).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(healthz(&mut stream).await, "HTTP/1.1 200 OK");
    let took = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(took.is_some(), "an idle keep-alive connection stays open");
}

#[tokio::test]
async fn closes_a_download_the_client_stopped_reading() {
    let limits = ServerLimits {
        idle_timeout: SHORT,
        ..ServerLimits::default()
    };
    let (addr, open) = start(limits).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read: the socket buffers fill and the server's writes stall.
    let deadline = Instant::now() + Duration::from_secs(5);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(open.get(), 1);
    while open.get() > 0 {
        assert!(
            Instant::now() < deadline,
            "a stalled download keeps its connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn more_connections_than_the_cap_wait_for_a_free_one() {
    let limits = ServerLimits {
        max_connections: 2,
        header_read_timeout: SHORT,
        ..ServerLimits::default()
    };
    let (addr, open) = start(limits).await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /").await.unwrap();
        stalled.push(stream);
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    assert_eq!(healthz(&mut third).await, "HTTP/1.1 200 OK");
    assert!(
        started.elapsed() >= SHORT - Duration::from_millis(100),
        "answered after {:?}, before a permit was free",
        started.elapsed()
    );
    assert!(open.get() <= 2);
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(router(), async move {
        let _ = stopped.await;
    }));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(healthz(&mut stream).await, "HTTP/1.1 200 OK");
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), running).await;
    assert!(
        result
            .expect("shutdown waits on an idle connection")
            .unwrap()
            .is_ok()
    );
}
