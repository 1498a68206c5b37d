//! `rbee-hive`: reports this machine (host, OS, CPU, memory, NVIDIA GPUs) to the queen and serves
//! `GET /health` and `GET /v1/info` on its own port.

mod config;
mod gpu;
mod source;

use anyhow::Context as _;
use shared_contract::Id;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

use crate::source::HiveSource;

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
    let id = config
        .hive_id
        .unwrap_or_else(|| Id::from_host_name(&hostname).to_string());
    let source = HiveSource::new(id, hostname, port, chrono::Utc::now());
    let client = heartbeat_sender::build_client().context("build the http client")?;
    sender_daemon::daemon::serve(
        listener,
        config.sender.sender_config(),
        client,
        source,
        shutdown,
    )
    .await
    .context("serve the hive api")
}
