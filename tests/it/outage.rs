//! The queen going away: killed and restarted on the same port, or not there yet at all.

use std::time::Duration;

use test_support::Daemon;
use tokio::time::Instant;

use crate::fleet::{DEADLINE, INTERVAL, Queen, STARTUP, free_port, hive, slot, worker};

/// The contract: everything is back within one interval of the queen's return, plus 1 s.
const RETURN: Duration = Duration::from_millis(INTERVAL.as_millis() as u64 + 1000);

#[tokio::test]
async fn after_a_queen_restart_on_the_same_port_everyone_is_back_within_an_interval() {
    let _slot = slot().await;
    let mut queen = Queen::start(&[]).await;
    let addr = queen.addr;
    let senders = [
        hive(&queen.url(), "hive-r").spawn(),
        worker(&queen.url(), "r1").spawn(),
        worker(&queen.url(), "r2").spawn(),
    ];
    queen
        .wait_all_available(&["hive-r"], &["r1", "r2"], STARTUP)
        .await;

    queen.daemon.kill().await;
    for sender in &senders {
        sender.wait_for_line("queen unreachable", DEADLINE).await;
    }

    let queen = Queen::start_on(addr, &[]).await;
    let up = Instant::now();
    queen
        .wait_all_available(&["hive-r"], &["r1", "r2"], RETURN)
        .await;
    assert!(up.elapsed() <= RETURN, "back after {:?}", up.elapsed());

    for sender in &senders {
        sender
            .wait_for_line("queen reachable again", DEADLINE)
            .await;
        assert_eq!(
            sender.count_containing("queen unreachable"),
            1,
            "{}",
            sender.output()
        );
        assert_eq!(
            sender.count_containing("queen reachable again"),
            1,
            "{}",
            sender.output()
        );
    }
    // A new queen has a fresh registry: the senders are first heartbeats there, not restarts.
    assert_eq!(queen.entry("worker", "r1").await.unwrap()["restarts"], 0);
}

#[tokio::test]
async fn senders_started_before_the_queen_retry_quietly_and_register_when_it_comes() {
    let _slot = slot().await;
    let addr = free_port();
    let url = format!("http://{addr}");
    let senders: Vec<Daemon> = [hive(&url, "hive-early"), worker(&url, "early-1")]
        .into_iter()
        .map(|b| b.env("RUST_LOG", "info,heartbeat_sender=debug").spawn())
        .collect();
    for sender in &senders {
        sender.wait_for_count("heartbeat failed", 5, DEADLINE).await;
    }

    let queen = Queen::start_on(addr, &[]).await;
    let up = Instant::now();
    queen
        .wait_all_available(&["hive-early"], &["early-1"], RETURN)
        .await;
    assert!(
        up.elapsed() <= RETURN,
        "registered {:?} after the queen came",
        up.elapsed()
    );

    for sender in &senders {
        sender
            .wait_for_line("queen reachable again", DEADLINE)
            .await;
        let out = sender.output();
        assert_eq!(sender.count_containing("queen unreachable"), 1, "{out}");
        assert_eq!(
            sender.count_containing(" WARN "),
            1,
            "one warning in all: {out}"
        );
        assert!(sender.count_containing("heartbeat failed") >= 5, "{out}");
    }
}
