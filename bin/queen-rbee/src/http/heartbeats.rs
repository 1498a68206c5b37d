//! `POST /v1/worker-heartbeat` and `POST /v1/hive-heartbeat`: the hot path.

use axum::{Json, extract::State};
use chrono::Utc;
use heartbeat_registry::RegistryError;
use shared_contract::{Heartbeat, HeartbeatAck, HeartbeatBody};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::{
    error::{ApiError, AppJson},
    state::{AppState, Registered},
};

/// Decodes, validates, records one heartbeat and acknowledges it with the fleet's pace.
///
/// Deliberately lean: one short registry lock, no snapshot work, no logging unless something
/// changed in a way an operator must hear about.
pub(super) async fn ingest<B>(
    State(state): State<AppState>,
    body: Result<AppJson<B>, ApiError>,
) -> Result<Json<HeartbeatAck>, ApiError>
where
    B: HeartbeatBody,
    B::Payload: Registered,
{
    let kind = <B::Payload as shared_contract::Kinded>::KIND;
    let inner = &state.inner;
    let result = accept::<B>(&state, body);
    match &result {
        Ok(_) => inner.metrics.heartbeat_received(kind),
        Err(error) => {
            inner.metrics.heartbeat_rejected(kind, error.code());
            debug!(%kind, code = error.code().as_str(), %error, "heartbeat rejected");
        }
    }
    result.map(Json)
}

fn accept<B>(state: &AppState, body: Result<AppJson<B>, ApiError>) -> Result<HeartbeatAck, ApiError>
where
    B: HeartbeatBody,
    B::Payload: Registered,
{
    let kind = <B::Payload as shared_contract::Kinded>::KIND;
    let (payload, sent_at) = body?.0.into_parts();
    payload.validate()?;
    let ack = HeartbeatAck::ok(kind, payload.id(), state.inner.interval_ms);
    let registry = B::Payload::registry(&state.inner);
    let upsert = registry
        .upsert(payload, sent_at, Instant::now(), Utc::now())
        .map_err(|e| match e {
            RegistryError::Full { max_entries } => ApiError::RegistryFull { kind, max_entries },
            RegistryError::InvalidId(e) => ApiError::Validation(e),
        })?;
    if upsert.conflict_started {
        if let Some(t) = &upsert.transition {
            warn!(%kind, id = %t.id, "id conflict: heartbeats from two incarnations under one id");
        }
    }
    if let Some(transition) = upsert.transition {
        state.record(transition);
        // The entry may now be due earlier than the expiry task planned for.
        state.inner.expiry_wake.notify_one();
    }
    if upsert.changed {
        state.notify_changed();
    }
    Ok(ack)
}
