//! Unit tests of the liveness rules, driven by explicit instants instead of sleeping.

use std::time::Duration;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use shared_contract::{
    Difference, Health, HealthStatus, Heartbeat, Kind, Kinded, State, Status, Target, Timestamp,
    ValidationError, check_id,
};
use tokio::time::Instant;

use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Change, Filter, Registry, RegistryConfig, RegistryError, is_available};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Fake {
    id: String,
    status: Status,
    health: Health,
    started_at: Timestamp,
    /// A usage figure, like a hive's free memory.
    load: u64,
}

impl Kinded for Fake {
    const KIND: Kind = Kind::Worker;
}

impl Heartbeat for Fake {
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
        check_id("id", &self.id)
    }
    fn difference(&self, previous: &Self) -> Difference {
        if self == previous {
            Difference::None
        } else if (Fake {
            load: previous.load,
            ..self.clone()
        }) == *previous
        {
            Difference::Usage
        } else {
            Difference::Material
        }
    }
}

const TIMEOUT: Duration = Duration::from_millis(300);
const RETENTION: Duration = Duration::from_secs(60);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn registry() -> Registry<Fake> {
    Registry::new(RegistryConfig {
        timeout: TIMEOUT,
        retention: RETENTION,
        max_entries: 100,
        ..RegistryConfig::default()
    })
}

fn epoch() -> Timestamp {
    "2026-11-28T15:00:00Z".parse().unwrap()
}

fn fake(id: &str, status: Status) -> Fake {
    Fake {
        id: id.to_owned(),
        status,
        health: Health::Healthy,
        started_at: epoch(),
        load: 0,
    }
}

/// A test clock: a monotonic origin and the matching wall time.
struct Clock {
    t0: Instant,
}

impl Clock {
    fn new() -> Self {
        Self { t0: Instant::now() }
    }
    fn at(&self, offset: Duration) -> (Instant, Timestamp) {
        let wall = epoch() + TimeDelta::from_std(offset).unwrap() + TimeDelta::hours(1);
        (self.t0 + offset, wall)
    }
}

fn beat(reg: &Registry<Fake>, clock: &Clock, offset: Duration, payload: Fake) -> crate::Upsert {
    let (now, wall) = clock.at(offset);
    reg.upsert(payload, wall, now, wall).unwrap()
}

fn state_of(reg: &Registry<Fake>, id: &str, now: Instant) -> State {
    reg.get(id, now).unwrap().state
}

#[test]
fn first_heartbeat_creates_an_online_entry() {
    let (reg, clock) = (registry(), Clock::new());
    let up = beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    assert!(up.changed);
    let t = up.transition.unwrap();
    assert_eq!(
        (t.kind, t.id.as_str(), t.from, t.to),
        (Kind::Worker, "w1", None, Target::Online)
    );
    assert_eq!(t.reason, "first heartbeat");
    let (now, wall) = clock.at(ms(40));
    let entry = reg.get("w1", now).unwrap();
    assert_eq!(entry.state, State::Online);
    assert!(entry.available);
    assert_eq!(entry.restarts, 0);
    assert!(!entry.conflict);
    assert_eq!(entry.last_seen_ms_ago, 40);
    assert_eq!(entry.first_seen, wall - TimeDelta::milliseconds(40));
    assert!(reg.get("w2", now).is_none());
}

#[test]
fn available_needs_online_ready_and_not_unhealthy() {
    let healths = [
        Health::Healthy,
        Health::Degraded {
            reason: "slow".to_owned(),
        },
        Health::Unhealthy {
            reason: "down".to_owned(),
        },
    ];
    for status in Status::ALL {
        for health in &healths {
            let (reg, clock) = (registry(), Clock::new());
            let mut p = fake("w", status);
            p.health = health.clone();
            beat(&reg, &clock, ms(0), p);
            let expected = status == Status::Ready && health.status() != HealthStatus::Unhealthy;
            let (now, _) = clock.at(ms(1));
            let entry = reg.get("w", now).unwrap();
            assert_eq!(entry.available, expected, "{status} {health:?}");
            assert_eq!(reg.counts().available, usize::from(expected));
            let listed = reg.list(Filter::Available, now).len();
            assert_eq!(listed, usize::from(expected), "{status} {health:?}");
        }
    }
    for state in State::ALL {
        assert_eq!(
            is_available(state, Status::Ready, HealthStatus::Healthy),
            state == State::Online
        );
    }
}

