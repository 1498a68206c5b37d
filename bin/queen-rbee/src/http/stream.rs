//! `GET /v1/heartbeats/snapshot` and the Server-Sent Events stream.

use crate::{error::ApiError, sse, state::AppState};
use axum::{
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

/// Returns a snapshot taken after the request arrived.
pub(super) async fn snapshot(State(state): State<AppState>) -> Result<Response, ApiError> {
    let json = state.snapshot_json().await.ok_or(ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
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
