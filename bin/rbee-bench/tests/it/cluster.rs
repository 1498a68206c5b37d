//! The cluster scenarios in `--quick` form against real queens on a real etcd (Debian's
//! `etcd-server`): they must run to the end and count what they promise, whatever the timing.

use crate::streams::{quick, u};

#[tokio::test]
async fn failover_finds_a_new_leader_every_time_and_loses_no_worker() {
    let report = quick("failover").await;
    let f = &report["failover"];
    assert!(u(f, "kills") > 0, "{f:#}");
    assert_eq!(u(f, "failovers"), u(f, "kills"), "{f:#}");
    assert_eq!(u(f, "offline_transitions"), 0, "{f:#}");
    assert_eq!(u(f, "online_at_end"), u(f, "workers"), "{f:#}");
    assert!(u(&f["beats"], "ok") > 0, "{f:#}");
}

#[tokio::test]
async fn cluster_leader_writes_changes_and_nothing_for_steady_beats() {
    let report = quick("cluster-writes").await;
    let w = &report["cluster_writes"];
    assert!(u(w, "steady_beats") > 0, "{w:#}");
    assert_eq!(u(w, "steady_txns"), 0, "{w:#}");
    assert_eq!(u(w, "steady_ops"), 0, "{w:#}");
    // Every worker's first heartbeat is a change the leader writes.
    assert!(u(w, "registration_ops") >= u(w, "workers"), "{w:#}");
    assert!(
        u(w, "flips") > 0 && u(w, "txns") > 0 && u(w, "ops") > 0,
        "{w:#}"
    );
    assert_eq!(report["pass"]["cluster_steady_etcd_ops"], true);
}

#[tokio::test]
async fn mirror_lag_follower_receives_every_change() {
    let report = quick("mirror-lag").await;
    let m = &report["mirror_lag"];
    assert!(u(m, "acked") > 0, "{m:#}");
    assert_eq!(u(&m["follower"], "deliveries"), u(m, "acked"), "{m:#}");
    assert_eq!(u(&m["follower"], "resyncs"), 0, "{m:#}");
    assert_eq!(m["follower"]["failed"], false, "{m:#}");
}

#[tokio::test]
async fn ingest_cluster_measures_the_leader_against_the_ceiling() {
    let report = quick("ingest-cluster").await;
    let i = &report["ingest_cluster"];
    assert_eq!(i["cluster"], true, "{i:#}");
    assert!(i["ingest_ratio"].as_f64().is_some_and(|r| r > 0.0), "{i:#}");
    assert!(u(i, "etcd_ops") > 0, "{i:#}");
    assert_eq!(u(i, "queen_failed"), 0, "{i:#}");
}
