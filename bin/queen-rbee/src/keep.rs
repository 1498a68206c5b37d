//! The kept state around the queen's life: opened before it binds, restored into the fleet,
//! written behind the change log while it runs (see `tasks::publish`), closed after it stops.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use fleet_store::{Kept, Store, StoreConfig};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::{
    Config,
    metrics::Metrics,
    state::{AppState, new_epoch},
    tasks,
};

/// How long a graceful stop keeps retrying a failing final write.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The kept state as opened at start: the store and what it held, or nothing (`--ephemeral`).
#[derive(Debug)]
pub struct Storage {
    opened: Option<(Arc<Store>, Kept)>,
    metrics: Arc<Metrics>,
}

impl Storage {
    /// Opens the data directory `config` names (nothing with `--ephemeral`). Fails with a
    /// one-line message naming the path when it cannot be created, locked or read, or holds a
    /// damaged database or one of a newer schema.
    pub fn open(config: &Config) -> anyhow::Result<Storage> {
        let metrics = Arc::new(Metrics::default());
        let Some(dir) = config.store_dir() else {
            return Ok(Storage {
                opened: None,
                metrics,
            });
        };
        let store_config = StoreConfig {
            dir,
            history_retention: config.history_retention,
        };
        let (store, kept) = Store::open(&store_config, Arc::clone(&metrics) as _)?;
        Ok(Storage {
            opened: Some((Arc::new(store), kept)),
            metrics,
        })
    }

    /// The metrics the queen's state will use (a clustered queen opens no store).
    pub(crate) fn into_metrics(self) -> Arc<Metrics> {
        self.metrics
    }

    /// Builds the queen's state: the epoch and revision continue after a clean stop, kept
    /// entries come back (SPEC section 10), and the store is told the epoch it now belongs to.
    pub(crate) fn into_state(
        self,
        config: &Config,
        shutdown: CancellationToken,
    ) -> anyhow::Result<AppState> {
        let Some((store, kept)) = self.opened else {
            return Ok(AppState::build(
                config,
                shutdown,
                new_epoch(),
                0,
                None,
                None,
                self.metrics,
            ));
        };
        let path = store.path().to_owned();
        let epoch = match kept.epoch {
            Some(epoch) if kept.clean => epoch,
            Some(_) => {
                // The last revisions before a kill may have reached watchers but not the disk;
                // a new epoch makes every watcher sync once instead of resuming past them.
                info!(path = %path.display(), "the last queen on this database did not stop gracefully; watchers will sync once");
                new_epoch()
            }
            None => new_epoch(),
        };
        let state = AppState::build(
            config,
            shutdown,
            epoch.clone(),
            kept.revision,
            Some(Arc::clone(&store)),
            None,
            self.metrics,
        );
        let restored = state
            .fleet()
            .restore(&kept.entries)
            .with_context(|| format!("database {} is damaged", path.display()))?;
        store.begin(&epoch, kept.revision)?;
        info!(
            path = %path.display(),
            entries = restored,
            epoch = %epoch,
            revision = kept.revision,
            "kept state opened"
        );
        Ok(state)
    }
}

/// Hands the store the last changes and every entry's latest volatile fields, and marks the
/// stop as clean. Runs after the server and the background tasks have stopped, so nothing
/// changes meanwhile.
pub(crate) async fn close(state: &AppState) {
    let Some(store) = state.store() else {
        return;
    };
    tasks::publish(state);
    let rows = state.fleet().kept_rows();
    let store = Arc::clone(store);
    let closed = tokio::task::spawn_blocking(move || {
        let clean = store.close(rows, CLOSE_GRACE);
        (clean, store.path().display().to_string())
    })
    .await;
    match closed {
        Ok((true, path)) => info!(%path, "kept state written"),
        Ok((false, path)) => error!(%path, "the kept state could not be written completely"),
        Err(error) => error!(%error, "the kept state's writer failed"),
    }
}
