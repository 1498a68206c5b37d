//! Prometheus metrics through `prometheus-client`, which registers, names and renders them.
//!
//! The hot path touches only counters cached at start-up (one relaxed add, no label lookup) and
//! [`LatencyHistogram`], a lock-free histogram rendered by the crate's own encoder: the crate's
//! `Histogram` takes a mutex on every observation, which cost ingest 14 % of its CPU per request
//! (BENCHMARKS.md, "Ingest against the HTTP stack", run B against C).

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use heartbeat_registry::Counts;
use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text},
    metrics::{MetricType, counter::Counter, exemplar::Exemplar, family::Family, gauge::Gauge},
    registry::Registry,
};
use shared_contract::{Kind, State, Target};

use crate::{error::ErrorCode, sse::StreamKind};

/// Upper bounds of the request latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// Upper bounds of the store's commit lag histogram, in seconds: fine around the 100 ms the
/// contract allows.
const COMMIT_LAG_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.06, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 1.0,
];

/// A label set of static names and values, e.g. `[("kind", "worker"), ("to", "online")]`.
type Labels<const N: usize> = [(&'static str, &'static str); N];

pub(crate) struct Metrics {
    registry: Registry,
    /// One counter per [`Kind::ALL`] entry, taken from the family once so that the hot path
    /// does not hash a label set.
    received: [Counter; Kind::ALL.len()],
    rejected: Family<Labels<2>, Counter>,
    transitions: Family<Labels<2>, Counter>,
    entries: Family<Labels<2>, Gauge>,
    available: Family<Labels<1>, Gauge>,
    sse_subscribers: Gauge,
    watch_subscribers: Gauge,
    /// The newest revision published to watchers.
    revision: Gauge,
    latency: LatencyHistogram,
    store_commits: Counter,
    store_rows: Counter,
    store_errors: Counter,
    commit_lag: LatencyHistogram,
    cluster: ClusterMetrics,
}

/// A cluster's figures, copied from `fleet-cluster`'s counters when rendered; all 0 for a queen
/// that runs alone.
#[derive(Debug, Default)]
struct ClusterMetrics {
    leader: Gauge,
    etcd_up: Gauge,
    leader_changes: Counter,
    elected: Counter,
    etcd_txns: Counter,
    etcd_ops: Counter,
}

/// What [`Metrics::render`] shows of the cluster.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClusterFigures {
    pub(crate) leader: bool,
    pub(crate) etcd_up: bool,
    pub(crate) leader_changes: u64,
    pub(crate) elected: u64,
    pub(crate) etcd_txns: u64,
    pub(crate) etcd_ops: u64,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let received = Family::<Labels<1>, Counter>::default();
        let rejected = Family::default();
        let transitions = Family::<Labels<2>, Counter>::default();
        let entries = Family::default();
        let available = Family::default();
        let sse_subscribers = Gauge::default();
        let watch_subscribers = Gauge::default();
        let revision = Gauge::default();
        let latency = LatencyHistogram::default();
        let store_commits = Counter::default();
        let store_rows = Counter::default();
        let store_errors = Counter::default();
        let commit_lag = LatencyHistogram::with_bounds(&COMMIT_LAG_BUCKETS);
        let cluster = ClusterMetrics::default();
        // Every kind and target is shown from the start, at 0; rejections only once they happen.
        for kind in Kind::ALL {
            for to in Target::ALL {
                let _ = transitions.get_or_create(&[("kind", kind.as_str()), ("to", to.as_str())]);
            }
        }
        let mut registry = Registry::default();
        // prometheus-client appends `_total` to counter names and a full stop to help texts.
        registry.register(
            "rbee_heartbeats_received",
            "Heartbeats accepted, by kind",
            received.clone(),
        );
        registry.register(
            "rbee_heartbeats_rejected",
            "Heartbeats refused, by kind and reason",
            rejected.clone(),
        );
        registry.register(
            "rbee_entries",
            "Registry entries, by kind and state",
            entries.clone(),
        );
        registry.register(
            "rbee_entries_available",
            "Online entries able to take new work, by kind",
            available.clone(),
        );
        registry.register(
            "rbee_transitions",
            "State transitions, by kind and target state",
            transitions.clone(),
        );
        registry.register(
            "rbee_cluster_leader",
            "1 while this queen leads its cluster and judges liveness",
            cluster.leader.clone(),
        );
        registry.register(
            "rbee_cluster_etcd_up",
            "1 while etcd answers this queen within its lease",
            cluster.etcd_up.clone(),
        );
        registry.register(
            "rbee_cluster_leader_changes",
            "Leaders this queen has seen take office",
            cluster.leader_changes.clone(),
        );
        registry.register(
            "rbee_cluster_elections_won",
            "Times this queen became the leader",
            cluster.elected.clone(),
        );
        registry.register(
            "rbee_cluster_etcd_txns",
            "Transactions this queen committed to etcd as leader",
            cluster.etcd_txns.clone(),
        );
        registry.register(
            "rbee_cluster_etcd_ops",
            "Keys written or deleted by those transactions",
            cluster.etcd_ops.clone(),
        );
        registry.register(
            "rbee_sse_subscribers",
            "Open /v1/heartbeats/stream connections",
            sse_subscribers.clone(),
        );
        registry.register(
            "rbee_watch_subscribers",
            "Open /v1/watch connections",
            watch_subscribers.clone(),
        );
        registry.register(
            "rbee_revision",
            "The newest revision of the change log published to watchers",
            revision.clone(),
        );
        registry.register(
            "rbee_http_request_duration_seconds",
            "Time to produce a response (stream bodies excluded)",
            latency.clone(),
        );
        registry.register(
            "rbee_store_writes",
            "Transactions committed to the kept state",
            store_commits.clone(),
        );
        registry.register(
            "rbee_store_rows_written",
            "Entry and transition rows written to the kept state",
            store_rows.clone(),
        );
        registry.register(
            "rbee_store_errors",
            "Writes to the kept state that failed (each is retried)",
            store_errors.clone(),
        );
        registry.register(
            "rbee_store_commit_lag_seconds",
            "From a change entering the change log to its commit, oldest change of each batch",
            commit_lag.clone(),
        );
        Self {
            registry,
            received: Kind::ALL
                .map(|kind| received.get_or_create(&[("kind", kind.as_str())]).clone()),
            rejected,
            transitions,
            entries,
            available,
            sse_subscribers,
            watch_subscribers,
            revision,
            latency,
            store_commits,
            store_rows,
            store_errors,
            commit_lag,
            cluster,
        }
    }
}

