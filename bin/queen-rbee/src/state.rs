//! The queen's shared state in two parts: the fleet (registries and change log) and the
//! streams that publish it, plus metrics and settings. Handlers use verbs, never fields.

use std::{sync::Arc, time::Duration};

use fleet_store::Store;
use heartbeat_registry::RegistryConfig;
use tokio_util::sync::CancellationToken;

use crate::{
    changelog::History, cluster::Clustered, config::Token, fleet::Fleet, http::CorsPolicy,
    metrics::Metrics, summary::Summaries, watch::Syncs,
};

/// Everything the handlers and background tasks share; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    fleet: Fleet,
    /// The kept state; `None` with `--ephemeral` and in a cluster.
    store: Option<Arc<Store>>,
    /// The cluster this queen is part of, if any.
    cluster: Option<Arc<Clustered>>,
    streams: Streams,
    metrics: Arc<Metrics>,
    settings: Settings,
    /// Cancelled on shutdown; ends every open stream.
    shutdown: CancellationToken,
}

/// What the streams share between subscribers.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    summaries: Summaries,
    syncs: Syncs,
}

impl Streams {
    /// The summary stream's state.
    pub(crate) fn summaries(&self) -> &Summaries {
        &self.summaries
    }

    /// The watch stream's built `sync` events.
    pub(crate) fn syncs(&self) -> &Syncs {
        &self.syncs
    }
}

/// Settings the handlers read.
#[derive(Debug)]
struct Settings {
    token: Option<Token>,
    interval_ms: u64,
    snapshot_interval: Duration,
    cors: CorsPolicy,
}

impl AppState {
    /// Builds the state for `config` with nothing kept on disk and a new epoch; `shutdown` ends
    /// open streams when cancelled.
    pub fn new(config: &crate::Config, shutdown: CancellationToken) -> Self {
        Self::build(
            config,
            shutdown,
            new_epoch(),
            0,
            None,
            None,
            Arc::new(Metrics::default()),
        )
    }

    /// Builds the state with a change log of `epoch` continuing after `revision`, writing to
    /// `store` when there is one.
    pub(crate) fn build(
        config: &crate::Config,
        shutdown: CancellationToken,
        epoch: String,
        revision: u64,
        store: Option<Arc<Store>>,
        cluster: Option<Arc<Clustered>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let registry = RegistryConfig {
            timeout: config.heartbeat_timeout,
            retention: config.retention,
            max_entries: config.max_entries,
            usage_interval: config.snapshot_interval,
        };
        let history = History {
            revisions: config.watch_history,
            age: config.watch_history_age,
        };
        Self {
            shared: Arc::new(Shared {
                fleet: Fleet::new(registry, history, epoch, revision, Arc::clone(&metrics)),
                store,
                cluster,
                streams: Streams::default(),
                metrics,
                settings: Settings {
                    token: config.token.clone(),
                    interval_ms: u64::try_from(config.heartbeat_interval.as_millis())
                        .unwrap_or(u64::MAX),
                    snapshot_interval: config.snapshot_interval,
                    cors: CorsPolicy::new(&config.cors_origins),
                },
                shutdown,
            }),
        }
    }

    /// The registries and the change log.
    pub(crate) fn fleet(&self) -> &Fleet {
        &self.shared.fleet
    }

    /// The kept state, unless the queen is ephemeral.
    pub(crate) fn store(&self) -> Option<&Arc<Store>> {
        self.shared.store.as_ref()
    }

    /// The cluster, when the queen runs in one.
    pub(crate) fn cluster(&self) -> Option<&Arc<Clustered>> {
        self.shared.cluster.as_ref()
    }

    /// Whether this queen judges liveness: always alone, only as the leader in a cluster.
    pub(crate) fn judges(&self) -> bool {
        self.shared.cluster.as_ref().is_none_or(|c| c.leads())
    }

    /// Makes the expiry task look at the registries now.
    pub(crate) fn wake_expiry(&self) {
        self.shared.fleet.wake_expiry();
    }

    /// The streams' shared state.
    pub(crate) fn streams(&self) -> &Streams {
        &self.shared.streams
    }

    /// The queen's metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The bearer token every guarded route requires, if any.
    pub(crate) fn token(&self) -> Option<&Token> {
        self.shared.settings.token.as_ref()
    }

    /// The CORS policy.
    pub(crate) fn cors(&self) -> &CorsPolicy {
        &self.shared.settings.cors
    }

    /// The heartbeat interval the queen asks of senders, in milliseconds.
    pub(crate) fn interval_ms(&self) -> u64 {
        self.shared.settings.interval_ms
    }

    /// The summary stream's periodic interval.
    pub(crate) fn snapshot_interval(&self) -> Duration {
        self.shared.settings.snapshot_interval
    }

    /// Cancelled when the queen shuts down.
    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.shared.shutdown
    }
}

/// A new epoch: random, so that two runs of the queen never share one.
pub(crate) fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}
