//! The one error type of the HTTP API and the JSON extractor that produces it.

use std::error::Error as _;

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use shared_contract::{ApiErrorBody, ApiErrorDetail, Kind, ValidationError};

/// Every way a request can fail; each maps to one status and the SPEC's JSON body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body does not decode into the contract type (400).
    #[error("{0}")]
    InvalidJson(String),
    /// A query parameter has an invalid value (400).
    #[error("{0}")]
    InvalidQuery(String),
    /// The body is not declared as JSON (415).
    #[error("expected content-type: application/json")]
    UnsupportedMediaType,
    /// The body is over the size limit (413).
    #[error("request body is larger than {} bytes", crate::http::MAX_BODY_BYTES)]
    PayloadTooLarge,
    /// The body decodes but breaks a contract rule (422).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The token is missing or wrong (401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// No such route or entry (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method (405).
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The registry holds `--max-entries` entries and the id is new (429).
    #[error("{kind} registry is full ({max_entries} entries)")]
    RegistryFull {
        /// Which registry.
        kind: Kind,
        /// The configured cap.
        max_entries: usize,
    },
    /// In a cluster, a heartbeat sent to a follower (307 to the leader).
    #[error("this queen follows; send heartbeats to the leader at {location}")]
    NotLeader {
        /// The same path on the leader.
        location: String,
    },
    /// In a cluster, no leader is known right now (503).
    #[error("no leader is known right now; try another queen or again shortly")]
    NoLeader,
    /// Something failed inside the queen (500); the detail is logged, never sent.
    #[error("internal error")]
    Internal,
}

/// The stable machine-readable codes, also used as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    InvalidJson,
    InvalidQuery,
    UnsupportedMediaType,
    PayloadTooLarge,
    ValidationFailed,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    RegistryFull,
    NotLeader,
    NoLeader,
    Internal,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RegistryFull => "registry_full",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::NoLeader => "no_leader",
            ErrorCode::Internal => "internal",
        }
    }
}

impl ApiError {
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidJson(_) => ErrorCode::InvalidJson,
            ApiError::InvalidQuery(_) => ErrorCode::InvalidQuery,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            ApiError::Validation(_) => ErrorCode::ValidationFailed,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::RegistryFull { .. } => ErrorCode::RegistryFull,
            ApiError::NotLeader { .. } => ErrorCode::NotLeader,
            ApiError::NoLeader => ErrorCode::NoLeader,
            ApiError::Internal => ErrorCode::Internal,
        }
    }

    /// Returns the HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) | ApiError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RegistryFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotLeader { .. } => StatusCode::TEMPORARY_REDIRECT,
            ApiError::NoLeader => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: ApiErrorDetail {
                code: self.code().as_str().to_owned(),
                message: self.to_string(),
            },
        };
        let location = match &self {
            ApiError::NotLeader { location } => axum::http::HeaderValue::from_str(location).ok(),
            _ => None,
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(location) = location {
            response.headers_mut().insert(header::LOCATION, location);
        }
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            // axum answers data errors with 422; the contract makes every decode failure a 400.
            JsonRejection::JsonDataError(e) => ApiError::InvalidJson(format!(
                "body does not match the contract: {}",
                e.source().map_or_else(|| e.body_text(), |s| s.to_string())
            )),
            JsonRejection::JsonSyntaxError(e) => ApiError::InvalidJson(format!(
                "malformed json: {}",
                e.source().map_or_else(|| e.body_text(), |s| s.to_string())
            )),
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            other => ApiError::InvalidJson(format!("cannot read the body: {}", other.body_text())),
        }
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s, so malformed bodies get the JSON error shape.
///
/// A body declared exactly `application/json` (every sender's) is decoded with plain
/// `serde_json`; only when that fails is it decoded again through `axum::Json`, whose error
/// names the offending field's path. Tracking that path on every request, and parsing the
/// content type as a MIME type, cost measurable ingest throughput (see BENCHMARKS.md).
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let plain_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"application/json");
        if !plain_json {
            let Json(value) = Json::<T>::from_request(request, state).await?;
            return Ok(Self(value));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(JsonRejection::from)?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Self(value)),
            Err(_) => {
                let Json(value) = Json::<T>::from_bytes(&bytes)?;
                Ok(Self(value))
            }
        }
    }
}
