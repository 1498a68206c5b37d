//! The etcd helper against the real `etcd` binary: start, raw keys, a lost member, a restart.
//! Each test skips when `etcd` is not on `PATH`, unless `RBEE_REQUIRE_ETCD=1` makes that fail.

use test_support::Etcd;

#[tokio::test]
async fn single_member_is_healthy_and_round_trips_a_key() {
    if !Etcd::require() {
        return;
    }
    let etcd = Etcd::start_single().await;
    let endpoints = etcd.endpoints();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(etcd.endpoints_arg(), endpoints[0]);
    let health = test_support::JsonClient::new(&endpoints[0])
        .get_ok("/health")
        .await
        .expect("a started member answers /health");
    assert_eq!(health["health"], "true");

    assert_eq!(etcd.get("/rbee/test/a").await, None);
    etcd.put("/rbee/test/a", "one").await;
    etcd.put("/rbee/test/b", "").await;
    etcd.put("/rbee/other", "x").await;
    assert_eq!(etcd.get("/rbee/test/a").await.as_deref(), Some(&b"one"[..]));
    assert_eq!(etcd.get("/rbee/test/b").await.as_deref(), Some(&b""[..]));
    assert_eq!(etcd.count_keys("/rbee/test/").await, 2);
    assert_eq!(etcd.count_keys("/nothing/").await, 0);
    assert_eq!(
        etcd.keys("/rbee/").await,
        ["/rbee/other", "/rbee/test/a", "/rbee/test/b"]
    );
}

#[tokio::test]
async fn cluster_serves_writes_after_losing_one_member() {
    if !Etcd::require() {
        return;
    }
    let mut etcd = Etcd::start_cluster(3).await;
    assert_eq!(etcd.endpoints_arg().split(',').count(), 3);
    let killed = etcd.member_pid(0);
    etcd.kill_member(0).await;
    assert!(
        nix::sys::signal::kill(killed, None).is_err(),
        "member 0 is gone after kill_member"
    );

    etcd.put_on(1, "/rbee/after-kill", "1").await;
    etcd.put_on(2, "/rbee/after-kill-2", "2").await;
    assert_eq!(etcd.count_keys("/rbee/after-kill").await, 2);

    etcd.restart_member(0).await;
    assert_ne!(etcd.member_pid(0), killed);
    etcd.put_on(0, "/rbee/after-restart", "3").await;
}

#[tokio::test]
async fn restart_all_keeps_the_data() {
    if !Etcd::require() {
        return;
    }
    let mut etcd = Etcd::start_cluster(3).await;
    let endpoints = etcd.endpoints();
    etcd.put("/rbee/kept", "before").await;

    etcd.stop_all().await;
    etcd.restart_all().await;

    assert_eq!(etcd.endpoints(), endpoints);
    assert_eq!(
        etcd.get("/rbee/kept").await.as_deref(),
        Some(&b"before"[..])
    );
}
