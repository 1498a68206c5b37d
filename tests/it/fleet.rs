//! Helpers for the fleet tests: a real queen with short timings, senders pointed at it, and
//! waits on registry entries.

use std::{net::SocketAddr, time::Duration};

use serde_json::Value;
use test_support::{Daemon, DaemonBuilder, JsonClient, SseRecorder, try_wait_until, wait_until};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The pace the queen asks of senders, and the senders' own starting interval.
pub(crate) const INTERVAL: Duration = Duration::from_millis(200);
/// The queen's liveness timeout.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(600);
/// How late the queen may mark an entry offline after its timeout (SPEC section 3).
pub(crate) const SWEEP: Duration = Duration::from_millis(250);
/// For starting processes on a busy machine.
pub(crate) const STARTUP: Duration = Duration::from_secs(20);
/// For conditions with no timing contract of their own.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// Fleet tests hold one of these slots: their timing assertions need CPU, and a 2-core box
/// running every fleet at once starves them.
const SLOT_COUNT: u32 = 3;
static SLOTS: Semaphore = Semaphore::const_new(SLOT_COUNT as usize);

/// Waits for a free slot; hold it for the whole test.
pub(crate) async fn slot() -> SemaphorePermit<'static> {
    SLOTS
        .acquire()
        .await
        .expect("the semaphore is never closed")
}

/// Waits until no other fleet test runs and holds every slot: for a test whose timing budget
/// (the dashboard's 50 ms long-task rule at 10,000 workers) cannot share two cores.
pub(crate) async fn exclusive() -> SemaphorePermit<'static> {
    SLOTS
        .acquire_many(SLOT_COUNT)
        .await
        .expect("the semaphore is never closed")
}

/// A real `queen-rbee` with 200 ms interval, 600 ms timeout and 200 ms snapshots.
#[derive(Debug)]
pub(crate) struct Queen {
    pub(crate) daemon: Daemon,
    pub(crate) addr: SocketAddr,
    pub(crate) api: JsonClient,
    token: Option<String>,
}

impl Queen {
    /// Starts a queen on a free port; `extra` adds flags such as `--token`.
    pub(crate) async fn start(extra: &[&str]) -> Queen {
        let daemon = spawn_queen("127.0.0.1:0", extra);
        let addr = daemon.listening_addr(STARTUP).await;
        Queen::attach(daemon, addr, extra)
    }

    /// Starts a queen on `addr`, e.g. the port of a queen that was killed; retries while the
    /// port is still held by the old socket.
    pub(crate) async fn start_on(addr: SocketAddr, extra: &[&str]) -> Queen {
        let bind = addr.to_string();
        let started = try_wait_until(STARTUP, || {
            let bind = bind.clone();
            async move {
                let mut daemon = spawn_queen(&bind, extra);
                let listening = try_wait_until(STARTUP, || {
                    let up = daemon.count_containing("listening on http://") > 0;
                    let exited = daemon.try_exit_status().is_some();
                    async move { (up || exited).then_some(up) }
                })
                .await;
                (listening == Some(true)).then_some(daemon)
            }
        })
        .await
        .unwrap_or_else(|| panic!("no queen could listen on {addr} again"));
        let bound = started.listening_addr(STARTUP).await;
        assert_eq!(bound, addr);
        Queen::attach(started, addr, extra)
    }

    fn attach(daemon: Daemon, addr: SocketAddr, extra: &[&str]) -> Queen {
        let token = extra
            .iter()
            .position(|a| *a == "--token")
            .and_then(|i| extra.get(i + 1))
            .map(|t| (*t).to_owned());
        let mut api = JsonClient::new(format!("http://{addr}"));
        if let Some(token) = &token {
            api = api.with_token(token.clone());
        }
        Queen {
            daemon,
            addr,
            api,
            token,
        }
    }

    /// Returns `http://IP:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Opens the live stream.
    pub(crate) async fn stream(&self) -> SseRecorder {
        SseRecorder::connect(
            &format!("{}/v1/heartbeats/stream", self.url()),
            self.token.as_deref(),
        )
        .await
    }

