//! The OpenAPI schema of the hive types matches what serde reads and writes.

use hive_contract::{HiveHeartbeat, HiveInfo};
use serde_json::Value;
use shared_contract::Entry;
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
