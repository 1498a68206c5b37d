//! A queen's cluster as `GET /v1/cluster` tells it (SPEC section 11): fetched for `status` and
//! for `up --queens N`, and the block `status` prints above the counts.

use std::time::Duration;

use anyhow::Context as _;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::{api::Queen, format::Table};

/// The answer of `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ClusterView {
    /// The advertised URL of the queen that answered.
    #[serde(rename = "self")]
    pub(crate) this: String,
    /// `leader` or `follower`.
    pub(crate) role: String,
    /// The leader's advertised URL, while one is known.
    pub(crate) leader: Option<String>,
    /// Every running queen.
    #[serde(default)]
    pub(crate) members: Vec<ClusterMember>,
    /// `ok` or `unreachable`.
    pub(crate) etcd: String,
}

/// One queen of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ClusterMember {
    pub(crate) url: String,
    pub(crate) role: String,
}

impl ClusterView {
    /// Whether the queen that answered leads.
    pub(crate) fn leads(&self) -> bool {
        self.role == "leader" && self.leader.as_deref() == Some(self.this.as_str())
    }
}

/// Asks a queen for its cluster: `None` when it runs alone (it answers 404).
pub(crate) async fn fetch(queen: &Queen) -> anyhow::Result<Option<ClusterView>> {
    let Some(text) = fetch_text(queen).await? else {
        return Ok(None);
    };
    let view = serde_json::from_str(&text).map_err(|_| {
        anyhow::anyhow!(
            "the queen at {} answered /v1/cluster with json this keeper does not understand",
            queen.base()
        )
    })?;
    Ok(Some(view))
}

/// Asks a queen for its cluster and returns the answer as sent: `None` when it runs alone.
pub(crate) async fn fetch_text(queen: &Queen) -> anyhow::Result<Option<String>> {
    let resp = queen
        .get("/v1/cluster")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|err| queen.unreachable(&err))?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let resp = queen.check(resp).await?;
    let text = resp
        .text()
        .await
        .with_context(|| format!("read the answer of {}/v1/cluster", queen.base()))?;
    Ok(Some(text))
}

/// Returns the snapshot JSON with `"cluster": {…}` added in front, its own bytes otherwise
/// untouched; returns it as it is when the cluster answer is not an object or the snapshot is
/// not an object or already has a `cluster` field.
pub(crate) fn with_cluster(snapshot: &str, cluster: &str) -> String {
    #[derive(Deserialize)]
    struct Probe {
        cluster: Option<serde::de::IgnoredAny>,
    }
    let unchanged = || snapshot.to_owned();
    let Ok(serde_json::Value::Object(cluster)) = serde_json::from_str(cluster) else {
        return unchanged();
    };
    let Some(rest) = snapshot.trim_start().strip_prefix('{') else {
        return unchanged();
    };
    if !matches!(
        serde_json::from_str::<Probe>(snapshot),
        Ok(Probe { cluster: None })
    ) {
        return unchanged();
    }
    let cluster = serde_json::Value::Object(cluster);
    let comma = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    format!("{{\"cluster\":{cluster}{comma}{rest}")
}

/// Renders the cluster block of `status`: one summary line, then the queens with their roles.
pub(crate) fn block(view: &ClusterView) -> Vec<String> {
    let leader = match &view.leader {
        Some(_) if view.leads() => String::new(),
        Some(url) => format!(", leader {url}"),
        None => ", no leader (an election is under way)".to_owned(),
    };
    let etcd = if view.etcd == "ok" {
        "etcd ok".to_owned()
    } else {
        format!(
            "etcd {} (this queen shows its last copy of the fleet)",
            view.etcd
        )
    };
    let mut out = vec![format!(
        "CLUSTER: this queen {} is {}{leader}, {etcd}",
        view.this,
        article(&view.role)
    )];
    let mut table = Table::new(&["QUEEN", "ROLE"]);
    for m in &view.members {
        let mut role = m.role.clone();
        if m.url == view.this {
            role.push_str(" (this queen)");
        }
        table.row(vec![m.url.clone(), role]);
    }
    out.extend(table.render().lines().map(|l| format!("  {l}")));
    out
}

