//! Reading the kept transitions for `/v1/events`.

use rusqlite::{Connection, ToSql};

use crate::QueryError;

/// Which transitions to return. Times are microseconds since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// From this time on (inclusive). With it the first `limit` matches are returned (paging
    /// forward); without it the newest `limit`.
    pub since_us: Option<i64>,
    /// Before this time (exclusive).
    pub until_us: Option<i64>,
    /// Only this kind.
    pub kind: Option<&'static str>,
    /// Only this entry id.
    pub id: Option<String>,
    /// The most transitions returned.
    pub limit: usize,
}

impl EventQuery {
    /// Whether a transition of `kind` and `id` at `at_us` matches the filters (not the limit).
    pub fn matches(&self, kind: &str, id: &str, at_us: i64) -> bool {
        self.since_us.is_none_or(|since| at_us >= since)
            && self.until_us.is_none_or(|until| at_us < until)
            && self.kind.is_none_or(|k| k == kind)
            && self.id.as_deref().is_none_or(|i| i == id)
    }
}

pub(crate) fn events(
    conn: &Connection,
    query: &EventQuery,
) -> Result<Vec<(u64, String)>, QueryError> {
    let mut clauses = Vec::new();
    let mut params: Vec<&dyn ToSql> = Vec::new();
    // Revisions follow time, so a time bound is also a revision bound, found through the time
    // index; it lets SQLite walk the revisions from there instead of from one end of a week of
    // history. The time filters stay, so a stepped wall clock cannot let a wrong row through.
    if let Some(since) = &query.since_us {
        clauses.push(
            "revision >= COALESCE((SELECT revision FROM transitions WHERE at_us >= ?
                 ORDER BY at_us, revision LIMIT 1), 9223372036854775807)",
        );
        params.push(since);
        clauses.push("at_us >= ?");
        params.push(since);
    }
    if let Some(until) = &query.until_us {
        clauses.push(
            "revision <= COALESCE((SELECT revision FROM transitions WHERE at_us < ?
                 ORDER BY at_us DESC, revision DESC LIMIT 1), -1)",
        );
        params.push(until);
        clauses.push("at_us < ?");
        params.push(until);
    }
    if let Some(kind) = &query.kind {
        clauses.push("kind = ?");
        params.push(kind);
    }
    if let Some(id) = &query.id {
        clauses.push("id = ?");
        params.push(id);
    }
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    params.push(&limit);
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    // Revisions order the transitions as the queen made them, even if its wall clock stepped.
    let order = if query.since_us.is_some() {
        "ASC"
    } else {
        "DESC"
    };
    let sql = format!(
        "SELECT revision, body FROM transitions {filter} ORDER BY revision {order} LIMIT ?"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt
        .query_map(params.as_slice(), |row| {
            Ok((
                row.get::<_, i64>(0)?.unsigned_abs(),
                row.get::<_, String>(1)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if query.since_us.is_none() {
        rows.reverse();
    }
    Ok(rows)
}
