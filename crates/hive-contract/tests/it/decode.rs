//! Property tests: arbitrary bytes, arbitrary JSON and mutated valid hive heartbeats.

use hive_contract::HiveHeartbeat;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::hostile::{Mutation, Verdict, apply, judge_value, valid_timestamp_text};

/// Every place a mutation can hit, from the whole body down to one device's fields.
const PATHS: &[&[&str]] = &[
    &[],
    &["hive"],
    &["timestamp"],
    &["hive", "id"],
    &["hive", "hostname"],
    &["hive", "port"],
    &["hive", "status"],
    &["hive", "health"],
    &["hive", "health", "status"],
    &["hive", "health", "reason"],
    &["hive", "started_at"],
    &["hive", "system"],
    &["hive", "system", "os"],
    &["hive", "system", "cpu_cores"],
    &["hive", "system", "memory_total_bytes"],
    &["hive", "system", "memory_available_bytes"],
    &["hive", "devices"],
    &["hive", "devices", "0"],
    &["hive", "devices", "0", "id"],
    &["hive", "devices", "0", "name"],
    &["hive", "devices", "0", "memory_total_bytes"],
    &["hive", "devices", "0", "memory_used_bytes"],
    &["hive", "version"],
    &["hive", "unknown_future_field"],
];

fn device() -> impl Strategy<Value = Value> {
    ("cuda:[0-9]{1,2}", "\\PC{1,64}", any::<u64>(), any::<u64>()).prop_map(
        |(id, name, total, used)| {
            json!({"id": id, "name": name, "memory_total_bytes": total, "memory_used_bytes": used})
        },
    )
}

/// Valid hive heartbeats as a sender could write them (any offset, optional fields omitted).
fn valid_body() -> impl Strategy<Value = Value> {
    let system = prop::option::of(
        ("\\PC{1,32}", any::<u32>(), any::<u64>(), any::<u64>()).prop_map(
            |(os, cores, total, avail)| {
                json!({"os": os, "cpu_cores": cores, "memory_total_bytes": total,
                   "memory_available_bytes": avail})
            },
        ),
    );
    let health = prop_oneof![
        Just(None),
        Just(Some(json!({"status": "healthy"}))),
        ("degraded|unhealthy", "\\PC{0,64}")
            .prop_map(|(s, reason)| Some(json!({"status": s, "reason": reason}))),
    ];
    (
        "[A-Za-z0-9._:-]{1,128}",
        "\\PC{1,64}",
        1u16..,
        "starting|ready|busy|draining|stopping|stopped",
        health,
        valid_timestamp_text(),
        valid_timestamp_text(),
        system,
        prop::collection::vec(device(), 0..6),
        prop::option::of("\\PC{1,32}"),
    )
        .prop_map(
            |(id, host, port, status, health, started, ts, system, devices, version)| {
                let mut hive = json!({
                    "id": id, "hostname": host, "port": port, "status": status,
                    "started_at": started, "devices": devices,
                });
                if let Some(h) = health {
                    hive["health"] = h;
                }
                if let Some(s) = system {
                    hive["system"] = s;
                }
                if let Some(v) = version {
                    hive["version"] = json!(v);
                }
                json!({ "hive": hive, "timestamp": ts })
            },
        )
}

fn example() -> Vec<u8> {
    serde_json::to_vec(&json!({ "hive": {
        "id": "studio", "hostname": "studio.lan", "port": 9200,
        "status": "ready", "health": { "status": "healthy" },
        "started_at": "2026-11-28T14:00:00Z",
        "system": { "os": "linux", "cpu_cores": 16, "memory_total_bytes": 68_719_476_736_u64,
                    "memory_available_bytes": 41_231_686_041_u64 },
        "devices": [ { "id": "cuda:0", "name": "NVIDIA RTX 4090",
                       "memory_total_bytes": 25_757_220_864_u64, "memory_used_bytes": 1_048_576 } ],
        "version": "0.1.0" },
      "timestamp": "2026-11-28T15:00:05Z" }))
    .unwrap()
}

crate::heartbeat_body_properties!(
    HiveHeartbeat,
    "hive",
    example(),
    valid_body(),
    PATHS,
    &["id", "hostname", "port", "status", "started_at"][..],
);

#[test]
fn hand_picked_hostile_bodies_get_the_right_verdict() {
    let base: Value = serde_json::from_slice(&example()).unwrap();
    let many = |n: usize| {
        json!(vec![
            json!({"id": "cuda:0", "name": "g", "memory_total_bytes": 1, "memory_used_bytes": 0});
            n
        ])
    };
    let cases: &[(&[&str], Value, Verdict)] = &[
        (&["hive", "port"], json!(0), Verdict::Invalid),
        (&["hive", "port"], json!(70000), Verdict::Malformed),
        (&["hive", "hostname"], json!(""), Verdict::Invalid),
        (
            &["hive", "hostname"],
            json!("h".repeat(254)),
            Verdict::Invalid,
        ),
        (&["hive", "devices"], many(64), Verdict::Accepted),
        (&["hive", "devices"], many(65), Verdict::Invalid),
        (&["hive", "devices"], json!(null), Verdict::Malformed),
        (
            &["hive", "devices", "0", "memory_total_bytes"],
            json!(-1),
            Verdict::Malformed,
        ),
        (
            &["hive", "devices", "0", "name"],
            json!("a\u{7}"),
            Verdict::Invalid,
        ),
        (
            &["hive", "system", "cpu_cores"],
            json!(u64::from(u32::MAX) + 1),
            Verdict::Malformed,
        ),
        (
            &["hive", "system", "memory_total_bytes"],
            json!(u64::MAX),
            Verdict::Accepted,
        ),
        (
            &["hive", "system", "memory_total_bytes"],
            json!(1e20),
            Verdict::Malformed,
        ),
        (&["hive", "system"], json!(null), Verdict::Accepted),
        (&["hive", "system", "os"], json!(""), Verdict::Invalid),
        (
            &["hive", "started_at"],
            json!("0000-01-01T00:30:00+01:00"),
            Verdict::Malformed,
        ),
        (
            &["timestamp"],
            json!("+12026-11-28T15:00:00Z"),
            Verdict::Malformed,
        ),
        (&[], json!("hive"), Verdict::Malformed),
    ];
    for (path, value, want) in cases {
        let mut body = base.clone();
        apply(&mut body, path, Mutation::Replace(value.clone()));
        assert_eq!(
            judge_value::<HiveHeartbeat>(&body),
            *want,
            "{path:?} = {value}"
        );
    }
}
