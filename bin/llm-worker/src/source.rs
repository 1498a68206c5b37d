//! The worker's heartbeat payload: model, device, port, and readiness from the backend probe.

use std::time::Duration;

use heartbeat_sender::PayloadSource;
use shared_contract::{Health, Status};
use worker_contract::{WorkerHeartbeat, WorkerInfo};

use crate::backend::Backend;

/// Produces [`WorkerInfo`], probing the backend (if any) before each beat.
#[derive(Debug)]
pub(crate) struct WorkerSource {
    info: WorkerInfo,
    backend: Option<Backend>,
    ready: bool,
}

impl WorkerSource {
    /// `info` is the fixed part of the payload; its status and health are set on each beat.
    pub(crate) fn new(info: WorkerInfo, backend: Option<Backend>) -> Self {
        let ready = backend.is_none();
        Self {
            info,
            backend,
            ready,
        }
    }
}

impl PayloadSource for WorkerSource {
    type Body = WorkerHeartbeat;

    async fn current(&mut self, interval: Duration) -> WorkerInfo {
        if let Some(backend) = &mut self.backend {
            match backend.probe(interval).await {
                Ok(()) => {
                    self.ready = true;
                    self.info.health = Health::Healthy;
                }
                // Until the backend first answers the worker is still `starting`, which already
                // keeps it unavailable; afterwards it stays `ready` and health says what is wrong.
                Err(reason) if self.ready => self.info.health = Health::Unhealthy { reason },
                Err(_) => self.info.health = Health::Healthy,
            }
        }
        self.info.status = if self.ready {
            Status::Ready
        } else {
            Status::Starting
        };
        self.info.clone()
    }

    fn stopping(&mut self) -> WorkerInfo {
        WorkerInfo {
            status: Status::Stopping,
            ..self.info.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "w".to_owned(),
            hive_id: "h".to_owned(),
            model_id: "m".to_owned(),
            device: "cpu".to_owned(),
            port: 1,
            status: Status::Starting,
            health: Health::Healthy,
            started_at: chrono::Utc::now(),
            implementation: Some("llm-worker".to_owned()),
            version: None,
        }
    }

    #[tokio::test]
    async fn without_a_backend_the_worker_is_ready_and_healthy() {
        let mut source = WorkerSource::new(info(), None);
        let payload = source.current(Duration::from_millis(100)).await;
        assert_eq!(payload.status, Status::Ready);
        assert_eq!(payload.health, Health::Healthy);
        assert_eq!(source.stopping().status, Status::Stopping);
    }
}
