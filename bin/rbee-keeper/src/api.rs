//! Talking to a queen over HTTP: one shared client, URLs, and errors a user can act on.

use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use shared_contract::join_url;

use crate::{config::QueenArgs, fleet::Listing};

/// Builds the one HTTP client of this process.
///
/// There is no overall request timeout because the event stream is long-lived; requests that
/// should be short set their own.
pub(crate) fn http_client() -> anyhow::Result<Client> {
    Client::builder()
        .connect_timeout(Duration::from_secs(3))
        // The stream sends at least a keep-alive every 15 s, so a longer silence means a dead link.
        .read_timeout(Duration::from_secs(45))
        .user_agent(concat!("rbee-keeper/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("build http client")
}

/// A queen reachable at a base URL, with an optional bearer token.
#[derive(Debug, Clone)]
pub(crate) struct Queen {
    client: Client,
    url: Url,
    /// The URL as shown to the user: without a trailing slash.
    base: String,
    token: Option<String>,
}

impl Queen {
    pub(crate) fn new(client: Client, args: &QueenArgs) -> Self {
        Self::from_parts(client, &args.queen_url, args.token.clone())
    }

    pub(crate) fn from_parts(client: Client, url: &Url, token: Option<String>) -> Self {
        Self {
            client,
            url: url.clone(),
            base: url.as_str().trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// Returns the base URL without a trailing slash.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Returns a GET request for a path such as `/v1/workers`, with the token attached.
    pub(crate) fn get(&self, path: &str) -> RequestBuilder {
        let req = self.client.get(join_url(&self.url, path));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// Fetches `GET path` and returns the body as JSON, with user-facing errors.
    pub(crate) async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let text = self.get_text(path).await?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "the queen at {} answered {path} with invalid json",
                self.base
            )
        })
    }

    /// Fetches `GET path` and returns the body as text, with user-facing errors.
    pub(crate) async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self
            .get(path)
            // Generous: a snapshot of 10,000 workers is several megabytes.
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|err| self.unreachable(&err))?;
        let resp = self.check(resp).await?;
        resp.text()
            .await
            .with_context(|| format!("read the answer of {}{path}", self.base))
    }

    /// Fetches and decodes the current snapshot.
    pub(crate) async fn snapshot(&self) -> anyhow::Result<Listing> {
        let raw = self.get_text("/v1/heartbeats/snapshot").await?;
        serde_json::from_str(&raw).with_context(|| {
            format!(
                "the queen at {} sent a snapshot this keeper does not understand",
                self.base
            )
        })
    }

    /// Turns a transport error into a one-line reason the queen cannot be reached.
    pub(crate) fn unreachable(&self, err: &reqwest::Error) -> anyhow::Error {
        let why = if err.is_connect() {
            "connection refused or host unreachable"
        } else if err.is_timeout() {
            "timed out"
        } else {
            "request failed"
        };
        anyhow::anyhow!("cannot reach the queen at {} ({why})", self.base)
    }

    /// Passes a successful response through and explains any other.
    pub(crate) async fn check(&self, resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::UNAUTHORIZED {
            let hint = if self.token.is_some() {
                "the token was rejected"
            } else {
                "it requires a token: pass --token or set RBEE_TOKEN"
            };
            anyhow::bail!(
                "the queen at {} answered 401 unauthorized: {hint}",
                self.base
            );
        }
        // The queen's errors are `{"error": {"code", "message"}}`; show the message when present.
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or("no details");
        anyhow::bail!("the queen at {} answered {status}: {message}", self.base)
    }
}
