//! Shared helpers: configs with short timings, heartbeat bodies, an in-process app and a served queen.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use chrono::{DateTime, Utc};
use queen_rbee::{AppState, Config, router, run};
use serde_json::{Value, json};
use test_support::JsonClient;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

pub(crate) const TOKEN: &str = "s3cret-token";

/// A configuration with short timings that tests override field by field.
pub(crate) fn config() -> Config {
    Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(300),
        snapshot_interval: Duration::from_secs(30),
        retention: Duration::from_secs(600),
        max_entries: 1000,
        token: None,
        cors_origins: Vec::new(),
        insecure_no_auth: false,
        watch_history: 10_000,
        watch_history_age: Duration::from_secs(300),
        data_dir: None,
        ephemeral: true,
        history_retention: Duration::from_secs(7 * 24 * 3600),
        etcd_endpoints: Vec::new(),
        cluster_name: "rbee".to_owned(),
        advertise_url: None,
        leader_lease: Duration::from_secs(5),
    }
}

pub(crate) fn with_token(mut config: Config) -> Config {
    config.token = Some(TOKEN.parse().unwrap());
    config
}

pub(crate) fn started_at() -> DateTime<Utc> {
    "2026-11-28T15:00:00Z".parse().unwrap()
}

/// A valid worker heartbeat body.
pub(crate) fn worker(id: &str) -> Value {
    json!({
        "worker": {
            "id": id, "hive_id": "studio", "model_id": "meta-llama/Llama-3.2-1B-Instruct",
            "device": "cuda:0", "port": 9301, "status": "ready",
            "health": { "status": "healthy" }, "started_at": started_at(),
            "implementation": "llm-worker", "version": "0.1.0"
        },
        "timestamp": Utc::now(),
    })
}

/// A valid hive heartbeat body.
pub(crate) fn hive(id: &str) -> Value {
    json!({
        "hive": {
            "id": id, "hostname": "studio.lan", "port": 9200, "status": "ready",
            "health": { "status": "healthy" }, "started_at": started_at(),
            "system": { "os": "linux", "cpu_cores": 16, "memory_total_bytes": 68_719_476_736_u64,
                        "memory_available_bytes": 41_231_686_041_u64 },
            "devices": [ { "id": "cuda:0", "name": "NVIDIA RTX 4090",
                           "memory_total_bytes": 25_757_220_864_u64, "memory_used_bytes": 1_048_576 } ],
            "version": "0.1.0"
        },
        "timestamp": Utc::now(),
    })
}

/// The router over a fresh state, driven with `oneshot`; no background tasks run.
pub(crate) struct App {
    pub(crate) router: Router,
}

impl App {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            router: router(AppState::new(config, CancellationToken::new())),
        }
    }

    pub(crate) async fn send(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, header::HeaderMap, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, body.to_vec())
    }

    /// Sends a request with an optional JSON body and bearer token; returns status and JSON.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let (status, _, bytes) = self.send(request).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, None, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(body), None).await
    }
}

/// A queen served by `run` on a loopback port; cancelled when dropped.
pub(crate) struct TestQueen {
    pub(crate) addr: SocketAddr,
    pub(crate) client: JsonClient,
    pub(crate) shutdown: CancellationToken,
    pub(crate) task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestQueen {
    pub(crate) async fn start(config: Config) -> Self {
        let token = config.token.is_some().then_some(TOKEN);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(config, listener, shutdown.clone()));
        let mut client = JsonClient::new(format!("http://{addr}"));
        if let Some(token) = token {
            client = client.with_token(token);
        }
        Self {
            addr,
            client,
            shutdown,
            task: Some(task),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the queen gracefully and waits until `run` returned (the store is closed then).
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Value {
        let (status, ack) = self.client.post(path, body).await.unwrap();
        assert_eq!(status, 200, "{path} answered {status}: {ack}");
        ack
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        let (status, body) = self.client.get(path).await.unwrap();
        assert_eq!(status, 200, "{path} answered {status}: {body}");
        body
    }

    /// Returns the entry `id` from `/v1/{kind}s/{id}`, or `None` on 404.
    pub(crate) async fn entry(&self, kind: &str, id: &str) -> Option<Value> {
        let (status, body) = self.client.get(&format!("/v1/{kind}s/{id}")).await.unwrap();
        (status == 200).then_some(body)
    }

    pub(crate) async fn events(&self) -> Vec<Value> {
        self.get("/v1/events?limit=1000")
            .await
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for TestQueen {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Parses an RFC 3339 timestamp out of a JSON value.
pub(crate) fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}