#[test]
fn entry_goes_offline_exactly_at_the_timeout() {
    let (reg, clock) = (registry(), Clock::new());
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    beat(&reg, &clock, ms(200), fake("w1", Status::Ready));

    let (now, wall) = clock.at(ms(499));
    let expired = reg.expire(now, wall);
    assert!(expired.transitions.is_empty() && !expired.changed);
    assert_eq!(expired.next_deadline, Some(clock.at(ms(500)).0));
    assert_eq!(state_of(&reg, "w1", now), State::Online);

    let (now, wall) = clock.at(ms(500));
    let expired = reg.expire(now, wall);
    assert!(expired.changed);
    let t = &expired.transitions[0];
    assert_eq!((t.from, t.to), (Some(State::Online), Target::Offline));
    assert_eq!(t.reason, "heartbeat timeout");
    assert_eq!(t.at, wall);
    let entry = reg.get("w1", now).unwrap();
    assert_eq!(entry.state, State::Offline);
    assert!(!entry.available);
    assert_eq!(
        reg.expire(now, wall).transitions.len(),
        0,
        "a timeout is reported once"
    );
}

#[test]
fn stopping_and_stopped_leave_at_once() {
    for status in [Status::Stopping, Status::Stopped] {
        let (reg, clock) = (registry(), Clock::new());
        beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
        let up = beat(&reg, &clock, ms(10), fake("w1", status));
        let t = up.transition.unwrap();
        assert_eq!((t.from, t.to), (Some(State::Online), Target::Left));
        assert_eq!(t.reason, "graceful shutdown");
        let (now, wall) = clock.at(ms(11));
        assert_eq!(state_of(&reg, "w1", now), State::Left);
        // A left entry never times out into offline; it only waits for retention.
        let (later, _) = clock.at(ms(10) + RETENTION - ms(1));
        assert!(reg.expire(later, wall).transitions.is_empty());
        assert_eq!(state_of(&reg, "w1", later), State::Left);
    }
    let (reg, clock) = (registry(), Clock::new());
    let t = beat(&reg, &clock, ms(0), fake("w2", Status::Stopping))
        .transition
        .unwrap();
    assert_eq!((t.from, t.to), (None, Target::Left));
}

#[test]
fn six_hours_of_skew_either_way_stays_online_exactly_as_long() {
    let (reg, clock) = (registry(), Clock::new());
    let six_hours = TimeDelta::hours(6);
    let (now, wall) = clock.at(ms(0));
    for (id, sent_at) in [
        ("ok", wall),
        ("ahead", wall + six_hours),
        ("behind", wall - six_hours),
    ] {
        reg.upsert(fake(id, Status::Ready), sent_at, now, wall)
            .unwrap();
    }
    let (now, wall) = clock.at(ms(299));
    assert!(reg.expire(now, wall).transitions.is_empty());
    assert_eq!(reg.list(Filter::Online, now).len(), 3);
    let skews: Vec<_> = reg
        .list(Filter::All, now)
        .iter()
        .map(|e| e.clock_skew_ms)
        .collect();
    // Sorted by id: ahead, behind, ok.
    assert_eq!(skews, [21_600_000, -21_600_000, 0]);

    let (now, wall) = clock.at(ms(300));
    let expired = reg.expire(now, wall);
    assert_eq!(expired.transitions.len(), 3);
    assert_eq!(reg.counts().offline, 3);
}

