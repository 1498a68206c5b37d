//! `GET /health`, `GET /metrics` and the dashboard page at `GET /`.

use axum::{
    extract::State,
    http::header,
    response::{Html, IntoResponse},
};

use crate::state::AppState;

/// The dashboard, embedded so the binary is self-contained.
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

/// Answers `{"status":"ok"}` whenever the queen is serving.
pub(super) async fn health() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// Returns the Prometheus text exposition.
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics().render(&state.fleet().counts());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// Serves the live dashboard page; it holds no data, so it needs no token.
pub(super) async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}
