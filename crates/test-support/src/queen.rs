//! A recording stand-in for the queen, for testing senders without the real queen.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{OriginalUri, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::TestServer;

/// One heartbeat request as the fake queen received it.
#[derive(Debug, Clone)]
pub struct ReceivedBeat {
    /// `worker` or `hive`, from the route.
    pub kind: String,
    /// The JSON body.
    pub body: Value,
    /// The `Authorization` header, if any.
    pub auth: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

impl ReceivedBeat {
    /// Returns the payload (`body.worker` or `body.hive`).
    pub fn payload(&self) -> &Value {
        &self.body[self.kind.as_str()]
    }
}

#[derive(Debug)]
struct Inner {
    beats: Vec<ReceivedBeat>,
    answer: StatusCode,
    next_heartbeat_ms: u64,
}

/// Accepts `POST /v1/worker-heartbeat` and `POST /v1/hive-heartbeat`, records each body and
/// answers like the queen (`{"status":"ok",...,"next_heartbeat_ms":N}`), or with an error status
/// set by [`FakeQueen::answer_with`].
#[derive(Debug)]
pub struct FakeQueen {
    inner: Arc<Mutex<Inner>>,
    server: TestServer,
}

impl FakeQueen {
    /// Starts a fake queen on a free loopback port that asks for `next_heartbeat_ms`.
    pub async fn start(next_heartbeat_ms: u64) -> FakeQueen {
        let inner = Arc::new(Mutex::new(Inner {
            beats: Vec::new(),
            answer: StatusCode::OK,
            next_heartbeat_ms,
        }));
        let router = Router::new()
            .route("/v1/worker-heartbeat", post(ingest))
            .route("/v1/hive-heartbeat", post(ingest))
            .with_state(Arc::clone(&inner));
        let server = TestServer::start(router).await;
        FakeQueen { inner, server }
    }

    /// Returns `http://IP:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Returns the server, to stop or restart it.
    pub fn server(&mut self) -> &mut TestServer {
        &mut self.server
    }

    /// Makes later heartbeats answer `status` (an error body unless it is 200).
    pub fn answer_with(&self, status: StatusCode) {
        self.inner.lock().answer = status;
    }

    /// Returns every heartbeat received so far.
    pub fn beats(&self) -> Vec<ReceivedBeat> {
        self.inner.lock().beats.clone()
    }

    /// Returns the heartbeats of one kind (`worker` or `hive`).
    pub fn beats_of(&self, kind: &str) -> Vec<ReceivedBeat> {
        self.inner
            .lock()
            .beats
            .iter()
            .filter(|b| b.kind == kind)
            .cloned()
            .collect()
    }

    /// Returns how many heartbeats arrived.
    pub fn count(&self) -> usize {
        self.inner.lock().beats.len()
    }

    /// Returns the latest heartbeat, if any.
    pub fn last(&self) -> Option<ReceivedBeat> {
        self.inner.lock().beats.last().cloned()
    }
}

async fn ingest(
    State(inner): State<Arc<Mutex<Inner>>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let kind = if uri.path().contains("worker") {
        "worker"
    } else {
        "hive"
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut inner = inner.lock();
    let id = body[kind]["id"].as_str().unwrap_or_default().to_owned();
    inner.beats.push(ReceivedBeat {
        kind: kind.to_owned(),
        body,
        auth,
        at: Instant::now(),
    });
    if inner.answer == StatusCode::OK {
        let ack = json!({
            "status": "ok",
            "message": format!("heartbeat received from {kind} {id}"),
            "next_heartbeat_ms": inner.next_heartbeat_ms,
        });
        (StatusCode::OK, Json(ack))
    } else {
        let code = inner
            .answer
            .canonical_reason()
            .unwrap_or("error")
            .to_lowercase();
        let error = json!({"error": {"code": code.replace(' ', "_"), "message": format!("fake queen answers {}", inner.answer)}});
        (inner.answer, Json(error))
    }
}
