//! The queen's shared state in two parts: the fleet (registries and change log) and the
//! streams that publish it, plus metrics and settings. Handlers use verbs, never fields.

use std::{sync::Arc, time::Duration};

use heartbeat_registry::RegistryConfig;
use tokio_util::sync::CancellationToken;

use crate::{
    changelog::History, config::Token, fleet::Fleet, http::CorsPolicy, metrics::Metrics,
    summary::Summaries, watch::Syncs,
};

/// Everything the handlers and background tasks share; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    fleet: Fleet,
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
    /// Builds the state for `config`; `shutdown` ends open streams when cancelled.
    pub fn new(config: &crate::Config, shutdown: CancellationToken) -> Self {
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
        let metrics = Arc::new(Metrics::default());
        Self {
            shared: Arc::new(Shared {
                fleet: Fleet::new(registry, history, new_epoch(), Arc::clone(&metrics)),
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
fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}