#[test]
fn newer_started_at_counts_a_restart() {
    let (reg, clock) = (registry(), Clock::new());
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    let mut p = fake("w1", Status::Starting);
    p.started_at = epoch() + TimeDelta::seconds(30);
    let up = beat(&reg, &clock, ms(100), p.clone());
    let t = up.transition.unwrap();
    assert_eq!(t.reason, "restarted");
    assert_eq!((t.from, t.to), (Some(State::Online), Target::Online));
    assert!(!up.conflict_started);
    // Further beats of the same incarnation are not restarts.
    assert!(beat(&reg, &clock, ms(200), p).transition.is_none());
    let entry = reg.get("w1", clock.at(ms(200)).0).unwrap();
    assert_eq!(entry.restarts, 1);
    assert!(!entry.conflict);
}

#[test]
fn restart_after_going_offline_comes_back_online() {
    let (reg, clock) = (registry(), Clock::new());
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    let (now, wall) = clock.at(ms(400));
    reg.expire(now, wall);
    let mut p = fake("w1", Status::Ready);
    p.started_at = epoch() + TimeDelta::seconds(1);
    let t = beat(&reg, &clock, ms(500), p).transition.unwrap();
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (Some(State::Offline), Target::Online, "restarted")
    );
}

#[test]
fn older_started_at_is_a_conflict_not_a_restart() {
    let (reg, clock) = (registry(), Clock::new());
    let newer = {
        let mut p = fake("w1", Status::Ready);
        p.started_at = epoch() + TimeDelta::seconds(60);
        p
    };
    let older = fake("w1", Status::Busy);
    beat(&reg, &clock, ms(0), newer.clone());

    let up = beat(&reg, &clock, ms(10), older.clone());
    assert!(up.conflict_started && up.changed);
    let t = up.transition.unwrap();
    assert!(t.reason.contains("conflict"), "{}", t.reason);
    assert_eq!((t.from, t.to), (Some(State::Online), Target::Online));

    // Both processes keep beating: one episode, one transition, no restart.
    for i in 1..5 {
        assert!(
            beat(&reg, &clock, ms(10 + i * 50), newer.clone())
                .transition
                .is_none()
        );
        let up = beat(&reg, &clock, ms(20 + i * 50), older.clone());
        assert!(up.transition.is_none() && !up.conflict_started);
    }
    let last_older = ms(20 + 4 * 50);
    let entry = reg.get("w1", clock.at(last_older).0).unwrap();
    assert!(entry.conflict);
    assert_eq!(entry.restarts, 0);
    assert_eq!(
        entry.payload.started_at, newer.started_at,
        "keeps the newest started_at"
    );
    assert_eq!(entry.payload.status, Status::Ready);
    assert_eq!(
        serde_json::to_value(&entry).unwrap()["conflict"],
        serde_json::Value::Bool(true)
    );

    // Only the newer process beats from now on; the flag clears one whole timeout later.
    let mut t = last_older;
    while t < last_older + TIMEOUT - ms(50) {
        t += ms(50);
        beat(&reg, &clock, t, newer.clone());
        let (now, wall) = clock.at(t);
        assert!(!reg.expire(now, wall).changed);
        assert!(
            reg.get("w1", now).unwrap().conflict,
            "cleared early at {t:?}"
        );
    }
    assert_eq!(reg.next_deadline(), Some(clock.at(last_older + TIMEOUT).0));
    let (now, wall) = clock.at(last_older + TIMEOUT);
    let expired = reg.expire(now, wall);
    assert!(expired.changed && expired.transitions.is_empty());
    assert!(!reg.get("w1", now).unwrap().conflict);

    // A new episode is reported again.
    let (now, wall) = clock.at(last_older + TIMEOUT + ms(1));
    assert!(reg.upsert(older, wall, now, wall).unwrap().conflict_started);
}