    /// Returns the entry `GET /v1/{kind}s/{id}`, or `None` if unknown or unreachable.
    pub(crate) async fn entry(&self, kind: &str, id: &str) -> Option<Value> {
        self.api.get_ok(&format!("/v1/{kind}s/{id}")).await
    }

    /// Waits until the entry satisfies `pred` (described by `what`) and returns it.
    pub(crate) async fn wait_entry(
        &self,
        kind: &str,
        id: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let pred = &pred;
        wait_until(&format!("{kind} {id}: {what}"), timeout, || async move {
            self.entry(kind, id).await.filter(|e| pred(e))
        })
        .await
    }

    /// Waits until the entry is in `state` and returns it.
    pub(crate) async fn wait_state(
        &self,
        kind: &str,
        id: &str,
        state: &str,
        timeout: Duration,
    ) -> Value {
        self.wait_entry(kind, id, state, timeout, |e| e["state"] == state)
            .await
    }

    /// Waits until every listed worker and hive is online and available.
    pub(crate) async fn wait_all_available(
        &self,
        hives: &[&str],
        workers: &[&str],
        timeout: Duration,
    ) {
        let what = format!("hives {hives:?} and workers {workers:?} online and available");
        wait_until(&what, timeout, || async move {
            let snapshot = self.api.get_ok("/v1/heartbeats/snapshot").await?;
            let available = |list: &str, ids: &[&str]| {
                ids.iter().all(|id| {
                    snapshot[list].as_array().is_some_and(|entries| {
                        entries.iter().any(|e| {
                            let kind = &list[..list.len() - 1];
                            e[kind]["id"] == *id && e["state"] == "online" && e["available"] == true
                        })
                    })
                })
            };
            (available("hives", hives) && available("workers", workers)).then_some(())
        })
        .await;
    }
}

fn spawn_queen(bind: &str, extra: &[&str]) -> Daemon {
    let interval = format!("{}ms", INTERVAL.as_millis());
    let timeout = format!("{}ms", TIMEOUT.as_millis());
    Daemon::builder("queen-rbee")
        .args(["--bind", bind, "--heartbeat-interval", &interval])
        .args(
            if extra.contains(&"--data-dir") || extra.contains(&"--etcd-endpoints") {
                &[][..]
            } else {
                &["--ephemeral"][..]
            },
        )
        .args(if extra.contains(&"--heartbeat-timeout") {
            Vec::new()
        } else {
            vec!["--heartbeat-timeout", timeout.as_str()]
        })
        .args(["--snapshot-interval", &interval])
        .args(extra)
        .spawn()
}

/// An `llm-worker` sending to `queen_url` every 200 ms as `id` on hive `fleet-hive`.
pub(crate) fn worker(queen_url: &str, id: &str) -> DaemonBuilder {
    let interval = format!("{}ms", INTERVAL.as_millis());
    Daemon::builder("llm-worker").name(id).args([
        "--queen-url",
        queen_url,
        "--heartbeat-interval",
        &interval,
        "--bind",
        "127.0.0.1:0",
        "--worker-id",
        id,
        "--hive-id",
        "fleet-hive",
        "--model-id",
        "tiny/test-model",
    ])
}

/// An `rbee-hive` sending to `queen_url` every 200 ms as `id`.
pub(crate) fn hive(queen_url: &str, id: &str) -> DaemonBuilder {
    let interval = format!("{}ms", INTERVAL.as_millis());
    Daemon::builder("rbee-hive").name(id).args([
        "--queen-url",
        queen_url,
        "--heartbeat-interval",
        &interval,
        "--bind",
        "127.0.0.1:0",
        "--hive-id",
        id,
    ])
}

/// Returns a loopback port that was free a moment ago, for a queen that is not started yet.
pub(crate) fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

/// Parses an RFC 3339 timestamp from an entry or event.
pub(crate) fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.to_utc())
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
}
