//! The process shell both sender daemons share: logging, binding, signals, their own
//! `GET /health` and `GET /v1/info` API, and a shutdown bounded by the 2 s the contract allows.

use std::{io::IsTerminal as _, net::SocketAddr, time::Duration};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use reqwest::Client;
use serde_json::json;
use shared_contract::HeartbeatBody;
use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;
use tracing_subscriber::EnvFilter;

use crate::{PayloadSource, SenderConfig, SenderHandle, cli::exit_with_config_error};

/// How long after shutdown starts a daemon may take in total; the contract allows 2 s.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(1600);
/// How long open API connections get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_millis(500);

/// The payload type a source produces.
type PayloadOf<S> = <<S as PayloadSource>::Body as HeartbeatBody>::Payload;

/// Starts logging to stderr, filtered by `RUST_LOG` or else at info for `crate_name` and the sender.
pub fn init_tracing(crate_name: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{crate_name}=info,heartbeat_sender=info")));
    tracing_subscriber::fmt()
        // A closed stderr must not panic the logger (and with it the task that handles signals).
        .log_internal_errors(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Binds `addr`, installs the SIGINT/SIGTERM handlers and logs `listening on http://IP:PORT`.
///
/// Exits the process with a one-line message when any of that fails: a daemon that cannot
/// bind or catch signals has nothing useful to do.
pub async fn bind_or_exit(addr: SocketAddr) -> (TcpListener, CancellationToken) {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => exit_with_config_error(&format!("failed to bind {addr}: {e}")),
    };
    let shutdown = CancellationToken::new();
    match crate::shutdown_signal(shutdown.clone()) {
        Ok(signals) => drop(tokio::spawn(signals)),
        Err(e) => exit_with_config_error(&format!("failed to install signal handlers: {e}")),
    }
    match listener.local_addr() {
        Ok(addr) => tracing::info!("listening on http://{addr}"),
        Err(e) => exit_with_config_error(&format!("failed to read the bound address: {e}")),
    }
    (listener, shutdown)
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
    tracker.spawn(crate::run(
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
