//! Property tests: arbitrary bytes, arbitrary JSON and mutated valid worker heartbeats.

use proptest::prelude::*;
use serde_json::{Value, json};
use shared_contract::Heartbeat;
use worker_contract::WorkerHeartbeat;

use crate::hostile::{Mutation, Verdict, apply, judge_value, valid_timestamp_text};

/// Every place a mutation can hit, from the whole body down to the health reason.
const PATHS: &[&[&str]] = &[
    &[],
    &["worker"],
    &["timestamp"],
    &["worker", "id"],
    &["worker", "hive_id"],
    &["worker", "model_id"],
    &["worker", "device"],
    &["worker", "port"],
    &["worker", "status"],
    &["worker", "health"],
    &["worker", "health", "status"],
    &["worker", "health", "reason"],
    &["worker", "started_at"],
    &["worker", "implementation"],
    &["worker", "version"],
    &["worker", "unknown_future_field"],
];

/// Valid worker heartbeats as a sender could write them (any offset, optional fields omitted).
fn valid_body() -> impl Strategy<Value = Value> {
    let health = prop_oneof![
        Just(None),
        Just(Some(json!({"status": "healthy"}))),
        ("degraded|unhealthy", "\\PC{0,64}")
            .prop_map(|(s, reason)| Some(json!({"status": s, "reason": reason}))),
    ];
    (
        "[A-Za-z0-9._:-]{1,128}",
        "[A-Za-z0-9._:-]{1,128}",
        "\\PC{1,256}",
        "(cpu|cuda|metal)(:[0-9]{1,2})?",
        1u16..,
        "starting|ready|busy|draining|stopping|stopped",
        health,
        valid_timestamp_text(),
        valid_timestamp_text(),
        prop::option::of("\\PC{1,32}"),
    )
        .prop_map(
            |(id, hive, model, device, port, status, health, started, ts, version)| {
                let mut worker = json!({
                    "id": id, "hive_id": hive, "model_id": model, "device": device,
                    "port": port, "status": status, "started_at": started,
                });
                if let Some(h) = health {
                    worker["health"] = h;
                }
                if let Some(v) = version {
                    worker["version"] = json!(v);
                }
                json!({ "worker": worker, "timestamp": ts })
            },
        )
}

fn example() -> Vec<u8> {
    serde_json::to_vec(&json!({ "worker": {
        "id": "gpu0-llama", "hive_id": "studio",
        "model_id": "meta-llama/Llama-3.2-1B-Instruct", "device": "cuda:0", "port": 9301,
        "status": "ready", "health": { "status": "healthy" },
        "started_at": "2026-11-28T15:00:00Z", "implementation": "llm-worker", "version": "0.1.0" },
      "timestamp": "2026-11-28T15:00:05Z" }))
    .unwrap()
}

crate::heartbeat_body_properties!(
    WorkerHeartbeat,
    "worker",
    example(),
    valid_body(),
    PATHS,
    &[
        "id",
        "hive_id",
        "model_id",
        "device",
        "port",
        "status",
        "started_at"
    ][..],
);

#[test]
fn hand_picked_hostile_bodies_get_the_right_verdict() {
    let base: Value = serde_json::from_slice(&example()).unwrap();
    let cases: &[(&[&str], Value, Verdict)] = &[
        (&["worker", "port"], json!(0), Verdict::Invalid),
        (&["worker", "port"], json!(65536), Verdict::Malformed),
        (&["worker", "port"], json!(-1), Verdict::Malformed),
        (&["worker", "port"], json!(9301.0), Verdict::Malformed),
        (&["worker", "port"], json!("9301"), Verdict::Malformed),
        (&["worker", "id"], json!(""), Verdict::Invalid),
        (&["worker", "id"], json!("a b"), Verdict::Invalid),
        (&["worker", "id"], json!("x".repeat(129)), Verdict::Invalid),
        (&["worker", "model_id"], json!("m\u{0}"), Verdict::Invalid),
        (
            &["worker", "model_id"],
            json!("ü".repeat(256)),
            Verdict::Accepted,
        ),
        (
            &["worker", "model_id"],
            json!("ü".repeat(257)),
            Verdict::Invalid,
        ),
        (&["worker", "status"], json!("Ready"), Verdict::Malformed),
        (
            &["worker", "health"],
            json!({"status": "sick"}),
            Verdict::Malformed,
        ),
        (&["worker", "health"], json!(null), Verdict::Malformed),
        (&["worker", "version"], json!(null), Verdict::Accepted),
        (&["worker", "version"], json!(""), Verdict::Invalid),
        (
            &["worker", "started_at"],
            json!("2026-11-28T15:00:00"),
            Verdict::Malformed,
        ),
        (
            &["worker", "started_at"],
            json!("2026-11-28T16:00:00+01:00"),
            Verdict::Accepted,
        ),
        (&["timestamp"], json!(12), Verdict::Malformed),
        (&[], json!([]), Verdict::Malformed),
        (&[], json!(null), Verdict::Malformed),
    ];
    for (path, value, want) in cases {
        let mut body = base.clone();
        apply(&mut body, path, Mutation::Replace(value.clone()));
        assert_eq!(
            judge_value::<WorkerHeartbeat>(&body),
            *want,
            "{path:?} = {value}"
        );
    }
}

#[test]
fn timestamps_that_cannot_be_written_back_are_refused() {
    // Offsets can push a four-digit local year out of RFC 3339's range once converted to UTC.
    for ts in [
        "0000-01-01T00:30:00+01:00",
        "9999-12-31T23:59:59-23:59",
        "+12026-11-28T15:00:00Z",
    ] {
        let mut body: Value = serde_json::from_slice(&example()).unwrap();
        body["worker"]["started_at"] = json!(ts);
        assert_eq!(
            judge_value::<WorkerHeartbeat>(&body),
            Verdict::Malformed,
            "{ts}"
        );
        let mut body: Value = serde_json::from_slice(&example()).unwrap();
        body["timestamp"] = json!(ts);
        assert_eq!(
            judge_value::<WorkerHeartbeat>(&body),
            Verdict::Malformed,
            "{ts}"
        );
    }
}

#[test]
fn the_example_is_valid() {
    let hb: WorkerHeartbeat = serde_json::from_slice(&example()).unwrap();
    hb.worker.validate().unwrap();
}
