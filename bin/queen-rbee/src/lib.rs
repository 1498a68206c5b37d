//! queen-rbee: receives heartbeats, keeps the hive and worker registries, serves REST, SSE and
//! the dashboard.
//!
//! `main` parses [`Config`], binds, and calls [`run`]; tests build a [`router`] or call [`run`]
//! with a port-0 listener.

mod changelog;
mod cluster;
mod config;
mod error;
mod events;
mod fleet;
mod http;
mod keep;
mod kinds;
mod metrics;
mod serve;
mod sse;
mod state;
mod summary;
mod tasks;
mod watch;

pub use config::{Config, ConfigError, Token};
pub use error::{ApiError, AppJson};
pub use http::{MAX_BODY_BYTES, router};
pub use keep::Storage;
pub use state::AppState;

use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

/// How long open connections and tasks may take to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(3);

/// Opens the kept state, then serves the queen on `listener` until `shutdown` is cancelled,
/// then drains for a bounded time and writes what the store still lacks.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let storage = Storage::open(&config)?;
    run_with(config, storage, listener, shutdown).await
}

/// [`run`] with the kept state already opened (`main` opens it before binding).
pub async fn run_with(
    config: Config,
    storage: Storage,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let tasks = TaskTracker::new();
    let state = if config.clustered() {
        let advertise_url = config.advertised(listener.local_addr()?);
        let (state, events) = cluster::join(
            &config,
            advertise_url,
            shutdown.clone(),
            storage.into_metrics(),
        )
        .await?;
        tasks.spawn(cluster::follow(state.clone(), events));
        tasks.spawn(cluster::release(state.clone()));
        state
    } else {
        storage.into_state(&config, shutdown.clone())?
    };
    tasks.spawn(tasks::publish_changes(state.clone()));
    tasks.spawn(tasks::publish_summaries(state.clone()));
    tasks.spawn(tasks::expire_entries(state.clone()));
    tasks.close();

    let server = serve::serve(listener, router(state.clone()), shutdown.clone());
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = shutdown.cancelled() => match tokio::time::timeout(DRAIN, &mut server).await {
            Ok(served) => served,
            Err(_) => {
                warn!(grace = ?DRAIN, "connections still open after the grace period; closing them");
                Ok(())
            }
        },
    };
    // If serving failed on its own, stop the background tasks too.
    shutdown.cancel();
    if tokio::time::timeout(DRAIN, tasks.wait()).await.is_err() {
        warn!(grace = ?DRAIN, "background tasks did not stop in time");
    }
    keep::close(&state).await;
    cluster::close(&state).await;
    served.context("serve http")
}
