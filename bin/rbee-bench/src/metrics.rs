//! The queen's `/metrics` as the bench reads it: counters and one histogram's buckets from the
//! Prometheus text format, and the figures a difference of two readings gives.

use std::net::SocketAddr;

use anyhow::Context as _;
use serde::Serialize;

use crate::http;

/// Transactions the store committed.
pub const STORE_WRITES: &str = "rbee_store_writes_total";
/// Entry and transition rows the store wrote.
pub const STORE_ROWS: &str = "rbee_store_rows_written_total";
/// Writes to the store that failed.
pub const STORE_ERRORS: &str = "rbee_store_errors_total";
/// From a change entering the change log to its commit, oldest change of each batch.
pub const COMMIT_LAG: &str = "rbee_store_commit_lag_seconds";
/// Transactions a cluster leader committed to etcd.
pub const ETCD_TXNS: &str = "rbee_cluster_etcd_txns_total";
/// Keys written or deleted by those transactions.
pub const ETCD_OPS: &str = "rbee_cluster_etcd_ops_total";
/// The newest revision a queen shows its watchers (a follower: the newest it mirrored).
pub const REVISION: &str = "rbee_revision";

/// One reading of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    text: String,
}

impl Metrics {
    /// Reads `/metrics` from the queen at `addr`.
    pub async fn fetch(addr: SocketAddr) -> anyhow::Result<Self> {
        let (status, body) = http::get(addr, "/metrics").await.context("GET /metrics")?;
        anyhow::ensure!(status == 200, "GET /metrics answered {status}");
        Ok(Self::parse(String::from_utf8_lossy(&body).into_owned()))
    }

    /// Wraps a text already read.
    pub fn parse(text: String) -> Self {
        Self { text }
    }

    /// The value of the sample `name` without labels, or with exactly `labels` (e.g.
    /// `kind="worker",state="online"`); `None` when absent.
    pub fn value(&self, name: &str, labels: &str) -> Option<f64> {
        self.text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = if labels.is_empty() {
                rest.strip_prefix(' ')?
            } else {
                rest.strip_prefix('{')?
                    .strip_prefix(labels)?
                    .strip_prefix("} ")?
            };
            // A sample may carry a timestamp or an exemplar after its value.
            rest.split_whitespace().next()?.parse().ok()
        })
    }

    /// A counter's value; 0 when absent.
    pub fn counter(&self, name: &str) -> u64 {
        self.value(name, "").map_or(0, |v| v.max(0.0) as u64)
    }

    /// The cumulative buckets, sum and count of histogram `name`.
    pub fn histogram(&self, name: &str) -> Histogram {
        let bucket_prefix = format!("{name}_bucket{{le=\"");
        let mut buckets = Vec::new();
        for line in self.text.lines() {
            let Some(rest) = line.strip_prefix(bucket_prefix.as_str()) else {
                continue;
            };
            let Some((le, value)) = rest.split_once("\"} ") else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse() {
                    Ok(le) => le,
                    Err(_) => continue,
                }
            };
            let Some(count) = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            buckets.push((le, count.max(0.0) as u64));
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Histogram {
            buckets,
            sum: self.value(&format!("{name}_sum"), "").unwrap_or(0.0),
            count: self.counter(&format!("{name}_count")),
        }
    }
}

/// A Prometheus histogram: cumulative counts per upper bound, ascending, `+Inf` last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(upper bound in seconds, observations at or below it)`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// What was observed after `before` (the same histogram, read earlier).
    pub fn since(&self, before: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, n)| {
                let earlier = before.buckets.iter().find(|b| b.0 == le).map_or(0, |b| b.1);
                (le, n.saturating_sub(earlier))
            })
            .collect();
        Histogram {
            buckets,
            sum: (self.sum - before.sum).max(0.0),
            count: self.count.saturating_sub(before.count),
        }
    }

    /// The upper bound of the bucket holding the `q`-quantile (nearest rank): the quantile is
    /// at most this; infinite beyond the last finite bound, 0 when empty.
    pub fn quantile_bound(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        self.buckets
            .iter()
            .find(|b| b.1 >= rank)
            .map_or(f64::INFINITY, |b| b.0)
    }

    /// The upper bound of the highest bucket that holds an observation.
    pub fn max_bound(&self) -> f64 {
        self.quantile_bound(1.0)
    }

    /// The mean observation; 0 when empty.
    pub fn mean(&self) -> f64 {
        crate::stats::ratio(self.sum, self.count as f64)
    }

    /// The summary the report shows, in milliseconds.
    pub fn figures(&self) -> BucketFigures {
        // Bounds beyond the last finite bucket are reported as -1 (JSON has no infinity).
        let ms = |s: f64| if s.is_finite() { s * 1000.0 } else { -1.0 };
        BucketFigures {
            count: self.count,
            p50_le_ms: ms(self.quantile_bound(0.50)),
            p99_le_ms: ms(self.quantile_bound(0.99)),
            max_le_ms: ms(self.max_bound()),
            mean_ms: self.mean() * 1000.0,
        }
    }
}