#[test]
fn status_changes_are_transitions_and_health_changes_are_changes() {
    let (reg, clock) = (registry(), Clock::new());
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    let same = beat(&reg, &clock, ms(10), fake("w1", Status::Ready));
    assert!(same.transition.is_none() && !same.changed);

    let up = beat(&reg, &clock, ms(20), fake("w1", Status::Busy));
    let t = up.transition.unwrap();
    assert_eq!(t.reason, "status ready -> busy");
    assert_eq!((t.from, t.to), (Some(State::Online), Target::Online));

    let mut sick = fake("w1", Status::Busy);
    sick.health = Health::Unhealthy {
        reason: "oom".to_owned(),
    };
    let up = beat(&reg, &clock, ms(30), sick);
    assert!(up.transition.is_none() && up.changed);
}

#[test]
fn offline_and_left_entries_come_back_with_a_reason() {
    let (reg, clock) = (registry(), Clock::new());
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    beat(&reg, &clock, ms(0), fake("w2", Status::Stopping));
    let (now, wall) = clock.at(ms(400));
    reg.expire(now, wall);
    assert_eq!(state_of(&reg, "w1", now), State::Offline);

    let t = beat(&reg, &clock, ms(450), fake("w1", Status::Ready))
        .transition
        .unwrap();
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (Some(State::Offline), Target::Online, "heartbeat resumed")
    );
    let t = beat(&reg, &clock, ms(450), fake("w2", Status::Ready))
        .transition
        .unwrap();
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (Some(State::Left), Target::Online, "rejoined")
    );
    let entry = reg.get("w1", clock.at(ms(450)).0).unwrap();
    assert_eq!(entry.first_seen, clock.at(ms(0)).1);
    assert_eq!(entry.last_seen, clock.at(ms(450)).1);
}

#[test]
fn retention_removes_offline_and_left_entries() {
    let (reg, clock) = (registry(), Clock::new());
    beat(&reg, &clock, ms(0), fake("gone", Status::Ready));
    beat(&reg, &clock, ms(100), fake("left", Status::Stopped));
    // "gone" timed out at 300 ms even though nobody looked until later.
    let (now, wall) = clock.at(ms(1000));
    assert_eq!(reg.expire(now, wall).transitions.len(), 1);
    assert_eq!(
        reg.next_deadline(),
        Some(clock.at(ms(100) + RETENTION).0),
        "left entry's retention ends first"
    );

    let (now, wall) = clock.at(ms(100) + RETENTION);
    let expired = reg.expire(now, wall);
    let t = &expired.transitions[0];
    assert_eq!(
        (t.id.as_str(), t.from, t.to),
        ("left", Some(State::Left), Target::Removed)
    );
    assert_eq!(t.reason, "retention expired");
    assert_eq!(expired.next_deadline, Some(clock.at(ms(300) + RETENTION).0));

    let (now, wall) = clock.at(ms(300) + RETENTION);
    let expired = reg.expire(now, wall);
    assert_eq!(expired.transitions[0].id.as_str(), "gone");
    assert_eq!(expired.transitions[0].from, Some(State::Offline));
    assert!(reg.is_empty());
    assert_eq!(expired.next_deadline, None);
}

#[test]
fn zero_retention_removes_in_the_same_pass() {
    let reg = Registry::new(RegistryConfig {
        timeout: TIMEOUT,
        retention: Duration::ZERO,
        max_entries: 10,
        ..RegistryConfig::default()
    });
    let clock = Clock::new();
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    let (now, wall) = clock.at(TIMEOUT);
    let targets: Vec<_> = reg
        .expire(now, wall)
        .transitions
        .iter()
        .map(|t| t.to)
        .collect();
    assert_eq!(targets, [Target::Offline, Target::Removed]);
}

#[test]
fn the_cap_refuses_new_ids_but_updates_known_ones() {
    let reg = Registry::new(RegistryConfig {
        timeout: TIMEOUT,
        retention: RETENTION,
        max_entries: 2,
        ..RegistryConfig::default()
    });
    let clock = Clock::new();
    beat(&reg, &clock, ms(0), fake("a", Status::Ready));
    beat(&reg, &clock, ms(0), fake("b", Status::Ready));
    let (now, wall) = clock.at(ms(10));
    let err = reg
        .upsert(fake("c", Status::Ready), wall, now, wall)
        .unwrap_err();
    assert_eq!(err, RegistryError::Full { max_entries: 2 });
    assert_eq!(reg.len(), 2);
    assert!(reg.get("c", now).is_none());
    let up = reg
        .upsert(fake("a", Status::Busy), wall, now, wall)
        .unwrap();
    assert_eq!(up.transition.unwrap().reason, "status ready -> busy");
    // Removing one makes room again.
    assert!(reg.remove("b", wall).is_some());
    assert!(
        reg.upsert(fake("c", Status::Ready), wall, now, wall)
            .is_ok()
    );
}

