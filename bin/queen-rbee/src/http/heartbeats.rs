//! `POST /v1/worker-heartbeat` and `POST /v1/hive-heartbeat`: the hot path.

use axum::{Json, extract::State};
use heartbeat_registry::RegistryError;
use shared_contract::{HeartbeatAck, HeartbeatBody as _};
use tracing::debug;

use crate::{
    error::{ApiError, AppJson},
    kinds::Registered,
    state::AppState,
};

/// Decodes, validates, records one heartbeat and acknowledges it with the fleet's pace.
///
/// Deliberately lean: one short registry lock, and the change log only when something material
/// changed; no serializing, no waiting on anything.
pub(super) async fn ingest<T: Registered>(
    State(state): State<AppState>,
    body: Result<AppJson<T::Body>, ApiError>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    let result = accept::<T>(&state, body);
    match &result {
        Ok(_) => state.metrics().heartbeat_received(T::KIND),
        Err(error) => {
            state.metrics().heartbeat_rejected(T::KIND, error.code());
            debug!(kind = %T::KIND, code = error.code().as_str(), %error, "heartbeat rejected");
        }
    }
    result.map(Json)
}

fn accept<T: Registered>(
    state: &AppState,
    body: Result<AppJson<T::Body>, ApiError>,
) -> Result<HeartbeatAck, ApiError> {
    let (payload, sent_at) = body?.0.into_parts();
    payload.validate()?;
    let ack = HeartbeatAck::ok(T::KIND, payload.id(), state.interval_ms());
    state
        .fleet()
        .ingest(payload, sent_at)
        .map_err(|e| match e {
            RegistryError::Full { max_entries } => ApiError::RegistryFull {
                kind: T::KIND,
                max_entries,
            },
            RegistryError::InvalidId(e) => ApiError::Validation(e),
        })?;
    Ok(ack)
}
