//! What the queen reports: registry entries, fleet snapshots and transitions.

use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};
use utoipa::ToSchema;

use crate::{Id, Kind, Kinded, State, Target, Timestamp};

/// One registry entry as listed by the queen.
///
/// The payload is serialized under its kind's name (`"worker": {…}` or `"hive": {…}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Entry<T> {
    /// The last payload received, as sent.
    #[serde(alias = "worker", alias = "hive")]
    pub payload: T,
    /// Liveness on the queen's clock.
    pub state: State,
    /// Online, `ready` and not `unhealthy`: able to take new work.
    pub available: bool,
    /// Queen wall-clock time of the first heartbeat received.
    pub first_seen: Timestamp,
    /// Queen wall-clock time of the last heartbeat received.
    pub last_seen: Timestamp,
    /// Milliseconds since the last heartbeat, on the queen's monotonic clock.
    pub last_seen_ms_ago: u64,
    /// Sender timestamp minus queen receipt time; positive when the sender's clock is ahead.
    pub clock_skew_ms: i64,
    /// How many times a newer `started_at` has been seen.
    pub restarts: u32,
    /// Whether two live processes appear to send under this id.
    #[serde(default)]
    pub conflict: bool,
    /// Brought back from kept state at the queen's start and not heard from since; a restored
    /// entry is not available.
    #[serde(default)]
    pub restored: bool,
}

impl<T: Serialize + Kinded> Serialize for Entry<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(T::KIND.as_str(), &self.payload)?;
        map.serialize_entry("state", &self.state)?;
        map.serialize_entry("available", &self.available)?;
        map.serialize_entry("first_seen", &self.first_seen)?;
        map.serialize_entry("last_seen", &self.last_seen)?;
        map.serialize_entry("last_seen_ms_ago", &self.last_seen_ms_ago)?;
        map.serialize_entry("clock_skew_ms", &self.clock_skew_ms)?;
        map.serialize_entry("restarts", &self.restarts)?;
        if self.conflict {
            map.serialize_entry("conflict", &true)?;
        }
        if self.restored {
            map.serialize_entry("restored", &true)?;
        }
        map.end()
    }
}

/// The whole fleet at one revision, as served by `/v1/heartbeats/snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "W: Serialize + Kinded, H: Serialize + Kinded"))]
pub struct Snapshot<W, H> {
    /// Increases with every snapshot the queen publishes.
    pub seq: u64,
    /// Queen wall-clock time the snapshot was taken.
    pub timestamp: Timestamp,
    /// Names the change log `revision` belongs to; resume a watch with `?since=EPOCH:REVISION`.
    #[serde(default)]
    pub epoch: String,
    /// The revision of the change log the snapshot shows.
    #[serde(default)]
    pub revision: u64,
    /// Workers online.
    pub workers_online: usize,
    /// Workers available for new work.
    pub workers_available: usize,
    /// Hives online.
    pub hives_online: usize,
    /// Hives available for new work.
    pub hives_available: usize,
    /// Ids of online workers, sorted.
    pub worker_ids: Vec<Id>,
    /// Ids of online hives, sorted.
    pub hive_ids: Vec<Id>,
    /// Every worker entry still retained, sorted by id.
    pub workers: Vec<Entry<W>>,
    /// Every hive entry still retained, sorted by id.
    pub hives: Vec<Entry<H>>,
}

/// A change of an entry's state (or status, or incarnation), as recorded in `/v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Transition {
    /// Which registry.
    pub kind: Kind,
    /// The entry's id.
    pub id: Id,
    /// The state before; `null` for a first heartbeat.
    pub from: Option<State>,
    /// The state after, or `removed`.
    pub to: Target,
    /// Why, e.g. `heartbeat timeout` or `status ready -> busy`.
    pub reason: String,
    /// Queen wall-clock time of the change.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Fake {
        id: String,
    }

    impl Kinded for Fake {
        const KIND: Kind = Kind::Hive;
    }

    #[test]
    fn entry_names_its_payload_by_kind_and_round_trips() {
        let now = chrono::Utc::now();
        let entry = Entry {
            payload: Fake {
                id: "h1".to_owned(),
            },
            state: State::Online,
            available: true,
            first_seen: now,
            last_seen: now,
            last_seen_ms_ago: 5,
            clock_skew_ms: -3,
            restarts: 0,
            conflict: false,
            restored: false,
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["hive"]["id"], "h1");
        assert!(json.get("conflict").is_none());
        let back: Entry<Fake> = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
    }
}
