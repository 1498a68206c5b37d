//! Running out of descriptors is logged once per episode. A test binary of its own, because it
//! lowers this process's open-files limit.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, routing::get};
use http_serve::{Options, serve};
use rlimit::Resource;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Collects what the logger writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_is_logged_once_per_episode() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        Router::new().route("/", get(|| async { "ok" })),
        shutdown.clone(),
        Options::default(),
    ));

    // Leave room for a handful of descriptors, then connect until the server cannot accept.
    let (_, hard) = Resource::NOFILE.get().unwrap();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    Resource::NOFILE.set(open + 16, hard).unwrap();
    let mut clients = Vec::new();
    while let Ok(client) = TcpStream::connect(addr).await {
        clients.push(client);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The kernel completed handshakes the server could not accept. Wait for the first warning,
    // then watch several of the server's 100 ms retries go by: an absence needs a window.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while log.count("accept failed") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no accept failure logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(log.count("accept failed"), 1, "one warning per episode");
    assert_eq!(log.count("accepting connections again"), 0);

    // Closing clients frees the server's side of their connections, so the next one is accepted.
    clients.clear();
    let _fresh = TcpStream::connect(addr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while log.count("accepting connections again") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "accepting never recovered:\n{}",
            String::from_utf8_lossy(&log.0.lock().unwrap())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(log.count("accept failed"), 1);
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
