//! Realistic worker heartbeat bodies (about 300 bytes) and the raw HTTP/1.1 requests that carry them.

use std::net::SocketAddr;

use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use shared_contract::{Health, Status, Timestamp};
use worker_contract::{WorkerHeartbeat, WorkerInfo};

/// The ingest route of the queen (and of the ceiling server).
pub const HEARTBEAT_PATH: &str = "/v1/worker-heartbeat";

/// Returns the id of simulated worker `i` under `prefix`.
pub fn worker_id(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:06}")
}

/// Returns what simulated worker `i` reports about itself: ready and healthy, started at `started_at`.
pub fn worker_info(prefix: &str, i: usize, started_at: Timestamp) -> WorkerInfo {
    WorkerInfo {
        id: worker_id(prefix, i),
        hive_id: format!("bench-hive-{:03}", i / 8),
        model_id: "meta-llama/Llama-3.2-1B-Instruct".to_owned(),
        device: format!("cuda:{}", i % 8),
        port: 9300 + (i % 8) as u16,
        status: Status::Ready,
        health: Health::Healthy,
        started_at,
        implementation: Some("llm-worker".to_owned()),
        version: Some("0.1.0".to_owned()),
    }
}

/// Serializes the heartbeat of simulated worker `i`, stamped with `started_at` and `now`.
pub fn heartbeat_body(prefix: &str, i: usize, started_at: Timestamp, now: Timestamp) -> Vec<u8> {
    let hb = WorkerHeartbeat {
        worker: worker_info(prefix, i, started_at),
        timestamp: now,
    };
    serde_json::to_vec(&hb).expect("a heartbeat always serializes")
}

/// Builds a complete `POST` request with a JSON body, ready to be written in one call.
pub fn post_request(addr: SocketAddr, path: &str, body: &[u8]) -> Bytes {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    Bytes::from(req)
}

/// Builds one heartbeat request per simulated worker `0..n`, as sent to `addr`.
pub fn heartbeat_requests(addr: SocketAddr, prefix: &str, n: usize) -> Vec<Bytes> {
    // Whole seconds keep the body close to what a real sender emits.
    let now = Utc::now().trunc_subsecs(0);
    let started_at = now - chrono::Duration::minutes(5);
    (0..n)
        .map(|i| {
            post_request(
                addr,
                HEARTBEAT_PATH,
                &heartbeat_body(prefix, i, started_at, now),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use shared_contract::Heartbeat;

    use super::*;

    #[test]
    fn bodies_are_realistic_and_valid() {
        let now = Utc::now().trunc_subsecs(0);
        let body = heartbeat_body("bench-w", 999, now, now);
        assert!((250..=350).contains(&body.len()), "{} bytes", body.len());
        let hb: WorkerHeartbeat = serde_json::from_slice(&body).unwrap();
        hb.worker.validate().unwrap();
        assert_eq!(hb.worker.id, "bench-w-000999");
    }

    #[test]
    fn request_carries_exact_content_length() {
        let addr: SocketAddr = "127.0.0.1:8500".parse().unwrap();
        let req = post_request(addr, HEARTBEAT_PATH, b"{}");
        let text = std::str::from_utf8(&req).unwrap();
        assert!(text.starts_with("POST /v1/worker-heartbeat HTTP/1.1\r\n"));
        assert!(text.ends_with("content-length: 2\r\n\r\n{}"));
    }
}
