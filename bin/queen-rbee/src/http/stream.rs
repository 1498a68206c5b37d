//! `GET /v1/heartbeats/snapshot` and the Server-Sent Events stream.

use std::sync::Arc;

use axum::{
    Json,
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use hive_contract::HiveInfo;
use shared_contract::Snapshot;
use worker_contract::WorkerInfo;

use crate::{sse, state::AppState};

/// Returns a snapshot taken now.
pub(super) async fn snapshot(
    State(state): State<AppState>,
) -> Json<Snapshot<Arc<WorkerInfo>, Arc<HiveInfo>>> {
    Json(state.snapshot())
}

/// Streams snapshots and transitions as Server-Sent Events; the frames are shared, not copied.
pub(super) async fn stream(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(sse::subscribe(&state)),
    )
        .into_response()
}
