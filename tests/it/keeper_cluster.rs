//! `rbee-keeper up --queens N`: a cluster of queens on an etcd the keeper starts, the senders
//! pointed at all of them, `status` and the dashboard naming the leader, and no process left
//! behind when the keeper stops, however it stops.
//!
//! The tests run where `etcd` is on PATH (Debian's etcd-server); elsewhere they print a skip
//! line, unless `RBEE_REQUIRE_ETCD=1` makes that a failure.

use std::{collections::BTreeSet, net::TcpListener, time::Duration};

use serde_json::Value;
use test_support::{Daemon, Etcd, JsonClient, Signal, binary_path, wait_for, wait_until};

use crate::browser::{Browser, wait_page};

/// Generous: etcd, three queens, a hive and two workers start on a busy two-core machine.
const STARTUP: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_queens_agree_on_a_leader_that_has_the_fleet_and_sigterm_stops_every_process() {
    let Some(mut up) = Up::start(3).await else {
        return;
    };
    let banner = &up.banner;
    assert_eq!(banner.queens.len(), 3, "{}", up.keeper.output());
    // etcd (its guard), three queens, the hive and two workers, each named with its pid.
    assert_eq!(banner.pids.len(), 7, "{}", up.keeper.output());

    let queens: Vec<JsonClient> = banner.queens.iter().map(JsonClient::new).collect();
    let leader = wait_until("every queen to name the same leader", STARTUP, || {
        agreed_leader(&queens)
    })
    .await;
    assert_eq!(banner.leader, leader, "the banner names the leader");
    let on_leader = JsonClient::new(&leader);
    wait_until(
        "the hive and both workers online on the leader",
        STARTUP,
        || fleet_online(&on_leader),
    )
    .await;

    // `status` on a follower says whom it talks to and who leads, above the counts.
    let follower = banner.queens.iter().find(|q| **q != leader).unwrap();
    let text = keeper_cli(&["status", "--queen-url", follower]).await;
    let summary = format!("CLUSTER: this queen {follower} is a follower, leader {leader}, etcd ok");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], summary, "{text}");
    let workers_at = lines.iter().position(|l| l.starts_with("WORKERS:"));
    assert_eq!(
        workers_at,
        Some(7),
        "the cluster block comes before the counts:\n{text}"
    );
    assert!(text.contains(&format!("{leader}  leader")), "{text}");
    let text = keeper_cli(&["status", "--json", "--queen-url", follower]).await;
    let json: Value = serde_json::from_str(&text).expect("status --json prints json");
    assert_eq!(json["cluster"]["role"], "follower");
    assert_eq!(json["cluster"]["leader"], leader.as_str());
    assert_eq!(json["workers_online"], 2);

    dashboards_name_the_leader(&leader, follower).await;

    up.keeper.signal(Signal::SIGTERM);
    let status = up.keeper.wait_exit(Duration::from_secs(40)).await;
    let output = up.keeper.output();
    assert!(status.success(), "keeper exited with {status}:\n{output}");
    assert!(output.contains("stopped 7 processes"), "{output}");
    up.wait_all_gone().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_keeper_leaves_neither_queens_nor_etcd_behind() {
    let Some(mut up) = Up::start(2).await else {
        return;
    };
    // SIGKILL gives the keeper no chance: its children see their stdin close, and etcd's guard
    // stops etcd once the queens had their moment to write to it.
    up.keeper.signal(Signal::SIGKILL);
    up.keeper.wait_exit(Duration::from_secs(10)).await;
    up.wait_all_gone().await;
}