/// A histogram as bucket bounds: each figure is the upper bound of the bucket holding it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BucketFigures {
    /// Observations.
    pub count: u64,
    /// The median is at most this (ms); -1 beyond the last finite bucket.
    pub p50_le_ms: f64,
    /// The 99th percentile is at most this (ms); -1 beyond the last finite bucket.
    pub p99_le_ms: f64,
    /// The largest observation is at most this (ms); -1 beyond the last finite bucket.
    pub max_le_ms: f64,
    /// Mean observation (ms), from the sum.
    pub mean_ms: f64,
}

impl BucketFigures {
    /// Whether the 99th percentile is known to be at most `ms`.
    pub fn p99_within(&self, ms: f64) -> bool {
        self.count > 0 && self.p99_le_ms >= 0.0 && self.p99_le_ms <= ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP rbee_store_writes Transactions committed to the kept state.
# TYPE rbee_store_writes counter
rbee_store_writes_total 12
rbee_store_rows_written_total 340
rbee_store_errors_total 0
rbee_entries{kind=\"worker\",state=\"online\"} 7
rbee_store_commit_lag_seconds_sum 0.75
rbee_store_commit_lag_seconds_count 12
rbee_store_commit_lag_seconds_bucket{le=\"0.01\"} 0
rbee_store_commit_lag_seconds_bucket{le=\"0.05\"} 2
rbee_store_commit_lag_seconds_bucket{le=\"0.06\"} 10
rbee_store_commit_lag_seconds_bucket{le=\"0.1\"} 11
rbee_store_commit_lag_seconds_bucket{le=\"1.0\"} 12
rbee_store_commit_lag_seconds_bucket{le=\"+Inf\"} 12
# EOF
";

    #[test]
    fn reads_counters_labelled_samples_and_buckets() {
        let m = Metrics::parse(TEXT.to_owned());
        assert_eq!(m.counter(STORE_WRITES), 12);
        assert_eq!(m.counter(STORE_ROWS), 340);
        assert_eq!(m.counter(STORE_ERRORS), 0);
        assert_eq!(m.counter("rbee_missing_total"), 0);
        assert_eq!(
            m.value("rbee_entries", "kind=\"worker\",state=\"online\""),
            Some(7.0)
        );
        let h = m.histogram(COMMIT_LAG);
        assert_eq!(h.count, 12);
        assert_eq!(h.buckets.len(), 6);
        assert_eq!(h.buckets.last(), Some(&(f64::INFINITY, 12)));
        assert!((h.mean() - 0.0625).abs() < 1e-9);
    }

    #[test]
    fn quantile_bounds_and_differences() {
        let h = Metrics::parse(TEXT.to_owned()).histogram(COMMIT_LAG);
        assert_eq!(h.quantile_bound(0.5), 0.06);
        assert_eq!(h.quantile_bound(0.99), 1.0);
        assert_eq!(h.max_bound(), 1.0);
        let before = Histogram {
            buckets: vec![(0.05, 2), (0.06, 2), (0.1, 2), (1.0, 2), (f64::INFINITY, 2)],
            sum: 0.05,
            count: 2,
        };
        let d = h.since(&before);
        assert_eq!(d.count, 10);
        assert_eq!(d.quantile_bound(0.5), 0.06);
        assert_eq!(d.quantile_bound(0.99), 1.0);
        assert_eq!(d.quantile_bound(0.8), 0.06);
        let f = d.figures();
        assert_eq!((f.p50_le_ms, f.max_le_ms), (60.0, 1000.0));
        assert!(f.p99_within(1000.0) && !f.p99_within(200.0));
        assert_eq!(Histogram::default().figures().count, 0);
    }

    #[test]
    fn beyond_the_last_bound_is_infinite() {
        let h = Histogram {
            buckets: vec![(1.0, 1), (f64::INFINITY, 3)],
            sum: 9.0,
            count: 3,
        };
        assert_eq!(h.quantile_bound(0.99), f64::INFINITY);
        assert_eq!(h.figures().p99_le_ms, -1.0);
        assert!(!h.figures().p99_within(200.0));
    }
}
