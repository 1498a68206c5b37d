//! A small JSON client for talking to daemons on loopback.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

/// A JSON-over-HTTP client bound to one base URL, optionally sending a bearer token.
#[derive(Debug, Clone)]
pub struct JsonClient {
    client: Client,
    base: String,
    token: Option<String>,
}

impl JsonClient {
    /// Creates a client for `base` (e.g. `http://127.0.0.1:8500`), with short timeouts.
    pub fn new(base: impl Into<String>) -> Self {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a client with only timeouts set always builds");
        Self {
            client,
            base: base.into().trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// Returns the same client sending `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Returns the base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Returns `base + path` as written, not through `shared_contract::join_url`: hostile-input
    /// tests need their paths sent byte for byte, not normalised by a URL parser.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Returns the underlying reqwest client, for requests the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends `GET path` and returns the status and the body as JSON (`Null` if it is not JSON).
    pub async fn get(&self, path: &str) -> reqwest::Result<(StatusCode, Value)> {
        self.request(Method::GET, path, None).await
    }

    /// Sends `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Result<(StatusCode, Value)> {
        self.request(Method::POST, path, Some(body)).await
    }

    /// Sends `DELETE path`.
    pub async fn delete(&self, path: &str) -> reqwest::Result<(StatusCode, Value)> {
        self.request(Method::DELETE, path, None).await
    }

    /// Returns the body of `GET path` if it answers 200 with JSON, `None` on any failure; handy
    /// inside a wait.
    pub async fn get_ok(&self, path: &str) -> Option<Value> {
        match self.get(path).await {
            Ok((status, body)) if status == StatusCode::OK => Some(body),
            _ => None,
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<(StatusCode, Value)> {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }
}