impl fleet_store::Observer for Metrics {
    fn committed(&self, rows: usize, lag: Duration) {
        self.store_commits.inc();
        self.store_rows
            .inc_by(u64::try_from(rows).unwrap_or(u64::MAX));
        self.commit_lag.observe(lag);
    }

    fn failed(&self) {
        self.store_errors.inc();
    }
}

impl Metrics {
    pub(crate) fn heartbeat_received(&self, kind: Kind) {
        self.received[kind_index(kind)].inc();
    }

    pub(crate) fn heartbeat_rejected(&self, kind: Kind, code: ErrorCode) {
        self.rejected
            .get_or_create(&[("kind", kind.as_str()), ("reason", code.as_str())])
            .inc();
    }

    pub(crate) fn transition(&self, kind: Kind, to: Target) {
        self.transitions
            .get_or_create(&[("kind", kind.as_str()), ("to", to.as_str())])
            .inc();
    }

    pub(crate) fn subscriber_added(&self, stream: StreamKind) {
        self.subscribers(stream).inc();
    }

    pub(crate) fn subscriber_removed(&self, stream: StreamKind) {
        self.subscribers(stream).dec();
    }

    fn subscribers(&self, stream: StreamKind) -> &Gauge {
        match stream {
            StreamKind::Summary => &self.sse_subscribers,
            StreamKind::Watch => &self.watch_subscribers,
        }
    }

    pub(crate) fn revision(&self, revision: u64) {
        self.revision
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }

    pub(crate) fn request_finished(&self, elapsed: Duration) {
        self.latency.observe(elapsed);
    }

    /// Renders the Prometheus text format (version 0.0.4); `counts` are the registries' current
    /// entry counts.
    pub(crate) fn render(
        &self,
        counts: &[(Kind, Counts)],
        cluster: Option<ClusterFigures>,
    ) -> String {
        if let Some(figures) = cluster {
            let c = &self.cluster;
            c.leader.set(i64::from(figures.leader));
            c.etcd_up.set(i64::from(figures.etcd_up));
            for (counter, value) in [
                (&c.leader_changes, figures.leader_changes),
                (&c.elected, figures.elected),
                (&c.etcd_txns, figures.etcd_txns),
                (&c.etcd_ops, figures.etcd_ops),
            ] {
                counter.inc_by(value.saturating_sub(counter.get()));
            }
        }
        for &(kind, counts) in counts {
            for state in State::ALL {
                self.entries
                    .get_or_create(&[("kind", kind.as_str()), ("state", state.as_str())])
                    .set(gauge_value(counts.in_state(state)));
            }
            self.available
                .get_or_create(&[("kind", kind.as_str())])
                .set(gauge_value(counts.available));
        }
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|&k| k == kind).unwrap_or(0)
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A duration histogram over fixed bounds (at most 15): relaxed atomic adds to record, summed
/// when rendered.
#[derive(Debug, Clone)]
struct LatencyHistogram(Arc<LatencyCounts>);

#[derive(Debug)]
struct LatencyCounts {
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; the slot after the bounds counts those above
    /// every bound.
    buckets: [AtomicU64; 16],
    sum_nanos: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::with_bounds(&LATENCY_BUCKETS)
    }
}

impl LatencyHistogram {
    fn with_bounds(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.len() < 16);
        Self(Arc::new(LatencyCounts {
            bounds: &bounds[..bounds.len().min(15)],
            buckets: Default::default(),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bounds = self.0.bounds;
        let i = bounds
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(bounds.len());
        self.0.buckets[i].fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        let bounds = self.0.bounds;
        let counts: Vec<u64> = self.0.buckets[..=bounds.len()]
            .iter()
            .map(|b| b.load(Relaxed))
            .collect();
        let bounded: Vec<(f64, u64)> = bounds.iter().copied().zip(counts.iter().copied()).collect();
        let count = counts.iter().sum();
        #[allow(
            clippy::cast_precision_loss,
            reason = "a latency sum needs no more than f64 precision"
        )]
        let sum = self.0.sum_nanos.load(Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(
            sum,
            count,
            &bounded,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
