//! Queens in a cluster on a real etcd (SPEC section 11): election, redirects, the followers'
//! mirror, failovers by SIGKILL and SIGSTOP, and etcd itself failing.

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};
use test_support::{Daemon, Etcd, Signal, SseRecorder, try_wait_until, wait_until};
use tokio::time::Instant;

use crate::fleet::{DEADLINE, Queen, STARTUP, hive, slot, worker};

/// The leader's lease: etcd's smallest.
const LEASE: Duration = Duration::from_secs(2);
/// The contract: a new leader within the lease plus one second.
const FAILOVER: Duration = Duration::from_secs(3);
/// The queens' liveness timeout here: long enough that a sender finds the new leader after a
/// takeover on a busy machine, short enough that tests stay quick.
const TIMEOUT: Duration = Duration::from_millis(1500);

/// Three queens (or any number) on one etcd.
struct Cluster {
    etcd: Etcd,
    queens: Vec<Option<Queen>>,
    addrs: Vec<SocketAddr>,
}

fn queen_flags(etcd: &Etcd) -> Vec<String> {
    vec![
        "--etcd-endpoints".to_owned(),
        etcd.endpoints_arg(),
        "--leader-lease".to_owned(),
        format!("{}s", LEASE.as_secs()),
        "--heartbeat-timeout".to_owned(),
        format!("{}ms", TIMEOUT.as_millis()),
    ]
}

impl Cluster {
    /// Starts `queens` queens on `etcd`; `None` when etcd is not installed (and not required).
    async fn start(etcd: Etcd, queens: usize) -> Cluster {
        let flags = queen_flags(&etcd);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut started = Vec::new();
        for _ in 0..queens {
            started.push(Queen::start(&flags).await);
        }
        let addrs = started.iter().map(|q| q.addr).collect();
        Cluster {
            etcd,
            queens: started.into_iter().map(Some).collect(),
            addrs,
        }
    }

    fn urls(&self) -> Vec<String> {
        self.addrs.iter().map(|a| format!("http://{a}")).collect()
    }

    /// Every queen's URL, comma-separated, as senders take them.
    fn queen_urls(&self) -> String {
        self.urls().join(",")
    }

    fn running(&self) -> impl Iterator<Item = &Queen> {
        self.queens.iter().flatten()
    }

    fn queen(&self, url: &str) -> &Queen {
        self.running()
            .find(|q| q.url() == url)
            .unwrap_or_else(|| panic!("no running queen at {url}"))
    }

    /// Waits until every running queen names the same leader, itself running, and returns it.
    async fn agreed_leader(&self, timeout: Duration) -> String {
        wait_until("every queen names one running leader", timeout, || async {
            let mut leader: Option<String> = None;
            for queen in self.running() {
                let cluster = queen.api.get_ok("/v1/cluster").await?;
                let named = cluster["leader"].as_str()?.to_owned();
                if leader.as_ref().is_some_and(|l| *l != named) {
                    return None;
                }
                leader = Some(named);
            }
            let leader = leader?;
            let me = self.queen_opt(&leader)?.api.get_ok("/v1/cluster").await?;
            (me["role"] == "leader").then_some(leader)
        })
        .await
    }

    fn queen_opt(&self, url: &str) -> Option<&Queen> {
        self.running().find(|q| q.url() == url)
    }

    /// SIGKILLs the queen at `url` and forgets it.
    async fn kill(&mut self, url: &str) {
        let index = self.index(url);
        if let Some(mut queen) = self.queens[index].take() {
            queen.daemon.kill().await;
        }
    }

    /// Starts a queen again on the port of the one at `url`.
    async fn restart(&mut self, url: &str) {
        let index = self.index(url);
        let flags = queen_flags(&self.etcd);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        self.queens[index] = Some(Queen::start_on(self.addrs[index], &flags).await);
    }

    fn index(&self, url: &str) -> usize {
        self.urls()
            .iter()
            .position(|u| u == url)
            .unwrap_or_else(|| panic!("{url} is not a queen of this cluster"))
    }

    fn followers(&self, leader: &str) -> Vec<&Queen> {
        self.running().filter(|q| q.url() != leader).collect()
    }
}

