//! `rbee-hive`: reports this machine (host, OS, CPU, memory, NVIDIA GPUs) to the queen and serves
//! `GET /health` and `GET /v1/info` on its own port.

mod config;
mod gpu;
mod http;
mod source;

use std::time::Duration;

use anyhow::Context as _;
use heartbeat_sender::{SenderHandle, cli::host_id};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

pub use config::Config;
pub use http::{AppState, router};

use crate::source::HiveSource;

/// How long after shutdown starts the hive may take in total; the contract allows 2 s.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(1600);
/// How long open API connections get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_millis(500);

/// Runs the hive on `listener` until `shutdown` is cancelled: heartbeats to the queen and the
/// hive's own API. Returns once the final heartbeat went out (or timed out).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let port = listener
        .local_addr()
        .context("read the bound address")?
        .port();
    let hostname = sysinfo::System::host_name().unwrap_or_else(|| "localhost".to_owned());
    let id = config.hive_id.unwrap_or_else(|| host_id(&hostname));
    let source = HiveSource::new(id, hostname, port, chrono::Utc::now());
    let sender = SenderHandle::new();
    let client = heartbeat_sender::build_client().context("build the http client")?;

    let tracker = TaskTracker::new();
    tracker.spawn(heartbeat_sender::run(
        config.sender.sender_config(),
        client,
        source,
        sender.clone(),
        shutdown.clone(),
    ));
    tracker.close();

    let app = router(AppState { sender });
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    let mut server = std::pin::pin!(server);
    // Serving ends on its own only after shutdown (or on an error); otherwise give open
    // connections a short drain once shutdown starts.
    let served = tokio::select! {
        result = &mut server => {
            result.context("serve the hive api")?;
            true
        }
        () = shutdown.cancelled() => false,
    };
    let deadline = Instant::now() + SHUTDOWN_BUDGET;
    if !served && tokio::time::timeout(DRAIN, &mut server).await.is_err() {
        warn!("open api connections did not close in time");
    }
    if tokio::time::timeout_at(deadline, tracker.wait())
        .await
        .is_err()
    {
        warn!("heartbeat sender did not stop in time");
    }
    Ok(())
}
