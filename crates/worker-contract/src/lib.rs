//! The worker heartbeat contract: what an `llm-worker` tells the queen about itself.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};
use shared_contract::{
    Health, Heartbeat, HeartbeatBody, Kind, Kinded, Status, Timestamp, ValidationError, check_id,
    check_optional_text, check_text,
};
use utoipa::ToSchema;

/// The longest model id accepted.
pub const MAX_MODEL_ID_LEN: usize = 256;
/// The longest device name accepted.
pub const MAX_DEVICE_LEN: usize = 64;
/// The longest health reason, implementation or version string accepted.
pub const MAX_TEXT_LEN: usize = 1024;

/// `POST /v1/worker-heartbeat` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerHeartbeat {
    /// The worker as it describes itself.
    pub worker: WorkerInfo,
    /// The sender's clock: informative only, never used for liveness.
    #[schema(value_type = String, format = DateTime)]
    #[serde(deserialize_with = "shared_contract::deserialize_timestamp")]
    pub timestamp: Timestamp,
}

/// One worker process serving one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkerInfo {
    /// Unique worker id: 1–128 characters of `[A-Za-z0-9._:-]`.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub id: String,
    /// The hive (machine) this worker runs on; same rule as `id`.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub hive_id: String,
    /// The loaded model, 1–256 characters.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub model_id: String,
    /// The device the model runs on: `cpu`, `cpu:0`, `cuda:N`, `metal:N`, ...
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub device: String,
    /// The worker's own API port, 1–65535.
    #[schema(minimum = 1, maximum = 65535)]
    pub port: u16,
    /// Lifecycle status.
    pub status: Status,
    /// Health; `healthy` when omitted.
    #[serde(default)]
    pub health: Health,
    /// When the process started; a newer value means a restart.
    #[schema(value_type = String, format = DateTime)]
    #[serde(deserialize_with = "shared_contract::deserialize_timestamp")]
    pub started_at: Timestamp,
    /// The implementation's name, e.g. `llm-worker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub implementation: Option<String>,
    /// The implementation's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub version: Option<String>,
}

impl Kinded for WorkerInfo {
    const KIND: Kind = Kind::Worker;
}

impl Heartbeat for WorkerInfo {
    fn id(&self) -> &str {
        &self.id
    }

    fn started_at(&self) -> Timestamp {
        self.started_at
    }

    fn status(&self) -> Status {
        self.status
    }

    fn health(&self) -> &Health {
        &self.health
    }

    fn validate(&self) -> Result<(), ValidationError> {
        check_id("worker.id", &self.id)?;
        check_id("worker.hive_id", &self.hive_id)?;
        check_text("worker.model_id", &self.model_id, MAX_MODEL_ID_LEN)?;
        check_text("worker.device", &self.device, MAX_DEVICE_LEN)?;
        if self.port == 0 {
            return Err(ValidationError::new("worker.port", "must be 1-65535"));
        }
        if let Some(reason) = self.health.reason() {
            check_optional_text("worker.health.reason", reason, MAX_TEXT_LEN)?;
        }
        if let Some(s) = &self.implementation {
            check_text("worker.implementation", s, MAX_TEXT_LEN)?;
        }
        if let Some(s) = &self.version {
            check_text("worker.version", s, MAX_TEXT_LEN)?;
        }
        Ok(())
    }
}

impl HeartbeatBody for WorkerHeartbeat {
    type Payload = WorkerInfo;

    fn new(payload: WorkerInfo, timestamp: Timestamp) -> Self {
        Self {
            worker: payload,
            timestamp,
        }
    }

    fn payload(&self) -> &WorkerInfo {
        &self.worker
    }

    fn into_parts(self) -> (WorkerInfo, Timestamp) {
        (self.worker, self.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{ "worker": {
        "id": "gpu0-llama", "hive_id": "studio",
        "model_id": "meta-llama/Llama-3.2-1B-Instruct", "device": "cuda:0", "port": 9301,
        "status": "ready", "health": { "status": "healthy" },
        "started_at": "2026-11-28T15:00:00Z", "implementation": "llm-worker", "version": "0.1.0",
        "future_field": [1, 2] },
      "timestamp": "2026-11-28T16:00:05+01:00" }"#;

    #[test]
    fn spec_example_decodes_and_validates() {
        let hb: WorkerHeartbeat = serde_json::from_str(EXAMPLE).unwrap();
        hb.worker.validate().unwrap();
        assert_eq!(hb.worker.port, 9301);
        assert_eq!(hb.timestamp.to_rfc3339(), "2026-11-28T15:00:05+00:00");
    }

    #[test]
    fn health_defaults_to_healthy() {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        v["worker"].as_object_mut().unwrap().remove("health");
        let hb: WorkerHeartbeat = serde_json::from_value(v).unwrap();
        assert_eq!(hb.worker.health, Health::Healthy);
    }

    #[test]
    fn port_zero_and_bad_ids_fail_validation_not_decoding() {
        let mut hb: WorkerHeartbeat = serde_json::from_str(EXAMPLE).unwrap();
        hb.worker.port = 0;
        assert_eq!(hb.worker.validate().unwrap_err().field, "worker.port");
        hb.worker.port = 1;
        hb.worker.id = "bad id".to_owned();
        assert_eq!(hb.worker.validate().unwrap_err().field, "worker.id");
    }
}
