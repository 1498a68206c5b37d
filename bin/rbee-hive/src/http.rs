//! The hive's own API: `GET /health` and `GET /v1/info`.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use heartbeat_sender::SenderHandle;
use hive_contract::HiveInfo;
use serde_json::json;

/// What the handlers share: a view of the running sender.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The sender's handle; `/v1/info` serves its last payload.
    pub sender: SenderHandle<HiveInfo>,
}

/// Returns the hive's router.
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
        Some(hive) => (StatusCode::OK, Json(json!(hive))),
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

    async fn get_json(app: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn health_is_ok_and_info_waits_for_the_first_payload() {
        let app = router(AppState {
            sender: SenderHandle::new(),
        });
        let (status, body) = get_json(app.clone(), "/health").await;
        assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
        let (status, body) = get_json(app, "/v1/info").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "starting");
    }
}
