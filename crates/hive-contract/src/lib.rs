//! The hive heartbeat contract: what an `rbee-hive` tells the queen about its machine.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};
use shared_contract::{
    Difference, Health, Heartbeat, HeartbeatBody, Kind, Kinded, Status, Timestamp, ValidationError,
    check_id, check_optional_text, check_text,
};
use utoipa::ToSchema;

/// The longest host name accepted (DNS limit).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// The most devices one hive may report.
pub const MAX_DEVICES: usize = 64;
/// The longest free-text field accepted (reasons, names, versions).
pub const MAX_TEXT_LEN: usize = 1024;

/// `POST /v1/hive-heartbeat` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HiveHeartbeat {
    /// The hive as it describes itself.
    pub hive: HiveInfo,
    /// The sender's clock: informative only, never used for liveness.
    #[schema(value_type = String, format = DateTime)]
    #[serde(deserialize_with = "shared_contract::deserialize_timestamp")]
    pub timestamp: Timestamp,
}

/// One machine running `rbee-hive`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HiveInfo {
    /// Unique hive id: 1–128 characters of `[A-Za-z0-9._:-]`.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub id: String,
    /// The machine's host name.
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub hostname: String,
    /// The hive's own API port, 1–65535.
    #[schema(minimum = 1, maximum = 65535)]
    pub port: u16,
    /// Lifecycle status.
    pub status: Status,
    /// Health; `healthy` when omitted.
    #[serde(default)]
    pub health: Health,
    /// When the hive process started; a newer value means a restart.
    #[schema(value_type = String, format = DateTime)]
    #[serde(deserialize_with = "shared_contract::deserialize_timestamp")]
    pub started_at: Timestamp,
    /// Operating system, CPU and memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemInfo>,
    /// Accelerators such as GPUs; empty when the machine has none.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub devices: Vec<DeviceInfo>,
    /// The hive's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub version: Option<String>,
}

/// The machine as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    /// Operating system, e.g. `linux`.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub os: String,
    /// Logical CPU cores.
    #[schema(maximum = 4294967295_u32)]
    pub cpu_cores: u32,
    /// Total memory in bytes.
    #[schema(maximum = 18446744073709551615_u64)]
    pub memory_total_bytes: u64,
    /// Memory available to new processes, in bytes.
    #[schema(maximum = 18446744073709551615_u64)]
    pub memory_available_bytes: u64,
}

/// One accelerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceInfo {
    /// Device id as workers name it, e.g. `cuda:0`.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub id: String,
    /// Product name, e.g. `NVIDIA RTX 4090`.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: String,
    /// Device memory in bytes.
    #[schema(maximum = 18446744073709551615_u64)]
    pub memory_total_bytes: u64,
    /// Device memory in use, in bytes.
    #[schema(maximum = 18446744073709551615_u64)]
    pub memory_used_bytes: u64,
}

impl Kinded for HiveInfo {
    const KIND: Kind = Kind::Hive;
}

impl Heartbeat for HiveInfo {
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
        check_id("hive.id", &self.id)?;
        check_text("hive.hostname", &self.hostname, MAX_HOSTNAME_LEN)?;
        if self.port == 0 {
            return Err(ValidationError::new("hive.port", "must be 1-65535"));
        }
        if let Some(reason) = self.health.reason() {
            check_optional_text("hive.health.reason", reason, MAX_TEXT_LEN)?;
        }
        if let Some(system) = &self.system {
            check_text("hive.system.os", &system.os, MAX_TEXT_LEN)?;
        }
        if self.devices.len() > MAX_DEVICES {
            return Err(ValidationError::new(
                "hive.devices",
                format!("at most {MAX_DEVICES} devices"),
            ));
        }
        for device in &self.devices {
            check_text("hive.devices.id", &device.id, MAX_TEXT_LEN)?;
            check_text("hive.devices.name", &device.name, MAX_TEXT_LEN)?;
        }
        if let Some(s) = &self.version {
            check_text("hive.version", s, MAX_TEXT_LEN)?;
        }
        Ok(())
    }

    fn difference(&self, previous: &Self) -> Difference {
        if self == previous {
            return Difference::None;
        }
        let same_system = match (&self.system, &previous.system) {
            (Some(a), Some(b)) => {
                a.os == b.os
                    && a.cpu_cores == b.cpu_cores
                    && a.memory_total_bytes == b.memory_total_bytes
            }
            (None, None) => true,
            _ => false,
        };
        let same_devices = self.devices.len() == previous.devices.len()
            && self.devices.iter().zip(&previous.devices).all(|(a, b)| {
                a.id == b.id && a.name == b.name && a.memory_total_bytes == b.memory_total_bytes
            });
        let same_rest = self.id == previous.id
            && self.hostname == previous.hostname
            && self.port == previous.port
            && self.status == previous.status
            && self.health == previous.health
            && self.started_at == previous.started_at
            && self.version == previous.version;
        if same_system && same_devices && same_rest {
            Difference::Usage
        } else {
            Difference::Material
        }
    }
}

impl HeartbeatBody for HiveHeartbeat {
    type Payload = HiveInfo;

    fn new(payload: HiveInfo, timestamp: Timestamp) -> Self {
        Self {
            hive: payload,
            timestamp,
        }
    }

    fn payload(&self) -> &HiveInfo {
        &self.hive
    }

    fn into_parts(self) -> (HiveInfo, Timestamp) {
        (self.hive, self.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{ "hive": {
        "id": "studio", "hostname": "studio.lan", "port": 9200,
        "status": "ready", "health": { "status": "healthy" },
        "started_at": "2026-11-28T14:00:00Z",
        "system": { "os": "linux", "cpu_cores": 16, "memory_total_bytes": 68719476736,
                    "memory_available_bytes": 41231686041 },
        "devices": [ { "id": "cuda:0", "name": "NVIDIA RTX 4090",
                       "memory_total_bytes": 25757220864, "memory_used_bytes": 1048576 } ],
        "version": "0.1.0" },
      "timestamp": "2026-11-28T15:00:05Z" }"#;

    #[test]
    fn spec_example_decodes_and_validates() {
        let hb: HiveHeartbeat = serde_json::from_str(EXAMPLE).unwrap();
        hb.hive.validate().unwrap();
        assert_eq!(hb.hive.devices.len(), 1);
    }

    #[test]
    fn only_required_fields_are_enough() {
        let hb: HiveHeartbeat = serde_json::from_str(
            r#"{"hive":{"id":"h","hostname":"h","port":1,"status":"starting",
                "started_at":"2026-11-28T14:00:00Z"},"timestamp":"2026-11-28T14:00:00Z"}"#,
        )
        .unwrap();
        hb.hive.validate().unwrap();
        assert!(hb.hive.devices.is_empty());
        assert!(hb.hive.system.is_none());
    }
}
