//! The queen in a cluster (SPEC section 11): what the etcd side (`fleet-cluster`) tells it,
//! applied to the fleet. A follower mirrors the leader's committed changes; a queen elected
//! leader takes over by the restore rule and opens its gate; a leader whose lease lapsed hands
//! over what it still has and stops judging.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use fleet_cluster::{Change, Cluster, Event, Loaded};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::{changelog::Published, metrics::ClusterFigures, state::AppState, tasks};

/// How long a stopping leader may take to write its last changes to etcd.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(1);

/// This queen's part in its cluster.
#[derive(Debug)]
pub(crate) struct Clustered {
    cluster: Cluster,
    /// The term this queen leads in; 0 while it follows.
    term: AtomicU64,
}

impl Clustered {
    pub(crate) fn new(cluster: Cluster) -> Self {
        Self {
            cluster,
            term: AtomicU64::new(0),
        }
    }

    /// The figures `/metrics` shows.
    pub(crate) fn figures(&self) -> ClusterFigures {
        let counters = self.cluster.counters();
        ClusterFigures {
            leader: self.leads(),
            etcd_up: self.cluster.status().etcd_ok,
            leader_changes: counters.leader_changes.load(Ordering::Relaxed),
            elected: counters.elected.load(Ordering::Relaxed),
            etcd_txns: counters.txns.load(Ordering::Relaxed),
            etcd_ops: counters.ops.load(Ordering::Relaxed),
        }
    }

    /// Whether this queen may accept heartbeats and judge right now.
    pub(crate) fn leads(&self) -> bool {
        self.cluster.gate().is_open()
    }

    /// The term whose changes this queen hands to etcd; `None` while it follows.
    pub(crate) fn term(&self) -> Option<u64> {
        Some(self.term.load(Ordering::Acquire)).filter(|t| *t != 0)
    }

    /// Where a heartbeat sent to this queen belongs: `Some(url)` of another queen that leads,
    /// `None` when no leader is known (or this queen is the leader but not judging right now).
    pub(crate) fn leader_elsewhere(&self) -> Option<String> {
        self.cluster
            .leader()
            .filter(|url| url != self.cluster.advertise_url())
    }

    /// Hands what the publisher serialized to etcd, as this term's changes.
    pub(crate) fn record(&self, term: u64, published: &[Published]) {
        let changes = published
            .iter()
            .filter_map(|p| {
                let kept = p.kept.as_ref()?;
                Some(Change {
                    revision: p.revision,
                    kind: kept.kind.to_owned(),
                    id: kept.id.clone(),
                    kept: kept.entry.clone(),
                    transition: kept.transition.as_ref().map(|t| t.body.clone()),
                    frame: p.frame.clone(),
                })
            })
            .collect();
        self.cluster.record(term, changes);
    }

    /// `GET /v1/cluster`.
    pub(crate) fn view(&self) -> ClusterView {
        let status = self.cluster.status();
        let me = self.cluster.advertise_url().to_owned();
        let role = |url: &str| {
            if status.leader.as_deref() == Some(url) {
                "leader"
            } else {
                "follower"
            }
        };
        let mut members: Vec<Member> = status
            .members
            .iter()
            .map(|url| Member {
                url: url.clone(),
                role: role(url),
            })
            .collect();
        if !members.iter().any(|m| m.url == me) {
            members.push(Member {
                url: me.clone(),
                role: role(&me),
            });
            members.sort_by(|a, b| a.url.cmp(&b.url));
        }
        ClusterView {
            // The same rule as for the members, so the two never disagree: the leader key.
            role: role(&me),
            this: me,
            leader: status.leader,
            members,
            etcd: if status.etcd_ok { "ok" } else { "unreachable" },
        }
    }
}

/// The body of `GET /v1/cluster`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ClusterView {
    /// This queen's advertised URL.
    #[serde(rename = "self")]
    this: String,
    /// `leader` or `follower`.
    role: &'static str,
    /// The leader's advertised URL, when one is known.
    leader: Option<String>,
    /// Every running queen.
    members: Vec<Member>,
    /// `ok` or `unreachable`.
    etcd: &'static str,
}

/// One queen of the cluster.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Member {
    url: String,
    role: &'static str,
}

