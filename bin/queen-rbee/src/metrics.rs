//! Prometheus metrics kept in plain atomics: recording is a few relaxed adds on the hot path.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use heartbeat_registry::Counts;
use shared_contract::{Kind, State, Target};

use crate::{error::ErrorCode, sse::StreamKind};

/// Upper bounds of the request latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    received: [AtomicU64; 2],
    rejected: [[AtomicU64; ErrorCode::ALL.len()]; 2],
    transitions: [[AtomicU64; Target::ALL.len()]; 2],
    sse_subscribers: AtomicI64,
    watch_subscribers: AtomicI64,
    /// The newest revision published to watchers.
    revision: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

impl Metrics {
    pub(crate) fn heartbeat_received(&self, kind: Kind) {
        self.received[kind_index(kind)].fetch_add(1, Relaxed);
    }

    pub(crate) fn heartbeat_rejected(&self, kind: Kind, code: ErrorCode) {
        self.rejected[kind_index(kind)][code_index(code)].fetch_add(1, Relaxed);
    }

    pub(crate) fn transition(&self, kind: Kind, to: Target) {
        self.transitions[kind_index(kind)][target_index(to)].fetch_add(1, Relaxed);
    }

    pub(crate) fn subscriber_added(&self, stream: StreamKind) {
        self.subscribers(stream).fetch_add(1, Relaxed);
    }

    pub(crate) fn subscriber_removed(&self, stream: StreamKind) {
        self.subscribers(stream).fetch_sub(1, Relaxed);
    }

    fn subscribers(&self, stream: StreamKind) -> &AtomicI64 {
        match stream {
            StreamKind::Summary => &self.sse_subscribers,
            StreamKind::Watch => &self.watch_subscribers,
        }
    }

    pub(crate) fn revision(&self, revision: u64) {
        self.revision.store(revision, Relaxed);
    }

    pub(crate) fn request_finished(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        // Buckets are stored non-cumulatively and summed when rendered.
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| secs <= le) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Renders the Prometheus text format; `counts` are the registries' current entry counts.
    pub(crate) fn render(&self, counts: &[(Kind, Counts)]) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "rbee_heartbeats_received_total",
            "counter",
            "Heartbeats accepted, by kind.",
        );
        for kind in Kind::ALL {
            let n = self.received[kind_index(kind)].load(Relaxed);
            let _ = writeln!(out, "rbee_heartbeats_received_total{{kind=\"{kind}\"}} {n}");
        }
        header(
            &mut out,
            "rbee_heartbeats_rejected_total",
            "counter",
            "Heartbeats refused, by kind and reason.",
        );
        for kind in Kind::ALL {
            for code in ErrorCode::ALL {
                let n = self.rejected[kind_index(kind)][code_index(code)].load(Relaxed);
                if n > 0 {
                    let reason = code.as_str();
                    let _ = writeln!(
                        out,
                        "rbee_heartbeats_rejected_total{{kind=\"{kind}\",reason=\"{reason}\"}} {n}"
                    );
                }
            }
        }
        header(
            &mut out,
            "rbee_entries",
            "gauge",
            "Registry entries, by kind and state.",
        );
        for &(kind, counts) in counts {
            for state in State::ALL {
                let n = counts.in_state(state);
                let _ = writeln!(out, "rbee_entries{{kind=\"{kind}\",state=\"{state}\"}} {n}");
            }
        }
        header(
            &mut out,
            "rbee_entries_available",
            "gauge",
            "Online entries able to take new work, by kind.",
        );
        for &(kind, counts) in counts {
            let _ = writeln!(
                out,
                "rbee_entries_available{{kind=\"{kind}\"}} {}",
                counts.available
            );
        }
        header(
            &mut out,
            "rbee_transitions_total",
            "counter",
            "State transitions, by kind and target state.",
        );
        for kind in Kind::ALL {
            for to in Target::ALL {
                let n = self.transitions[kind_index(kind)][target_index(to)].load(Relaxed);
                let _ = writeln!(
                    out,
                    "rbee_transitions_total{{kind=\"{kind}\",to=\"{to}\"}} {n}"
                );
            }
        }
        header(
            &mut out,
            "rbee_sse_subscribers",
            "gauge",
            "Open /v1/heartbeats/stream connections.",
        );
        let _ = writeln!(
            out,
            "rbee_sse_subscribers {}",
            self.sse_subscribers.load(Relaxed)
        );
        header(
            &mut out,
            "rbee_watch_subscribers",
            "gauge",
            "Open /v1/watch connections.",
        );
        let _ = writeln!(
            out,
            "rbee_watch_subscribers {}",
            self.watch_subscribers.load(Relaxed)
        );
        header(
            &mut out,
            "rbee_revision",
            "gauge",
            "The newest revision of the change log published to watchers.",
        );
        let _ = writeln!(out, "rbee_revision {}", self.revision.load(Relaxed));
        header(
            &mut out,
            "rbee_http_request_duration_seconds",
            "histogram",
            "Time to produce a response (stream bodies excluded).",
        );
        let mut cumulative = 0;
        for (le, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "rbee_http_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "rbee_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        #[allow(
            clippy::cast_precision_loss,
            reason = "a latency sum needs no more than f64 precision"
        )]
        let sum = self.latency_sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "rbee_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "rbee_http_request_duration_seconds_count {count}");
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Worker => 0,
        Kind::Hive => 1,
    }
}

fn code_index(code: ErrorCode) -> usize {
    ErrorCode::ALL.iter().position(|&c| c == code).unwrap_or(0)
}

fn target_index(to: Target) -> usize {
    Target::ALL.iter().position(|&t| t == to).unwrap_or(0)
}
