//! Waiting for the fleet: first until the queen answers, then until every sender is online.

use std::{collections::BTreeSet, time::Duration};

use hive_contract::HiveInfo;
use shared_contract::Entry;
use tokio::time::Instant;
use worker_contract::WorkerInfo;

use crate::api::Queen;

/// How often to ask the queen again.
const POLL: Duration = Duration::from_millis(100);

/// Returns once the queen answers `GET /health`; fails at `deadline`.
pub(crate) async fn wait_for_queen(queen: &Queen, deadline: Instant) -> anyhow::Result<()> {
    loop {
        let ok = queen
            .get("/health")
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("queen-rbee did not answer on {} in time", queen.base());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Returns once the queen lists the hive and every worker as online; fails at `deadline`,
/// naming the ones still missing.
pub(crate) async fn wait_for_fleet(
    queen: &Queen,
    hive_id: &str,
    worker_ids: &[String],
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let workers: Vec<Entry<WorkerInfo>> = online(queen, "/v1/workers?state=online").await;
        let hives: Vec<Entry<HiveInfo>> = online(queen, "/v1/hives?state=online").await;
        let seen: BTreeSet<&str> = workers
            .iter()
            .map(|e| e.payload.id.as_str())
            .chain(hives.iter().map(|e| e.payload.id.as_str()))
            .collect();
        let missing: Vec<&str> = std::iter::once(hive_id)
            .chain(worker_ids.iter().map(String::as_str))
            .filter(|id| !seen.contains(id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "not online within the startup timeout: {}",
                missing.join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Lists entries, treating any failure as "none yet": the caller retries until its deadline.
async fn online<T: serde::de::DeserializeOwned>(queen: &Queen, path: &str) -> Vec<T> {
    match queen.get_json(path).await {
        Ok(value) => serde_json::from_value(value).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}
