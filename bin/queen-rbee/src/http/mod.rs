//! The HTTP surface: every route, behind one gate (CORS, token, metrics) and the body limit.

mod entries;
mod events;
mod gate;
mod heartbeats;
mod openapi;
mod ops;
mod stream;

pub(crate) use gate::CorsPolicy;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use hive_contract::{HiveHeartbeat, HiveInfo};
use tower::ServiceBuilder;
use worker_contract::{WorkerHeartbeat, WorkerInfo};

use crate::{error::ApiError, state::AppState};

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Builds the queen's router over `state`, with every route of the contract.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(ops::dashboard))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(openapi::serve))
        .route(
            "/v1/worker-heartbeat",
            post(heartbeats::ingest::<WorkerHeartbeat>),
        )
        .route(
            "/v1/hive-heartbeat",
            post(heartbeats::ingest::<HiveHeartbeat>),
        )
        .route("/v1/workers", get(entries::list::<WorkerInfo>))
        .route(
            "/v1/workers/{id}",
            get(entries::get::<WorkerInfo>).delete(entries::delete::<WorkerInfo>),
        )
        .route("/v1/hives", get(entries::list::<HiveInfo>))
        .route(
            "/v1/hives/{id}",
            get(entries::get::<HiveInfo>).delete(entries::delete::<HiveInfo>),
        )
        .route("/v1/heartbeats/snapshot", get(stream::snapshot))
        .route("/v1/heartbeats/stream", get(stream::stream))
        .route("/v1/events", get(events::recent))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One composite layer, so each request passes one boxed service instead of one per layer.
        .layer(
            ServiceBuilder::new()
                .layer(gate::GateLayer(state.clone()))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
