//! Command-line pieces shared by the sender daemons: the common flags and their parsers.

use std::{fmt, time::Duration};

use clap::Args;
use heartbeat_sender::{QueenUrls, SenderConfig};
use reqwest::Url;
use shared_contract::check_id;

/// The flags every sender has (SPEC section 6), flattened into each daemon's `Config`.
#[derive(Clone, Args)]
pub struct SenderArgs {
    /// The queen's base URL, or a comma-separated list of a cluster's queen URLs (a follower's
    /// redirect to the leader is followed; a queen that does not answer is left for the next).
    #[arg(long, env = "RBEE_QUEEN_URL", default_value = "http://127.0.0.1:8500", value_parser = parse_queen_urls)]
    pub queen_url: QueenUrls,

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
            .field("queen_url", &self.queen_url)
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

/// Parses `--queen-url`: one queen URL, or a comma-separated list `a,b,c` of them, each checked
/// by [`parse_queen_url`]. Empty items and repeats are refused.
pub fn parse_queen_urls(s: &str) -> Result<QueenUrls, String> {
    let items: Vec<&str> = s.split(',').map(str::trim).collect();
    let mut urls: Vec<Url> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if item.is_empty() {
            return Err(format!(
                "queen url {} of {} is empty (expected http://a:8500,http://b:8500)",
                i + 1,
                items.len()
            ));
        }
        let url = parse_queen_url(item).map_err(|e| format!("{item}: {e}"))?;
        if urls.contains(&url) {
            return Err(format!("{item} is listed twice"));
        }
        urls.push(url);
    }
    QueenUrls::new(urls).map_err(|e| e.to_string())
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
    fn one_queen_url_is_a_list_of_one() {
        let queens = parse_queen_urls("http://127.0.0.1:8500").unwrap();
        assert_eq!(queens.as_slice().len(), 1);
        assert_eq!(queens.first().as_str(), "http://127.0.0.1:8500/");
        assert!(parse_queen_urls("https://queen").is_err());
    }

    #[test]
    fn queen_urls_are_a_comma_separated_list() {
        let queens = parse_queen_urls("http://a:8500, http://b:8500/rbee,http://c:8500").unwrap();
        let urls: Vec<&str> = queens.as_slice().iter().map(Url::as_str).collect();
        assert_eq!(
            urls,
            ["http://a:8500/", "http://b:8500/rbee", "http://c:8500/"]
        );
        assert_eq!(
            queens.to_string(),
            "http://a:8500,http://b:8500/rbee,http://c:8500"
        );
    }

    #[test]
    fn bad_queen_url_lists_say_which_item() {
        let empty = parse_queen_urls("http://a:8500,,http://c:8500").unwrap_err();
        assert!(empty.contains("2 of 3 is empty"), "{empty}");
        assert!(
            parse_queen_urls("")
                .unwrap_err()
                .contains("1 of 1 is empty")
        );
        assert!(
            parse_queen_urls("http://a:8500,")
                .unwrap_err()
                .contains("2 of 2")
        );
        let bad = parse_queen_urls("http://a:8500,https://b").unwrap_err();
        assert!(bad.starts_with("https://b: scheme must be http"), "{bad}");
        let twice = parse_queen_urls("http://a:8500,http://a:8500/").unwrap_err();
        assert!(twice.contains("listed twice"), "{twice}");
    }

    #[test]
    fn ids_are_checked() {
        assert!(parse_id("gpu0-llama").is_ok());
        assert!(parse_id("bad id").is_err());
        assert!(parse_id("").is_err());
    }
}
