//! `GET /v1/heartbeats/snapshot`, the summary stream and the watch stream.

use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::{
    error::ApiError,
    fleet::FleetView,
    sse,
    state::AppState,
    summary::{self, Figures, Summary},
    watch::{self, EventId},
};

/// Returns the summary, every entry, and the epoch and revision they show.
pub(super) async fn snapshot(State(state): State<AppState>) -> Result<Response, ApiError> {
    let worker_state = state.clone();
    let json = tokio::task::spawn_blocking(move || {
        let fleet = worker_state.fleet();
        let view = fleet.view();
        let seq = worker_state.streams().summaries().next_seq();
        snapshot_json(fleet.log().epoch(), seq, &view)
    })
    .await
    .map_err(|_| ApiError::Internal)?
    .map_err(|error| {
        tracing::error!(%error, "cannot serialize a snapshot");
        ApiError::Internal
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// Serializes a snapshot: the summary's fields, then `epoch`, `revision` and every kind's entries.
fn snapshot_json(epoch: &str, seq: u64, view: &FleetView) -> serde_json::Result<Vec<u8>> {
    use serde::{Serializer as _, ser::SerializeMap as _};
    let figures = Figures::of_view(view);
    let summary = Summary {
        seq,
        revision: view.revision,
        figures: &figures,
    };
    // The summary's fields through serde, the entries written straight after them.
    let mut out = Vec::with_capacity(4096);
    {
        let mut serializer = serde_json::Serializer::new(&mut out);
        let mut map = serializer.serialize_map(None)?;
        summary.write_fields(&mut map)?;
        map.serialize_entry("epoch", epoch)?;
        map.end()?;
    }
    // Reopen the object: drop the closing brace and append the entries.
    out.pop();
    for kind in &view.kinds {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(kind.plural.as_bytes());
        out.extend_from_slice(b"\":");
        kind.write_entries(&mut out)?;
    }
    out.push(b'}');
    Ok(out)
}

/// The seed's stream: summaries and transitions.
pub(super) async fn summary(State(state): State<AppState>) -> Response {
    sse::response(summary::subscribe(&state))
}

#[derive(Deserialize)]
pub(super) struct WatchQuery {
    kind: Option<String>,
    since: Option<String>,
}

/// List-then-watch: a `sync`, then every change, resumable by event id.
pub(super) async fn watch(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<WatchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidQuery(e.body_text()))?;
    let kind = super::kind_param(query.kind.as_deref())?;
    let since = query
        .since
        .as_deref()
        .map(|s| {
            s.parse::<EventId>()
                .map_err(|e| ApiError::InvalidQuery(format!("since: {e}")))
        })
        .transpose()?;
    // A browser reconnects to its original URL, `?since=` included, and sends the id it last
    // saw in the header: the header wins. A malformed header simply gives a `sync`.
    let resume = match headers.get("last-event-id") {
        Some(value) => value.to_str().ok().and_then(|s| s.parse::<EventId>().ok()),
        None => since,
    };
    let start = watch::start_for(state.fleet(), resume.as_ref());
    Ok(sse::response(watch::subscribe(&state, kind, start)))
}
