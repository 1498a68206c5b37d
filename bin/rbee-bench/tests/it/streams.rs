//! The watch and stream scenarios in `--quick` form against the real queen: they must run to the
//! end and count what they promise (every change delivered, resumes exact), whatever the timing.

use std::{path::Path, process::Stdio, time::Duration};

use serde_json::Value;

/// Runs one quick scenario and returns its JSON report.
pub(crate) async fn quick(scenario: &str) -> Value {
    let exe = Path::new(env!("CARGO_BIN_EXE_rbee-bench"));
    let run = tokio::process::Command::new(exe)
        .args(["--scenario", scenario, "--quick", "--json", "--no-pin"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .unwrap_or_else(|_| panic!("{scenario} did not finish within 3 minutes"))
        .unwrap();
    assert!(
        out.status.success(),
        "{scenario} failed (build the queen first: cargo build --workspace --bins):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {v:#}"))
}

/// Every flip reached every reader, and nothing else changed.
fn assert_all_delivered(run: &Value) {
    assert!(u(run, "subscribers") > 0, "{run:#}");
    assert!(u(run, "flips") > 0, "{run:#}");
    assert_eq!(
        u(run, "deliveries"),
        u(run, "deliveries_expected"),
        "{run:#}"
    );
    assert_eq!(u(run, "flips_incomplete"), 0, "{run:#}");
    assert_eq!(u(run, "other_changes"), 0, "{run:#}");
    assert_eq!(u(run, "subscriber_errors"), 0, "{run:#}");
    assert_eq!(u(&run["beats"], "flip_failed"), 0, "{run:#}");
}

#[tokio::test]
async fn watch_delivers_every_change_to_every_subscriber() {
    let report = quick("watch").await;
    assert_all_delivered(&report["watch"]);
    assert_eq!(u(&report["watch"], "resyncs"), 0);
}

#[tokio::test]
async fn watch_connect_syncs_every_subscriber() {
    let report = quick("watch-connect").await;
    let c = &report["watch_connect"];
    assert!(u(c, "subscribers") > 0, "{c:#}");
    assert_eq!(u(c, "synced"), u(c, "subscribers"), "{c:#}");
    assert!(u(c, "sync_bytes") > 0, "{c:#}");
}

#[tokio::test]
async fn watch_resume_gets_exactly_the_missed_changes() {
    let report = quick("watch-resume").await;
    let r = &report["watch_resume"];
    assert!(u(r, "subscribers") > 0, "{r:#}");
    assert_eq!(u(r, "exact"), u(r, "subscribers"), "{r:#}");
    assert_eq!(u(r, "syncs"), 0, "{r:#}");
    assert_eq!(u(r, "gaps"), 0, "{r:#}");
    assert_eq!(u(r, "events"), u(r, "events_expected"), "{r:#}");
    assert_eq!(report["pass"]["resume_syncs"], Value::Bool(true));
}

#[tokio::test]
async fn stream_summaries_reflect_every_change() {
    let report = quick("stream").await;
    let runs = report["stream"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert!(u(run, "subscribers") > 0, "{run:#}");
        assert!(u(run, "flips") > 0, "{run:#}");
        assert_eq!(u(run, "flips_incomplete"), 0, "{run:#}");
        assert_eq!(u(run, "other_changes"), 0, "{run:#}");
        assert!(u(&run["delivery_all"], "count") > 0, "{run:#}");
    }
}

#[tokio::test]
async fn stalled_watchers_leave_readers_served() {
    let report = quick("watch-stalled").await;
    let s = &report["watch_stalled"];
    assert_all_delivered(&s["baseline"]);
    assert_all_delivered(&s["stalled"]);
    assert_eq!(u(&s["baseline"], "stalled"), 0);
    assert!(u(&s["stalled"], "stalled") > 0, "{s:#}");
    assert!(s["p99_ratio"].as_f64().is_some_and(f64::is_finite), "{s:#}");
}
