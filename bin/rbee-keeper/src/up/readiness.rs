//! Waiting for the fleet: until etcd answers (in a cluster on the keeper's etcd), until each
//! queen answers and the queens agree on a leader, then until every sender is online.

use std::{collections::BTreeSet, time::Duration};

use hive_contract::HiveInfo;
use reqwest::{Client, RequestBuilder};
use shared_contract::Entry;
use tokio::time::Instant;
use worker_contract::WorkerInfo;

use crate::{api::Queen, cluster};

/// How often to ask the queen again.
const POLL: Duration = Duration::from_millis(100);

/// Returns once the queen answers `GET /health`; fails at `deadline`.
pub(crate) async fn wait_for_queen(queen: &Queen, deadline: Instant) -> anyhow::Result<()> {
    if answers(|| queen.get("/health"), deadline).await {
        Ok(())
    } else {
        anyhow::bail!("queen-rbee did not answer on {} in time", queen.base())
    }
}

/// Returns once etcd at `url` answers `GET /health` as healthy; fails at `deadline`.
pub(crate) async fn wait_for_etcd(
    client: &Client,
    url: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    let health = format!("{url}/health");
    if answers(|| client.get(&health), deadline).await {
        Ok(())
    } else {
        anyhow::bail!("etcd did not answer on {url} in time")
    }
}

/// Returns the leader's URL once every queen names the same leader and that queen, when it
/// is one of `queens`, says it leads; fails at `deadline`, with what each queen said last.
pub(crate) async fn wait_for_leader(queens: &[Queen], deadline: Instant) -> anyhow::Result<String> {
    loop {
        let mut views = Vec::with_capacity(queens.len());
        for queen in queens {
            views.push(cluster::fetch(queen).await);
        }
        if let Some(leader) = agreed_leader(queens, &views) {
            return Ok(leader);
        }
        if Instant::now() >= deadline {
            let said: Vec<String> = queens
                .iter()
                .zip(&views)
                .map(|(queen, view)| match view {
                    Ok(Some(v)) => format!(
                        "{} sees leader {} (etcd {})",
                        queen.base(),
                        v.leader.as_deref().unwrap_or("none"),
                        v.etcd
                    ),
                    Ok(None) => format!("{} runs alone", queen.base()),
                    Err(err) => err.to_string(),
                })
                .collect();
            anyhow::bail!(
                "the queens agreed on no leader within the startup timeout: {}",
                said.join("; ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The leader every view names, if they agree and the leader, when it answered, leads.
fn agreed_leader(
    queens: &[Queen],
    views: &[anyhow::Result<Option<cluster::ClusterView>>],
) -> Option<String> {
    let mut leader: Option<&str> = None;
    for view in views {
        let named = view.as_ref().ok()?.as_ref()?.leader.as_deref()?;
        if leader.is_some_and(|l| l != named) {
            return None;
        }
        leader = Some(named);
    }
    let leader = leader?;
    let confirmed = queens.iter().zip(views).all(|(queen, view)| {
        queen.base() != leader.trim_end_matches('/')
            || view
                .as_ref()
                .is_ok_and(|v| v.as_ref().is_some_and(cluster::ClusterView::leads))
    });
    confirmed.then(|| leader.to_owned())
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

/// Sends `request` until it answers with a success; returns `false` at `deadline`.
async fn answers(request: impl Fn() -> RequestBuilder, deadline: Instant) -> bool {
    loop {
        let ok = request()
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
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
