//! The report: named figures as one JSON object, or a human-readable text with targets and pass/miss.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::{
    Env,
    config::BenchArgs,
    scenarios::{
        cluster_writes::WritesFigures,
        detect::DetectFigures,
        failover::FailoverFigures,
        fleet::FleetFigures,
        ingest::IngestFigures,
        memory::MemoryFigures,
        mirror_lag::MirrorFigures,
        startup::StartupFigures,
        store::StoreFigures,
        stream::StreamScenario,
        watch::{StalledFigures, WatchFigures},
        watch_connect::ConnectFigures,
        watch_resume::ResumeFigures,
    },
};

const MIB: f64 = 1024.0 * 1024.0;

/// Everything one bench run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    /// The command line.
    pub command: String,
    /// CPUs usable.
    pub cpus: usize,
    /// The CPU layout.
    pub pinning: String,
    /// Whether this was a `--quick` smoke run.
    pub quick: bool,
    /// Ingest figures, when run.
    pub ingest: Option<IngestFigures>,
    /// Fleet figures, when run.
    pub fleet: Option<FleetFigures>,
    /// Detection figures, when run.
    pub detect: Option<DetectFigures>,
    /// Memory figures, when run.
    pub memory: Option<MemoryFigures>,
    /// Watch figures, when run.
    pub watch: Option<WatchFigures>,
    /// Watch-connect figures, when run.
    pub watch_connect: Option<ConnectFigures>,
    /// Watch-resume figures, when run.
    pub watch_resume: Option<ResumeFigures>,
    /// Summary-stream figures, when run.
    pub stream: Option<StreamScenario>,
    /// Watch-stalled figures, when run.
    pub watch_stalled: Option<StalledFigures>,
    /// Store figures, when run.
    pub store: Option<StoreFigures>,
    /// Startup figures, when run.
    pub startup: Option<StartupFigures>,
    /// Ingest figures with the store on, when run.
    pub ingest_store: Option<IngestFigures>,
    /// Failover figures, when run.
    pub failover: Option<FailoverFigures>,
    /// Cluster-writes figures, when run.
    pub cluster_writes: Option<WritesFigures>,
    /// Mirror-lag figures, when run.
    pub mirror_lag: Option<MirrorFigures>,
    /// Ingest figures with the queen leading a cluster, when run.
    pub ingest_cluster: Option<IngestFigures>,
}

/// One figure compared with its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The figure's JSON name.
    pub name: &'static str,
    /// Its value.
    pub value: f64,
    /// The target, as text.
    pub target: &'static str,
    /// Whether the value meets the target.
    pub pass: bool,
}

impl Report {
    /// Starts an empty report for this run.
    pub fn new(env: &Env, args: &BenchArgs) -> Self {
        Self {
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            cpus: env.cpus,
            pinning: env.pinning.describe(),
            quick: args.quick,
            ingest: None,
            fleet: None,
            detect: None,
            memory: None,
            watch: None,
            watch_connect: None,
            watch_resume: None,
            stream: None,
            watch_stalled: None,
            store: None,
            startup: None,
            ingest_store: None,
            failover: None,
            cluster_writes: None,
            mirror_lag: None,
            ingest_cluster: None,
        }
    }

