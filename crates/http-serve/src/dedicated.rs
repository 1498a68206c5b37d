//! A runtime thread of its own for connections whose first request matches a prefix, such as
//! long-lived event streams.
//!
//! Writing a large event to many subscribers keeps a runtime thread busy for a long time. On
//! its own OS thread that work is time-sliced by the kernel against the main runtime, instead
//! of queueing every short request behind it in one run queue.

use std::{io, sync::Arc, time::Duration};

use hyper_util::server::graceful::Watcher;
use tokio::{net::TcpStream, runtime::Handle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::debug;

use crate::Server;

/// Which connections go to the dedicated runtime thread.
#[derive(Debug, Clone)]
pub struct Dedicated {
    /// Starts of the first request line, e.g. `GET /v1/heartbeats/stream`; one must be
    /// followed by a space or a `?` to match.
    pub request_prefixes: &'static [&'static str],
    /// The runtime thread's name.
    pub thread_name: &'static str,
    /// How long to wait for a new connection's first bytes; a client that sends nothing in
    /// that time is served on the main runtime, where the header read timeout applies.
    pub peek_timeout: Duration,
    /// `SO_SNDBUF` for these connections, bounding the kernel memory a subscriber that stops
    /// reading can pin; `None` keeps the kernel's autotuning.
    pub send_buffer: Option<usize>,
}

/// The running dedicated runtime; its thread stops when `stop` is cancelled, which drops the
/// connections still open on it.
#[derive(Debug)]
pub(crate) struct StreamRuntime {
    handle: Handle,
    pub(crate) stop: CancellationToken,
    config: Dedicated,
}

impl StreamRuntime {
    pub(crate) fn start(config: Dedicated) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name(config.thread_name.to_owned())
            .spawn(move || runtime.block_on(stopped.cancelled()))?;
        Ok(Self {
            handle,
            stop,
            config,
        })
    }

    /// Serves `stream` on the dedicated runtime if its first request matches, or gives it back.
    pub(crate) async fn offer(
        &self,
        stream: TcpStream,
        server: &Arc<Server>,
        watcher: Watcher,
        tracker: &TaskTracker,
    ) -> Result<(), (TcpStream, Watcher)> {
        if !self.matches(&stream).await {
            return Err((stream, watcher));
        }
        if let Some(size) = self.config.send_buffer
            && let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(size)
        {
            debug!(error = %e, "cannot set SO_SNDBUF");
        }
        // The socket leaves this runtime's reactor and joins the dedicated one's.
        let std_stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                debug!(error = %e, "cannot move a connection to the dedicated runtime");
                return Ok(());
            }
        };
        let server = Arc::clone(server);
        self.handle.spawn(tracker.track_future(async move {
            match TcpStream::from_std(std_stream) {
                Ok(stream) => server.serve(stream, watcher).await,
                Err(e) => debug!(error = %e, "cannot register a moved connection"),
            }
        }));
        Ok(())
    }

    async fn matches(&self, stream: &TcpStream) -> bool {
        let mut head = [0_u8; 64];
        let Ok(Ok(n)) =
            tokio::time::timeout(self.config.peek_timeout, stream.peek(&mut head)).await
        else {
            return false;
        };
        // One peek only: peeking again returns the same bytes at once, so waiting for more
        // would spin. A request line split before the path is simply served on the main runtime.
        let head = &head[..n];
        self.config.request_prefixes.iter().any(|prefix| {
            let prefix = prefix.as_bytes();
            head.len() > prefix.len()
                && head.starts_with(prefix)
                && matches!(head[prefix.len()], b' ' | b'?')
        })
    }
}
