//! A stand-in for the queen (the queen crate is no dependency of the sender) and a fake payload.

use std::{sync::Arc, time::Duration};

use axum::{Json, Router, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use heartbeat_sender::{PayloadSource, SenderConfig, SenderHandle};
use parking_lot::Mutex;
use serde_json::{Value, json};
use shared_contract::{Health, Status};
use test_support::TestServer;
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use worker_contract::{WorkerHeartbeat, WorkerInfo};

/// How the double answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Ok,
    Unavailable,
    Unauthorized,
}

/// One request the double received.
#[derive(Debug, Clone)]
pub(crate) struct Beat {
    pub(crate) body: Value,
    pub(crate) auth: Option<String>,
    pub(crate) at: Instant,
}

#[derive(Debug)]
struct Inner {
    beats: Vec<Beat>,
    mode: Mode,
    next_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct QueenDouble {
    inner: Arc<Mutex<Inner>>,
}

impl QueenDouble {
    pub(crate) fn new(next_ms: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                beats: Vec::new(),
                mode: Mode::Ok,
                next_ms,
            })),
        }
    }

    pub(crate) async fn serve(&self) -> TestServer {
        let router = Router::new()
            .route("/v1/worker-heartbeat", post(ingest))
            .with_state(self.clone());
        TestServer::start(router).await
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        self.inner.lock().mode = mode;
    }

    pub(crate) fn beats(&self) -> Vec<Beat> {
        self.inner.lock().beats.clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.inner.lock().beats.len()
    }
}

async fn ingest(
    State(double): State<QueenDouble>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut inner = double.inner.lock();
    inner.beats.push(Beat {
        body,
        auth,
        at: Instant::now(),
    });
    match inner.mode {
        Mode::Ok => (
            StatusCode::OK,
            Json(
                json!({"status": "ok", "message": "heartbeat received", "next_heartbeat_ms": inner.next_ms}),
            ),
        ),
        Mode::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"code": "unavailable", "message": "try later"}})),
        ),
        Mode::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"error": {"code": "unauthorized", "message": "missing or wrong bearer token"}}),
            ),
        ),
    }
}

/// A worker payload that never changes, except for `stopping`.
#[derive(Debug)]
pub(crate) struct FakeWorker(WorkerInfo);

impl FakeWorker {
    pub(crate) fn new() -> Self {
        Self(WorkerInfo {
            id: "w1".to_owned(),
            hive_id: "h1".to_owned(),
            model_id: "m".to_owned(),
            device: "cpu".to_owned(),
            port: 9301,
            status: Status::Ready,
            health: Health::Healthy,
            started_at: chrono::Utc::now(),
            implementation: None,
            version: None,
        })
    }
}

impl PayloadSource for FakeWorker {
    type Body = WorkerHeartbeat;

    async fn current(&mut self, _interval: Duration) -> WorkerInfo {
        self.0.clone()
    }

    fn stopping(&mut self) -> WorkerInfo {
        WorkerInfo {
            status: Status::Stopping,
            ..self.0.clone()
        }
    }
}

/// A sender running in the background.
pub(crate) struct Running {
    pub(crate) handle: SenderHandle<WorkerInfo>,
    pub(crate) token: CancellationToken,
    pub(crate) task: JoinHandle<()>,
}

pub(crate) fn start_sender(queen_url: &str, interval: Duration, token: Option<&str>) -> Running {
    let config = SenderConfig::new(
        queen_url.parse().expect("a valid url"),
        interval,
        token.map(str::to_owned),
    );
    let handle = SenderHandle::new();
    let cancel = CancellationToken::new();
    let client = heartbeat_sender::build_client().expect("client builds");
    let task = tokio::spawn(heartbeat_sender::run(
        config,
        client,
        FakeWorker::new(),
        handle.clone(),
        cancel.clone(),
    ));
    Running {
        handle,
        token: cancel,
        task,
    }
}
