//! The ceiling server: the least an axum server must do to ingest a heartbeat (decode it, answer 200).
//!
//! The queen is compared against it under identical load, so the ratio shows what the queen's own work costs.
//! It runs as a mode of this executable, so it is built with the workspace's release profile (fat LTO,
//! one codegen unit), the same as the queen and as `../shared/bench/ingest-ceiling`.

use std::{io::Write, net::SocketAddr};

use anyhow::Context as _;
use axum::{Json, Router, routing::post};
use shared_contract::{HeartbeatAck, Kind};
use worker_contract::WorkerHeartbeat;

use crate::payload::HEARTBEAT_PATH;

/// Returns the ceiling router: only `POST /v1/worker-heartbeat`.
pub fn router() -> Router {
    Router::new().route(HEARTBEAT_PATH, post(ingest))
}

/// Binds `bind`, logs `listening on http://IP:PORT` and serves until killed.
pub async fn serve(bind: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("failed to bind {bind}"))?;
    let addr = listener.local_addr().context("read bound address")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ceiling server listening on http://{addr}").context("write to stdout")?;
    out.flush().context("flush stdout")?;
    drop(out);
    axum::serve(listener, router()).await.context("serve")
}

async fn ingest(Json(hb): Json<WorkerHeartbeat>) -> Json<HeartbeatAck> {
    // The same answer the queen gives, so both targets send the same bytes back.
    Json(HeartbeatAck::ok(Kind::Worker, &hb.worker.id, 5000))
}
