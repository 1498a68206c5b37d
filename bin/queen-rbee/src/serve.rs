//! How the queen serves its router: the shared accept loop, with event streams on a runtime
//! thread of their own.

use std::{io, time::Duration};

use axum::Router;
use http_serve::{Dedicated, Options};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a client may take to send a complete request head (also the idle keep-alive limit).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new connection may stay silent before it is served on the main runtime.
const PEEK_TIMEOUT: Duration = Duration::from_millis(500);

/// `SO_SNDBUF` of stream connections: a subscriber that stops reading pins at most about twice
/// this much kernel memory (Linux doubles it for bookkeeping) instead of the autotuned ~1 MB,
/// and starts costing nothing that much sooner: until its buffers fill it takes every change like
/// a reader (BENCHMARKS.md, "Stalled watchers and the send buffer").
const STREAM_SEND_BUFFER: Option<usize> = Some(64 * 1024);

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets open connections finish
/// their current request (the caller bounds how long that may take).
///
/// A connection whose first request opens one of the streams is served on a separate runtime thread:
/// writing each multi-megabyte snapshot to every subscriber then competes with ingest for the
/// CPU through the kernel's scheduler, instead of holding heartbeats in the same run queue.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let options = Options {
        header_read_timeout: HEADER_READ_TIMEOUT,
        dedicated: Some(Dedicated {
            request_prefixes: &["GET /v1/heartbeats/stream", "GET /v1/watch"],
            thread_name: "queen-stream",
            peek_timeout: PEEK_TIMEOUT,
            send_buffer: STREAM_SEND_BUFFER,
        }),
    };
    http_serve::serve(listener, app, shutdown, options).await
}
