//! `rbee-keeper` as a user runs it: `up` starts a fleet and prints the dashboard URL, `status`
//! and `watch` report it, and Ctrl-C stops every child it started.

use std::{
    collections::BTreeSet,
    net::TcpListener,
    process::Output,
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{sys::signal::kill, unistd::Pid};
use serde_json::{Value, json};
use test_support::{Daemon, JsonClient, Signal, SseRecorder, binary_path, wait_until};
use tokio::{sync::watch, task::JoinHandle};

/// Generous: four processes start on a busy two-core machine.
const STARTUP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_a_fleet_that_status_reports_and_ctrl_c_stops_without_orphans() {
    let _slot = crate::fleet::slot().await;
    let port = free_port();
    let mut keeper = up(port);
    let _guard = NoOrphans(keeper.pid().as_raw());
    let url = format!("http://127.0.0.1:{port}/");
    keeper
        .wait_for_line(&format!("dashboard  {url}"), STARTUP)
        .await;
    keeper.wait_for_line("Press Ctrl-C", STARTUP).await;

    // The keeper names every child with its pid; they must be exactly its children.
    let printed: BTreeSet<i32> = keeper
        .lines()
        .iter()
        .filter_map(|l| l.split_once(" pid ").map(|(_, p)| p.trim().parse::<i32>()))
        .map(|p| p.expect("a pid is a number"))
        .collect();
    assert_eq!(
        printed.len(),
        4,
        "queen, hive and two workers:\n{}",
        keeper.output()
    );
    let children: BTreeSet<i32> = children_of(keeper.pid().as_raw()).into_iter().collect();
    assert_eq!(children, printed, "{}", keeper.output());

    let queen = JsonClient::new(format!("http://127.0.0.1:{port}"));
    let workers = queen
        .get_ok("/v1/workers?state=online")
        .await
        .expect("workers list");
    let workers = workers.as_array().expect("an array");
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(workers.iter().all(|w| w["state"] == "online"));
    let page = queen.client().get(&url).send().await.unwrap();
    assert!(page.status().is_success());
    // The page keeps its copy of the fleet from the watch stream.
    assert!(page.text().await.unwrap().contains("/v1/watch"));

    let queen_url = queen.base().to_owned();
    let out = keeper_cli(&["status", "--queen-url", &queen_url]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for needle in [
        "WORKERS: 2 online",
        "HIVES: 1 online",
        "worker-1",
        "worker-2",
        "online",
        "LAST SEEN",
    ] {
        assert!(text.contains(needle), "status lacks {needle:?}:\n{text}");
    }

    let out = keeper_cli(&["status", "--json", "--queen-url", &queen_url]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).expect("status --json prints json");
    assert_eq!(json["workers_online"], 2);
    assert_eq!(json["hives_online"], 1);

    // `watch` with piped output prints one line per update instead of redrawing.
    let watch = Daemon::builder("rbee-keeper")
        .args(["watch", "--queen-url", &queen_url])
        .name("rbee-keeper watch")
        .spawn();
    watch
        .wait_for_line("[connected] | workers 2 online", STARTUP)
        .await;
    drop(watch);

    keeper.signal(Signal::SIGINT);
    let status = keeper.wait_exit(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "keeper exited with {status}:\n{}",
        keeper.output()
    );
    for pid in printed {
        assert!(
            !is_running(pid),
            "child {pid} outlived the keeper:\n{}",
            keeper.output()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_keeper_takes_its_fleet_down_gracefully() {
    let _slot = crate::fleet::slot().await;
    let port = free_port();
    let mut keeper = up(port);
    let _guard = NoOrphans(keeper.pid().as_raw());
    keeper.wait_for_line("Press Ctrl-C", STARTUP).await;
    let children = children_of(keeper.pid().as_raw());
    assert_eq!(children.len(), 4, "{}", keeper.output());
    // SIGKILL gives the keeper no chance to stop anything; the children are on their own.
    let _orphans = KillOnDrop(children.clone());
    let stream = SseRecorder::connect(
        &format!("http://127.0.0.1:{port}/v1/heartbeats/stream"),
        None,
    )
    .await;
    stream
        .wait_for("the first snapshot", STARTUP, |e| e.event != "transition")
        .await;

    keeper.signal(Signal::SIGKILL);
    keeper.wait_exit(Duration::from_secs(10)).await;
    wait_until("every child of the killed keeper to exit", STARTUP, || {
        let running: Vec<i32> = children
            .iter()
            .copied()
            .filter(|&p| is_running(p))
            .collect();
        async move { running.is_empty().then_some(()) }
    })
    .await;

    // They stopped gracefully: each sender's final heartbeat reached the queen, which stayed up
    // for them, and every one of them left.
    let left: BTreeSet<String> = stream
        .events()
        .iter()
        .filter(|e| e.event == "transition" && e.json()["to"] == "left")
        .filter_map(|e| e.json()["id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        left.contains("worker-1") && left.contains("worker-2") && left.len() == 3,
        "hive and both workers left: {left:?}\n{}",
        keeper.output()
    );
}

#[tokio::test]
async fn status_explains_an_unreachable_queen() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    for args in [&["status"][..], &["status", "--json"][..]] {
        let out = keeper_cli(&[args, &["--queen-url", &dead]].concat()).await;
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("cannot reach the queen at"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(stdout(&out).is_empty());
    }
}

#[tokio::test]
async fn status_explains_a_missing_or_wrong_token() {
    let queen = Daemon::spawn(
        "queen-rbee",
        [
            "--ephemeral",
            "--bind",
            "127.0.0.1:0",
            "--token",
            "right-token",
        ],
    );
    let base = queen.base_url(STARTUP).await;
    let out = keeper_cli(&["status", "--queen-url", &base]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--token"), "{}", stderr(&out));

    let out = keeper_cli(&["status", "--queen-url", &base, "--token", "wrong"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("token was rejected"),
        "{}",
        stderr(&out)
    );

    let out = keeper_cli(&["status", "--queen-url", &base, "--token", "right-token"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("WORKERS: 0 online"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_at_hundreds_of_workers_leads_with_counts_and_problems_and_bounds_the_table() {
    let _slot = crate::fleet::slot().await;
    // A long timeout: nothing may go offline while the test looks.
    let queen = Daemon::spawn(
        "queen-rbee",
        [
            "--ephemeral",
            "--bind",
            "127.0.0.1:0",
            "--heartbeat-timeout",
            "10m",
        ],
    );
    let api = JsonClient::new(queen.base_url(STARTUP).await);
    for hive in ["hive-a", "hive-b", "hive-c"] {
        post(&api, "/v1/hive-heartbeat", &hive_body(hive)).await;
    }
    // 300 workers on four hives (hive-d never beats); every 60th is unhealthy.
    for i in 0..300 {
        let hive = ["hive-a", "hive-b", "hive-c", "hive-d"][i % 4];
        let unhealthy = i % 60 == 59;
        post(
            &api,
            "/v1/worker-heartbeat",
            &worker_body(&format!("load-{i:03}"), hive, unhealthy),
        )
        .await;
    }
    let base = api.base().to_owned();

    let text = status_ok(&["--queen-url", &base]).await;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() < 80, "{} lines:\n{text}", lines.len());
    assert!(
        lines[2].starts_with("WORKERS: 300 online, 295 available"),
        "{text}"
    );
    assert!(lines[3].starts_with("HIVES: 3 online"), "{text}");
    // The rollup comes before any worker row, with a row for the hive that never beat.
    let rollup_at = lines.iter().position(|l| l.starts_with("HIVE ")).unwrap();
    let workers_at = lines.iter().position(|l| l.starts_with("WORKER ")).unwrap();
    assert!(rollup_at < workers_at, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hive-d") && l.contains("unknown")),
        "{text}"
    );
    let rows: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("load-"))
        .collect();
    assert_eq!(rows.len(), 50, "{text}");
    assert!(rows[..5].iter().all(|r| r.contains("unhealthy")), "{text}");
    assert!(!rows[5].contains("unhealthy"), "{text}");
    let hint = lines.iter().find(|l| l.contains("more workers")).unwrap();
    assert!(hint.contains("250 more workers"), "{hint}");
    for flag in ["--all", "--state", "--hive"] {
        assert!(hint.contains(flag), "{hint}");
    }

    let text = status_ok(&["--queen-url", &base, "--all"]).await;
    assert_eq!(text.lines().filter(|l| l.starts_with("load-")).count(), 300);
    assert!(!text.contains("more workers"), "{text}");

    let text = status_ok(&["--queen-url", &base, "--state", "problem"]).await;
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("load-")).collect();
    assert_eq!(rows.len(), 5, "{text}");

    let text = status_ok(&["--queen-url", &base, "--hive", "hive-b"]).await;
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("load-")).collect();
    assert_eq!(rows.len(), 50, "{text}");
    assert!(rows.iter().all(|r| r.contains(" hive-b ")), "{text}");
    assert!(text.contains("MEMORY USED"), "the hive's details:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_into_a_pipe_prints_changes_and_resumes_after_a_cut_without_a_sync() {
    let _slot = crate::fleet::slot().await;
    let queen = Daemon::spawn(
        "queen-rbee",
        [
            "--ephemeral",
            "--bind",
            "127.0.0.1:0",
            "--heartbeat-timeout",
            "10m",
        ],
    );
    let api = JsonClient::new(queen.base_url(STARTUP).await);
    for id in ["w-1", "w-2"] {
        post(
            &api,
            "/v1/worker-heartbeat",
            &worker_body(id, "hive-a", false),
        )
        .await;
    }
    let proxy = CutProxy::start(api.base()).await;
    let watch = Daemon::builder("rbee-keeper")
        .args(["watch", "--queen-url", &proxy.url()])
        .name("rbee-keeper watch")
        .spawn();
    watch
        .wait_for_line("[connected] | workers 2 online", STARTUP)
        .await;

    // A change shows as a line of its own, then in the counts.
    post(
        &api,
        "/v1/worker-heartbeat",
        &worker_body("w-3", "hive-a", false),
    )
    .await;
    watch.wait_for_line("w-3  new -> online", STARTUP).await;
    watch
        .wait_for_line("[connected] | workers 3 online", STARTUP)
        .await;
    let (status, _) = api.delete("/v1/workers/w-1").await.unwrap();
    assert!(status.is_success(), "{status}");
    watch.wait_for_line("w-1  online -> removed", STARTUP).await;

    // Cut the link and hold the reconnect until a change has happened meanwhile.
    proxy.cut();
    watch.wait_for_line("[disconnected", STARTUP).await;
    post(
        &api,
        "/v1/worker-heartbeat",
        &worker_body("w-late", "hive-a", false),
    )
    .await;
    proxy.reopen();
    // Only a resumed stream carries the missed change as an event; a sync would carry the
    // worker without its transition.
    watch.wait_for_line("w-late  new -> online", STARTUP).await;
    watch
        .wait_for_line("[connected] | workers 3 online", STARTUP)
        .await;
    assert!(proxy.connections() >= 2, "{}", watch.output());
}

/// A loopback TCP proxy whose connections a test can cut, and whose new connections it can
/// hold until reopened.
struct CutProxy {
    addr: std::net::SocketAddr,
    open: watch::Sender<bool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CutProxy {
    async fn start(upstream: &str) -> CutProxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, gate) = watch::channel(true);
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let links = Arc::clone(&links);
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    let mut gate = gate.clone();
                    let link = tokio::spawn(async move {
                        if gate.wait_for(|open| *open).await.is_err() {
                            return;
                        }
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links.lock().unwrap().push(link);
                }
            }
        });
        CutProxy {
            addr,
            open,
            links,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open connection and holds new ones.
    fn cut(&self) {
        self.open.send_replace(false);
        for link in self.links.lock().unwrap().iter() {
            link.abort();
        }
    }

    fn reopen(&self) {
        self.open.send_replace(true);
    }

    fn connections(&self) -> usize {
        self.links.lock().unwrap().len()
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn post(api: &JsonClient, path: &str, body: &Value) {
    let (status, answer) = api.post(path, body).await.unwrap();
    assert!(status.is_success(), "{path}: {status} {answer}");
}

fn worker_body(id: &str, hive: &str, unhealthy: bool) -> Value {
    let health = if unhealthy {
        json!({"status": "unhealthy", "reason": "backend down"})
    } else {
        json!({"status": "healthy"})
    };
    json!({
        "worker": {
            "id": id, "hive_id": hive, "model_id": "m", "device": "cpu", "port": 9300,
            "status": "ready", "health": health, "started_at": "2026-01-01T00:00:00Z"
        },
        "timestamp": chrono::Utc::now().to_rfc3339()
    })
}

fn hive_body(id: &str) -> Value {
    json!({
        "hive": {
            "id": id, "hostname": id, "port": 9200, "status": "ready",
            "started_at": "2026-01-01T00:00:00Z",
            "system": {"os": "linux", "cpu_cores": 2, "memory_total_bytes": 1u64 << 33,
                "memory_available_bytes": 1u64 << 32}
        },
        "timestamp": chrono::Utc::now().to_rfc3339()
    })
}

/// Runs `rbee-keeper status ARGS` and returns its stdout, which must be a success.
async fn status_ok(args: &[&str]) -> String {
    let out = keeper_cli(&[&["status"][..], args].concat()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[tokio::test]
async fn up_names_missing_programs() {
    let empty = std::env::temp_dir().join(format!("rbee-keeper-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let dir = empty.to_string_lossy().into_owned();
    let out = keeper_cli(&[
        "up",
        "--ephemeral",
        "--port",
        &free_port().to_string(),
        "--bin-dir",
        &dir,
    ])
    .await;
    std::fs::remove_dir_all(&empty).unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot find queen-rbee"), "{err}");
    assert!(err.contains("cargo build --workspace --bins"), "{err}");
}

/// Starts `rbee-keeper up` with two workers and short intervals on `port`.
fn up(port: u16) -> Daemon {
    Daemon::builder("rbee-keeper")
        .args([
            "up",
            "--ephemeral",
            "--workers",
            "2",
            "--port",
            &port.to_string(),
        ])
        .args(["--heartbeat-interval", "200ms", "--startup-timeout", "50s"])
        .spawn()
}

/// Kills the keeper's children when a failed test unwinds before the keeper stopped them:
/// dropping the keeper's `Daemon` SIGKILLs it, which would leave its children running.
struct NoOrphans(i32);

impl Drop for NoOrphans {
    fn drop(&mut self) {
        for pid in children_of(self.0) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// SIGKILLs the given processes when the test ends, in case they outlived their keeper.
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if is_running(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Runs `rbee-keeper` to completion with a clean environment.
async fn keeper_cli(args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(binary_path("rbee-keeper"));
    cmd.args(args).env("NO_COLOR", "1").kill_on_drop(true);
    process_kit::scrub_rbee_env(cmd.as_std_mut());
    tokio::time::timeout(STARTUP, cmd.output())
        .await
        .expect("rbee-keeper finished in time")
        .expect("rbee-keeper ran")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Returns a port that was free a moment ago; good enough for a port the test then hands out.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Returns the pids whose parent is `parent`, from `/proc`.
fn children_of(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some((_, ppid)) = stat(pid)
            && ppid == parent
        {
            pids.push(pid);
        }
    }
    pids
}

/// Returns whether `pid` exists and is not a zombie.
fn is_running(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// Returns a process's state letter and parent pid from `/proc/PID/stat`.
fn stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}
