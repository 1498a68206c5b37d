//! `POST /v1/worker-heartbeat` and `POST /v1/hive-heartbeat`: the hot path.

use std::fmt::Write as _;

use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use heartbeat_registry::RegistryError;
use shared_contract::{HeartbeatBody as _, Kind};
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
) -> Result<Ack, ApiError> {
    let result = accept::<T>(&state, body);
    match &result {
        Ok(_) => state.metrics().heartbeat_received(T::KIND),
        Err(error) => {
            state.metrics().heartbeat_rejected(T::KIND, error.code());
            debug!(kind = %T::KIND, code = error.code().as_str(), %error, "heartbeat rejected");
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

fn accept<T: Registered>(
    state: &AppState,
    body: Result<AppJson<T::Body>, ApiError>,
) -> Result<Ack, ApiError> {
    // In a cluster only the leader records heartbeats; the others point at it.
    let clustered = state.cluster();
    if let Some(clustered) = clustered
        && !clustered.leads()
    {
        return Err(not_leader(clustered, T::INGEST_PATH));
    }
    let (payload, sent_at) = body?.0.into_parts();
    payload.validate()?;
    let ack = Ack::new(T::KIND, payload.id(), state.interval_ms());
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
    // A lease that lapsed while this heartbeat was recorded: the change is never committed
    // (etcd fences it), so it must not be acknowledged either.
    if let Some(clustered) = clustered
        && !clustered.leads()
    {
        return Err(not_leader(clustered, T::INGEST_PATH));
    }
    Ok(ack)
}

/// `307` to the leader, or `503` while none is known.
fn not_leader(clustered: &crate::cluster::Clustered, path: &str) -> ApiError {
    match clustered.leader_elsewhere() {
        Some(leader) => ApiError::NotLeader {
            location: format!("{leader}{path}"),
        },
        None => ApiError::NoLeader,
    }
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