#[test]
fn remove_records_a_removed_transition() {
    let (reg, clock) = (registry(), Clock::new());
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    let (now, wall) = clock.at(ms(5));
    let t = reg.remove("w1", wall).unwrap();
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (Some(State::Online), Target::Removed, "deleted")
    );
    assert!(reg.get("w1", now).is_none());
    assert!(reg.remove("w1", wall).is_none());
    assert!(reg.remove("never", wall).is_none());
}

#[test]
fn listings_are_sorted_and_filtered() {
    let (reg, clock) = (registry(), Clock::new());
    for (id, status) in [
        ("c", Status::Ready),
        ("a", Status::Busy),
        ("b", Status::Ready),
        ("d", Status::Stopped),
    ] {
        beat(&reg, &clock, ms(0), fake(id, status));
    }
    let now = clock.at(ms(1)).0;
    let ids = |f| -> Vec<String> {
        reg.list(f, now)
            .into_iter()
            .map(|e| e.payload.id.clone())
            .collect()
    };
    assert_eq!(ids(Filter::All), ["a", "b", "c", "d"]);
    assert_eq!(ids(Filter::Online), ["a", "b", "c"]);
    assert_eq!(ids(Filter::Available), ["b", "c"]);
    let view = reg.view(now);
    assert_eq!(view.entries.len(), 4);
    let online: Vec<_> = view.online_ids.iter().map(|i| i.as_str()).collect();
    assert_eq!(online, ["a", "b", "c"]);
    assert_eq!(view.available, 2);
    let counts = reg.counts();
    assert_eq!(
        (counts.online, counts.offline, counts.left, counts.available),
        (3, 0, 1, 2)
    );
    assert_eq!(counts.total(), 4);
    assert_eq!(counts.in_state(State::Left), 1);
}

#[test]
fn next_deadline_tracks_the_earliest_change() {
    let (reg, clock) = (registry(), Clock::new());
    assert_eq!(reg.next_deadline(), None);
    beat(&reg, &clock, ms(0), fake("a", Status::Ready));
    beat(&reg, &clock, ms(100), fake("b", Status::Ready));
    assert_eq!(reg.next_deadline(), Some(clock.at(ms(300)).0));
    beat(&reg, &clock, ms(150), fake("a", Status::Ready));
    assert_eq!(
        reg.next_deadline(),
        Some(clock.at(ms(400)).0),
        "b is now first"
    );
    let (now, wall) = clock.at(ms(400));
    let expired = reg.expire(now, wall);
    assert_eq!(expired.transitions.len(), 1);
    assert_eq!(expired.next_deadline, Some(clock.at(ms(450)).0));
    assert_eq!(reg.next_deadline(), expired.next_deadline);
}

#[test]
fn filters_parse_from_query_values() {
    assert_eq!("all".parse(), Ok(Filter::All));
    assert_eq!("online".parse(), Ok(Filter::Online));
    assert_eq!("available".parse(), Ok(Filter::Available));
    assert!("Online".parse::<Filter>().is_err());
    assert!("".parse::<Filter>().is_err());
}

#[tokio::test(start_paused = true)]
async fn works_with_the_paused_tokio_clock() {
    let reg = registry();
    let wall = epoch();
    reg.upsert(fake("w1", Status::Ready), wall, Instant::now(), wall)
        .unwrap();
    let deadline = reg.next_deadline().unwrap();
    tokio::time::sleep_until(deadline).await;
    let expired = reg.expire(Instant::now(), wall);
    assert_eq!(expired.transitions[0].to, Target::Offline);
}

