//! `POST /v1/worker-heartbeat` and `POST /v1/hive-heartbeat`: the hot path.

use std::fmt::Write as _;

use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use heartbeat_registry::RegistryError;
use shared_contract::{Heartbeat, HeartbeatBody, Kind};
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
) -> Result<Ack, ApiError>
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
    result
}

/// The `HeartbeatAck` body, written directly rather than through `format!` and serde: three
/// allocations and a serializer pass less per heartbeat (see BENCHMARKS.md). The id has passed
/// validation (`[A-Za-z0-9._:-]`), so it needs no JSON escaping; a test pins the bytes to
/// what serde writes for `HeartbeatAck::ok`.
pub(super) struct Ack(String);

impl Ack {
    fn new(kind: Kind, id: &str, next_heartbeat_ms: u64) -> Self {
        let mut body = String::with_capacity(96 + id.len());
        let _ = write!(
            body,
            r#"{{"status":"ok","message":"heartbeat received from {kind} {id}","next_heartbeat_ms":{next_heartbeat_ms}}}"#
        );
        Self(body)
    }
}

impl IntoResponse for Ack {
    fn into_response(self) -> Response {
        let json = HeaderValue::from_static("application/json");
        ([(header::CONTENT_TYPE, json)], self.0).into_response()
    }
}

fn accept<B>(state: &AppState, body: Result<AppJson<B>, ApiError>) -> Result<Ack, ApiError>
where
    B: HeartbeatBody,
    B::Payload: Registered,
{
    let kind = <B::Payload as shared_contract::Kinded>::KIND;
    let (payload, sent_at) = body?.0.into_parts();
    payload.validate()?;
    let ack = Ack::new(kind, payload.id(), state.inner.interval_ms);
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

#[cfg(test)]
mod tests {
    use shared_contract::HeartbeatAck;

    use super::*;

    #[test]
    fn the_written_ack_is_what_serde_writes() {
        for (kind, id) in [(Kind::Worker, "gpu0-llama.a:1_b"), (Kind::Hive, "h")] {
            let expected = serde_json::to_string(&HeartbeatAck::ok(kind, id, 5000)).unwrap();
            assert_eq!(Ack::new(kind, id, 5000).0, expected);
        }
    }
}
