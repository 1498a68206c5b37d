//! The HTTP surface: routes, the auth-and-metrics gate, CORS and request tracing.

mod entries;
mod events;
mod heartbeats;
mod openapi;
mod ops;
mod stream;

use std::time::Duration;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Query, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hive_contract::{HiveHeartbeat, HiveInfo};
use serde::Deserialize;
use shared_contract::Kind;
use subtle::ConstantTimeEq;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};
use worker_contract::{WorkerHeartbeat, WorkerInfo};

use crate::{
    error::{ApiError, ErrorCode},
    state::AppState,
};

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Builds the queen's router over `state`, with every route of the contract.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.inner.cors_origins);
    Router::new()
        .route("/", get(ops::dashboard))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/v1/worker-heartbeat", post(heartbeats::ingest::<WorkerHeartbeat>))
        .route("/v1/hive-heartbeat", post(heartbeats::ingest::<HiveHeartbeat>))
        .route("/v1/workers", get(entries::list::<WorkerInfo>))
        .route(
            "/v1/workers/{id}",
            get(entries::get::<WorkerInfo>).delete(entries::delete::<WorkerInfo>),
        )
        .route("/v1/hives", get(entries::list::<HiveInfo>))
        .route(
            "/v1/hives/{id}",
            get(entries::get::<HiveInfo>).delete(entries::delete::<HiveInfo>),
        )
        .route("/v1/heartbeats/snapshot", get(stream::snapshot))
        .route("/v1/heartbeats/stream", get(stream::stream))
        .route("/v1/events", get(events::recent))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(
            // Debug level, and the path without its query, so tokens never reach a log.
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
            }),
        )
        .layer(cors)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Checks the token (except on `/` and `/health`) and times every request.
async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let response = if authorized(&state, request.headers(), request.uri()) {
        next.run(request).await
    } else {
        if let Some(kind) = heartbeat_kind(request.uri().path()) {
            state
                .inner
                .metrics
                .heartbeat_rejected(kind, ErrorCode::Unauthorized);
        }
        ApiError::Unauthorized.into_response()
    };
    state.inner.metrics.request_finished(started.elapsed());
    response
}

fn authorized(state: &AppState, headers: &HeaderMap, uri: &Uri) -> bool {
    let Some(token) = &state.inner.token else {
        return true;
    };
    if matches!(uri.path(), "/" | "/health") {
        return true;
    }
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    // EventSource cannot send headers, so a `?token=` query is accepted too.
    let presented = from_header.or_else(|| {
        Query::<TokenQuery>::try_from_uri(uri)
            .ok()
            .and_then(|q| q.0.token)
    });
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(token.as_bytes())))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn heartbeat_kind(path: &str) -> Option<Kind> {
    match path {
        "/v1/worker-heartbeat" => Some(Kind::Worker),
        "/v1/hive-heartbeat" => Some(Kind::Hive),
        _ => None,
    }
}

/// Loopback origins always; `--cors-origin` values in addition, or any origin for `*`.
fn cors_layer(extra: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .max_age(Duration::from_secs(600));
    if extra.iter().any(|o| o == "*") {
        return layer.allow_origin(AllowOrigin::any());
    }
    let extra: Vec<HeaderValue> = extra
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    layer.allow_origin(AllowOrigin::predicate(move |origin, _| {
        is_loopback_origin(origin) || extra.contains(origin)
    }))
}

/// Returns whether `origin` is `http://localhost`, `http://127.0.0.1` or `http://[::1]`,
/// with or without a port.
fn is_loopback_origin(origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    ["http://localhost", "http://127.0.0.1", "http://[::1]"]
        .iter()
        .filter_map(|host| origin.strip_prefix(host))
        .any(|rest| match rest.strip_prefix(':') {
            None => rest.is_empty(),
            Some(port) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_need_http_and_a_numeric_port() {
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1:8500",
            "http://localhost",
            "http://[::1]:1",
        ] {
            assert!(is_loopback_origin(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in [
            "https://localhost:3000",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io:80",
            "http://localhost:",
            "http://localhost:80x",
            "null",
        ] {
            assert!(!is_loopback_origin(&HeaderValue::from_static(bad)), "{bad}");
        }
    }
}
