//! Command-line pieces shared by the sender daemons: the common flags and their parsers.

use std::{fmt, time::Duration};

use clap::Args;
use heartbeat_sender::SenderConfig;
use reqwest::Url;
use shared_contract::check_id;

/// The flags every sender has (SPEC section 6), flattened into each daemon's `Config`.
#[derive(Clone, Args)]
pub struct SenderArgs {
    /// The queen's base URL.
    #[arg(long, env = "RBEE_QUEEN_URL", default_value = "http://127.0.0.1:8500", value_parser = parse_queen_url)]
    pub queen_url: Url,

    /// Heartbeat interval until the queen asks for another one (e.g. 5s, 250ms).
    #[arg(long, env = "RBEE_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Bearer token the queen requires.
    #[arg(long, env = "RBEE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl fmt::Debug for SenderArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderArgs")
            .field("queen_url", &self.queen_url.as_str())
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SenderArgs {
    /// Returns the sender configuration these flags describe.
    pub fn sender_config(&self) -> SenderConfig {
        SenderConfig::new(
            self.queen_url.clone(),
            self.heartbeat_interval,
            self.token.clone(),
        )
    }
}

/// Parses a human-readable, non-zero duration such as `5s` or `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 5s, 250ms)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(d)
}

/// Parses the queen URL: `http://` with a host (this build speaks plain HTTP only).
pub fn parse_queen_url(s: &str) -> Result<Url, String> {
    parse_http_url(s)
}

/// Parses an `http://` URL with a host, such as a backend's base URL.
pub fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!("scheme must be http, not {}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("missing host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(url)
}

/// Parses an id flag under the contract's id rule.
pub fn parse_id(s: &str) -> Result<String, String> {
    check_id("id", s).map_err(|e| e.reason)?;
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_human_readable_and_non_zero() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn queen_urls_must_be_http_with_a_host() {
        assert!(parse_queen_url("http://127.0.0.1:8500").is_ok());
        assert!(parse_queen_url("http://queen.lan/prefix").is_ok());
        assert!(parse_queen_url("https://queen").is_err());
        assert!(parse_queen_url("127.0.0.1:8500").is_err());
        assert!(parse_queen_url("not a url").is_err());
        assert!(parse_queen_url("http://q/?token=x").is_err());
    }

    #[test]
    fn ids_are_checked() {
        assert!(parse_id("gpu0-llama").is_ok());
        assert!(parse_id("bad id").is_err());
        assert!(parse_id("").is_err());
    }
}