/// What a collecting sink has received.
type Seen = Arc<Mutex<Vec<Change<Fake>>>>;

/// A registry whose sink collects every change, as the queen's change log would.
fn recorded() -> (Registry<Fake>, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let reg = Registry::with_sink(
        RegistryConfig {
            timeout: TIMEOUT,
            retention: RETENTION,
            max_entries: 100,
            usage_interval: ms(1000),
        },
        Arc::new(move |change| sink.lock().push(change)),
    );
    (reg, seen)
}

fn taken(seen: &Mutex<Vec<Change<Fake>>>) -> Vec<Change<Fake>> {
    std::mem::take(&mut *seen.lock())
}

#[test]
fn beats_that_change_only_volatile_fields_reach_no_sink() {
    let (reg, seen) = recorded();
    let clock = Clock::new();
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    assert_eq!(taken(&seen).len(), 1, "the first beat is a change");
    for i in 1..20 {
        // Later receipt times and another skew each beat: nothing material.
        let (now, wall) = clock.at(ms(i * 10));
        let up = reg
            .upsert(
                fake("w1", Status::Ready),
                wall - TimeDelta::seconds(7),
                now,
                wall,
            )
            .unwrap();
        assert!(!up.changed);
    }
    assert!(taken(&seen).is_empty());
}

#[test]
fn every_material_change_reaches_the_sink_with_the_entry_after_it() {
    let (reg, seen) = recorded();
    let clock = Clock::new();
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    beat(&reg, &clock, ms(10), fake("w1", Status::Busy));
    let mut unhealthy = fake("w1", Status::Busy);
    unhealthy.health = Health::Unhealthy {
        reason: "backend down".to_owned(),
    };
    beat(&reg, &clock, ms(20), unhealthy);
    let changes = taken(&seen);
    assert_eq!(changes.len(), 3);
    let first = &changes[0];
    assert_eq!(first.transition.as_ref().unwrap().reason, "first heartbeat");
    let busy = changes[1].entry.as_ref().unwrap();
    assert_eq!(busy.payload.status, Status::Busy);
    assert!(!busy.available);
    assert!(
        changes[1].transition.is_some(),
        "a status change is a transition"
    );
    let sick = changes[2].entry.as_ref().unwrap();
    assert_eq!(sick.payload.health.status(), HealthStatus::Unhealthy);
    assert!(
        changes[2].transition.is_none(),
        "a health change is a change, not a transition"
    );
}

#[test]
fn usage_figures_make_a_change_at_most_once_per_interval() {
    let (reg, seen) = recorded();
    let clock = Clock::new();
    beat(&reg, &clock, ms(0), fake("h1", Status::Ready));
    taken(&seen);
    let with_load = |load| Fake {
        load,
        ..fake("h1", Status::Ready)
    };
    // Usage moves every 100 ms for 2.5 s: changes at 1 s and 2 s only.
    for i in 1..=25_u64 {
        beat(&reg, &clock, ms(i * 100), with_load(i));
    }
    let changes = taken(&seen);
    let loads: Vec<u64> = changes
        .iter()
        .map(|c| c.entry.as_ref().unwrap().payload.load)
        .collect();
    assert_eq!(
        loads,
        vec![10, 20],
        "each revision carries the latest figures"
    );
    // Figures that changed once and then held still still reach the sink one interval later.
    beat(&reg, &clock, ms(2600), with_load(99));
    beat(&reg, &clock, ms(2700), with_load(99));
    assert!(taken(&seen).is_empty());
    beat(&reg, &clock, ms(3100), with_load(99));
    let late = taken(&seen);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].entry.as_ref().unwrap().payload.load, 99);
}

