//! CPU pinning: the measured server on one core, the bench on another, the same way for every target.

use std::process::Command;

/// Where the server under test and the bench run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinning {
    /// The CPU every server child is pinned to.
    pub server_cpu: Option<usize>,
    /// The CPU the bench process is pinned to.
    pub bench_cpu: Option<usize>,
}

impl Pinning {
    /// No pinning.
    pub const NONE: Pinning = Pinning {
        server_cpu: None,
        bench_cpu: None,
    };

    /// Plans server on CPU 0 and bench on CPU 1 when asked, `taskset` exists and two CPUs are usable.
    pub fn plan(enabled: bool) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        if !enabled || cpus < 2 || !taskset_available() {
            return Self::NONE;
        }
        Pinning {
            server_cpu: Some(0),
            bench_cpu: Some(1),
        }
    }

    /// Pins every thread of this process to the bench CPU; threads started later inherit it.
    pub fn pin_self(&self) -> anyhow::Result<()> {
        let Some(cpu) = self.bench_cpu else {
            return Ok(());
        };
        let out = Command::new("taskset")
            .args([
                "-a",
                "-p",
                "-c",
                &cpu.to_string(),
                &std::process::id().to_string(),
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "taskset failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// Describes the layout for the report.
    pub fn describe(&self) -> String {
        match (self.server_cpu, self.bench_cpu) {
            (Some(s), Some(b)) => format!("server on CPU {s}, bench on CPU {b} (taskset)"),
            _ => "not pinned".to_owned(),
        }
    }
}

fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}
