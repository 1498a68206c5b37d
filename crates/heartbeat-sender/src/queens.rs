//! The queens a sender knows: the configured URL list and the target it sends to now.

use std::fmt;

use reqwest::Url;
use shared_contract::join_url;

/// One or more queen base URLs, in the order they were given; never empty.
///
/// One URL is a single queen. Several are the queens of one cluster: the sender sends to one at
/// a time, follows a follower's redirect to the leader and moves on to the next URL when the one
/// it uses stops answering.
#[derive(Clone, PartialEq, Eq)]
pub struct QueenUrls(Vec<Url>);

/// Returned by [`QueenUrls::new`] for an empty list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at least one queen url is required")]
pub struct NoQueenUrl;

impl QueenUrls {
    /// Returns the list, or [`NoQueenUrl`] when `urls` is empty.
    pub fn new(urls: Vec<Url>) -> Result<Self, NoQueenUrl> {
        if urls.is_empty() {
            Err(NoQueenUrl)
        } else {
            Ok(Self(urls))
        }
    }

    /// Returns the URLs in the order they were given.
    pub fn as_slice(&self) -> &[Url] {
        &self.0
    }

    /// Returns the first URL, where the sender starts.
    pub fn first(&self) -> &Url {
        // The constructor refuses an empty list.
        &self.0[0]
    }
}

impl From<Url> for QueenUrls {
    fn from(url: Url) -> Self {
        Self(vec![url])
    }
}

/// Writes the list as the flag takes it: `http://a:8500,http://b:8500`.
impl fmt::Display for QueenUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, url) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(display_base(url))?;
        }
        Ok(())
    }
}

impl fmt::Debug for QueenUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(Url::as_str))
            .finish()
    }
}

/// One place heartbeats can go: a queen's base URL and its heartbeat route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The queen's base URL, for logs and for the handle.
    pub(crate) base: Url,
    /// Where the heartbeat is posted.
    pub(crate) url: Url,
}

impl Endpoint {
    /// Returns the base as logs show it, without the trailing `/`.
    pub(crate) fn name(&self) -> &str {
        display_base(&self.base)
    }
}

/// The configured endpoints as a ring, and the one in use.
///
/// The one in use is a configured endpoint or one a redirect led to; `anchor` is the configured
/// endpoint it came from, so moving on after a redirected target fails continues the ring there.
#[derive(Debug)]
pub(crate) struct Targets {
    configured: Vec<Endpoint>,
    current: Endpoint,
    anchor: usize,
    /// The route below each base, e.g. `v1/worker-heartbeat`.
    path: String,
}

impl Targets {
    /// Starts at the first URL; `path` is the heartbeat route below each base.
    pub(crate) fn new(queens: &QueenUrls, path: &str) -> Self {
        let configured: Vec<Endpoint> = queens
            .as_slice()
            .iter()
            .map(|base| Endpoint {
                base: base.clone(),
                url: join_url(base, path),
            })
            .collect();
        Self {
            current: configured[0].clone(),
            configured,
            anchor: 0,
            path: path.to_owned(),
        }
    }

    /// Returns the endpoint in use.
    pub(crate) fn current(&self) -> &Endpoint {
        &self.current
    }

    /// Returns how many attempts one beat makes before backing off: each configured URL once,
    /// plus the redirected target in use when it is none of them.
    pub(crate) fn attempts_per_beat(&self) -> usize {
        self.configured.len() + usize::from(self.current != self.configured[self.anchor])
    }

    /// Moves to the configured URL after the one in use (round robin) and returns it.
    ///
    /// With one URL this is the same URL again, so a single queen is retried as before.
    pub(crate) fn advance(&mut self) -> &Endpoint {
        self.anchor = (self.anchor + 1) % self.configured.len();
        self.current = self.configured[self.anchor].clone();
        &self.current
    }

    /// Makes the configured endpoint `url` the one in use; returns whether that changed it.
    pub(crate) fn rest_on(&mut self, url: &Url) -> bool {
        match self.configured.iter().position(|e| e.url == *url) {
            Some(index) if self.current.url != *url => {
                self.anchor = index;
                self.current = self.configured[index].clone();
                true
            }
            _ => false,
        }
    }

