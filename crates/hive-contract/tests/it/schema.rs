//! The OpenAPI schema of the hive types matches what serde reads and writes.

use hive_contract::{DeviceInfo, SystemInfo};
use hive_contract::{HiveHeartbeat, HiveInfo};
use serde_json::Value;
use shared_contract::{Entry, ID_PATTERN, TEXT_PATTERN};
use utoipa::{PartialSchema, ToSchema};

fn schema_of<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap()
}

#[test]
fn hive_info_requires_exactly_the_required_fields() {
    let schema = schema_of::<HiveInfo>();
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["hostname", "id", "port", "started_at", "status"]);
    assert_eq!(schema["properties"]["devices"]["maxItems"], 64);
    assert_eq!(schema["properties"]["port"]["minimum"], 1);
    assert_eq!(schema["properties"]["id"]["pattern"], ID_PATTERN);
    for field in ["hostname", "version"] {
        assert_eq!(
            schema["properties"][field]["pattern"], TEXT_PATTERN,
            "{field}"
        );
    }
}

#[test]
fn machine_numbers_span_their_rust_types() {
    let system = schema_of::<SystemInfo>();
    assert_eq!(system["properties"]["os"]["pattern"], TEXT_PATTERN);
    assert_eq!(system["properties"]["cpu_cores"]["maximum"], u32::MAX);
    for field in ["memory_total_bytes", "memory_available_bytes"] {
        assert_eq!(system["properties"][field]["maximum"], u64::MAX, "{field}");
        assert_eq!(system["properties"][field]["minimum"], 0, "{field}");
    }
    let device = schema_of::<DeviceInfo>();
    for field in ["id", "name"] {
        assert_eq!(
            device["properties"][field]["pattern"], TEXT_PATTERN,
            "{field}"
        );
    }
    for field in ["memory_total_bytes", "memory_used_bytes"] {
        assert_eq!(device["properties"][field]["maximum"], u64::MAX, "{field}");
    }
}

#[test]
fn hive_entry_keys_its_payload_by_kind() {
    assert_eq!(<Entry<HiveInfo> as ToSchema>::name(), "HiveEntry");
    let schema = schema_of::<Entry<HiveInfo>>();
    assert_eq!(
        schema["properties"]["hive"]["$ref"],
        "#/components/schemas/HiveInfo"
    );
    assert!(schema["properties"].get("worker").is_none());
}

#[test]
fn body_names_its_payload() {
    let schema = schema_of::<HiveHeartbeat>();
    assert_eq!(
        schema["properties"]["hive"]["$ref"],
        "#/components/schemas/HiveInfo"
    );
}
