//! The accept loop over real sockets: slow request heads, the dedicated runtime, shutdown.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::get};
use http_serve::{Dedicated, Options, serve};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
    time::timeout,
};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

async fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned()
}

async fn start(
    options: Options,
) -> (
    SocketAddr,
    CancellationToken,
    JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/stream", get(thread_name))
        .route("/other", get(thread_name));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, app, shutdown.clone(), options));
    (addr, shutdown, server)
}

fn dedicated() -> Options {
    Options {
        header_read_timeout: Duration::from_secs(10),
        dedicated: Some(Dedicated {
            request_prefixes: &["GET /stream"],
            thread_name: "it-dedicated",
            peek_timeout: Duration::from_secs(2),
            send_buffer: Some(64 * 1024),
        }),
    }
}

/// A client that keeps no idle connection, so each request opens its own.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(WAIT)
        .build()
        .unwrap()
}

async fn get_text(addr: SocketAddr, path: &str) -> String {
    let response = client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_request_head_that_trickles_in_is_cut_off() {
    let options = Options {
        header_read_timeout: Duration::from_millis(200),
        dedicated: None,
    };
    let (addr, _shutdown, _server) = start(options).await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /other HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    // The server closes the connection; without a timeout this read would wait for ever.
    let read = timeout(WAIT, socket.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection stayed open");
}

#[tokio::test]
async fn matching_connections_run_on_the_dedicated_thread() {
    let (addr, shutdown, server) = start(dedicated()).await;
    assert_eq!(get_text(addr, "/stream").await, "it-dedicated");
    assert_eq!(get_text(addr, "/stream?x=1").await, "it-dedicated");
    assert_ne!(get_text(addr, "/other").await, "it-dedicated");

    shutdown.cancel();
    timeout(WAIT, server).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_silent_client_is_served_on_the_main_runtime_after_the_peek() {
    let mut options = dedicated();
    if let Some(d) = options.dedicated.as_mut() {
        d.peek_timeout = Duration::from_millis(50);
    }
    let (addr, _shutdown, _server) = start(options).await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    // Wait until the peek has surely given up, by watching a clock rather than sleeping blind:
    // a second connection's full round trip takes longer than nothing at all.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while tokio::time::Instant::now() < deadline {
        let _ = get_text(addr, "/other").await;
    }
    socket
        .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    timeout(WAIT, socket.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(!response.ends_with("it-dedicated"), "{response}");
}

#[tokio::test]
async fn shutdown_returns_once_connections_are_idle() {
    let (addr, shutdown, server) = start(dedicated()).await;
    let client = client();
    for path in ["/stream", "/other"] {
        let response = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    shutdown.cancel();
    timeout(WAIT, server).await.unwrap().unwrap().unwrap();
}
