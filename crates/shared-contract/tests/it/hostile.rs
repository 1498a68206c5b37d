//! Generators of hostile input and the decode -> validate -> round-trip oracle.
//!
//! Shared by the property tests of all three contract crates (the worker and hive crates include
//! this file by path), so that every body type faces the same attacks.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each including crate uses a different subset"
)]

use std::fmt::Debug;

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};
use shared_contract::{Heartbeat, HeartbeatBody};

/// What the queen would do with a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Does not decode into the contract type: `400`.
    Malformed,
    /// Decodes but breaks a rule: `422`.
    Invalid,
    /// A valid heartbeat, and it survived a round trip.
    Accepted,
}

/// Decodes `bytes` as `B`, validates it and, when valid, checks that serializing and decoding again
/// gives the same value (which must still be valid). Panics only on a contract bug.
pub fn judge<B>(bytes: &[u8]) -> Verdict
where
    B: HeartbeatBody + PartialEq + Debug,
{
    let Ok(body) = serde_json::from_slice::<B>(bytes) else {
        return Verdict::Malformed;
    };
    if body.payload().validate().is_err() {
        return Verdict::Invalid;
    }
    let text = serde_json::to_vec(&body).expect("a decoded body serializes");
    let written: Value = serde_json::from_slice(&text).expect("the output is json");
    assert_timestamps_are_rfc3339(&written);
    let again: B = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "an accepted body does not decode after a round trip: {e}: {}",
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(again, body, "round trip changed the body");
    assert!(
        again.payload().validate().is_ok(),
        "round trip made the body invalid"
    );
    Verdict::Accepted
}

/// Asserts that every timestamp field in `value` is text any RFC 3339 reader accepts.
fn assert_timestamps_are_rfc3339(value: &Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if matches!(k.as_str(), "timestamp" | "started_at") {
                    let text = v.as_str().expect("timestamps are strings");
                    assert!(
                        chrono::DateTime::parse_from_rfc3339(text).is_ok(),
                        "{k} written back as {text}, which is not RFC 3339"
                    );
                } else {
                    assert_timestamps_are_rfc3339(v);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(assert_timestamps_are_rfc3339),
        _ => {}
    }
}

/// Judges a JSON value by its serialized bytes, as it would arrive over the wire.
pub fn judge_value<B>(value: &Value) -> Verdict
where
    B: HeartbeatBody + PartialEq + Debug,
{
    judge::<B>(&serde_json::to_vec(value).expect("a json value serializes"))
}

/// Field names that the contracts use, so that generated objects sometimes look almost right.
const KEYS: &[&str] = &[
    "worker",
    "hive",
    "timestamp",
    "id",
    "hive_id",
    "model_id",
    "device",
    "port",
    "status",
    "health",
    "reason",
    "started_at",
    "implementation",
    "version",
    "hostname",
    "system",
    "os",
    "cpu_cores",
    "memory_total_bytes",
    "memory_available_bytes",
    "devices",
    "name",
    "memory_used_bytes",
];

/// Arbitrary strings, biased towards the nasty ones.
pub fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => "[A-Za-z0-9._:-]{0,140}",
        1 => Just(String::new()),
        1 => "[\\x00-\\x1f\\x7f]{1,8}",
        1 => "\\PC{1,40}",
        1 => (257usize..=1100).prop_map(|n| "x".repeat(n)),
        1 => Just("\u{202e}\u{feff}\u{200b}🦀ü".to_owned()),
        2 => prop::sample::select(vec![
            "starting", "ready", "busy", "draining", "stopping", "stopped", "Ready", "READY",
            "healthy", "degraded", "unhealthy", "sick", "null", "true", "0",
        ])
        .prop_map(str::to_owned),
        2 => arb_timestamp_text(),
    ]
}

/// Timestamp-like text: valid ones, edge years and offsets, and near misses.
pub fn arb_timestamp_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => valid_timestamp_text(),
        2 => prop::sample::select(vec![
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:30:00+01:00",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-23:59",
            "9999-12-31T23:59:60Z",
            "2026-11-28T23:59:60Z",
            "2026-02-30T00:00:00Z",
            "2026-11-28 15:00:00Z",
            "2026-11-28T15:00:00",
            "2026-11-28T15:00:00.123456789123456789Z",
            "2026-11-28T15:00:00+24:00",
            "2026-11-28T15:00:00z",
            "+12026-11-28T15:00:00Z",
            "1970-01-01T00:00:00Z",
            "",
        ])
        .prop_map(str::to_owned),
    ]
}

/// RFC 3339 text in years 1..=9999 after conversion to UTC, with any offset.
pub fn valid_timestamp_text() -> impl Strategy<Value = String> {
    (
        0i64..253_402_214_400,
        0u32..1_000_000_000,
        -1439i32..=1439,
        any::<bool>(),
    )
        .prop_map(|(secs, nanos, offset_min, with_nanos)| {
            let utc = chrono::DateTime::from_timestamp(secs, if with_nanos { nanos } else { 0 })
                .expect("in range");
            let offset = chrono::FixedOffset::east_opt(offset_min * 60).expect("in range");
            utc.with_timezone(&offset).to_rfc3339()
        })
        .prop_filter("stays within years 1..=9999 in local time", |s| {
            s.as_bytes().first().is_some_and(u8::is_ascii_digit)
        })
}

