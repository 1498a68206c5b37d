//! The queen raises its open-files limit: started under the common soft limit of 1,024, it still
//! serves thousands of senders that each keep a connection open.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use test_support::{Daemon, binary_path, wait_until};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::{Notify, Semaphore},
    task::JoinSet,
};

use crate::fleet::{STARTUP, slot};

/// Connections held open at once: about three times what a soft limit of 1,024 allows.
const CONNECTIONS: usize = 3_000;
/// Connections being opened at one time; the rest wait, so the listen backlog never overflows.
const OPENING: usize = 200;
/// Each open connection sends a heartbeat this often while it waits for the others, well within
/// the queen's 10 s idle limit, so none is closed for idleness.
const KEEP_BUSY: Duration = Duration::from_secs(2);
/// The whole exchange; without the raised limit it never finishes.
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queen_started_under_a_soft_limit_of_1024_serves_3000_open_connections() {
    let _slot = slot().await;
    // The test needs a descriptor per connection too.
    let own = process_kit::raise_open_files_limit().expect("raise the test's open-files limit");
    assert!(
        own >= (CONNECTIONS + 200) as u64,
        "the hard open-files limit here is {own}, below what {CONNECTIONS} connections need"
    );
    let queen = Daemon::builder_for("/bin/bash")
        .name("queen-rbee")
        .args(["-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\""])
        .arg(binary_path("queen-rbee"))
        .args(["--ephemeral", "--bind", "127.0.0.1:0"])
        .spawn();
    let addr = queen.listening_addr(STARTUP).await;
    let line = queen.wait_for_line("open files limit", STARTUP).await;
    let limit: u64 = line
        .rsplit("limit=")
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no limit in {line:?}"));
    assert!(limit > 1024, "the queen kept its soft limit: {line}");

    let opening = Arc::new(Semaphore::new(OPENING));
    let answered = Arc::new(AtomicUsize::new(0));
    let all_answered = Arc::new(Notify::new());
    let mut senders = JoinSet::new();
    for i in 0..CONNECTIONS {
        let (opening, answered, all_answered) = (
            Arc::clone(&opening),
            Arc::clone(&answered),
            Arc::clone(&all_answered),
        );
        senders.spawn(async move {
            let id = format!("fd-{i}");
            let permit = opening.acquire_owned().await.expect("never closed");
            let mut conn = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("{id}: connect: {e}"))?;
            beat(&mut conn, &id).await?;
            drop(permit);
            if answered.fetch_add(1, Ordering::SeqCst) + 1 == CONNECTIONS {
                all_answered.notify_waiters();
            }
            // Keep the connection open and busy until every other one has been answered too.
            loop {
                let waiting = all_answered.notified();
                if answered.load(Ordering::SeqCst) == CONNECTIONS {
                    break;
                }
                if tokio::time::timeout(KEEP_BUSY, waiting).await.is_ok() {
                    break;
                }
                beat(&mut conn, &id).await?;
            }
            // And once more on the same connection, with all of them open.
            beat(&mut conn, &id).await
        });
    }
    let finished = tokio::time::timeout(DEADLINE, async {
        let mut failures = Vec::new();
        while let Some(result) = senders.join_next().await {
            if let Err(e) = result.expect("a sender task panicked") {
                failures.push(e);
            }
        }
        failures
    })
    .await;
    let failures = finished.unwrap_or_else(|_| {
        panic!(
            "only {} of {CONNECTIONS} connections were answered within {DEADLINE:?}",
            answered.load(Ordering::SeqCst)
        )
    });
    assert!(
        failures.is_empty(),
        "{} connections failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    let workers = test_support::JsonClient::new(format!("http://{addr}"));
    wait_until("every sender listed", STARTUP, || {
        let workers = workers.clone();
        async move {
            let list = workers.get_ok("/v1/workers").await?;
            (list.as_array()?.len() == CONNECTIONS).then_some(())
        }
    })
    .await;
    assert_eq!(
        queen.count_containing("accept failed"),
        0,
        "{}",
        queen.output()
    );
}

/// Sends one worker heartbeat on `conn` and reads the answer, which must be 200.
async fn beat(conn: &mut TcpStream, id: &str) -> Result<(), String> {
    let now = chrono::Utc::now().to_rfc3339();
    let body = format!(
        r#"{{"worker":{{"id":"{id}","hive_id":"fd-hive","model_id":"m","device":"cpu","port":9000,"status":"ready","health":{{"status":"healthy"}},"started_at":"{now}"}},"timestamp":"{now}"}}"#
    );
    let request = format!(
        "POST /v1/worker-heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{id}: write: {e}"))?;
    let (status, _) = read_response(conn)
        .await
        .map_err(|e| format!("{id}: read: {e}"))?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!("{id}: status {status}"))
    }
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; returns its status and body.
async fn read_response(conn: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut buf = Vec::with_capacity(512);
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let mut chunk = [0_u8; 512];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(invalid("closed before the response head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no status"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| invalid("no content-length"))?;
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0_u8; length - body.len()];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(invalid("closed inside the body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, body))
}