/// `a follower`, `the leader`: how the summary line names a role.
fn article(role: &str) -> String {
    match role {
        "leader" => "the leader".to_owned(),
        "follower" => "a follower".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(url: &str, role: &str) -> ClusterMember {
        ClusterMember {
            url: url.to_owned(),
            role: role.to_owned(),
        }
    }

    fn three_queens(this: &str, role: &str) -> ClusterView {
        ClusterView {
            this: this.to_owned(),
            role: role.to_owned(),
            leader: Some("http://127.0.0.1:8500".to_owned()),
            members: vec![
                member("http://127.0.0.1:8500", "leader"),
                member("http://127.0.0.1:8501", "follower"),
                member("http://127.0.0.1:8502", "follower"),
            ],
            etcd: "ok".to_owned(),
        }
    }

    #[test]
    fn a_follower_names_itself_the_leader_and_every_member() {
        let lines = block(&three_queens("http://127.0.0.1:8501", "follower"));
        assert_eq!(
            lines,
            [
                "CLUSTER: this queen http://127.0.0.1:8501 is a follower, leader http://127.0.0.1:8500, etcd ok",
                "  QUEEN                  ROLE",
                "  http://127.0.0.1:8500  leader",
                "  http://127.0.0.1:8501  follower (this queen)",
                "  http://127.0.0.1:8502  follower",
            ]
        );
    }

    #[test]
    fn the_leader_says_so() {
        let view = three_queens("http://127.0.0.1:8500", "leader");
        assert!(view.leads());
        let lines = block(&view);
        assert_eq!(
            lines[0],
            "CLUSTER: this queen http://127.0.0.1:8500 is the leader, etcd ok"
        );
        assert_eq!(lines[2], "  http://127.0.0.1:8500  leader (this queen)");
    }

    #[test]
    fn no_leader_and_an_unreachable_etcd_are_spelled_out() {
        let mut view = three_queens("http://127.0.0.1:8502", "follower");
        view.leader = None;
        view.etcd = "unreachable".to_owned();
        assert!(!view.leads());
        let line = &block(&view)[0];
        assert!(
            line.contains("no leader (an election is under way)"),
            "{line}"
        );
        assert!(
            line.contains("etcd unreachable (this queen shows its last copy"),
            "{line}"
        );
    }

    #[test]
    fn the_queens_answer_decodes_and_unknown_fields_are_ignored() {
        let view: ClusterView = serde_json::from_str(
            r#"{"self": "http://q:1", "role": "follower", "leader": null,
                "members": [{"url": "http://q:1", "role": "follower", "since": 3}],
                "etcd": "ok", "term": 7}"#,
        )
        .unwrap();
        assert_eq!(view.leader, None);
        assert_eq!(view.members, [member("http://q:1", "follower")]);
    }

    #[test]
    fn json_gets_the_cluster_in_front_and_keeps_the_snapshot_as_sent() {
        let cluster = r#"{"self": "http://q:1", "role": "leader", "leader": "http://q:1",
            "members": [], "etcd": "ok", "term": 7}"#;
        let snapshot =
            r#"{"seq":1,"workers_online":2,"workers":[{"model_id":"m \"cluster\": x"}]}"#;
        let out = with_cluster(snapshot, cluster);
        assert!(out.starts_with(r#"{"cluster":{"#), "{out}");
        assert!(
            out.ends_with(
                r#""seq":1,"workers_online":2,"workers":[{"model_id":"m \"cluster\": x"}]}"#
            ),
            "{out}"
        );
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["cluster"]["term"], 7);
        assert_eq!(json["workers_online"], 2);

        let empty: serde_json::Value = serde_json::from_str(&with_cluster("{}", cluster)).unwrap();
        assert_eq!(empty["cluster"]["role"], "leader");
        // A snapshot that has a cluster of its own, or is not an object, stays as it is.
        let own = r#"{"cluster":1,"seq":1}"#;
        assert_eq!(with_cluster(own, cluster), own);
        assert_eq!(with_cluster("[]", cluster), "[]");
        assert_eq!(with_cluster(snapshot, "not json"), snapshot);
    }
}
