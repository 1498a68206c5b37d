//! A real axum server on loopback that a test can stop and bring back on the same port.

use std::{net::SocketAddr, time::Duration};

use axum::Router;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::wait::try_wait_until;

/// A test double served on `127.0.0.1`; dropping it stops the server.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    router: Router,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl TestServer {
    /// Serves `router` on a free loopback port.
    pub async fn start(router: Router) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let mut server = TestServer {
            addr,
            router,
            running: None,
        };
        server.serve(listener);
        server
    }

    /// Returns the address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns whether the server is currently serving.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stops serving: the port is closed and open connections are shut down.
    pub async fn stop(&mut self) {
        if let Some((token, task)) = self.running.take() {
            token.cancel();
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Serves again on the same port; retries the bind briefly while the old socket goes away.
    pub async fn restart(&mut self) {
        self.stop().await;
        let addr = self.addr;
        let listener = try_wait_until(Duration::from_secs(5), || async move {
            TcpListener::bind(addr).await.ok()
        })
        .await
        .unwrap_or_else(|| panic!("cannot bind {addr} again"));
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let token = CancellationToken::new();
        let router = self.router.clone();
        let shutdown = token.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        self.running = Some((token, task));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some((token, task)) = self.running.take() {
            token.cancel();
            task.abort();
        }
    }
}
