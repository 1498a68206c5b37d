//! The worker's own API: `GET /health` and `GET /v1/info`.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use heartbeat_sender::SenderHandle;
use serde_json::json;
use worker_contract::WorkerInfo;

/// What the handlers share: a view of the running sender.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The sender's handle; `/v1/info` serves its last payload.
    pub sender: SenderHandle<WorkerInfo>,
}

/// Returns the worker's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/info", get(info))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn info(State(state): State<AppState>) -> impl IntoResponse {
    match state.sender.last_payload() {
        Some(worker) => (StatusCode::OK, Json(json!(worker))),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"code": "starting", "message": "no heartbeat produced yet"}})),
        ),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn health_is_ok() {
        let app = router(AppState {
            sender: SenderHandle::new(),
        });
        let response = app
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = to_bytes(response.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], br#"{"status":"ok"}"#);
    }
}
