//! The accept loop every rbee daemon serves its router with: HTTP/1 over hyper, a bound on how
//! long a request head may take, graceful shutdown, and optionally a dedicated runtime thread
//! for long-lived streaming connections.
//!
//! `axum::serve` configures no timer, so hyper never times out a request head and a slowloris
//! client (headers trickled a byte at a time) holds its connection for ever. Serving through
//! hyper's own builder lets us bound that.

#![warn(missing_docs)]

mod dedicated;

use std::{io, sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::{GracefulShutdown, Watcher},
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

pub use dedicated::Dedicated;

use crate::dedicated::StreamRuntime;

/// How a daemon's connections are served.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long a client may take to send a complete request head (also the idle keep-alive
    /// limit, since hyper starts this timer whenever it waits for a head).
    pub header_read_timeout: Duration,
    /// Connections to serve on a runtime thread of their own, if any.
    pub dedicated: Option<Dedicated>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            dedicated: None,
        }
    }
}

/// How long to pause accepting after a resource error such as `EMFILE`, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting and lets open
/// connections finish their current request. The caller bounds how long that may take; if it
/// drops this future, the dedicated runtime (if any) stops and closes its connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    options: Options,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let server = Arc::new(Server { builder, app });
    let dedicated = match options.dedicated {
        Some(config) => Some(Arc::new(StreamRuntime::start(config)?)),
        None => None,
    };
    let _stop_dedicated = dedicated
        .as_ref()
        .map(|runtime| runtime.stop.clone().drop_guard());
    let graceful = GracefulShutdown::new();
    let connections = TaskTracker::new();
    let mut episode = AcceptEpisode::default();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    episode.accepted();
                    accepted
                }
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    episode.failed(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Small SSE frames and JSON answers should leave at once rather than wait for Nagle.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let server = Arc::clone(&server);
        let watcher = graceful.watcher();
        let dedicated = dedicated.clone();
        let tracker = connections.clone();
        connections.spawn(async move {
            let (stream, watcher) = match dedicated {
                Some(runtime) => match runtime.offer(stream, &server, watcher, &tracker).await {
                    Ok(()) => return,
                    Err(declined) => declined,
                },
                None => (stream, watcher),
            };
            server.serve(stream, watcher).await;
        });
    }
    drop(listener);
    connections.close();
    graceful.shutdown().await;
    connections.wait().await;
    Ok(())
}

/// What every connection is served with, whichever runtime runs it.
#[derive(Debug)]
struct Server {
    builder: http1::Builder,
    app: Router,
}

impl Server {
    async fn serve(&self, stream: TcpStream, watcher: Watcher) {
        let peer = stream.peer_addr().ok();
        let service = TowerToHyperService::new(self.app.clone());
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        if let Err(e) = watcher.watch(connection).await {
            debug!(?peer, error = %e, "connection ended with an error");
        }
    }
}

/// Logs a run of failed accepts (running out of descriptors, say) once: a warning when it
/// starts and an info line when accepting works again, rather than a line every backoff.
#[derive(Debug, Default)]
struct AcceptEpisode {
    /// Accepts failed since the last success; non-zero while an episode lasts.
    failures: u64,
}

impl AcceptEpisode {
    fn failed(&mut self, e: &io::Error) {
        if self.failures == 0 {
            warn!(error = %e, "accept failed; new connections wait until it works again");
        }
        self.failures += 1;
    }

    fn accepted(&mut self) {
        if self.failures > 0 {
            info!(
                failed_attempts = self.failures,
                "accepting connections again"
            );
            self.failures = 0;
        }
    }
}

/// Errors that concern one connection only; the next accept may succeed at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
