//! The dashboard in a real headless Chromium, fed by a real queen and real heartbeats: it shows
//! the fleet, reacts when a worker dies, and shows when the queen is gone.
//! See `browser.rs` for what the browser tests need. `RBEE_UPDATE_SCREENSHOT=1` also copies the
//! screenshot to `docs/dashboard.png`.

use std::{path::Path, time::Duration};

use serde_json::json;
use test_support::{Daemon, JsonClient, wait_until};

use crate::browser::{Browser, STARTUP, feed, row, rows, target_dir, wait_page};
/// Offline detection takes the 1.5 s timeout plus a snapshot; the margin covers a busy machine.
const CHANGE: Duration = Duration::from_secs(20);

const WORKERS: [(&str, &str, &str); 3] = [
    ("llama-1b", "meta-llama/Llama-3.2-1B-Instruct", "cpu:0"),
    ("qwen-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", "cpu:1"),
    ("phi-mini", "microsoft/Phi-3-mini-4k-instruct", "cpu:2"),
];
const VICTIM: &str = "qwen-0.5b";
const TOKEN: &str = "dashboard-test-token";
const HIVE: &str = "devbox";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_fleet_live_and_marks_a_killed_worker_offline() {
    let _slot = crate::fleet::slot().await;
    let Some(browser) = Browser::find() else {
        return;
    };

    let mut queen = Daemon::spawn(
        "queen-rbee",
        [
            "--ephemeral",
            "--bind",
            "127.0.0.1:0",
            "--heartbeat-interval",
            "250ms",
            "--heartbeat-timeout",
            "1500ms",
            "--snapshot-interval",
            "1s",
            "--token",
            TOKEN,
        ],
    );
    let base = queen.base_url(STARTUP).await;
    let sender_args = [
        "--queen-url",
        &base,
        "--bind",
        "127.0.0.1:0",
        "--heartbeat-interval",
        "250ms",
        "--hive-id",
        HIVE,
        "--token",
        TOKEN,
    ];
    let hive = Daemon::builder("rbee-hive").args(sender_args).spawn();
    let mut workers: Vec<Daemon> = WORKERS
        .iter()
        .map(|(id, model, device)| {
            Daemon::builder("llm-worker")
                .name(*id)
                .args(sender_args)
                .args(["--worker-id", id, "--model-id", model, "--device", device])
                .spawn()
        })
        .collect();
    let api = JsonClient::new(base.clone()).with_token(TOKEN);
    wait_until("the fleet online", STARTUP, || async {
        let s = api.get_ok("/v1/heartbeats/snapshot").await?;
        (s["workers_online"] == 3 && s["hives_online"] == 1).then_some(())
    })
    .await;

    let driver = browser.start_driver().await;
    let page = browser.session(&driver).await;
    // Without the token the page explains what is missing instead of showing an empty fleet.
    page.goto(&format!("{base}/")).await.unwrap();
    wait_page(&page, "a notice that a token is needed", STARTUP, |p| {
        p["conn"] != "connected"
            && p["notice"]
                .as_str()
                .is_some_and(|n| n.contains("requires a token"))
    })
    .await;
    // The token goes in the fragment, which never reaches the server; adding it reconnects.
    page.goto(&format!("{base}/#token={TOKEN}")).await.unwrap();

    let shown = wait_page(&page, "three workers and a hive online", STARTUP, |p| {
        p["conn"] == "connected"
            && p["notice"].is_null()
            && p["workersOnline"] == 3
            && p["hivesOnline"] == 1
            && rows(p, "workers")
                .iter()
                .filter(|r| r["state"] == "online")
                .count()
                == 3
            && rows(p, "hives")
                .iter()
                .any(|r| r["id"] == HIVE && r["state"] == "online")
    })
    .await;
    let llama = row(&shown, "workers", "llama-1b").expect("llama row");
    let text = llama["text"].as_str().unwrap();
    for needle in [
        "meta-llama/Llama-3.2-1B-Instruct",
        "cpu:0",
        HIVE,
        "ready",
        "healthy",
    ] {
        assert!(text.contains(needle), "row lacks {needle:?}: {text}");
    }
    wait_page(&page, "first heartbeats in the feed", CHANGE, |p| {
        WORKERS.iter().all(|(id, _, _)| {
            feed(p)
                .iter()
                .any(|t| t["id"] == *id && t["to"] == "online")
        })
    })
    .await;

    // A crash, not a goodbye: the queen must notice the silence by itself.
    let victim = workers
        .iter_mut()
        .find(|w| w.name() == VICTIM)
        .expect("victim");
    victim.kill().await;
    let after = wait_page(&page, "the killed worker offline", CHANGE, |p| {
        p["workersOnline"] == 2
            && p["workersAvailable"] == 2
            && row(p, "workers", VICTIM).is_some_and(|r| {
                r["state"] == "offline" && r["text"].as_str().is_some_and(|t| t.contains("offline"))
            })
            && feed(p)
                .first()
                .is_some_and(|t| t["id"] == VICTIM && t["to"] == "offline")
    })
    .await;
    let first = &feed(&after)[0];
    assert_eq!(first["kind"], "worker");
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .contains("heartbeat timeout"),
        "{first}"
    );

    // Ages advance between events, from the queen's numbers plus local elapsed time.
    let age = row(&after, "workers", VICTIM).unwrap()["age"].clone();
    wait_page(&page, "the offline worker's age to move", CHANGE, |p| {
        row(p, "workers", VICTIM).is_some_and(|r| r["age"] != age)
    })
    .await;

    let png = page.screenshot().await.unwrap();
    let target = target_dir().join("dashboard.png");
    std::fs::write(&target, &png).unwrap();
    if std::env::var_os("RBEE_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dashboard.png");
        std::fs::write(&docs, &png).unwrap();
    }

    // Untrusted text is shown as text, never parsed as markup.
    let hostile = "<img src=x onerror=\"window.__pwned=1\">";
    let (status, body) = api
        .post(
            "/v1/worker-heartbeat",
            &json!({
                "worker": {
                    "id": "hostile", "hive_id": HIVE, "model_id": hostile, "device": "cpu",
                    "port": 9999, "status": "ready", "started_at": "2026-01-01T00:00:00Z",
                    "health": {"status": "degraded", "reason": "<b>not bold</b>"}
                },
                "timestamp": "2026-01-01T00:00:00Z"
            }),
        )
        .await
        .unwrap();
    assert!(status.is_success(), "{status} {body}");
    wait_page(&page, "the hostile row shown as text", CHANGE, |p| {
        row(p, "workers", "hostile")
            .is_some_and(|r| r["text"].as_str().is_some_and(|t| t.contains(hostile)))
    })
    .await;
    let injected = page
        .execute(
            "return [document.querySelectorAll('main img, main b').length, window.__pwned === undefined];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!([0, true]));

    // The indicator shows a lost queen instead of stale numbers passing for live ones.
    queen.kill().await;
    wait_page(
        &page,
        "the connection indicator to leave 'connected'",
        CHANGE,
        |p| p["conn"] == "reconnecting" || p["conn"] == "disconnected",
    )
    .await;

    page.close().await.unwrap();
    drop(hive);
    drop(workers);
    drop(driver);
}
