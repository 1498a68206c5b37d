//! Fuzzes the heartbeat body decoder: any bytes are either refused (decode or validation error)
//! or accepted, and an accepted body round-trips to an equal, still valid body whose timestamps
//! are RFC 3339.

#![no_main]

use std::fmt::Debug;

use hive_contract::HiveHeartbeat;
use libfuzzer_sys::fuzz_target;
use shared_contract::{Heartbeat, HeartbeatBody};
use worker_contract::WorkerHeartbeat;

fuzz_target!(|data: &[u8]| {
    check::<WorkerHeartbeat>(data);
    check::<HiveHeartbeat>(data);
});

fn check<B: HeartbeatBody + PartialEq + Debug>(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<B>(data) else {
        return;
    };
    if body.payload().validate().is_err() {
        return;
    }
    let text = serde_json::to_vec(&body).expect("an accepted body serializes");
    let again: B = serde_json::from_slice(&text).expect("an accepted body decodes after a round trip");
    assert_eq!(again, body);
    assert!(again.payload().validate().is_ok());
    let value: serde_json::Value = serde_json::from_slice(&text).expect("output is json");
    let payload = value
        .as_object()
        .and_then(|o| o.values().find(|v| v.is_object()))
        .expect("the payload is an object");
    for ts in [&value["timestamp"], &payload["started_at"]] {
        let ts = ts.as_str().expect("timestamps are strings");
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "not RFC 3339: {ts}"
        );
    }
}
