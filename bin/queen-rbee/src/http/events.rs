//! `GET /v1/events?limit=N&since=T&until=T&kind=K&id=ID`: transitions, oldest first, from the
//! kept history (SPEC section 10) or, with `--ephemeral`, from the last 1000 held in memory.

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::header,
    response::{IntoResponse, Response},
};
use fleet_store::EventQuery;
use serde::Deserialize;
use shared_contract::{Kind, parse_timestamp};
use tracing::error;

use crate::{error::ApiError, events::EVENTS_KEPT, state::AppState};

/// How many transitions are returned without `limit`.
const DEFAULT_LIMIT: usize = 100;

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    limit: Option<String>,
    since: Option<String>,
    until: Option<String>,
    kind: Option<String>,
    id: Option<String>,
}

/// Returns transitions matching the filters, oldest first: with `since` the first `limit` from
/// that time on (to page forward), without it the newest `limit`.
pub(super) async fn recent(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidQuery(e.body_text()))?;
    let query = parse(query)?;
    // Whatever the store has not committed is still in memory: read the committed revision
    // first, so that every transition is in one of the two answers (duplicates merge below).
    let mut found: BTreeMap<u64, String> = BTreeMap::new();
    let floor = match state.store() {
        Some(store) => {
            let floor = store.committed();
            let store = std::sync::Arc::clone(store);
            let db_query = query.clone();
            let rows = tokio::task::spawn_blocking(move || store.events(&db_query))
                .await
                .map_err(|_| ApiError::Internal)?
                .map_err(|e| {
                    error!(error = %e, "cannot read the kept history");
                    ApiError::Internal
                })?;
            found.extend(rows);
            floor
        }
        None => 0,
    };
    for (revision, transition) in state.fleet().transitions_after(&query, floor) {
        if let Ok(json) = serde_json::to_string(&transition) {
            found.entry(revision).or_insert(json);
        }
    }
    let skip = if query.since_us.is_some() {
        0
    } else {
        found.len().saturating_sub(query.limit)
    };
    let mut body = String::with_capacity(2 + found.len() * 160);
    body.push('[');
    for (i, json) in found.values().skip(skip).take(query.limit).enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(json);
    }
    body.push(']');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn parse(query: EventsQuery) -> Result<EventQuery, ApiError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s.parse::<usize>().map_err(|_| {
            ApiError::InvalidQuery(format!("limit must be an integer from 0 to {EVENTS_KEPT}"))
        })?,
    };
    let time = |name: &str, value: Option<String>| {
        value
            .map(|v| {
                parse_timestamp(&v)
                    .map(|t| t.timestamp_micros())
                    .map_err(|_| ApiError::InvalidQuery(format!("{name} must be an RFC 3339 time")))
            })
            .transpose()
    };
    let kind = super::kind_param(query.kind.as_deref())?.map(Kind::as_str);
    if query
        .id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.chars().count() > 128)
    {
        return Err(ApiError::InvalidQuery(
            "id must be 1 to 128 characters".to_owned(),
        ));
    }
    Ok(EventQuery {
        since_us: time("since", query.since)?,
        until_us: time("until", query.until)?,
        kind,
        id: query.id,
        limit: limit.min(EVENTS_KEPT),
    })
}