#[test]
fn timeouts_conflict_clearing_and_removals_reach_the_sink_in_order() {
    let (reg, seen) = recorded();
    let clock = Clock::new();
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    beat(&reg, &clock, ms(0), fake("w2", Status::Ready));
    taken(&seen);
    let (now, wall) = clock.at(TIMEOUT);
    reg.expire(now, wall);
    let offline = taken(&seen);
    assert_eq!(offline.len(), 2);
    for change in &offline {
        assert_eq!(change.entry.as_ref().unwrap().state, State::Offline);
        assert_eq!(change.transition.as_ref().unwrap().to, Target::Offline);
    }
    reg.remove("w1", wall).unwrap();
    let (now, wall) = clock.at(TIMEOUT + RETENTION);
    reg.expire(now, wall);
    let removed = taken(&seen);
    let ids: Vec<&str> = removed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["w1", "w2"]);
    assert!(removed.iter().all(|c| c.entry.is_none()));
    assert!(reg.is_empty());
}

/// Keeps every entry of `reg` (as a graceful stop would) and decodes them as a new queen reads
/// them back from its database.
fn kept_round_trip(reg: &Registry<Fake>) -> Vec<crate::Kept<Fake>> {
    reg.kept()
        .iter()
        .map(|kept| serde_json::from_str(&serde_json::to_string(kept).unwrap()).unwrap())
        .collect()
}

#[test]
fn restored_entries_come_back_as_they_were_with_a_fresh_timeout() {
    let old = registry();
    let clock = Clock::new();
    beat(&old, &clock, ms(0), fake("online", Status::Ready));
    let mut restarted = fake("online", Status::Ready);
    restarted.started_at = epoch() + TimeDelta::minutes(1);
    beat(&old, &clock, ms(10), restarted.clone());
    beat(&old, &clock, ms(0), fake("left", Status::Ready));
    beat(&old, &clock, ms(20), fake("left", Status::Stopping));
    beat(&old, &clock, ms(0), fake("offline", Status::Ready));
    let (now, wall) = clock.at(TIMEOUT + ms(5));
    beat(&old, &clock, TIMEOUT, restarted);
    beat(&old, &clock, TIMEOUT, fake("left", Status::Stopping));
    old.expire(now, wall);
    assert_eq!(state_of(&old, "offline", now), State::Offline);
    let kept = kept_round_trip(&old);

    // A new queen starts five seconds of wall time later, on a fresh monotonic clock.
    let (reg, seen) = recorded();
    let start = Instant::now();
    let start_wall = wall + TimeDelta::seconds(5);
    assert_eq!(reg.restore(kept, start, start_wall), 3);

    let online = reg.get("online", start).unwrap();
    assert_eq!(online.state, State::Online);
    assert!(online.restored);
    assert!(!online.available, "a restored entry is not available");
    assert_eq!(online.restarts, 1);
    assert_eq!(
        online.first_seen,
        old.get("online", now).unwrap().first_seen
    );
    assert_eq!(reg.get("left", start).unwrap().state, State::Left);
    let offline = reg.get("offline", start).unwrap();
    assert_eq!(offline.state, State::Offline);
    assert!(
        offline.last_seen_ms_ago >= 5_000,
        "ages continue across the restart: {}",
        offline.last_seen_ms_ago
    );
    // Only the online entry changed (it is now restored): one change, no transition.
    let changes = taken(&seen);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].id.as_str(), "online");
    assert!(changes[0].transition.is_none());
    assert!(changes[0].entry.as_ref().unwrap().restored);

    // The timeout counts from the start, not from the last heartbeat the old queen saw.
    let just_before = reg.expire(start + TIMEOUT - ms(1), start_wall);
    assert!(just_before.transitions.is_empty());
    let expired = reg.expire(start + TIMEOUT, start_wall);
    assert_eq!(expired.transitions.len(), 1);
    assert_eq!(
        expired.transitions[0].reason,
        crate::RESTORED_TIMEOUT_REASON
    );
}