/// A watch on `queen`, recording from its first `sync` on.
async fn watch(queen: &Queen) -> SseRecorder {
    let recorder = SseRecorder::connect(&format!("{}/v1/watch", queen.url()), None).await;
    recorder
        .wait_for("sync", DEADLINE, |e| e.event == "sync")
        .await;
    recorder
}

/// Worker ids that went offline in the upserts `recorder` saw after `since`.
fn went_offline(recorder: &SseRecorder, since: Instant) -> Vec<String> {
    recorder
        .events()
        .iter()
        .filter(|e| e.received >= since && e.event == "upsert")
        .map(|e| e.json())
        .filter(|data| data["transition"]["to"] == "offline")
        .map(|data| data["transition"]["id"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn fleet(cluster: &Cluster, workers: &[&str]) -> Vec<Daemon> {
    let urls = cluster.queen_urls();
    let mut senders = vec![hive(&urls, "cluster-hive").spawn()];
    senders.extend(workers.iter().map(|id| worker(&urls, id).spawn()));
    senders
}

/// A cluster under test with its leader, and the senders beating at it.
struct Running {
    cluster: Cluster,
    leader: String,
    senders: Vec<Daemon>,
    _slot: tokio::sync::SemaphorePermit<'static>,
}

/// Starts etcd (`members` members), three queens and, unless `workers` is empty, a hive and
/// those workers, and waits until the leader has them all available. `None` when etcd is not
/// installed and not required (the test then passes as skipped).
async fn running(members: usize, workers: &[&str]) -> Option<Running> {
    if !Etcd::require() {
        return None;
    }
    let slot = slot().await;
    let etcd = if members == 1 {
        Etcd::start_single().await
    } else {
        Etcd::start_cluster(members).await
    };
    let cluster = Cluster::start(etcd, 3).await;
    let leader = cluster.agreed_leader(STARTUP).await;
    let senders = if workers.is_empty() {
        Vec::new()
    } else {
        let senders = fleet(&cluster, workers);
        cluster
            .queen(&leader)
            .wait_all_available(&["cluster-hive"], workers, STARTUP)
            .await;
        senders
    };
    Some(Running {
        cluster,
        leader,
        senders,
        _slot: slot,
    })
}

/// A worker heartbeat body, sent by hand.
fn beat(id: &str) -> Value {
    json!({
        "worker": {
            "id": id,
            "hive_id": "cluster-hive",
            "model_id": "tiny/test-model",
            "device": "cpu",
            "port": 9301,
            "status": "ready",
            "health": {"status": "healthy"},
            "started_at": "2026-12-03T10:00:00Z",
            "implementation": "test",
            "version": "0"
        },
        "timestamp": chrono::Utc::now().to_rfc3339(),
    })
}

/// POSTs a heartbeat without following redirects.
async fn post_beat(url: &str, id: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{url}/v1/worker-heartbeat"))
        .json(&beat(id))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn three_queens_elect_exactly_one_leader_and_agree_on_the_cluster() {
    if !Etcd::require() {
        return;
    }
    let _slot = slot().await;
    let etcd = Etcd::start_single().await;
    let cluster = Cluster::start(etcd, 3).await;
    let started = Instant::now();
    let leader = cluster.agreed_leader(Duration::from_secs(2)).await;
    let mut expected = cluster.urls();
    expected.sort();
    // Every queen lists every member (each refreshes the list as it renews its lease).
    wait_until(
        "every queen lists all three members",
        Duration::from_secs(2),
        || async {
            for queen in cluster.running() {
                let view = queen.api.get_ok("/v1/cluster").await?;
                let urls: Vec<&str> = view["members"]
                    .as_array()?
                    .iter()
                    .filter_map(|m| m["url"].as_str())
                    .collect();
                if urls != expected {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "agreed after {:?}",
        started.elapsed()
    );

    let mut leaders = 0;
    for queen in cluster.running() {
        let view = queen.api.get_ok("/v1/cluster").await.unwrap();
        assert_eq!(view["self"], queen.url());
        assert_eq!(view["leader"], leader.as_str());
        assert_eq!(view["etcd"], "ok");
        leaders += usize::from(view["role"] == "leader");
        let members = view["members"].as_array().unwrap();
        let urls: Vec<&str> = members.iter().filter_map(|m| m["url"].as_str()).collect();
        assert_eq!(urls, expected, "{view}");
        let roles: Vec<(&str, &str)> = members
            .iter()
            .filter_map(|m| Some((m["url"].as_str()?, m["role"].as_str()?)))
            .collect();
        for (url, role) in roles {
            assert_eq!(role == "leader", url == leader, "{view}");
        }
    }
    assert_eq!(leaders, 1);
}

#[tokio::test]
async fn a_heartbeat_sent_to_a_follower_lands_and_every_queen_streams_it_with_one_id() {
    let Some(Running {
        cluster,
        leader,
        senders: _senders,
        _slot,
    }) = running(1, &[]).await
    else {
        return;
    };
    let follower = cluster.followers(&leader)[0];
    let on_leader = watch(cluster.queen(&leader)).await;
    let on_follower = watch(follower).await;

    let redirect = post_beat(&follower.url(), "via-follower").await;
    assert_eq!(redirect.status(), 307);
    assert_eq!(
        redirect.headers()["location"],
        format!("{leader}/v1/worker-heartbeat").as_str()
    );
    let body: Value = redirect.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_leader");

    // A client that follows redirects, as senders do: it lands on the leader.
    let landed = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap()
        .post(format!("{}/v1/worker-heartbeat", follower.url()))
        .json(&beat("via-follower"))
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), 200);

    let is_upsert = |e: &test_support::SseEvent| {
        e.event == "upsert" && e.json()["entry"]["worker"]["id"] == "via-follower"
    };
    let a = on_leader
        .wait_for("the upsert on the leader", DEADLINE, is_upsert)
        .await;
    let b = on_follower
        .wait_for("the upsert on the follower", DEADLINE, is_upsert)
        .await;
    assert!(a.id.is_some());
    assert_eq!(a.id, b.id);
    assert_eq!(a.data, b.data);
    for queen in cluster.running() {
        queen
            .wait_state("worker", "via-follower", "online", DEADLINE)
            .await;
    }
}

#[tokio::test]
async fn a_killed_leader_is_replaced_within_the_lease_and_no_live_worker_goes_offline() {
    let workers = ["k1", "k2", "k3", "k4"];
    let Some(Running {
        mut cluster,
        leader,
        senders: _senders,
        _slot,
    }) = running(1, &workers).await
    else {
        return;
    };
    failover(&mut cluster, &leader, &workers).await;
}

/// Kills `leader`, checks the failover, and returns the new leader.
async fn failover(cluster: &mut Cluster, leader: &str, workers: &[&str]) -> String {
    let mut watches = Vec::new();
    for follower in cluster.followers(leader) {
        watches.push(watch(follower).await);
    }
    let killed = Instant::now();
    cluster.kill(leader).await;
    let new_leader = cluster
        .agreed_leader(FAILOVER + Duration::from_secs(2))
        .await;
    let took = killed.elapsed();
    assert_ne!(new_leader, leader);
    assert!(took <= FAILOVER, "a new leader after {took:?}");

    let queen = cluster.queen(&new_leader);
    queen
        .wait_all_available(&["cluster-hive"], workers, DEADLINE)
        .await;
    // Two timeouts after the takeover, nobody went offline on any queen.
    let quiet_until = Instant::now() + 2 * TIMEOUT;
    let settled = try_wait_until(3 * TIMEOUT, || async {
        let none = watches.iter().all(|w| went_offline(w, killed).is_empty());
        (!none || Instant::now() >= quiet_until).then_some(none)
    })
    .await;
    for watch in &watches {
        assert!(
            went_offline(watch, killed).is_empty(),
            "offline after the failover: {:?}",
            went_offline(watch, killed)
        );
    }
    assert_eq!(settled, Some(true));
    new_leader
}

#[tokio::test]
async fn twenty_leader_kills_in_a_row_are_twenty_clean_failovers() {
    let workers = ["loop-1", "loop-2"];
    let Some(Running {
        mut cluster,
        mut leader,
        senders: _senders,
        _slot,
    }) = running(1, &workers).await
    else {
        return;
    };
    for round in 0..20 {
        let next = failover(&mut cluster, &leader, &workers).await;
        cluster.restart(&leader).await;
        cluster.agreed_leader(DEADLINE).await;
        assert_ne!(next, leader, "round {round}");
        leader = next;
    }
}

#[tokio::test]
async fn a_frozen_leader_is_replaced_and_once_awake_never_acknowledges_a_heartbeat() {
    let workers = ["f1", "f2"];
    let Some(Running {
        cluster,
        leader,
        senders: _senders,
        _slot,
    }) = running(1, &workers).await
    else {
        return;
    };
    let old = cluster.queen(&leader);

    old.daemon.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let new_leader = wait_until(
        "a follower took over",
        FAILOVER + Duration::from_secs(2),
        || async {
            for follower in cluster.followers(&leader) {
                let view = follower.api.get_ok("/v1/cluster").await?;
                if view["role"] == "leader" {
                    return Some(follower.url());
                }
            }
            None
        },
    )
    .await;
    assert!(
        stopped.elapsed() <= FAILOVER,
        "took over after {:?}",
        stopped.elapsed()
    );
    cluster
        .queen(&new_leader)
        .wait_all_available(&["cluster-hive"], &workers, DEADLINE)
        .await;
    let transitions_before = cluster
        .queen(&new_leader)
        .api
        .get_ok("/v1/events?limit=1000")
        .await
        .unwrap();

    old.daemon.signal(Signal::SIGCONT);
    // The very first heartbeat after waking is refused: the gate reads the monotonic clock.
    let first = post_beat(&leader, "fenced").await;
    assert_ne!(
        first.status(),
        200,
        "a frozen leader acknowledged a heartbeat on waking"
    );
    for _ in 0..10 {
        let response = post_beat(&leader, "fenced").await;
        assert_ne!(response.status(), 200);
    }
    let view = wait_until("the old leader follows", DEADLINE, || async {
        let view = old.api.get_ok("/v1/cluster").await?;
        (view["leader"] == new_leader.as_str()).then_some(view)
    })
    .await;
    assert_eq!(view["role"], "follower");
    // Nothing the old leader did reached the fleet: no entry for the id it was sent, and the
    // new leader's transitions only grew by its own.
    for queen in cluster.running() {
        assert!(queen.entry("worker", "fenced").await.is_none());
    }
    let after = cluster
        .queen(&new_leader)
        .api
        .get_ok("/v1/events?limit=1000")
        .await
        .unwrap();
    let offline = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] == "offline")
        .count();
    assert_eq!(offline, 0, "before {transitions_before}, after {after}");
}

#[tokio::test]
async fn a_worker_killed_during_a_failover_goes_offline_one_timeout_after_the_takeover() {
    let Some(Running {
        mut cluster,
        leader,
        mut senders,
        _slot,
    }) = running(1, &["alive", "doomed"]).await
    else {
        return;
    };
    let on_follower = watch(cluster.followers(&leader)[0]).await;

    cluster.kill(&leader).await;
    senders[2].kill().await;
    let new_leader = cluster
        .agreed_leader(FAILOVER + Duration::from_secs(2))
        .await;
    let took_over = Instant::now();
    let offline = on_follower
        .wait_for("doomed offline", 2 * TIMEOUT + DEADLINE, |e| {
            e.event == "upsert"
                && e.json()["transition"]["id"] == "doomed"
                && e.json()["transition"]["to"] == "offline"
        })
        .await;
    let after = offline.received.saturating_duration_since(took_over);
    // Seen as leader up to a poll after it took over; offline one timeout after that.
    assert!(
        after + Duration::from_millis(500) >= TIMEOUT,
        "offline only {after:?} after the takeover"
    );
    assert!(
        after <= TIMEOUT + Duration::from_secs(1),
        "offline {after:?} after the takeover"
    );
    let alive = cluster
        .queen(&new_leader)
        .entry("worker", "alive")
        .await
        .unwrap();
    assert_eq!(alive["state"], "online");
}

#[tokio::test]
async fn a_watch_resumes_on_another_queen_with_exactly_the_changes_it_missed() {
    let Some(Running {
        mut cluster,
        leader,
        senders: _senders,
        _slot,
    }) = running(1, &[]).await
    else {
        return;
    };
    let followers: Vec<String> = cluster.followers(&leader).iter().map(|q| q.url()).collect();
    for id in ["before-1", "before-2"] {
        assert_eq!(post_beat(&leader, id).await.status(), 200);
    }
    cluster
        .queen(&followers[0])
        .wait_state("worker", "before-2", "online", DEADLINE)
        .await;
    let first = watch(cluster.queen(&followers[0])).await;
    let sync = first
        .wait_for("the sync", DEADLINE, |e| e.event == "sync")
        .await;
    assert_eq!(sync.json()["workers"].as_array().unwrap().len(), 2);
    let last_id = sync.id.clone().unwrap();

    cluster.kill(&followers[0]).await;
    drop(first);
    for id in ["missed-1", "missed-2", "missed-3"] {
        assert_eq!(post_beat(&leader, id).await.status(), 200);
    }
    cluster
        .queen(&followers[1])
        .wait_state("worker", "missed-3", "online", DEADLINE)
        .await;

    let resumed =
        SseRecorder::connect(&format!("{}/v1/watch?since={last_id}", followers[1]), None).await;
    let ids = wait_until("the three missed upserts", DEADLINE, || async {
        let upserts: Vec<String> = resumed
            .events()
            .iter()
            .filter(|e| e.event == "upsert")
            .map(|e| {
                e.json()["entry"]["worker"]["id"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect();
        (upserts.len() >= 3).then_some(upserts)
    })
    .await;
    assert_eq!(ids, ["missed-1", "missed-2", "missed-3"]);
    assert_eq!(
        resumed.count(|e| e.event == "sync"),
        0,
        "resumed, not synced"
    );
}

#[tokio::test]
async fn losing_one_of_three_etcd_members_changes_nothing_for_the_fleet() {
    let workers = ["m1", "m2"];
    let Some(Running {
        mut cluster,
        leader,
        senders: _senders,
        _slot,
    }) = running(3, &workers).await
    else {
        return;
    };
    let watches = [watch(cluster.followers(&leader)[0]).await];
    let killed = Instant::now();
    cluster.etcd.kill_member(0).await;
    // A new worker still registers, and for four lease times the leader stays the leader.
    let _late = worker(&cluster.queen_urls(), "m-late").spawn();
    cluster
        .queen(&leader)
        .wait_all_available(&["cluster-hive"], &["m1", "m2", "m-late"], DEADLINE)
        .await;
    // Watched until four lease times after the kill: any other leader, or an offline worker,
    // ends the wait early and fails.
    let window = (killed + 4 * LEASE).saturating_duration_since(Instant::now());
    let changed = try_wait_until(window, || async {
        let now = cluster.agreed_leader(DEADLINE).await;
        (now != leader || !went_offline(&watches[0], killed).is_empty()).then_some(now)
    })
    .await;
    assert_eq!(changed, None, "the leader changed or a worker went offline");
    assert!(went_offline(&watches[0], killed).is_empty());
}

#[tokio::test]
async fn while_etcd_is_down_followers_serve_their_mirror_and_nothing_acknowledged_is_lost() {
    let workers = ["d1", "d2"];
    let Some(Running {
        mut cluster,
        leader,
        senders: _senders,
        _slot,
    }) = running(1, &workers).await
    else {
        return;
    };
    // Acknowledged just before etcd goes.
    assert_eq!(post_beat(&leader, "acked").await.status(), 200);

    cluster.etcd.stop_all().await;
    // The leader stops judging within its lease: heartbeats are refused.
    wait_until(
        "the leader refuses heartbeats",
        FAILOVER + Duration::from_secs(1),
        || async { (post_beat(&leader, "during").await.status() != 200).then_some(()) },
    )
    .await;
    for follower in cluster.followers(&leader) {
        let view = wait_until("a follower says etcd is unreachable", DEADLINE, || async {
            let view = follower.api.get_ok("/v1/cluster").await?;
            (view["etcd"] == "unreachable").then_some(view)
        })
        .await;
        assert_eq!(view["role"], "follower");
        let workers = follower.api.get_ok("/v1/workers").await.unwrap();
        assert!(
            workers.as_array().unwrap().len() >= 2,
            "the mirror is still served"
        );
    }

    cluster.etcd.restart_all().await;
    let back = Instant::now();
    let new_leader = cluster.agreed_leader(FAILOVER + DEADLINE).await;
    assert!(
        back.elapsed() <= FAILOVER + Duration::from_secs(2),
        "a leader {:?} after etcd came back",
        back.elapsed()
    );
    for queen in cluster.running() {
        queen
            .wait_entry("worker", "acked", "kept", DEADLINE, |_| true)
            .await;
    }
    cluster
        .queen(&new_leader)
        .wait_all_available(&["cluster-hive"], &workers, DEADLINE)
        .await;
}

#[tokio::test]
async fn a_leader_under_heavy_ingest_keeps_its_lease() {
    if !Etcd::require() {
        return;
    }
    let _slot = crate::fleet::exclusive().await;
    let etcd = Etcd::start_single().await;
    let cluster = Cluster::start(etcd, 2).await;
    let leader = cluster.agreed_leader(STARTUP).await;
    // As many heartbeats as the queen can take, for three lease times: the etcd client runs on
    // a thread of its own, so its keep-alive is never queued behind them.
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let until = Instant::now() + 3 * LEASE;
    let mut load = Vec::new();
    for task in 0..64 {
        let client = client.clone();
        let url = format!("{leader}/v1/worker-heartbeat");
        load.push(tokio::spawn(async move {
            let mut acked = 0_u32;
            let mut n = 0_u32;
            while Instant::now() < until {
                let id = format!("load-{task}-{}", n % 8);
                n += 1;
                if let Ok(response) = client.post(&url).json(&beat(&id)).send().await {
                    acked += u32::from(response.status() == 200);
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for task in load {
        acked += task.await.unwrap();
    }
    assert!(acked > 1000, "only {acked} heartbeats acknowledged");
    assert_eq!(cluster.agreed_leader(DEADLINE).await, leader);
    let queen = cluster.queen(&leader);
    assert_eq!(
        queen.daemon.count_containing("could not be renewed"),
        0,
        "{}",
        queen.daemon.output()
    );
    let metrics = queen
        .api
        .client()
        .get(format!("{leader}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rbee_cluster_elections_won_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("rbee_cluster_leader 1\n"), "{metrics}");
}

#[tokio::test]
async fn every_queen_streams_a_burst_of_changes_whole_and_in_order() {
    let Some(Running {
        cluster,
        leader,
        senders: _senders,
        _slot,
    }) = running(1, &[]).await
    else {
        return;
    };
    let mut watches = vec![watch(cluster.queen(&leader)).await];
    for follower in cluster.followers(&leader) {
        watches.push(watch(follower).await);
    }
    // Concurrent heartbeats, so that the leader's publisher and etcd writer see them in
    // batches of all sizes.
    let mut posts = Vec::new();
    for n in 0..60 {
        let leader = leader.clone();
        posts.push(tokio::spawn(async move {
            post_beat(&leader, &format!("burst-{n}")).await.status()
        }));
    }
    for post in posts {
        assert_eq!(post.await.unwrap(), 200);
    }
    let mut streams = Vec::new();
    for watch in &watches {
        let revisions = wait_until("60 upserts", DEADLINE, || async {
            let revisions: Vec<u64> = watch
                .events()
                .iter()
                .filter(|e| e.event == "upsert")
                .filter_map(|e| e.json()["revision"].as_u64())
                .collect();
            (revisions.len() >= 60).then_some(revisions)
        })
        .await;
        assert!(
            revisions.windows(2).all(|w| w[1] == w[0] + 1),
            "revisions with gaps: {revisions:?}"
        );
        streams.push(revisions);
    }
    assert!(streams.windows(2).all(|w| w[0] == w[1]), "{streams:?}");
}
