//! What the cluster scenarios share: an etcd of their own, queens on it, and what a queen's
//! `GET /v1/cluster` says about its role.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use serde::Deserialize;
use tokio::time::Instant;

use crate::{
    Env,
    etcd::Etcd,
    http,
    metrics::{ETCD_OPS, ETCD_TXNS, Metrics},
    process::Server,
    scenarios::{flag_duration, spawn_queen_on},
};

/// The leader's lease every cluster scenario runs with: the smallest the queen accepts.
pub const LEASE: Duration = Duration::from_secs(2);
/// How long a queen may take to join the cluster and take up its role.
const ROLE_LIMIT: Duration = Duration::from_secs(20);
/// How often a queen's role is read while waiting for it.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// A queen's `GET /v1/cluster`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ClusterView {
    /// `leader` or `follower`.
    pub(crate) role: String,
    /// The leader's URL, when one is known.
    pub(crate) leader: Option<String>,
    /// Every running queen (only counted).
    #[serde(default)]
    pub(crate) members: Vec<serde::de::IgnoredAny>,
}

impl ClusterView {
    /// Whether the queen says it leads.
    pub(crate) fn leads(&self) -> bool {
        self.role == "leader"
    }

    /// Whether the queen follows `leader`.
    pub(crate) fn follows(&self, leader: SocketAddr) -> bool {
        self.role == "follower" && self.leader.as_deref() == Some(url(leader).as_str())
    }
}

/// The URL a queen bound to `addr` advertises (the queen's default).
pub(crate) fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Reads `GET /v1/cluster` from the queen at `addr`.
pub(crate) async fn view(addr: SocketAddr) -> anyhow::Result<ClusterView> {
    let (status, body) = http::get(addr, "/v1/cluster")
        .await
        .context("GET /v1/cluster")?;
    anyhow::ensure!(status == 200, "GET /v1/cluster answered {status}");
    serde_json::from_slice(&body).context("decode /v1/cluster")
}

/// Starts etcd, pinned like every server.
pub(crate) async fn start_etcd(env: &Env) -> anyhow::Result<Etcd> {
    Etcd::start(&env.etcd_bin, env.pinning.server_cpu)
        .await
        .context("start etcd")
}

/// The flags that put a queen into the cluster on `etcd`, plus `flags`.
pub(crate) fn cluster_flags(
    etcd: &Etcd,
    flags: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut all = vec![
        ("--etcd-endpoints", etcd.client_url()),
        ("--leader-lease", flag_duration(LEASE)),
    ];
    all.extend(flags.iter().cloned());
    all
}

/// Starts a queen on `etcd` bound to `bind` (port 0: any).
pub(crate) async fn spawn_member(
    env: &Env,
    etcd: &Etcd,
    bind: SocketAddr,
    flags: &[(&'static str, String)],
) -> anyhow::Result<Server> {
    spawn_queen_on(env, bind, &cluster_flags(etcd, flags)).await
}

/// Starts a queen on `etcd` with no other queen there and waits until it leads.
pub(crate) async fn spawn_leader(
    env: &Env,
    etcd: &Etcd,
    flags: &[(&'static str, String)],
) -> anyhow::Result<Server> {
    let queen = spawn_member(env, etcd, SocketAddr::from(([127, 0, 0, 1], 0)), flags).await?;
    wait_for_role(&queen, ClusterView::leads).await?;
    Ok(queen)
}

/// Waits (bounded) until `queen`'s `/v1/cluster` satisfies `want`; returns that view.
pub(crate) async fn wait_for_role(
    queen: &Server,
    want: impl Fn(&ClusterView) -> bool,
) -> anyhow::Result<ClusterView> {
    let deadline = Instant::now() + ROLE_LIMIT;
    loop {
        let last = match view(queen.addr).await {
            Ok(v) if want(&v) => return Ok(v),
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the queen at {} did not take up its role within {ROLE_LIMIT:?} (last: {last}):\n{}",
                queen.addr,
                queen.log_tail()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The etcd writes a leader's `/metrics` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Writes {
    /// Transactions committed.
    pub(crate) txns: u64,
    /// Keys written or deleted.
    pub(crate) ops: u64,
}

impl Writes {
    /// Reads the counters from one reading of `/metrics`.
    pub(crate) fn of(m: &Metrics) -> Self {
        Self {
            txns: m.counter(ETCD_TXNS),
            ops: m.counter(ETCD_OPS),
        }
    }

    /// What was written after `before`.
    pub(crate) fn since(self, before: Writes) -> Writes {
        Writes {
            txns: self.txns.saturating_sub(before.txns),
            ops: self.ops.saturating_sub(before.ops),
        }
    }
}
