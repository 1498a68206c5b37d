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

/// The longest the publisher waits to coalesce changes, however costly a snapshot has become.
const MAX_COALESCE: Duration = Duration::from_secs(1);

/// A snapshot as every subscriber receives it: serialized once, shared by reference count.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// `event: heartbeat\ndata: {json}\n`, without the id line and the blank line; empty while
    /// nobody subscribes, so an idle queen holds no serialized fleet.
    pub(crate) frame: Bytes,
    /// The change generation the snapshot includes.
    pub(crate) generation: u64,
    /// When the registries were read for it, on the queen's monotonic clock.
    pub(crate) taken: Instant,
}

impl Published {
    fn none() -> Self {
        Self {
            frame: Bytes::new(),
            generation: 0,
            taken: Instant::now(),
        }
    }

    /// The snapshot's JSON, shared with the frame rather than copied.
    fn json(&self) -> Bytes {
        let start = FRAME_PREFIX.len().min(self.frame.len());
        let end = self.frame.len().saturating_sub(1).max(start);
        self.frame.slice(start..end)
    }
}

/// What a caller of [`AppState::publish`] needs from the published snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// A new snapshot, whatever the published one holds (the periodic event).
    New,
    /// One that includes every change notified so far.
    Current,
    /// One that is current and less than a snapshot interval old (a new subscriber's first event).
    Fresh,
}

const FRAME_PREFIX: &[u8] = b"event: heartbeat\ndata: ";

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
    /// Held while a snapshot is built, so builds never overlap: publications stay in `seq`
    /// order and at most one unpublished snapshot exists besides the published one.
    build: Arc<tokio::sync::Mutex<()>>,
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
        let (snapshots, _) = watch::channel(Published::none());
        let (transitions, _) = broadcast::channel(TRANSITION_BUFFER);
        Self {
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
                build: Arc::new(tokio::sync::Mutex::new(())),
                transitions,
                changed: Notify::new(),
                expiry_wake: Notify::new(),
                shutdown,
            }),
        }
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

    /// Makes sure the published snapshot satisfies `need`, building one if it does not.
    ///
    /// Building and serializing run on the blocking pool, because a large fleet's snapshot takes
    /// many milliseconds that ingest should not wait for. Only one build runs at a time; the
    /// lock travels into the blocking job, so even a caller that gives up waiting cannot let a
    /// second build overlap the first.
    pub(crate) async fn publish(&self, need: Need) {
        let guard = Arc::clone(&self.inner.build).lock_owned().await;
        if self.satisfies(need) {
            return;
        }
        let state = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let started = std::time::Instant::now();
            if let Some(published) = state.build() {
                state.inner.snapshots.send_replace(published);
                state.inner.metrics.snapshot_published(started.elapsed());
            }
        });
        // A join error means the runtime is shutting down; nothing is left to publish to.
        let _ = built.await;
    }

    /// Drops the retained frame if nobody subscribes; the next subscriber builds a new one.
    pub(crate) async fn release_if_unwatched(&self) {
        let _guard = self.inner.build.lock().await;
        // Under the build lock: a subscriber subscribes before it asks for a build, so it either
        // keeps the frame alive here or finds it empty and builds.
        if self.inner.snapshots.receiver_count() == 0 {
            self.inner.snapshots.send_if_modified(|published| {
                let had = !published.frame.is_empty();
                *published = Published::none();
                had
            });
        }
    }

    /// Returns the JSON of a snapshot taken after this call began, for the REST route.
    ///
    /// A publication that happened meanwhile is reused; otherwise one is built (one build at a
    /// time, off the runtime threads) without being pushed to the stream.
    pub(crate) async fn snapshot_json(&self) -> Option<Bytes> {
        let asked = Instant::now();
        let guard = Arc::clone(&self.inner.build).lock_owned().await;
        {
            let published = self.inner.snapshots.borrow();
            if !published.frame.is_empty()
                && published.taken >= asked
                && published.generation == self.inner.generation.load(Ordering::Acquire)
            {
                return Some(published.json());
            }
        }
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            match serde_json::to_vec(&state.snapshot()) {
                Ok(json) => Some(Bytes::from(json)),
                Err(error) => {
                    tracing::error!(%error, "cannot serialize a snapshot");
                    None
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// How long the publisher should wait to coalesce changes: longer when snapshots are
    /// costly, so that a stream of registrations spends at most about a third of a core on
    /// snapshots, never less than `floor` (small fleets keep their quick updates).
    pub(crate) fn coalesce_delay(&self, floor: Duration) -> Duration {
        let cost = self.inner.metrics.snapshot_build();
        (cost * 2).clamp(floor, MAX_COALESCE.max(floor))
    }

    fn satisfies(&self, need: Need) -> bool {
        let published = self.inner.snapshots.borrow();
        let current = !published.frame.is_empty()
            && published.generation == self.inner.generation.load(Ordering::Acquire);
        match need {
            Need::New => false,
            Need::Current => current,
            Need::Fresh => current && published.taken.elapsed() < self.inner.snapshot_interval,
        }
    }

    /// Takes and serializes one snapshot; blocking, so it runs on the blocking pool.
    fn build(&self) -> Option<Published> {
        // Read before taking the snapshot, so the snapshot holds at least this generation.
        let generation = self.inner.generation.load(Ordering::Acquire);
        let taken = Instant::now();
        match sse::frame("heartbeat", &self.snapshot()) {
            Ok(frame) => Some(Published {
                frame,
                generation,
                taken,
            }),
            Err(error) => {
                tracing::error!(%error, "cannot serialize a snapshot");
                None
            }
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
