//! `llm-worker`: reports one loaded model (id, device, port, readiness) to the queen, optionally
//! probing an OpenAI-compatible backend, and serves `GET /health` and `GET /v1/info`.

mod backend;
mod config;
mod source;

use anyhow::Context as _;
use shared_contract::{Health, Id, MAX_ID_LEN, Status, Timestamp};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use worker_contract::WorkerInfo;

pub use config::Config;

use crate::{backend::Backend, source::WorkerSource};

/// Runs the worker on `listener` until `shutdown` is cancelled. `started_at` marks this
/// process's incarnation; the queen counts a newer one as a restart.
pub async fn run(
    config: Config,
    listener: TcpListener,
    started_at: Timestamp,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let port = listener
        .local_addr()
        .context("read the bound address")?
        .port();
    let hive_id = config.hive_id.unwrap_or_else(|| {
        Id::from_host_name(&sysinfo::System::host_name().unwrap_or_default()).to_string()
    });
    let id = config
        .worker_id
        .unwrap_or_else(|| default_worker_id(&hive_id, port));
    let client = heartbeat_sender::build_client().context("build the http client")?;
    let backend = config
        .backend_url
        .map(|url| Backend::new(client.clone(), url));
    let info = WorkerInfo {
        id,
        hive_id,
        model_id: config.model_id,
        device: config.device,
        port,
        status: Status::Starting,
        health: Health::Healthy,
        started_at,
        implementation: Some("llm-worker".to_owned()),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
    };
    sender_daemon::daemon::serve(
        listener,
        config.sender.sender_config(),
        client,
        WorkerSource::new(info, backend),
        shutdown,
    )
    .await
    .context("serve the worker api")
}

/// Returns `<hive-id>-<port>`, shortening the hive part so the id stays within the id limit.
fn default_worker_id(hive_id: &str, port: u16) -> String {
    let suffix = format!("-{port}");
    let keep = MAX_ID_LEN.saturating_sub(suffix.len());
    // Hive ids are ASCII (the id alphabet), so byte slicing is on character boundaries.
    let hive = &hive_id[..hive_id.len().min(keep)];
    format!("{hive}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_join_hive_and_port_within_the_limit() {
        assert_eq!(default_worker_id("studio", 9301), "studio-9301");
        let long = "h".repeat(MAX_ID_LEN);
        let id = default_worker_id(&long, 65535);
        assert_eq!(id.len(), MAX_ID_LEN);
        assert!(id.ends_with("-65535"));
        assert!(shared_contract::is_valid_id(&id));
    }
}
