//! `GET /v1/events?limit=N`: the most recent transitions, newest last.

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use serde::Deserialize;
use shared_contract::Transition;

use crate::{error::ApiError, events::EVENTS_KEPT, state::AppState};

/// How many transitions are returned without `limit`.
const DEFAULT_LIMIT: usize = 100;

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    limit: Option<String>,
}

/// Returns up to `limit` recent transitions (default 100; more than 1000 are never kept).
pub(super) async fn recent(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Vec<Transition>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidQuery(e.body_text()))?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s.parse::<usize>().map_err(|_| {
            ApiError::InvalidQuery(format!("limit must be an integer from 0 to {EVENTS_KEPT}"))
        })?,
    };
    Ok(Json(
        state.fleet().recent_transitions(limit.min(EVENTS_KEPT)),
    ))
}
