//! A fake worker payload and a sender started against a fake queen from `test-support`.

use std::time::Duration;

use heartbeat_sender::{PayloadSource, SenderConfig, SenderHandle};
use shared_contract::{Health, Status};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use worker_contract::{WorkerHeartbeat, WorkerInfo};

/// A worker payload that never changes, except for `stopping`.
#[derive(Debug)]
pub(crate) struct FakeWorker(WorkerInfo);

impl FakeWorker {
    pub(crate) fn new() -> Self {
        Self(WorkerInfo {
            id: "w1".to_owned(),
            hive_id: "h1".to_owned(),
            model_id: "m".to_owned(),
            device: "cpu".to_owned(),
            port: 9301,
            status: Status::Ready,
            health: Health::Healthy,
            started_at: chrono::Utc::now(),
            implementation: None,
            version: None,
        })
    }
}

impl PayloadSource for FakeWorker {
    type Body = WorkerHeartbeat;

    async fn current(&mut self, _interval: Duration) -> WorkerInfo {
        self.0.clone()
    }

    fn stopping(&mut self) -> WorkerInfo {
        WorkerInfo {
            status: Status::Stopping,
            ..self.0.clone()
        }
    }
}

/// A sender running in the background.
pub(crate) struct Running {
    pub(crate) handle: SenderHandle<WorkerInfo>,
    pub(crate) token: CancellationToken,
    pub(crate) task: JoinHandle<()>,
}

pub(crate) fn start_sender(queen_url: &str, interval: Duration, token: Option<&str>) -> Running {
    start_sender_with(SenderConfig::new(
        queen_url.parse::<reqwest::Url>().expect("a valid url"),
        interval,
        token.map(str::to_owned),
    ))
}

/// Starts a sender with `config` and the daemons' client.
pub(crate) fn start_sender_with(config: SenderConfig) -> Running {
    let handle = SenderHandle::new();
    let cancel = CancellationToken::new();
    let client = heartbeat_sender::build_client().expect("client builds");
    let task = tokio::spawn(heartbeat_sender::run(
        config,
        client,
        FakeWorker::new(),
        handle.clone(),
        cancel.clone(),
    ));
    Running {
        handle,
        token: cancel,
        task,
    }
}
