//! NVIDIA GPUs through `nvidia-smi`; a machine without it simply has no GPUs to report.

use std::{io::ErrorKind, time::Duration};

use hive_contract::DeviceInfo;
use tokio::process::Command;
use tracing::debug;

const QUERY: [&str; 2] = [
    "--query-gpu=index,name,memory.total,memory.used",
    "--format=csv,noheader,nounits",
];
const MIB: u64 = 1024 * 1024;

/// Queries `nvidia-smi` each beat; remembers when it is missing so it stops looking.
#[derive(Debug, Default)]
pub(crate) struct GpuProbe {
    state: ProbeState,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum ProbeState {
    #[default]
    Untried,
    Working,
    Failing,
    Missing,
}

impl GpuProbe {
    /// Returns the GPUs now, or none when `nvidia-smi` is absent or fails; never an error.
    pub(crate) async fn devices(&mut self, timeout: Duration) -> Vec<DeviceInfo> {
        if self.state == ProbeState::Missing {
            return Vec::new();
        }
        let run = Command::new("nvidia-smi")
            .args(QUERY)
            .kill_on_drop(true)
            .output();
        let result = tokio::time::timeout(timeout, run).await;
        let failure = match result {
            Ok(Ok(output)) if output.status.success() => {
                if self.state != ProbeState::Working {
                    debug!("nvidia-smi answers; reporting its GPUs");
                }
                self.state = ProbeState::Working;
                return parse_nvidia_smi(&String::from_utf8_lossy(&output.stdout));
            }
            Ok(Ok(output)) => format!(
                "nvidia-smi exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Ok(Err(e)) if e.kind() == ErrorKind::NotFound => {
                debug!("nvidia-smi not found; reporting no GPUs");
                self.state = ProbeState::Missing;
                return Vec::new();
            }
            Ok(Err(e)) => format!("cannot run nvidia-smi: {e}"),
            Err(_) => format!("nvidia-smi did not answer within {timeout:?}"),
        };
        if self.state != ProbeState::Failing {
            debug!(error = %failure, "reporting no GPUs");
        }
        self.state = ProbeState::Failing;
        Vec::new()
    }
}

/// Parses `nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader,nounits`.
///
/// Memory comes in MiB. Lines that do not start with an index are skipped; a name containing a
/// comma is kept whole; unreadable figures (`[N/A]`) count as 0.
pub(crate) fn parse_nvidia_smi(output: &str) -> Vec<DeviceInfo> {
    output
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() < 4 {
                return None;
            }
            let index: u32 = fields[0].parse().ok()?;
            let n = fields.len();
            let name = fields[1..n - 2].join(",");
            Some(DeviceInfo {
                id: format!("cuda:{index}"),
                name: if name.is_empty() {
                    "NVIDIA GPU".to_owned()
                } else {
                    name
                },
                memory_total_bytes: mib(fields[n - 2]),
                memory_used_bytes: mib(fields[n - 1]),
            })
        })
        .collect()
}

fn mib(field: &str) -> u64 {
    field.parse::<u64>().map_or(0, |v| v.saturating_mul(MIB))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typical_output() {
        let out = "0, NVIDIA GeForce RTX 4090, 24564, 1\n1, NVIDIA H200, 143771, 512\n";
        let devices = parse_nvidia_smi(out);
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].id, "cuda:0");
        assert_eq!(devices[0].name, "NVIDIA GeForce RTX 4090");
        assert_eq!(devices[0].memory_total_bytes, 24564 * MIB);
        assert_eq!(devices[0].memory_used_bytes, MIB);
        assert_eq!(devices[1].id, "cuda:1");
        assert_eq!(devices[1].memory_used_bytes, 512 * MIB);
    }

    #[test]
    fn tolerates_odd_lines_and_values() {
        let out =
            "\r\nNo devices were found\n3, Weird, Name, 1000, [N/A]\r\n x, bad, 1, 2\n0, A, 1\n";
        let devices = parse_nvidia_smi(out);
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].id, "cuda:3");
        assert_eq!(devices[0].name, "Weird,Name");
        assert_eq!(devices[0].memory_total_bytes, 1000 * MIB);
        assert_eq!(devices[0].memory_used_bytes, 0);
    }

    #[test]
    fn empty_output_means_no_gpus() {
        assert!(parse_nvidia_smi("").is_empty());
    }
}