    /// Makes `url`, where a redirect led and a heartbeat was accepted, the endpoint in use.
    /// Returns whether that changed it.
    pub(crate) fn follow(&mut self, url: Url) -> bool {
        if url == self.current.url {
            return false;
        }
        if let Some(index) = self.configured.iter().position(|e| e.url == url) {
            self.anchor = index;
            self.current = self.configured[index].clone();
        } else {
            self.current = Endpoint {
                base: base_of(&url, &self.path),
                url,
            };
        }
        true
    }
}

/// Returns the base of a heartbeat URL: `url` with the route `path` taken off its end.
///
/// The queen redirects to the leader's advertised URL plus the same path, so this undoes
/// [`join_url`]. A URL that does not end in `path` is its own base.
fn base_of(url: &Url, path: &str) -> Url {
    let suffix = format!("/{}", path.trim_start_matches('/'));
    let mut base = url.clone();
    if let Some(prefix) = url.path().strip_suffix(suffix.as_str()) {
        base.set_path(&format!("{prefix}/"));
        base.set_query(None);
        base.set_fragment(None);
    }
    base
}

fn display_base(url: &Url) -> &str {
    url.as_str().trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "v1/worker-heartbeat";

    fn url(s: &str) -> Url {
        s.parse().unwrap()
    }

    fn queens(urls: &[&str]) -> QueenUrls {
        QueenUrls::new(urls.iter().map(|s| url(s)).collect()).unwrap()
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert_eq!(QueenUrls::new(Vec::new()), Err(NoQueenUrl));
    }

    #[test]
    fn the_list_displays_as_the_flag_takes_it() {
        let list = queens(&["http://a:1", "http://b:2/rbee"]);
        assert_eq!(list.to_string(), "http://a:1,http://b:2/rbee");
        assert_eq!(list.first().as_str(), "http://a:1/");
    }

    #[test]
    fn advancing_walks_the_ring() {
        let mut targets = Targets::new(&queens(&["http://a:1", "http://b:2", "http://c:3"]), PATH);
        assert_eq!(
            targets.current().url.as_str(),
            "http://a:1/v1/worker-heartbeat"
        );
        assert_eq!(targets.attempts_per_beat(), 3);
        assert_eq!(targets.advance().name(), "http://b:2");
        assert_eq!(targets.advance().name(), "http://c:3");
        assert_eq!(targets.advance().name(), "http://a:1");
    }

    #[test]
    fn one_url_advances_to_itself() {
        let mut targets = Targets::new(&queens(&["http://a:1/rbee"]), PATH);
        let first = targets.current().clone();
        assert_eq!(targets.advance(), &first);
        assert_eq!(targets.attempts_per_beat(), 1);
    }

    #[test]
    fn a_redirect_to_a_configured_queen_moves_the_anchor() {
        let mut targets = Targets::new(&queens(&["http://a:1", "http://b:2", "http://c:3"]), PATH);
        assert!(targets.follow(url("http://b:2/v1/worker-heartbeat")));
        assert_eq!(targets.current().name(), "http://b:2");
        assert_eq!(targets.attempts_per_beat(), 3);
        assert!(!targets.follow(url("http://b:2/v1/worker-heartbeat")));
        assert_eq!(targets.advance().name(), "http://c:3");
    }

    #[test]
    fn a_redirect_elsewhere_keeps_the_anchor_and_adds_an_attempt() {
        let mut targets = Targets::new(&queens(&["http://a:1", "http://b:2"]), PATH);
        assert!(targets.follow(url("http://leader:9/rbee/v1/worker-heartbeat")));
        assert_eq!(targets.current().name(), "http://leader:9/rbee");
        assert_eq!(
            targets.current().url.as_str(),
            "http://leader:9/rbee/v1/worker-heartbeat"
        );
        assert_eq!(targets.attempts_per_beat(), 3);
        assert_eq!(targets.advance().name(), "http://b:2");
        assert_eq!(targets.attempts_per_beat(), 2);
    }

    #[test]
    fn the_base_is_the_location_without_the_route() {
        assert_eq!(
            base_of(&url("http://h:1/v1/worker-heartbeat"), PATH).as_str(),
            "http://h:1/"
        );
        assert_eq!(
            base_of(&url("http://h:1/rbee/v1/worker-heartbeat?x=1"), PATH).as_str(),
            "http://h:1/rbee/"
        );
        assert_eq!(
            base_of(&url("http://h:1/elsewhere"), PATH).as_str(),
            "http://h:1/elsewhere"
        );
    }
}
