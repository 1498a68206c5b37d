//! The queen's shared state: both registries, the event log, metrics and the stream channels.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use chrono::Utc;
use heartbeat_registry::{Registry, RegistryConfig};
use hive_contract::HiveInfo;
use shared_contract::{Snapshot, Transition};
use tokio::{
    sync::{Notify, broadcast, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use worker_contract::WorkerInfo;

use crate::{config::Token, events::EventLog, metrics::Metrics, sse};

/// How many transition frames a subscriber may fall behind before it skips to the next snapshot.
const TRANSITION_BUFFER: usize = 1024;

/// A snapshot as every subscriber receives it: serialized once, shared by reference count.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// `event: heartbeat\ndata: {json}\n`, without the id line and the blank line.
    pub(crate) frame: Bytes,
    /// The change generation the snapshot includes.
    pub(crate) generation: u64,
}

/// Everything the handlers and background tasks share; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) workers: Registry<WorkerInfo>,
    pub(crate) hives: Registry<HiveInfo>,
    pub(crate) events: EventLog,
    pub(crate) metrics: Metrics,
    pub(crate) token: Option<Token>,
    pub(crate) interval_ms: u64,
    pub(crate) snapshot_interval: Duration,
    pub(crate) cors: crate::http::CorsPolicy,
    pub(crate) seq: AtomicU64,
    /// Counts changes of state, status or membership; a snapshot older than it is stale.
    pub(crate) generation: AtomicU64,
    pub(crate) snapshots: watch::Sender<Published>,
    pub(crate) transitions: broadcast::Sender<Bytes>,
    /// Wakes the snapshot publisher after a change of state, status or membership.
    pub(crate) changed: Notify,
    /// Wakes the expiry task when an entry's deadline may now come earlier than it planned for.
    pub(crate) expiry_wake: Notify,
    /// Cancelled on shutdown; ends every open stream.
    pub(crate) shutdown: CancellationToken,
}

impl AppState {
    /// Builds the state for `config`; `shutdown` ends open streams when cancelled.
    pub fn new(config: &crate::Config, shutdown: CancellationToken) -> Self {
        let registry = RegistryConfig {
            timeout: config.heartbeat_timeout,
            retention: config.retention,
            max_entries: config.max_entries,
        };
        let (snapshots, _) = watch::channel(Published {
            frame: Bytes::new(),
            generation: 0,
        });
        let (transitions, _) = broadcast::channel(TRANSITION_BUFFER);
        let state = Self {
            inner: Arc::new(Inner {
                workers: Registry::new(registry),
                hives: Registry::new(registry),
                events: EventLog::default(),
                metrics: Metrics::default(),
                token: config.token.clone(),
                interval_ms: u64::try_from(config.heartbeat_interval.as_millis())
                    .unwrap_or(u64::MAX),
                snapshot_interval: config.snapshot_interval,
                cors: crate::http::CorsPolicy::new(&config.cors_origins),
                seq: AtomicU64::new(0),
                generation: AtomicU64::new(0),
                snapshots,
                transitions,
                changed: Notify::new(),
                expiry_wake: Notify::new(),
                shutdown,
            }),
        };
        // Subscribers always find a real snapshot, even before the publisher first runs.
        state.publish_snapshot();
        state
    }

    /// Takes a snapshot of both registries now, with the next sequence number.
    pub(crate) fn snapshot(&self) -> Snapshot<Arc<WorkerInfo>, Arc<HiveInfo>> {
        let now = Instant::now();
        let workers = self.inner.workers.view(now);
        let hives = self.inner.hives.view(now);
        Snapshot {
            seq: self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1,
            timestamp: Utc::now(),
            workers_online: workers.online_ids.len(),
            workers_available: workers.available,
            hives_online: hives.online_ids.len(),
            hives_available: hives.available,
            worker_ids: workers.online_ids,
            hive_ids: hives.online_ids,
            workers: workers.entries,
            hives: hives.entries,
        }
    }

    /// Serializes one snapshot and hands it to every subscriber at once.
    pub(crate) fn publish_snapshot(&self) {
        // Read before taking the snapshot, so the snapshot holds at least this generation.
        let generation = self.inner.generation.load(Ordering::Acquire);
        match sse::frame("heartbeat", &self.snapshot()) {
            Ok(frame) => {
                self.inner
                    .snapshots
                    .send_replace(Published { frame, generation });
                self.inner.metrics.snapshot_published();
            }
            Err(error) => tracing::error!(%error, "cannot serialize a snapshot"),
        }
    }

    /// Records a transition everywhere it is observed: log, metrics, event ring and stream.
    pub(crate) fn record(&self, transition: Transition) {
        let inner = &self.inner;
        if transition.from.map(Into::into) == Some(transition.to) {
            debug!(kind = %transition.kind, id = %transition.id, reason = %transition.reason, "transition");
        } else {
            info!(
                kind = %transition.kind,
                id = %transition.id,
                from = transition.from.map_or("none", |s| s.as_str()),
                to = %transition.to,
                reason = %transition.reason,
                "transition"
            );
        }
        inner.metrics.transition(transition.kind, transition.to);
        // Serialize only when someone listens; the ring keeps the value either way.
        if inner.transitions.receiver_count() > 0 {
            match sse::frame("transition", &transition) {
                Ok(frame) => {
                    // An error only means the last subscriber just left.
                    let _ = inner.transitions.send(frame);
                }
                Err(error) => tracing::error!(%error, "cannot serialize a transition"),
            }
        }
        inner.events.push(transition);
    }

    /// Tells the publisher that state, status or membership changed.
    pub(crate) fn notify_changed(&self) {
        self.inner.generation.fetch_add(1, Ordering::Release);
        self.inner.changed.notify_one();
    }

    /// Publishes now if a change happened since the last snapshot, so that a new subscriber's
    /// first event is current rather than up to one coalescing delay old.
    pub(crate) fn publish_if_stale(&self) {
        let published = self.inner.snapshots.borrow().generation;
        if published != self.inner.generation.load(Ordering::Acquire) {
            self.publish_snapshot();
        }
    }
}

/// A payload type with a registry in the queen's state; lets handlers be written once.
pub(crate) trait Registered: shared_contract::Heartbeat {
    fn registry(inner: &Inner) -> &Registry<Self>;
}

impl Registered for WorkerInfo {
    fn registry(inner: &Inner) -> &Registry<Self> {
        &inner.workers
    }
}

impl Registered for HiveInfo {
    fn registry(inner: &Inner) -> &Registry<Self> {
        &inner.hives
    }
}