/// Numbers at and beyond every limit the contracts care about.
pub fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(-1),
            json!(65535),
            json!(65536),
            json!(u32::MAX),
            json!(u64::from(u32::MAX) + 1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(1e308),
            json!(-0.0),
        ]),
    ]
}

/// Arbitrary JSON trees, with object keys often taken from the contracts.
pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        let key = prop_oneof![
            3 => prop::sample::select(KEYS).prop_map(str::to_owned),
            1 => any::<String>(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..10)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A change applied at one place in a valid body.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Drops the field.
    Remove,
    /// Puts any value there (wrong types included).
    Replace(Value),
}

/// Mutations: drops, wrong types, huge numbers, hostile strings, arbitrary subtrees.
pub fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::Remove),
        3 => arb_number().prop_map(Mutation::Replace),
        4 => arb_string().prop_map(|s| Mutation::Replace(Value::String(s))),
        // Over the queen's 64 KiB body limit, so only the contract itself ever sees these.
        1 => (64_000usize..140_000).prop_map(|n| Mutation::Replace(Value::String("ü".repeat(n)))),
        2 => arb_json().prop_map(Mutation::Replace),
    ]
}

/// Applies `mutation` at `path` (object keys; a numeric key indexes an array). A path that does not
/// exist in `value` leaves it unchanged except for `Replace`, which inserts into the parent object.
pub fn apply(value: &mut Value, path: &[&str], mutation: Mutation) {
    let Some((last, parents)) = path.split_last() else {
        if let Mutation::Replace(v) = mutation {
            *value = v;
        }
        return;
    };
    let mut cur = value;
    for seg in parents {
        let next = match cur {
            Value::Object(map) => map.get_mut(*seg),
            Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return,
        }
    }
    match (cur, mutation) {
        (Value::Object(map), Mutation::Remove) => {
            map.remove(*last);
        }
        (Value::Object(map), Mutation::Replace(v)) => {
            map.insert((*last).to_owned(), v);
        }
        (Value::Array(items), m) => {
            if let Ok(i) = last.parse::<usize>() {
                match m {
                    Mutation::Remove if i < items.len() => {
                        items.remove(i);
                    }
                    Mutation::Replace(v) if i < items.len() => items[i] = v,
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Corruptions of a byte string: truncation, flipped bytes, inserted bytes.
pub fn corrupt(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len().max(1);
    (
        0..len,
        prop::collection::vec((0..len, any::<u8>()), 1..6),
        0u8..3,
    )
        .prop_map(move |(cut, edits, how)| {
            let mut bytes = valid.clone();
            match how {
                0 => bytes.truncate(cut),
                1 => {
                    for (i, b) in edits {
                        if let Some(slot) = bytes.get_mut(i) {
                            *slot = b;
                        }
                    }
                }
                _ => {
                    for (i, b) in edits {
                        bytes.insert(i.min(bytes.len()), b);
                    }
                }
            }
            bytes
        })
}

/// Generates the property tests every heartbeat body type must pass: hostile bytes and JSON never
/// panic, valid bodies are accepted and round-trip, and a missing required field is malformed.
///
/// `$body` is the body type, `$kind` the payload's field name, `$example` a valid body as bytes,
/// `$valid` a strategy of valid bodies, `$paths` the places a mutation may hit and `$required`
/// the payload's required fields.
#[macro_export]
macro_rules! heartbeat_body_properties {
    ($body:ty, $kind:literal, $example:expr, $valid:expr, $paths:expr, $required:expr $(,)?) => {
        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_never_panic(
                bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            ) {
                $crate::hostile::judge::<$body>(&bytes);
            }

            #[test]
            fn corrupted_valid_bytes_never_panic(bytes in $crate::hostile::corrupt($example)) {
                $crate::hostile::judge::<$body>(&bytes);
            }

            #[test]
            fn arbitrary_json_never_panics(value in $crate::hostile::arb_json()) {
                $crate::hostile::judge_value::<$body>(&value);
            }

            #[test]
            fn valid_bodies_are_accepted_and_round_trip(body in $valid) {
                proptest::prop_assert_eq!(
                    $crate::hostile::judge_value::<$body>(&body),
                    $crate::hostile::Verdict::Accepted
                );
            }

            #[test]
            fn mutated_bodies_are_judged_without_panic(
                body in $valid,
                path in proptest::sample::select($paths),
                mutation in $crate::hostile::arb_mutation(),
            ) {
                let mut body = body;
                $crate::hostile::apply(&mut body, path, mutation);
                $crate::hostile::judge_value::<$body>(&body);
            }

            #[test]
            fn dropping_a_required_field_is_malformed(
                body in $valid,
                field in proptest::sample::select($required),
            ) {
                let mut body = body;
                $crate::hostile::apply(&mut body, &[$kind, field], $crate::hostile::Mutation::Remove);
                proptest::prop_assert_eq!(
                    $crate::hostile::judge_value::<$body>(&body),
                    $crate::hostile::Verdict::Malformed
                );
            }
        }
    };
}
