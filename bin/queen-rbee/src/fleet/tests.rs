//! List-then-watch consistency: a view at revision R plus the changes after R gives exactly a
//! later view, for random sequences of beats, status flips, timeouts and deletions.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use heartbeat_registry::RegistryConfig;
use hive_contract::HiveInfo;
use proptest::prelude::*;
use serde_json::Value;
use shared_contract::{Health, Status};
use worker_contract::WorkerInfo;

use crate::{
    changelog::{History, Read},
    fleet::{Fleet, FleetView},
    metrics::Metrics,
};

#[derive(Debug, Clone)]
enum Op {
    Beat { id: u8, status: Status, model: u8 },
    Unhealthy { id: u8 },
    HiveBeat { id: u8, free: u64 },
    Advance { ms: u64 },
    Delete { id: u8 },
    TakeList,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6_u8, prop_oneof![Just(Status::Ready), Just(Status::Busy), Just(Status::Stopping)], 0..2_u8)
            .prop_map(|(id, status, model)| Op::Beat { id, status, model }),
        1 => (0..6_u8).prop_map(|id| Op::Unhealthy { id }),
        2 => (0..2_u8, 0..4_u64).prop_map(|(id, free)| Op::HiveBeat { id, free }),
        2 => (0..400_u64).prop_map(|ms| Op::Advance { ms }),
        1 => (0..6_u8).prop_map(|id| Op::Delete { id }),
        1 => Just(Op::TakeList),
    ]
}

fn worker(id: u8, status: Status, model: u8, health: Health) -> WorkerInfo {
    WorkerInfo {
        id: format!("w{id}"),
        hive_id: "h0".to_owned(),
        model_id: format!("model-{model}"),
        device: "cpu".to_owned(),
        port: 9300,
        status,
        health,
        started_at: "2026-11-28T15:00:00Z".parse().unwrap(),
        implementation: None,
        version: None,
    }
}

fn hive(id: u8, free: u64) -> HiveInfo {
    serde_json::from_value(serde_json::json!({
        "id": format!("h{id}"), "hostname": "box", "port": 9200, "status": "ready",
        "started_at": "2026-11-28T15:00:00Z",
        "system": {"os": "linux", "cpu_cores": 4, "memory_total_bytes": 100,
                   "memory_available_bytes": free},
    }))
    .unwrap()
}

/// Every entry of a view keyed by kind and id, with the volatile fields taken out.
fn entries_of(view: &FleetView) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for kind in &view.kinds {
        let mut json = Vec::new();
        kind.write_entries(&mut json).unwrap();
        let entries: Vec<Value> = serde_json::from_slice(&json).unwrap();
        for entry in entries {
            let name = kind.kind.as_str();
            let id = entry[name]["id"].as_str().unwrap().to_owned();
            out.insert((name.to_owned(), id), stable(entry));
        }
    }
    out
}

fn stable(mut entry: Value) -> Value {
    let map = entry.as_object_mut().unwrap();
    for volatile in ["last_seen", "last_seen_ms_ago", "clock_skew_ms"] {
        map.remove(volatile);
    }
    if let Some(system) = map.get_mut("hive").and_then(|h| h.get_mut("system")) {
        system
            .as_object_mut()
            .unwrap()
            .remove("memory_available_bytes");
    }
    entry
}

/// Applies the watch events after `from` to `entries`; returns the revisions seen.
fn apply(fleet: &Fleet, from: u64, entries: &mut BTreeMap<(String, String), Value>) -> Vec<u64> {
    fleet.log().publish(false, false);
    let Read::Frames { frames, .. } = fleet.log().read(from, None, usize::MAX) else {
        return Vec::new();
    };
    let mut revisions = Vec::new();
    for frame in frames {
        let text = std::str::from_utf8(&frame).unwrap();
        let event = text
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .unwrap();
        let data: Value =
            serde_json::from_str(text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap())
                .unwrap();
        revisions.push(data["revision"].as_u64().unwrap());
        let kind = data["kind"].as_str().unwrap().to_owned();
        match event {
            "upsert" => {
                let id = data["entry"][&kind]["id"].as_str().unwrap().to_owned();
                entries.insert((kind, id), stable(data["entry"].clone()));
            }
            "remove" => {
                let id = data["id"].as_str().unwrap().to_owned();
                assert!(
                    entries.remove(&(kind, id)).is_some(),
                    "removed an unknown entry"
                );
            }
            other => panic!("unexpected event {other}"),
        }
    }
    revisions
}

fn run(ops: &[Op]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = RegistryConfig {
            timeout: Duration::from_millis(300),
            retention: Duration::from_millis(700),
            max_entries: 100,
            usage_interval: Duration::from_millis(250),
        };
        let history = History {
            revisions: 10_000,
            age: Duration::from_secs(300),
        };
        let fleet = Fleet::new(
            config,
            history,
            "e".to_owned(),
            0,
            Arc::new(Metrics::default()),
        );
        let mut listed = None;
        let sent_at = chrono::Utc::now();
        for op in ops {
            match op {
                Op::Beat { id, status, model } => {
                    let payload = worker(*id, *status, *model, Health::Healthy);
                    fleet.ingest(payload, sent_at).unwrap();
                }
                Op::Unhealthy { id } => {
                    let health = Health::Unhealthy {
                        reason: "down".to_owned(),
                    };
                    fleet
                        .ingest(worker(*id, Status::Ready, 0, health), sent_at)
                        .unwrap();
                }
                Op::HiveBeat { id, free } => fleet.ingest(hive(*id, *free), sent_at).unwrap(),
                Op::Advance { ms } => {
                    tokio::time::advance(Duration::from_millis(*ms)).await;
                    fleet.expire();
                }
                Op::Delete { id } => {
                    fleet.remove::<WorkerInfo>(&format!("w{id}"));
                }
                Op::TakeList => {
                    if listed.is_none() {
                        let view = fleet.view();
                        listed = Some((view.revision, entries_of(&view)));
                    }
                }
            }
        }
        let (from, mut entries) = listed.unwrap_or_default();
        let revisions = apply(&fleet, from, &mut entries);
        let last = fleet.view();
        let expected: Vec<u64> = (from + 1..=last.revision).collect();
        assert_eq!(revisions, expected, "revisions have gaps or repeats");
        assert_eq!(entries, entries_of(&last));
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_list_plus_the_changes_after_it_is_a_later_list(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}

#[test]
fn a_mirrored_change_the_registry_refuses_still_keeps_the_revisions_whole() {
    let new_fleet = || {
        Fleet::new(
            RegistryConfig::default(),
            History {
                revisions: 100,
                age: Duration::from_secs(60),
            },
            "e".to_owned(),
            0,
            Arc::new(Metrics::default()),
        )
    };
    let leader = new_fleet();
    leader
        .ingest(
            worker(1, Status::Ready, 0, Health::Healthy),
            chrono::Utc::now(),
        )
        .unwrap();
    let (_, id, kept) = leader.kept_rows().pop().unwrap();
    let change = |revision, kept: &str| fleet_cluster::Change {
        revision,
        kind: "worker".to_owned(),
        id: id.clone(),
        kept: Some(kept.to_owned()),
        transition: None,
        frame: bytes::Bytes::from(format!("id: e:{revision}\n\n")),
    };
    let follower = new_fleet();
    assert!(!follower.mirror(&change(1, "not a kept entry")));
    assert_eq!(
        follower.log().revision(),
        1,
        "the revision is taken all the same"
    );
    assert!(follower.mirror(&change(2, &kept)));
    assert_eq!(follower.log().revision(), 2);
    assert!(follower.get::<WorkerInfo>(&id).is_some());
}
