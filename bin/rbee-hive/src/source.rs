//! The hive's heartbeat payload: this machine, refreshed every beat.

use std::time::Duration;

use heartbeat_sender::PayloadSource;
use hive_contract::{HiveHeartbeat, HiveInfo, SystemInfo};
use shared_contract::{Health, Status, Timestamp};
use sysinfo::{CpuRefreshKind, System};

use crate::gpu::GpuProbe;

/// Below this share of available memory the hive reports itself `degraded`.
const LOW_MEMORY_PERCENT: u64 = 5;
/// The longest a GPU query may take, whatever the interval.
const MAX_GPU_QUERY: Duration = Duration::from_secs(3);

/// Produces [`HiveInfo`] from live machine data.
#[derive(Debug)]
pub(crate) struct HiveSource {
    id: String,
    hostname: String,
    port: u16,
    started_at: Timestamp,
    system: System,
    cpu_cores: u32,
    gpus: GpuProbe,
    last: Option<HiveInfo>,
}

impl HiveSource {
    pub(crate) fn new(id: String, hostname: String, port: u16, started_at: Timestamp) -> Self {
        let mut system = System::new();
        system.refresh_cpu_list(CpuRefreshKind::nothing());
        let cpu_cores = match system.cpus().len() {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Self {
            id,
            hostname,
            port,
            started_at,
            system,
            cpu_cores: u32::try_from(cpu_cores).unwrap_or(u32::MAX),
            gpus: GpuProbe::default(),
            last: None,
        }
    }

    fn system_info(&mut self) -> SystemInfo {
        self.system.refresh_memory();
        SystemInfo {
            os: std::env::consts::OS.to_owned(),
            cpu_cores: self.cpu_cores,
            memory_total_bytes: self.system.total_memory(),
            memory_available_bytes: self.system.available_memory(),
        }
    }
}

impl PayloadSource for HiveSource {
    type Body = HiveHeartbeat;

    async fn current(&mut self, interval: Duration) -> HiveInfo {
        let system = self.system_info();
        let devices = self.gpus.devices(interval.min(MAX_GPU_QUERY)).await;
        let info = HiveInfo {
            id: self.id.clone(),
            hostname: self.hostname.clone(),
            port: self.port,
            status: Status::Ready,
            health: memory_health(&system),
            started_at: self.started_at,
            system: Some(system),
            devices,
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        };
        self.last = Some(info.clone());
        info
    }

    fn stopping(&mut self) -> HiveInfo {
        let mut info = match self.last.clone() {
            Some(info) => info,
            None => {
                let system = self.system_info();
                HiveInfo {
                    id: self.id.clone(),
                    hostname: self.hostname.clone(),
                    port: self.port,
                    status: Status::Stopping,
                    health: memory_health(&system),
                    started_at: self.started_at,
                    system: Some(system),
                    devices: Vec::new(),
                    version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                }
            }
        };
        info.status = Status::Stopping;
        info
    }
}

/// Returns `degraded` when under 5% of memory is available, `healthy` otherwise.
pub(crate) fn memory_health(system: &SystemInfo) -> Health {
    let total = system.memory_total_bytes;
    let available = system.memory_available_bytes;
    if total > 0 && available.saturating_mul(100) < total.saturating_mul(LOW_MEMORY_PERCENT) {
        Health::Degraded {
            reason: format!(
                "low memory: {} MiB of {} MiB available (under {LOW_MEMORY_PERCENT}%)",
                available / (1024 * 1024),
                total / (1024 * 1024)
            ),
        }
    } else {
        Health::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(total: u64, available: u64) -> SystemInfo {
        SystemInfo {
            os: "linux".to_owned(),
            cpu_cores: 4,
            memory_total_bytes: total,
            memory_available_bytes: available,
        }
    }

    #[test]
    fn under_five_percent_available_is_degraded() {
        let gib = 1024 * 1024 * 1024;
        assert_eq!(memory_health(&system(100 * gib, 5 * gib)), Health::Healthy);
        let h = memory_health(&system(100 * gib, 4 * gib));
        assert_eq!(h.status(), shared_contract::HealthStatus::Degraded);
        assert!(h.reason().unwrap().contains("low memory"));
        assert_eq!(memory_health(&system(0, 0)), Health::Healthy);
    }

    #[tokio::test]
    async fn reports_real_machine_data_and_stops_with_stopping() {
        let mut source =
            HiveSource::new("h1".to_owned(), "host".to_owned(), 9200, chrono::Utc::now());
        let info = source.current(Duration::from_secs(1)).await;
        let system = info.system.clone().unwrap();
        assert!(system.cpu_cores >= 1);
        assert!(system.memory_total_bytes > 0);
        assert!(system.memory_available_bytes <= system.memory_total_bytes);
        assert_eq!(info.status, Status::Ready);
        shared_contract::Heartbeat::validate(&info).unwrap();
        let last = source.stopping();
        assert_eq!(last.status, Status::Stopping);
        assert_eq!(last.started_at, info.started_at);
    }
}
