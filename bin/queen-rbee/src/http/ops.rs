//! `GET /health`, `GET /metrics` and the dashboard page at `GET /`.

use axum::{
    extract::State,
    http::header,
    response::{Html, IntoResponse},
};

use crate::{error::ApiError, state::AppState};

/// The dashboard, embedded so the binary is self-contained.
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

/// Answers `{"status":"ok","store":…}` whenever the queen is serving; `store` says whether the
/// kept state is being written (`ok`), writes fail (`failing`) or nothing is kept (`none`).
pub(super) async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let body = match state.store().map(|store| store.health()) {
        None => r#"{"status":"ok","store":"none"}"#,
        Some(fleet_store::Health::Ok) => r#"{"status":"ok","store":"ok"}"#,
        Some(fleet_store::Health::Failing) => r#"{"status":"ok","store":"failing"}"#,
    };
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// Returns the Prometheus text exposition.
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let cluster = state.cluster().map(|clustered| clustered.figures());
    let body = state.metrics().render(&state.fleet().counts(), cluster);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// `GET /v1/cluster`: 404 for a queen that runs alone.
pub(super) async fn cluster(
    State(state): State<AppState>,
) -> Result<axum::Json<crate::cluster::ClusterView>, ApiError> {
    state
        .cluster()
        .map(|clustered| axum::Json(clustered.view()))
        .ok_or_else(|| ApiError::NotFound("this queen runs alone, not in a cluster".to_owned()))
}

/// Serves the live dashboard page; it holds no data, so it needs no token.
pub(super) async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}
