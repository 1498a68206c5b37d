//! The OpenAPI schema of the worker types matches what serde reads and writes.

use serde_json::Value;
use shared_contract::{Entry, ID_PATTERN, Kind, TEXT_PATTERN};
use utoipa::{PartialSchema, ToSchema};
use worker_contract::{WorkerHeartbeat, WorkerInfo};

fn schema_of<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap()
}

#[test]
fn worker_info_requires_exactly_the_required_fields() {
    let schema = schema_of::<WorkerInfo>();
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(
        required,
        [
            "device",
            "hive_id",
            "id",
            "model_id",
            "port",
            "started_at",
            "status"
        ]
    );
    assert_eq!(schema["properties"]["port"]["minimum"], 1);
    assert_eq!(schema["properties"]["port"]["maximum"], 65535);
    assert_eq!(schema["properties"]["started_at"]["format"], "date-time");
    assert_eq!(schema["properties"]["id"]["maxLength"], 128);
    for field in ["id", "hive_id"] {
        assert_eq!(
            schema["properties"][field]["pattern"], ID_PATTERN,
            "{field}"
        );
    }
    for field in ["model_id", "device", "implementation", "version"] {
        assert_eq!(
            schema["properties"][field]["pattern"], TEXT_PATTERN,
            "{field}"
        );
    }
}

#[test]
fn worker_entry_keys_its_payload_by_kind() {
    assert_eq!(Kind::Worker.as_str(), "worker");
    assert_eq!(<Entry<WorkerInfo> as ToSchema>::name(), "WorkerEntry");
    let schema = schema_of::<Entry<WorkerInfo>>();
    assert_eq!(
        schema["properties"]["worker"]["$ref"],
        "#/components/schemas/WorkerInfo"
    );
    let mut deps = Vec::new();
    <Entry<WorkerInfo> as ToSchema>::schemas(&mut deps);
    let names: Vec<&str> = deps.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"WorkerInfo"), "{names:?}");
    assert!(names.contains(&"State"), "{names:?}");
}

#[test]
fn body_names_its_payload() {
    let schema = schema_of::<WorkerHeartbeat>();
    assert_eq!(
        schema["properties"]["worker"]["$ref"],
        "#/components/schemas/WorkerInfo"
    );
    assert_eq!(schema["properties"]["timestamp"]["format"], "date-time");
}
