//! The kept-state scenarios in `--quick` form against the real queen: the store must write nothing
//! for steady beats, fail no write, and a start on a full data directory must restore every entry.

use crate::streams::{quick, u};

#[tokio::test]
async fn store_writes_changes_and_nothing_for_steady_beats() {
    let report = quick("store").await;
    let s = &report["store"];
    assert!(u(s, "steady_beats") > 0, "{s:#}");
    assert_eq!(u(s, "steady_rows"), 0, "{s:#}");
    assert_eq!(u(s, "steady_commits"), 0, "{s:#}");
    assert_eq!(u(s, "store_errors"), 0, "{s:#}");
    assert_eq!(s["health_store"], "ok", "{s:#}");
    // Every worker's first heartbeat is an entry and a transition.
    assert!(u(s, "registration_rows") >= 2 * u(s, "workers"), "{s:#}");
    assert!(u(s, "flips") > 0, "{s:#}");
    assert!(u(s, "rows") > 0 && u(s, "commits") > 0, "{s:#}");
    assert!(u(&s["commit_lag"], "count") > 0, "{s:#}");
    assert_eq!(u(s, "other_changes"), 0, "{s:#}");
    assert!(u(s, "db_bytes") + u(s, "wal_bytes") > 0, "{s:#}");
    assert_eq!(report["pass"]["store_steady_rows"], true);
    assert_eq!(report["pass"]["store_errors"], true);
}

#[tokio::test]
async fn startup_restores_every_kept_entry() {
    let report = quick("startup").await;
    let s = &report["startup"];
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{s:#}");
    assert!(u(s, "db_bytes") > 0, "{s:#}");
    for run in runs {
        assert_eq!(run["health_store"], "ok", "{s:#}");
        assert_eq!(u(run, "online"), u(s, "entries_online"), "{s:#}");
        assert_eq!(
            u(run, "online") + u(run, "offline") + u(run, "left"),
            u(s, "entries"),
            "{s:#}"
        );
        assert!(u(run, "events") > 0, "{s:#}");
        assert!(run["health_ms"].as_f64().unwrap() > 0.0, "{s:#}");
    }
}

#[tokio::test]
async fn ingest_store_runs_the_queen_with_its_store() {
    let report = quick("ingest-store").await;
    let i = &report["ingest_store"];
    assert_eq!(i["store"], true, "{i:#}");
    assert!(u(i, "store_rows") > 0, "{i:#}");
    assert_eq!(u(i, "store_errors"), 0, "{i:#}");
    assert_eq!(u(i, "queen_failed"), 0, "{i:#}");
    assert!(i["ingest_ratio"].as_f64().is_some_and(|r| r > 0.0), "{i:#}");
}
