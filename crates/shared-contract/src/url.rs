//! Joining a path onto a queen's (or a backend's) base URL.

use url::Url;

/// Joins `path` onto `base`, keeping any path prefix the base has:
/// `http://h/rbee` + `v1/hive-heartbeat` is `http://h/rbee/v1/hive-heartbeat`, where
/// `Url::join` alone would drop `rbee`. A leading `/` on `path` does not reset the prefix either:
/// every rbee URL flag names a base, and every path is relative to it.
pub fn join_url(base: &Url, path: &str) -> Url {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path.trim_start_matches('/')).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(base: &str, path: &str) -> String {
        join_url(&Url::parse(base).unwrap(), path).to_string()
    }

    #[test]
    fn paths_land_below_the_base_and_its_prefix() {
        assert_eq!(
            joined("http://127.0.0.1:8500", "v1/worker-heartbeat"),
            "http://127.0.0.1:8500/v1/worker-heartbeat"
        );
        assert_eq!(
            joined("http://h:1/rbee", "v1/hive-heartbeat"),
            "http://h:1/rbee/v1/hive-heartbeat"
        );
        assert_eq!(joined("http://h/llm/", "health"), "http://h/llm/health");
        assert_eq!(
            joined("http://h/rbee/", "/v1/workers?state=online"),
            "http://h/rbee/v1/workers?state=online"
        );
    }
}