    /// Returns every figure that has a target, with pass or miss.
    pub fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        let mut check = |name, value: f64, target, pass| {
            out.push(Check {
                name,
                value,
                target,
                pass,
            });
        };
        if let Some(i) = &self.ingest {
            check(
                "ingest_ratio",
                i.ingest_ratio,
                ">= 0.90",
                i.ingest_ratio >= 0.90,
            );
        }
        if let Some(f) = &self.fleet {
            check(
                "fleet_hb_p99_ms",
                f.hb_latency.p99_ms,
                "< 10 ms",
                f.hb_latency.p99_ms < 10.0,
            );
            check(
                "fleet_delivery_p99_ms",
                f.delivery.p99_ms,
                "< 100 ms",
                f.delivery.p99_ms < 100.0 && f.delivery.count > 0,
            );
            check(
                "fleet_peak_rss_bytes",
                f.peak_rss_bytes as f64,
                "< 64 MiB",
                (f.peak_rss_bytes as f64) < 64.0 * MIB,
            );
        }
        if let Some(d) = &self.detect {
            let all = d.detected == d.stopped;
            check(
                "detect_p99_ms",
                d.delay.p99_ms,
                "< 250 ms",
                all && d.delay.p99_ms < 250.0,
            );
            check(
                "detect_max_ms",
                d.delay.max_ms,
                "< 500 ms",
                all && d.delay.max_ms < 500.0,
            );
            check(
                "detect_false_positives",
                d.false_positives as f64,
                "= 0",
                d.false_positives == 0,
            );
        }
        out.extend(self.watch.iter().flat_map(WatchFigures::checks));
        out.extend(self.watch_connect.iter().flat_map(ConnectFigures::checks));
        out.extend(self.watch_resume.iter().flat_map(ResumeFigures::checks));
        out.extend(self.stream.iter().flat_map(StreamScenario::checks));
        out.extend(self.watch_stalled.iter().flat_map(StalledFigures::checks));
        out.extend(self.store.iter().flat_map(StoreFigures::checks));
        out.extend(self.startup.iter().flat_map(StartupFigures::checks));
        for (name, ingest) in [
            ("ingest_store_ratio", &self.ingest_store),
            ("ingest_cluster_ratio", &self.ingest_cluster),
        ] {
            if let Some(i) = ingest {
                out.push(Check {
                    name,
                    value: i.ingest_ratio,
                    target: ">= 0.90",
                    pass: i.ingest_ratio >= 0.90,
                });
            }
        }
        out.extend(self.failover.iter().flat_map(FailoverFigures::checks));
        out.extend(self.cluster_writes.iter().flat_map(WritesFigures::checks));
        out.extend(self.mirror_lag.iter().flat_map(MirrorFigures::checks));
        out
    }

    /// Returns one JSON object with the named figures, the run's context and the checks.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("date".into(), json!(self.date));
        m.insert("command".into(), json!(self.command));
        m.insert("cpus".into(), json!(self.cpus));
        m.insert("pinning".into(), json!(self.pinning));
        m.insert("quick".into(), json!(self.quick));
        if let Some(i) = &self.ingest {
            m.insert("ingest_ratio".into(), json!(i.ingest_ratio));
            m.insert("queen_rps".into(), json!(i.queen_rps));
            m.insert("ceiling_rps".into(), json!(i.ceiling_rps));
            m.insert("ingest_p50_ms".into(), json!(i.queen_latency.p50_ms));
            m.insert("ingest_p99_ms".into(), json!(i.queen_latency.p99_ms));
            m.insert("ceiling_p50_ms".into(), json!(i.ceiling_latency.p50_ms));
            m.insert("ceiling_p99_ms".into(), json!(i.ceiling_latency.p99_ms));
            m.insert("ingest_queen_failed".into(), json!(i.queen_failed));
            m.insert("ceiling_us_per_req".into(), json!(i.ceiling_us_per_req));
            m.insert("queen_us_per_req".into(), json!(i.queen_us_per_req));
            m.insert("ingest_cpu_ratio".into(), json!(i.cpu_ratio));
            m.insert("ingest_connections".into(), json!(i.connections));
            m.insert("ingest_rounds".into(), json!(i.rounds));
        }
        if let Some(f) = &self.fleet {
            m.insert("fleet_workers".into(), json!(f.workers));
            m.insert("fleet_subscribers".into(), json!(f.subscribers));
            m.insert("fleet_seconds".into(), json!(f.seconds));
            m.insert(
                "fleet_snapshot_interval_s".into(),
                json!(f.snapshot_interval_s),
            );
            m.insert("fleet_hb_rps".into(), json!(f.hb_rps));
            m.insert("fleet_hb_p50_ms".into(), json!(f.hb_latency.p50_ms));
            m.insert("fleet_hb_p99_ms".into(), json!(f.hb_latency.p99_ms));
            m.insert("fleet_hb_failed".into(), json!(f.hb_failed));
            m.insert(
                "fleet_hb_send_lag_p99_ms".into(),
                json!(f.hb_send_lag.p99_ms),
            );
            m.insert("fleet_delivery_p50_ms".into(), json!(f.delivery.p50_ms));
            m.insert("fleet_delivery_p99_ms".into(), json!(f.delivery.p99_ms));
            m.insert("fleet_delivery_max_ms".into(), json!(f.delivery.max_ms));
            m.insert(
                "fleet_delivery_first_byte_p50_ms".into(),
                json!(f.delivery_first_byte.p50_ms),
            );
            m.insert(
                "fleet_delivery_first_byte_p99_ms".into(),
                json!(f.delivery_first_byte.p99_ms),
            );
            m.insert(
                "fleet_snapshots_received".into(),
                json!(f.snapshots_received),
            );
            m.insert("fleet_snapshot_bytes".into(), json!(f.snapshot_bytes));
            m.insert("fleet_subscriber_errors".into(), json!(f.subscriber_errors));
            m.insert("fleet_peak_rss_bytes".into(), json!(f.peak_rss_bytes));
            m.insert("fleet_cpu_seconds".into(), json!(f.cpu_seconds));
            m.insert("fleet_cpu_share".into(), json!(f.cpu_share));
            m.insert("fleet_bench_cpu_share".into(), json!(f.bench_cpu_share));
        }
        if let Some(d) = &self.detect {
            m.insert("detect_workers".into(), json!(d.workers));
            m.insert("detect_stopped".into(), json!(d.stopped));
            m.insert("detect_detected".into(), json!(d.detected));
            m.insert("detect_p50_ms".into(), json!(d.delay.p50_ms));
            m.insert("detect_p99_ms".into(), json!(d.delay.p99_ms));
            m.insert("detect_max_ms".into(), json!(d.delay.max_ms));
            m.insert("detect_min_ms".into(), json!(d.delay_min_ms));
            m.insert("detect_false_positives".into(), json!(d.false_positives));
            m.insert("detect_hb_failed".into(), json!(d.hb_failed));
        }
        if let Some(mem) = &self.memory {
            m.insert("memory_workers".into(), json!(mem.registered));
            m.insert("memory_rejected".into(), json!(mem.rejected));
            m.insert("rss_empty_bytes".into(), json!(mem.rss_empty_bytes));
            m.insert("rss_full_bytes".into(), json!(mem.rss_full_bytes));
            m.insert("memory_peak_rss_bytes".into(), json!(mem.peak_rss_bytes));
            m.insert("bytes_per_worker".into(), json!(mem.bytes_per_worker));
            m.insert("memory_register_rps".into(), json!(mem.register_rps));
        }
        // The stream scenarios' figures go in whole, one object each.
        let nested = [
            ("watch", self.watch.as_ref().map(serde_json::to_value)),
            (
                "watch_connect",
                self.watch_connect.as_ref().map(serde_json::to_value),
            ),
            (
                "watch_resume",
                self.watch_resume.as_ref().map(serde_json::to_value),
            ),
            ("stream", self.stream.as_ref().map(serde_json::to_value)),
            (
                "watch_stalled",
                self.watch_stalled.as_ref().map(serde_json::to_value),
            ),
            ("store", self.store.as_ref().map(serde_json::to_value)),
            ("startup", self.startup.as_ref().map(serde_json::to_value)),
            (
                "ingest_store",
                self.ingest_store.as_ref().map(serde_json::to_value),
            ),
            ("failover", self.failover.as_ref().map(serde_json::to_value)),
            (
                "cluster_writes",
                self.cluster_writes.as_ref().map(serde_json::to_value),
            ),
            (
                "mirror_lag",
                self.mirror_lag.as_ref().map(serde_json::to_value),
            ),
            (
                "ingest_cluster",
                self.ingest_cluster.as_ref().map(serde_json::to_value),
            ),
        ];
        for (name, value) in nested {
            if let Some(Ok(value)) = value {
                m.insert(name.into(), value);
            }
        }
        let checks: Map<String, Value> = self
            .checks()
            .iter()
            .map(|c| (c.name.to_owned(), json!(c.pass)))
            .collect();
        m.insert("pass".into(), Value::Object(checks));
        Value::Object(m)
    }

    /// Returns the human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> std::fmt::Result {
        writeln!(
            s,
            "rbee-bench  {}  ({} CPUs, {})",
            self.date, self.cpus, self.pinning
        )?;
        if self.quick {
            writeln!(s, "QUICK smoke run: figures are not representative")?;
        }
        if let Some(i) = &self.ingest {
            write_ingest(s, "ingest", i)?;
        }
        if let Some(f) = &self.fleet {
            writeln!(
                s,
                "\n[fleet] {} workers, {} subscribers, {:.1} s, snapshot interval {} s",
                f.workers, f.subscribers, f.seconds, f.snapshot_interval_s
            )?;
            writeln!(
                s,
                "  heartbeats {:.0}/s  p50 {:.2} ms  p99 {:.2} ms  failed {}  (bench send lag p99 {:.2} ms)",
                f.hb_rps,
                f.hb_latency.p50_ms,
                f.hb_latency.p99_ms,
                f.hb_failed,
                f.hb_send_lag.p99_ms
            )?;
            writeln!(
                s,
                "  summary delivery (complete event) p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  over {} events of ~{} KiB",
                f.delivery.p50_ms,
                f.delivery.p99_ms,
                f.delivery.max_ms,
                f.snapshots_received,
                f.snapshot_bytes / 1024
            )?;
            writeln!(
                s,
                "  summary first byte p50 {:.1} ms  p99 {:.1} ms;  subscriber errors {}",
                f.delivery_first_byte.p50_ms, f.delivery_first_byte.p99_ms, f.subscriber_errors
            )?;
            writeln!(
                s,
                "  queen peak RSS {:.1} MiB, CPU {:.2} s ({:.0}% of a core); bench CPU {:.0}%",
                f.peak_rss_bytes as f64 / MIB,
                f.cpu_seconds,
                f.cpu_share * 100.0,
                f.bench_cpu_share * 100.0
            )?;
        }
        if let Some(d) = &self.detect {
            writeln!(
                s,
                "\n[detect] {} workers, {} stopped, {} detected",
                d.workers, d.stopped, d.detected
            )?;
            writeln!(
                s,
                "  delay after timeout p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  min {:.1} ms;  false positives {}",
                d.delay.p50_ms, d.delay.p99_ms, d.delay.max_ms, d.delay_min_ms, d.false_positives
            )?;
        }
        if let Some(m) = &self.memory {
            writeln!(
                s,
                "\n[memory] {} workers registered ({:.0}/s), {} rejected",
                m.registered, m.register_rps, m.rejected
            )?;
            writeln!(
                s,
                "  RSS empty {:.1} MiB, full {:.1} MiB, peak {:.1} MiB: {:.0} bytes per worker",
                m.rss_empty_bytes as f64 / MIB,
                m.rss_full_bytes as f64 / MIB,
                m.peak_rss_bytes as f64 / MIB,
                m.bytes_per_worker
            )?;
        }
        if let Some(w) = &self.watch {
            writeln!(s, "\n[watch]")?;
            w.write_text(s)?;
        }
        if let Some(c) = &self.watch_connect {
            c.write_text(s)?;
        }
        if let Some(r) = &self.watch_resume {
            r.write_text(s)?;
        }
        if let Some(st) = &self.stream {
            st.write_text(s)?;
        }
        if let Some(st) = &self.watch_stalled {
            st.write_text(s)?;
        }
        if let Some(st) = &self.store {
            st.write_text(s)?;
        }
        if let Some(st) = &self.startup {
            st.write_text(s)?;
        }
        if let Some(i) = &self.ingest_store {
            write_ingest(s, "ingest-store", i)?;
        }
        if let Some(f) = &self.failover {
            f.write_text(s)?;
        }
        if let Some(w) = &self.cluster_writes {
            w.write_text(s)?;
        }
        if let Some(m) = &self.mirror_lag {
            m.write_text(s)?;
        }
        if let Some(i) = &self.ingest_cluster {
            write_ingest(s, "ingest-cluster", i)?;
        }
        let checks = self.checks();
        if !checks.is_empty() {
            writeln!(s, "\ntargets")?;
            for c in checks {
                writeln!(
                    s,
                    "  {:<24} {:>14.3}  {:<9} {}",
                    c.name,
                    c.value,
                    c.target,
                    if c.pass { "pass" } else { "MISS" }
                )?;
            }
        }
        Ok(())
    }
}

