//! The one middleware every request passes: CORS, the token check, latency and a debug log.
//!
//! Hand-written instead of stacking tower-http's CORS, trace and auth layers: those clone their
//! configuration and wrap the response for every request, which measurably slows ingest. Here a
//! request without an `Origin` header (every sender) costs a header lookup, a token check and
//! two clock reads.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    extract::{Query, Request},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared_contract::Kind;
use subtle::ConstantTimeEq;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::{
    error::{ApiError, ErrorCode},
    state::AppState,
};

/// Which browser origins may read the API.
#[derive(Debug, Clone)]
pub(crate) struct CorsPolicy {
    any: bool,
    extra: Vec<HeaderValue>,
}

impl CorsPolicy {
    /// Loopback origins always; `--cors-origin` values in addition, or any origin for `*`.
    pub(crate) fn new(origins: &[String]) -> Self {
        Self {
            any: origins.iter().any(|o| o == "*"),
            extra: origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
                .collect(),
        }
    }

    /// Returns the `Access-Control-Allow-Origin` value for `origin`, or `None` to refuse it.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any {
            Some(HeaderValue::from_static("*"))
        } else if is_loopback_origin(origin) || self.extra.contains(origin) {
            Some(origin.clone())
        } else {
            None
        }
    }
}

/// Wraps every route in a [`Gate`].
#[derive(Debug, Clone)]
pub(super) struct GateLayer(pub(super) AppState);

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            state: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Gate<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Gate<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|origin| self.state.cors().allow(origin));
        let mut future = GateFuture {
            inner: None,
            ready: None,
            origin,
            started,
            state: self.state.clone(),
        };
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight && future.origin.is_some() {
            future.ready = Some(preflight_response());
        } else if !authorized(&self.state, request.headers(), request.uri()) {
            if let Some(kind) = heartbeat_kind(request.uri().path()) {
                self.state
                    .metrics()
                    .heartbeat_rejected(kind, ErrorCode::Unauthorized);
            }
            future.ready = Some(ApiError::Unauthorized.into_response());
        } else {
            future.inner = Some(self.inner.call(request));
        }
        future
    }
}

/// The response of a [`Gate`]: either answered at the gate or by the route.
#[derive(Debug)]
pub(super) struct GateFuture<F> {
    inner: Option<F>,
    ready: Option<Response>,
    /// The `Access-Control-Allow-Origin` value, when the request has an allowed origin.
    origin: Option<HeaderValue>,
    started: Instant,
    state: AppState,
}

impl<F, E> Future for GateFuture<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut response = match (this.ready.take(), this.inner.as_mut()) {
            (Some(response), _) => response,
            (None, Some(inner)) => match Pin::new(inner).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            },
            (None, None) => {
                // Polled again after completion; answer rather than panic.
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        };
        this.inner = None;
        if let Some(origin) = this.origin.take() {
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.append(header::VARY, HeaderValue::from_static("origin"));
        }
        let latency = this.started.elapsed();
        this.state.metrics().request_finished(latency);
        tracing::debug!(status = response.status().as_u16(), ?latency, "response");
        Poll::Ready(Ok(response))
    }
}

fn preflight_response() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, DELETE, OPTIONS",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, last-event-id",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

/// Checks the token on every route except `/` and `/health`.
fn authorized(state: &AppState, headers: &HeaderMap, uri: &Uri) -> bool {
    let Some(token) = state.token() else {
        return true;
    };
    if matches!(uri.path(), "/" | "/health") {
        return true;
    }
    let matches = |presented: &str| bool::from(presented.as_bytes().ct_eq(token.as_bytes()));
    match headers.get(header::AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(matches),
        // EventSource cannot send headers, so a `?token=` query is accepted too.
        None => Query::<TokenQuery>::try_from_uri(uri)
            .ok()
            .and_then(|q| q.0.token)
            .is_some_and(|t| matches(&t)),
    }
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