#[tokio::test]
async fn several_queens_without_etcd_on_path_is_a_usage_error() {
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(binary_path("rbee-keeper"));
    cmd.args([
        "up",
        "--queens",
        "3",
        "--port",
        &consecutive_free_ports(3).to_string(),
    ])
    .env("PATH", empty.path())
    .kill_on_drop(true);
    process_kit::scrub_rbee_env(cmd.as_std_mut());
    let out = tokio::time::timeout(STARTUP, cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("etcd-server") && err.contains("--etcd-endpoints"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// A running `rbee-keeper up --queens N`, with what its banner says and etcd's pid.
struct Up {
    keeper: Daemon,
    banner: Banner,
    etcd: i32,
    _slot: tokio::sync::SemaphorePermit<'static>,
}

impl Up {
    /// Starts `up --queens N` with two workers, short intervals and a short lease, and waits
    /// for its banner; `None` where etcd is missing and the test is skipped.
    async fn start(queens: usize) -> Option<Up> {
        if !Etcd::require() {
            return None;
        }
        let slot = crate::fleet::slot().await;
        let keeper = Daemon::builder("rbee-keeper")
            .args(["up", "--queens", &queens.to_string(), "--workers", "2"])
            .args(["--port", &consecutive_free_ports(queens).to_string()])
            .args(["--heartbeat-interval", "250ms", "--leader-lease", "2s"])
            .args(["--startup-timeout", "80s"])
            .name("rbee-keeper up")
            .spawn();
        keeper.wait_for_line("Press Ctrl-C", STARTUP).await;
        let banner = Banner::read(&keeper);
        let etcd = etcd_pid(banner.guard);
        Some(Up {
            keeper,
            banner,
            etcd,
            _slot: slot,
        })
    }

    /// Waits until every child the keeper named, and etcd, has exited.
    async fn wait_all_gone(&self) {
        let every: Vec<i32> = self
            .banner
            .pids
            .iter()
            .copied()
            .chain([self.etcd])
            .collect();
        wait_for(
            "every child of the keeper, and etcd, to be gone",
            STARTUP,
            || every.iter().all(|&pid| gone(pid)),
        )
        .await;
    }
}

/// What the keeper's banner says.
#[derive(Debug)]
struct Banner {
    /// Each queen's base URL, in port order.
    queens: Vec<String>,
    /// The queen marked `(leader)`.
    leader: String,
    /// Every child the keeper names.
    pids: BTreeSet<i32>,
    /// The pid named for etcd: its guard's.
    guard: i32,
}

impl Banner {
    fn read(keeper: &Daemon) -> Banner {
        let lines = keeper.lines();
        let mut queens = Vec::new();
        let mut leader = None;
        let mut pids = BTreeSet::new();
        let mut guard = None;
        for line in &lines {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("dashboard  ") {
                let (url, role) = rest.split_once("/  ").expect("a queen's role");
                if role == "(leader)" {
                    leader = Some(url.to_owned());
                }
                queens.push(url.to_owned());
            }
            if let Some((name, pid)) = line.rsplit_once(" pid ") {
                let pid: i32 = pid.parse().expect("a pid is a number");
                if name.starts_with("etcd ") {
                    guard = Some(pid);
                }
                pids.insert(pid);
            }
        }
        Banner {
            queens,
            leader: leader.unwrap_or_else(|| panic!("no leader named:\n{}", lines.join("\n"))),
            pids,
            guard: guard.unwrap_or_else(|| panic!("no etcd named:\n{}", lines.join("\n"))),
        }
    }
}

/// The leader every queen names, once they all agree, the leader says it leads, and every
/// queen sees the other two and a working etcd.
async fn agreed_leader(queens: &[JsonClient]) -> Option<String> {
    let mut views = Vec::new();
    for queen in queens {
        views.push(queen.get_ok("/v1/cluster").await?);
    }
    let leader = views[0]["leader"].as_str()?.to_owned();
    let agreed = views.iter().all(|v| {
        v["leader"] == leader.as_str()
            && v["etcd"] == "ok"
            && v["members"]
                .as_array()
                .is_some_and(|m| m.len() == queens.len())
            && (v["role"] == "leader") == (v["self"] == leader.as_str())
    });
    agreed.then_some(leader)
}

async fn fleet_online(queen: &JsonClient) -> Option<()> {
    let ids = |list: Value| -> BTreeSet<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(
                    e["worker"]
                        .get("id")
                        .or(e["hive"].get("id"))?
                        .as_str()?
                        .to_owned(),
                )
            })
            .collect()
    };
    let workers = ids(queen.get_ok("/v1/workers?state=online").await?);
    let hives = ids(queen.get_ok("/v1/hives?state=online").await?);
    let expected: BTreeSet<String> = ["worker-1", "worker-2"].map(str::to_owned).into();
    (workers == expected && hives.len() == 1).then_some(())
}

