//! Plain-text pieces: aligned tables, ages like `3s ago`, sizes, clock skew, counts and
//! transition lines.

use hive_contract::HiveInfo;
use shared_contract::{Health, Heartbeat, State, Transition};
use tokio::time::Instant;
use worker_contract::WorkerInfo;

use crate::fleet::{Counts, Kept};

/// A table whose columns are padded to their widest cell.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the header and rows, each line ending in a newline, with no trailing spaces.
    pub(crate) fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate().take(columns) {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Formats milliseconds since an event as `just now`, `3s ago`, `2m 5s ago`, `1h 4m ago`, `3d ago`.
pub(crate) fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => "just now".to_owned(),
        1..60 => format!("{s}s ago"),
        60..3600 => format!("{}m {}s ago", s / 60, s % 60),
        3600..172_800 => format!("{}h {}m ago", s / 3600, (s / 60) % 60),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Formats a clock skew in milliseconds with its sign: `+3ms`, `-1.2s`, `+2.0h`.
pub(crate) fn skew(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    let a = ms.unsigned_abs();
    #[allow(clippy::cast_precision_loss, reason = "one decimal place of display")]
    let f = a as f64;
    match a {
        0..1000 => format!("{sign}{a}ms"),
        1000..60_000 => format!("{sign}{:.1}s", f / 1000.0),
        60_000..3_600_000 => format!("{sign}{:.1}m", f / 60_000.0),
        _ => format!("{sign}{:.1}h", f / 3_600_000.0),
    }
}

/// Formats a byte count in binary units: `512 B`, `1.5 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss, reason = "one decimal place of display")]
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats health as `healthy`, or `degraded: reason`.
pub(crate) fn health(h: &Health) -> String {
    match h.reason() {
        Some(reason) if !reason.is_empty() => format!("{}: {reason}", health_word(h)),
        _ => health_word(h).to_owned(),
    }
}

fn health_word(h: &Health) -> &'static str {
    match h {
        Health::Healthy => "healthy",
        Health::Degraded { .. } => "degraded",
        Health::Unhealthy { .. } => "unhealthy",
    }
}

/// How the `LAST SEEN` column reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ages {
    /// From a fresh snapshot: every age is exact.
    Exact,
    /// From the watch: beats that change nothing else send no event, so an online entry's age
    /// is unknown and reads `live`; offline and left entries' ages are exact.
    Live,
}

impl Ages {
    pub(crate) fn last_seen<T: Heartbeat>(self, kept: &Kept<T>, now: Instant) -> String {
        if self == Ages::Live && kept.entry.state == State::Online {
            "live".to_owned()
        } else {
            age(kept.last_seen_ms_ago(now))
        }
    }
}

/// Renders hives with their machine details (`--hive ID`).
pub(crate) fn hive_details_table(hives: &[&Kept<HiveInfo>], ages: Ages, now: Instant) -> String {
    let mut t = Table::new(&[
        "HIVE",
        "STATE",
        "STATUS",
        "HEALTH",
        "HOST",
        "CPUS",
        "MEMORY USED",
        "GPUS",
        "LAST SEEN",
        "RESTARTS",
    ]);
    for kept in hives {
        let (e, h) = (&kept.entry, &kept.entry.payload);
        let (cpus, memory) = match &h.system {
            Some(s) => (
                s.cpu_cores.to_string(),
                format!(
                    "{} / {}",
                    bytes(
                        s.memory_total_bytes
                            .saturating_sub(s.memory_available_bytes)
                    ),
                    bytes(s.memory_total_bytes)
                ),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let gpus = if h.devices.is_empty() {
            "none".to_owned()
        } else {
            h.devices
                .iter()
                .map(|d| format!("{} {}", d.id, d.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.row(vec![
            marked(&h.id, e.conflict, e.restored),
            e.state.to_string(),
            h.status.to_string(),
            health(&h.health),
            h.hostname.clone(),
            cpus,
            memory,
            gpus,
            ages.last_seen(kept, now),
            e.restarts.to_string(),
        ]);
    }
    t.render()
}

/// Renders workers; the skew column only where ages are exact (skew is volatile too).
pub(crate) fn workers_table(workers: &[&Kept<WorkerInfo>], ages: Ages, now: Instant) -> String {
    let mut header = vec![
        "WORKER",
        "HIVE",
        "MODEL",
        "DEVICE",
        "STATE",
        "STATUS",
        "HEALTH",
        "LAST SEEN",
    ];
    if ages == Ages::Exact {
        header.push("SKEW");
    }
    header.push("RESTARTS");
    let mut t = Table::new(&header);
    for kept in workers {
        let (e, w) = (&kept.entry, &kept.entry.payload);
        let mut row = vec![
            marked(&w.id, e.conflict, e.restored),
            w.hive_id.clone(),
            w.model_id.clone(),
            w.device.clone(),
            e.state.to_string(),
            w.status.to_string(),
            health(&w.health),
            ages.last_seen(kept, now),
        ];
        if ages == Ages::Exact {
            row.push(skew(e.clock_skew_ms));
        }
        row.push(e.restarts.to_string());
        t.row(row);
    }
    t.render()
}

/// One line of counts for a kind, e.g. `WORKERS: 9990 online, 9000 available, 10 offline, ...`.
pub(crate) fn counts_line(title: &str, c: &Counts) -> String {
    format!(
        "{title}: {} online, {} available, {} offline, {} left, {} known, {} with problems",
        c.online, c.available, c.offline, c.left, c.known, c.problems
    )
}

/// One line for a transition, e.g. `15:00:20  worker w2  online -> offline  (heartbeat timeout)`.
pub(crate) fn transition_line(t: &Transition) -> String {
    let from = t.from.map_or("new", |s| s.as_str());
    format!(
        "{}  {:<6} {}  {from} -> {}  ({})",
        t.at.format("%H:%M:%S"),
        t.kind.as_str(),
        t.id,
        t.to,
        t.reason
    )
}

/// The id with what the queen flags about it: two processes under one id, or an entry restored
/// after a queen restart and not heard from since.
fn marked(id: &str, conflict: bool, restored: bool) -> String {
    let mut out = id.to_owned();
    if conflict {
        out.push_str(" (conflict)");
    }
    if restored {
        out.push_str(" (restored)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(999), "just now");
        assert_eq!(age(3_400), "3s ago");
        assert_eq!(age(125_000), "2m 5s ago");
        assert_eq!(age(3_660_000), "1h 1m ago");
        assert_eq!(age(5 * 86_400_000), "5d ago");
    }

    #[test]
    fn skew_and_bytes_are_compact() {
        assert_eq!(skew(-3), "-3ms");
        assert_eq!(skew(0), "+0ms");
        assert_eq!(skew(1_300), "+1.3s");
        assert_eq!(skew(-7_200_000), "-2.0h");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_610_612_736), "1.5 GiB");
    }

    #[test]
    fn tables_align_columns_and_trim_lines() {
        let mut t = Table::new(&["ID", "STATE"]);
        t.row(vec!["a-long-id".to_owned(), "online".to_owned()]);
        t.row(vec!["b".to_owned(), "offline".to_owned()]);
        assert_eq!(
            t.render(),
            "ID         STATE\na-long-id  online\nb          offline\n"
        );
    }

    #[test]
    fn health_shows_its_reason() {
        let h = Health::Degraded {
            reason: "low memory".to_owned(),
        };
        assert_eq!(health(&h), "degraded: low memory");
        assert_eq!(health(&Health::Healthy), "healthy");
    }
}