/// How long a starting queen waits for etcd before it gives up with a one-line error.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Joins the cluster `config` names as the queen reachable at `advertise_url`, and builds the
/// queen's state on the cluster's committed state, mirrored.
pub(crate) async fn join(
    config: &crate::Config,
    advertise_url: String,
    shutdown: tokio_util::sync::CancellationToken,
    metrics: Arc<crate::metrics::Metrics>,
) -> anyhow::Result<(AppState, mpsc::UnboundedReceiver<Event>)> {
    let cluster_config = fleet_cluster::ClusterConfig {
        endpoints: config.etcd_endpoints.clone(),
        name: config.cluster_name.clone(),
        advertise_url,
        lease: config.leader_lease,
    };
    let (cluster, loaded, events) = Cluster::start(cluster_config, JOIN_TIMEOUT).await?;
    info!(
        cluster = %config.cluster_name,
        url = %cluster.advertise_url(),
        epoch = %loaded.epoch,
        revision = loaded.revision,
        entries = loaded.entries.len(),
        "joined the cluster"
    );
    let state = AppState::build(
        config,
        shutdown,
        loaded.epoch.clone(),
        loaded.revision,
        None,
        Some(Arc::new(Clustered::new(cluster))),
        metrics,
    );
    reset(&state, &loaded);
    Ok((state, events))
}

/// Replaces the fleet with `loaded` (an error means etcd holds damaged state; it is logged and
/// the queen serves what it could load).
fn reset(state: &AppState, loaded: &Loaded) {
    let log = state.fleet().log();
    if loaded.epoch != log.epoch() {
        // The cluster's state in etcd was replaced under this queen; its epoch is fixed for
        // the queen's life, so watchers would be told wrong ids. Stop and let the supervisor
        // (or the user) start it again.
        error!(ours = %log.epoch(), etcd = %loaded.epoch, "the cluster's state in etcd was replaced; stopping");
        state.shutdown().cancel();
        return;
    }
    match state.fleet().reset(loaded) {
        Ok(entries) => info!(
            entries,
            revision = loaded.revision,
            "mirroring the cluster's state"
        ),
        Err(error) => error!(%error, "the cluster's state in etcd is damaged; serving what loads"),
    }
}

/// Applies the cluster's events to the fleet until the queen stops.
pub(crate) async fn follow(state: AppState, mut events: mpsc::UnboundedReceiver<Event>) {
    let Some(clustered) = state.cluster().cloned() else {
        return;
    };
    let shutdown = state.shutdown().clone();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        match event {
            Event::Follow(loaded) => {
                clustered.term.store(0, Ordering::Release);
                reset(&state, &loaded);
            }
            Event::Changes(changes) => {
                if clustered.term().is_some() {
                    continue;
                }
                for change in &changes {
                    if !state.fleet().mirror(change) {
                        // The etcd side hands changes in order without gaps; one that does not
                        // fit is a kept form this queen cannot read (damaged, or from a newer
                        // queen): its revision and event are kept, the entry is left as it was.
                        warn!(revision = change.revision, kind = %change.kind, id = %change.id, "a mirrored change does not fit");
                    }
                }
                state.metrics().revision(state.fleet().log().revision());
            }
            Event::Lead { term, loaded } => {
                clustered.term.store(term, Ordering::Release);
                if state.fleet().log().revision() == loaded.revision {
                    // Everything this queen holds is committed; a commit seen after the last
                    // term lapsed may not have been released yet.
                    state.fleet().log().release(loaded.revision);
                } else {
                    reset(&state, &loaded);
                }
                match state.fleet().take_over() {
                    Ok(entries) => info!(
                        entries,
                        revision = loaded.revision,
                        "took over as leader; every online entry is restored with a fresh timeout"
                    ),
                    Err(error) => {
                        error!(%error, "the cluster's state in etcd is damaged; leading with what loads")
                    }
                }
                if !clustered.cluster.gate().activate(term) {
                    info!(term, "the term ended before it began");
                }
                state.wake_expiry();
            }
            Event::Lapsed { term } => {
                // Hand over what was appended before the gate closed, then say so.
                tasks::publish(&state);
                clustered.term.store(0, Ordering::Release);
                clustered.cluster.drained(term);
            }
        }
    }
}

/// Shows watchers what etcd committed of this queen's changes as leader.
pub(crate) async fn release(state: AppState) {
    let Some(clustered) = state.cluster().cloned() else {
        return;
    };
    let shutdown = state.shutdown().clone();
    let mut committed = clustered.cluster.committed();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = committed.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let revision = *committed.borrow_and_update();
        if clustered.term().is_some() {
            state.fleet().log().release(revision);
        }
    }
}

/// Writes the last changes and gives up the lease, after the server and tasks stopped.
pub(crate) async fn close(state: &AppState) {
    if let Some(clustered) = state.cluster().map(Arc::clone) {
        tasks::publish(state);
        clustered.cluster.stop(STOP_GRACE).await;
    }
}