#[test]
fn the_first_beat_after_a_restore_clears_the_flag() {
    let old = registry();
    let clock = Clock::new();
    beat(&old, &clock, ms(0), fake("w1", Status::Ready));
    let (reg, seen) = recorded();
    let start = Instant::now();
    let (_, wall) = clock.at(ms(100));
    reg.restore(kept_round_trip(&old), start, wall);
    taken(&seen);

    let upsert = reg
        .upsert(fake("w1", Status::Ready), wall, start + ms(50), wall)
        .unwrap();
    assert!(
        upsert.changed,
        "confirming a restored entry is a material change"
    );
    assert!(upsert.transition.is_none());
    let entry = reg.get("w1", start + ms(50)).unwrap();
    assert!(!entry.restored);
    assert!(entry.available);
    assert_eq!(taken(&seen).len(), 1);
    // From then on the usual rules: an identical beat changes nothing.
    let again = reg
        .upsert(fake("w1", Status::Ready), wall, start + ms(60), wall)
        .unwrap();
    assert!(!again.changed);
}

#[test]
fn retention_keeps_counting_across_a_restore() {
    let old = registry();
    let clock = Clock::new();
    beat(&old, &clock, ms(0), fake("gone", Status::Stopping));
    beat(&old, &clock, ms(0), fake("recent", Status::Ready));
    beat(
        &old,
        &clock,
        RETENTION - ms(1000),
        fake("recent", Status::Stopping),
    );
    let (_, wall) = clock.at(RETENTION - ms(1000));
    let kept = kept_round_trip(&old);

    // Down for two seconds: `gone` left a whole retention ago, `recent` one second before.
    let (reg, seen) = recorded();
    let start = Instant::now();
    let start_wall = wall + TimeDelta::seconds(2);
    assert_eq!(reg.restore(kept, start, start_wall), 1);
    assert!(reg.get("gone", start).is_none());
    let removed = taken(&seen);
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].id.as_str(), "gone");
    assert_eq!(removed[0].transition.as_ref().unwrap().to, Target::Removed);
    // `recent` has RETENTION - 2 s left, not a fresh RETENTION.
    let deadline = reg.next_deadline().unwrap();
    let left = deadline.saturating_duration_since(start);
    assert!(
        left <= RETENTION - ms(1900) && left >= RETENTION - ms(2100),
        "retention left: {left:?}"
    );
}

#[test]
fn a_kept_conflict_stays_flagged_until_a_timeout_passes() {
    let old = registry();
    let clock = Clock::new();
    beat(&old, &clock, ms(0), fake("w1", Status::Ready));
    let mut older = fake("w1", Status::Ready);
    older.started_at = epoch() - TimeDelta::minutes(1);
    beat(&old, &clock, ms(10), older);
    let (reg, _seen) = recorded();
    let start = Instant::now();
    let (_, wall) = clock.at(ms(20));
    reg.restore(kept_round_trip(&old), start, wall);
    assert!(reg.get("w1", start).unwrap().conflict);
    reg.upsert(fake("w1", Status::Ready), wall, start + ms(10), wall)
        .unwrap();
    reg.expire(start + TIMEOUT + ms(20), wall);
    assert!(!reg.get("w1", start + TIMEOUT + ms(20)).unwrap().conflict);
}

#[test]
fn a_repeated_payload_keeps_the_stored_one_and_a_changed_usage_figure_replaces_it() {
    let (reg, clock) = (registry(), Clock::new());
    beat(&reg, &clock, ms(0), fake("w1", Status::Ready));
    let (now, _) = clock.at(ms(10));
    let first = reg.get("w1", now).unwrap().payload;
    beat(&reg, &clock, ms(20), fake("w1", Status::Ready));
    let (now, _) = clock.at(ms(30));
    let entry = reg.get("w1", now).unwrap();
    assert!(Arc::ptr_eq(&first, &entry.payload));
    assert_eq!(entry.last_seen, clock.at(ms(20)).1);

    let busier = Fake {
        load: 7,
        ..fake("w1", Status::Ready)
    };
    beat(&reg, &clock, ms(40), busier);
    let (now, _) = clock.at(ms(50));
    assert_eq!(reg.get("w1", now).unwrap().payload.load, 7);
}
