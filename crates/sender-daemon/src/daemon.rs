//! The process shell both sender daemons share: binding, signals, their own `GET /health` and
//! `GET /v1/info` API, and a shutdown bounded by the 2 s the contract allows.

use std::{io, net::SocketAddr, time::Duration};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use heartbeat_sender::{PayloadSource, SenderConfig, SenderHandle};
use process_kit::Listening;
use reqwest::Client;
use serde_json::json;
use shared_contract::HeartbeatBody;
use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

/// How long after shutdown starts a daemon may take in total; the contract allows 2 s.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(1600);
/// How long open API connections get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_millis(500);

/// The payload type a source produces.
type PayloadOf<S> = <<S as PayloadSource>::Body as HeartbeatBody>::Payload;

/// Why a daemon could not start serving; `main` reports it and exits with a usage error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("failed to bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the bind failed.
        source: io::Error,
    },
    /// The shutdown signal handlers could not be installed.
    #[error("failed to install signal handlers: {0}")]
    Signals(io::Error),
    /// The bound address could not be read back.
    #[error("failed to read the bound address: {0}")]
    LocalAddr(io::Error),
}

/// Binds `addr`, installs the shutdown signal handlers (see [`process_kit::shutdown_signal`])
/// and logs `listening on http://IP:PORT`. The returned token is cancelled when a shutdown
/// signal arrives.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, CancellationToken), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let shutdown = CancellationToken::new();
    process_kit::cancel_on_shutdown_signal(shutdown.clone()).map_err(StartError::Signals)?;
    let bound = listener.local_addr().map_err(StartError::LocalAddr)?;
    tracing::info!("{}", Listening(bound));
    Ok((listener, shutdown))
}

/// Returns the daemon's own API: `GET /health` and `GET /v1/info` (the payload last sent).
pub fn router<S: PayloadSource>(sender: SenderHandle<PayloadOf<S>>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/info", get(info::<S>))
        .with_state(sender)
}

/// Runs the heartbeat loop and the daemon's API on `listener` until `shutdown` is cancelled,
/// then drains both within the shutdown budget. Returns once the final heartbeat went out
/// (or timed out).
pub async fn serve<S: PayloadSource>(
    listener: TcpListener,
    config: SenderConfig,
    client: Client,
    source: S,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    S::Body: Sync,
{
    let sender = SenderHandle::new();
    let tracker = TaskTracker::new();
    tracker.spawn(heartbeat_sender::run(
        config,
        client,
        source,
        sender.clone(),
        shutdown.clone(),
    ));
    tracker.close();

    // The shared accept loop bounds how long a request head may take, so a slowloris client
    // cannot hold a connection open.
    let server = http_serve::serve(
        listener,
        router::<S>(sender),
        shutdown.clone(),
        http_serve::Options::default(),
    );
    let mut server = std::pin::pin!(server);
    // Serving ends on its own only after shutdown (or on an error); otherwise give open
    // connections a short drain once shutdown starts.
    let served = tokio::select! {
        result = &mut server => {
            result?;
            true
        }
        () = shutdown.cancelled() => false,
    };
    let deadline = Instant::now() + SHUTDOWN_BUDGET;
    if !served && tokio::time::timeout(DRAIN, &mut server).await.is_err() {
        warn!("open api connections did not close in time");
    }
    if tokio::time::timeout_at(deadline, tracker.wait())
        .await
        .is_err()
    {
        warn!("heartbeat sender did not stop in time");
    }
    Ok(())
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn info<S: PayloadSource>(
    State(sender): State<SenderHandle<PayloadOf<S>>>,
) -> impl IntoResponse {
    match sender.last_payload() {
        Some(payload) => (StatusCode::OK, Json(json!(payload))),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"code": "starting", "message": "no heartbeat produced yet"}})),
        ),
    }
}
