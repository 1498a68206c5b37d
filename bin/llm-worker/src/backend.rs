//! Probes the OpenAI-compatible backend: `GET /health`, falling back to `GET /v1/models`.

use std::time::Duration;

use reqwest::{Client, Url};
use shared_contract::join_url;
use tracing::{info, warn};

/// The shortest and longest a probe may take; within that, half the interval.
const MIN_PROBE: Duration = Duration::from_millis(100);
const MAX_PROBE: Duration = Duration::from_secs(2);

/// Remembers the backend's state between probes so that changes are logged once.
#[derive(Debug)]
pub(crate) struct Backend {
    client: Client,
    base: Url,
    answering: Option<bool>,
}

impl Backend {
    pub(crate) fn new(client: Client, base: Url) -> Self {
        Self {
            client,
            base,
            answering: None,
        }
    }

    /// Probes once; returns the error as text when the backend does not answer with a 2xx.
    pub(crate) async fn probe(&mut self, interval: Duration) -> Result<(), String> {
        let budget = (interval / 2).clamp(MIN_PROBE, MAX_PROBE);
        let result = match tokio::time::timeout(budget, self.try_both(budget)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "backend {} did not answer within {budget:?}",
                self.base
            )),
        };
        match (&result, self.answering) {
            (Ok(()), Some(true)) | (Err(_), Some(false)) => {}
            (Ok(()), _) => info!(backend = %self.base, "backend answering"),
            (Err(e), _) => warn!(backend = %self.base, error = %e, "backend not answering"),
        }
        self.answering = Some(result.is_ok());
        result
    }

    async fn try_both(&self, budget: Duration) -> Result<(), String> {
        match self.get("health", budget).await {
            Ok(()) => Ok(()),
            Err(health) => self
                .get("v1/models", budget)
                .await
                .map_err(|models| format!("{health}; {models}")),
        }
    }

    async fn get(&self, path: &str, budget: Duration) -> Result<(), String> {
        let url = join_url(&self.base, path);
        let response = self
            .client
            .get(url.clone())
            .timeout(budget)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", short_error(&e)))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("GET {url}: {}", response.status()))
        }
    }
}

/// Names the failure without reqwest's repetition of the URL.
fn short_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut innermost: &dyn std::error::Error = e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    if e.is_connect() {
        format!("connection failed: {innermost}")
    } else {
        innermost.to_string()
    }
}