/// Writes the text report of an ingest run.
fn write_ingest(s: &mut String, label: &str, i: &IngestFigures) -> std::fmt::Result {
    writeln!(
        s,
        "\n[{label}] {} connections, alternating rounds{}",
        i.connections,
        if i.store {
            ", queen with a data directory"
        } else if i.cluster {
            ", queen leading a cluster on etcd"
        } else {
            ""
        }
    )?;
    for r in &i.rounds {
        writeln!(
            s,
            "  {:<8} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  failed {}  server cpu {:>4.0}% ({:.1} us/req)  bench cpu {:>4.0}%",
            r.target,
            r.rps,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.failed,
            r.server_cpu * 100.0,
            r.server_us_per_req,
            r.bench_cpu * 100.0
        )?;
    }
    writeln!(
        s,
        "  ceiling {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms); queen {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms); ratio {:.3}",
        i.ceiling_rps,
        i.ceiling_latency.p50_ms,
        i.ceiling_latency.p99_ms,
        i.queen_rps,
        i.queen_latency.p50_ms,
        i.queen_latency.p99_ms,
        i.ingest_ratio
    )?;
    writeln!(
        s,
        "  server CPU per request: ceiling {:.1} us, queen {:.1} us; cpu ratio {:.3}",
        i.ceiling_us_per_req, i.queen_us_per_req, i.cpu_ratio
    )?;
    if i.store {
        writeln!(
            s,
            "  queen store: {} rows written over its rounds, {} errors",
            i.store_rows, i.store_errors
        )?;
    }
    if i.cluster {
        writeln!(
            s,
            "  queen etcd writes: {} txns, {} keys over its rounds (the warm-up's registrations, written before each window), {} txns in the measured windows",
            i.etcd_txns, i.etcd_ops, i.etcd_txns_measured
        )?;
    }
    Ok(())
}
