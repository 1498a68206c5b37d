//! `GET /v1/workers`, `GET /v1/hives`, and one entry by id (`GET`, `DELETE`).

use std::sync::Arc;

use axum::{
    Json,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::StatusCode,
};
use heartbeat_registry::Filter;
use serde::Deserialize;
use shared_contract::{Entry, Kinded};

use crate::{error::ApiError, kinds::Registered, state::AppState};

#[derive(Deserialize)]
pub(super) struct ListQuery {
    state: Option<String>,
}

/// Lists entries sorted by id, filtered by `?state=all|online|available` (default `all`).
pub(super) async fn list<T: Registered>(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Entry<Arc<T>>>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidQuery(e.body_text()))?;
    let filter = match query.state.as_deref() {
        None => Filter::All,
        Some(s) => s.parse().map_err(|e: heartbeat_registry::UnknownFilter| {
            ApiError::InvalidQuery(e.to_string())
        })?,
    };
    Ok(Json(state.fleet().list::<T>(filter)))
}

/// Returns one entry, or 404.
pub(super) async fn get<T: Registered>(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Entry<Arc<T>>>, ApiError> {
    let id = path_id::<T>(id)?;
    state
        .fleet()
        .get::<T>(&id)
        .map(Json)
        .ok_or_else(|| unknown::<T>(&id))
}

/// Removes one entry at once, recording a `removed` transition; 404 if unknown.
pub(super) async fn delete<T: Registered>(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id::<T>(id)?;
    state
        .fleet()
        .remove::<T>(&id)
        .ok_or_else(|| unknown::<T>(&id))?;
    Ok(StatusCode::NO_CONTENT)
}

fn path_id<T: Kinded>(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::NotFound(format!("no such {}", T::KIND)))
}

fn unknown<T: Kinded>(id: &str) -> ApiError {
    ApiError::NotFound(format!("{} {id:?} not found", T::KIND))
}
