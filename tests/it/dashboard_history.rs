//! The dashboard over a queen with kept state, in headless Chromium: entries restored after a
//! restart are marked, and the transition feed pages back into the kept history.

use std::time::Duration;

use fantoccini::{Client, Locator};
use nix::sys::signal::Signal;
use serde_json::json;
use tempfile::TempDir;
use test_support::{Daemon, JsonClient, wait_until};

use crate::browser::{Browser, STARTUP, feed, rows, wait_page};

/// More than two pages of the feed (50 each), so paging has to happen twice.
const WORKERS: usize = 120;
const CHANGE: Duration = Duration::from_secs(20);

fn queen(dir: &TempDir) -> Daemon {
    let data_dir = dir.path().display().to_string();
    Daemon::builder("queen-rbee")
        .args(["--bind", "127.0.0.1:0", "--data-dir", &data_dir])
        // Nothing goes offline while the test looks: the restored entries stay restored.
        .args(["--heartbeat-timeout", "10m"])
        .spawn()
}

async fn click(page: &Client, id: &str) {
    page.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_entries_are_marked_and_the_feed_pages_back_into_history() {
    let _slot = crate::fleet::slot().await;
    let Some(browser) = Browser::find() else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let mut first = queen(&dir);
    let api = JsonClient::new(first.base_url(STARTUP).await);
    for i in 0..WORKERS {
        let body = json!({
            "worker": {
                "id": format!("hist-{i:03}"), "hive_id": "archive", "model_id": "m",
                "device": "cpu", "port": 9000 + i, "status": "ready",
                "started_at": "2026-11-28T15:00:00Z"
            },
            "timestamp": "2026-11-28T15:00:00Z"
        });
        let (status, ack) = api.post("/v1/worker-heartbeat", &body).await.unwrap();
        assert_eq!(status, 200, "{ack}");
    }
    first.signal(Signal::SIGTERM);
    assert!(first.wait_exit(STARTUP).await.success());

    let second = queen(&dir);
    let base = second.base_url(STARTUP).await;
    let api = JsonClient::new(base.clone());
    wait_until("the restored fleet", STARTUP, || async {
        let s = api.get_ok("/v1/heartbeats/snapshot").await?;
        (s["workers_online"] == WORKERS && s["workers_available"] == 0).then_some(())
    })
    .await;

    let driver = browser.start_driver().await;
    let page = browser.session(&driver).await;
    page.goto(&format!("{base}/")).await.unwrap();
    wait_page(
        &page,
        "restored rows and the newest page of history",
        STARTUP,
        |p| {
            p["conn"] == "connected"
                && p["workersOnline"] == WORKERS
                && p["workersAvailable"] == 0
                && !rows(p, "workers").is_empty()
                && rows(p, "workers").iter().all(|r| r["restored"] == true)
                && p["feedCount"] == 50
        },
    )
    .await;

    click(&page, "feed-older").await;
    wait_page(&page, "a second page of history", CHANGE, |p| {
        p["feedCount"] == 100
    })
    .await;
    click(&page, "feed-older").await;
    let done = wait_page(&page, "the start of the kept history", CHANGE, |p| {
        p["feedCount"] == WORKERS
            && p["feedHistory"]
                .as_str()
                .is_some_and(|t| t.contains("Start of the kept history"))
    })
    .await;
    assert!(feed(&done).iter().all(|t| t["to"] == "online"), "{done:#}");

    // The oldest transition of all sits at the bottom of the feed.
    page.execute("document.getElementById('feed').scrollTop = 1e6;", vec![])
        .await
        .unwrap();
    wait_page(
        &page,
        "the first heartbeat ever at the bottom",
        CHANGE,
        |p| feed(p).iter().any(|t| t["id"] == "hist-000"),
    )
    .await;
}