/// What the header of a dashboard says about the queen it talks to and the leader.
const CLUSTER_PROBE: &str = r#"
const text = (id) => document.getElementById(id).textContent;
const shown = (id) => !document.getElementById(id).hidden;
return { queen: text('queen'), role: shown('queen-role') ? text('role') : null,
         leader: shown('leader-wrap') ? text('leader') : null, etcdDown: shown('etcd-wrap') };
"#;

/// A follower's page names itself, its role and the leader; the leader's page says it leads.
/// Skipped without chromium and chromedriver (see [`Browser::find`]).
async fn dashboards_name_the_leader(leader: &str, follower: &str) {
    let Some(browser) = Browser::find() else {
        return;
    };
    let driver = browser.start_driver().await;
    let page = browser.session(&driver).await;
    let header = |page: &fantoccini::Client| {
        let page = page.clone();
        async move { page.execute(CLUSTER_PROBE, vec![]).await.unwrap() }
    };
    page.goto(&format!("{follower}/")).await.unwrap();
    let seen = wait_until(
        "the follower's page to name the leader",
        STARTUP,
        || async {
            let view = header(&page).await;
            (view["role"] == "follower" && view["leader"] == leader).then_some(view)
        },
    )
    .await;
    assert_eq!(seen["queen"], follower);
    assert_eq!(seen["etcdDown"], false);
    page.goto(&format!("{leader}/")).await.unwrap();
    wait_until("the leader's page to say it leads", STARTUP, || async {
        let view = header(&page).await;
        (view["queen"] == leader && view["role"] == "leader" && view["leader"].is_null())
            .then_some(())
    })
    .await;
    // The rest of the page works as on a single queen.
    wait_page(&page, "the workers on the leader's page", STARTUP, |v| {
        v["workersOnline"] == 2
    })
    .await;
    page.close().await.unwrap();
}

/// Runs `rbee-keeper ARGS` to completion with a clean environment; returns its stdout, which
/// must be a success.
async fn keeper_cli(args: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new(binary_path("rbee-keeper"));
    cmd.args(args).kill_on_drop(true);
    process_kit::scrub_rbee_env(cmd.as_std_mut());
    let out = tokio::time::timeout(STARTUP, cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Returns a port such that it and the `n - 1` after it were free a moment ago.
fn consecutive_free_ports(n: usize) -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        let rest: Option<Vec<TcpListener>> = (1..n)
            .map(|i| {
                let next = port.checked_add(u16::try_from(i).ok()?)?;
                TcpListener::bind(("127.0.0.1", next)).ok()
            })
            .collect();
        if rest.is_some() {
            return port;
        }
    }
}

/// The pid of etcd, the one child of its guard.
fn etcd_pid(guard: i32) -> i32 {
    let children = std::fs::read_to_string(format!("/proc/{guard}/task/{guard}/children"))
        .unwrap_or_else(|e| panic!("cannot read the children of etcd's guard {guard}: {e}"));
    let pids: Vec<i32> = children
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 1, "etcd's guard {guard} runs {pids:?}");
    pids[0]
}

/// Whether `pid` has exited: no such process, or a zombie waiting to be reaped.
fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        state.is_some_and(|s| s.starts_with(['Z', 'X']))
    })
}
