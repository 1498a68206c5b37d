//! The dashboard in a real headless Chromium, fed by a real queen and real heartbeats: it shows
//! the fleet, reacts when a worker dies, and shows when the queen is gone.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`).
//! Without them the test skips with a message, unless `RBEE_REQUIRE_BROWSER=1` makes that a
//! failure. `RBEE_UPDATE_SCREENSHOT=1` also copies the screenshot to `docs/dashboard.png`.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use test_support::{Daemon, JsonClient, wait_until};

const STARTUP: Duration = Duration::from_secs(60);
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
    let Some(browser) = Browser::find() else {
        return;
    };

    let mut queen = Daemon::spawn(
        "queen-rbee",
        [
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

/// What the page shows, read through stable ids and data attributes.
const PROBE: &str = r#"
const count = (id) => {
  const n = document.getElementById(id);
  return n && n.dataset.value !== undefined ? Number(n.dataset.value) : null;
};
const rows = (body) => Array.from(document.querySelectorAll('#' + body + ' tr[data-id]')).map((r) => ({
  id: r.dataset.id, state: r.dataset.state, status: r.dataset.status, text: r.textContent,
  age: (r.querySelector('td.age') || {}).textContent,
}));
return {
  conn: document.getElementById('conn-status').dataset.status,
  notice: document.getElementById('notice').hidden ? null : document.getElementById('notice').textContent,
  workersOnline: count('workers-online'), workersAvailable: count('workers-available'),
  hivesOnline: count('hives-online'), hivesAvailable: count('hives-available'),
  workers: rows('workers-body'), hives: rows('hives-body'),
  feed: Array.from(document.querySelectorAll('#feed li[data-id]')).map((li) => ({
    kind: li.dataset.kind, id: li.dataset.id, to: li.dataset.to, text: li.textContent,
  })),
};
"#;

async fn probe(page: &Client) -> Value {
    page.execute(PROBE, vec![]).await.unwrap()
}

/// Polls the page until `pred` holds and returns that view; panics with the last view on timeout.
async fn wait_page(
    page: &Client,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let found = test_support::try_wait_until(timeout, || async {
        let view = probe(page).await;
        let ok = pred(&view);
        *last.lock().unwrap() = view.clone();
        ok.then_some(view)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "timed out after {timeout:?} waiting for {what}; the page shows:\n{:#}",
            last.lock().unwrap()
        )
    })
}

fn rows<'a>(view: &'a Value, table: &str) -> &'a [Value] {
    view[table].as_array().map_or(&[], Vec::as_slice)
}

fn row<'a>(view: &'a Value, table: &str, id: &str) -> Option<&'a Value> {
    rows(view, table).iter().find(|r| r["id"] == id)
}

fn feed(view: &Value) -> &[Value] {
    rows(view, "feed")
}

/// `target/` of this build: the test executable runs from `target/<profile>/deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// A Chromium and its chromedriver found on this machine.
#[derive(Debug)]
struct Browser {
    chromium: PathBuf,
    driver: PathBuf,
    profile: PathBuf,
}

impl Browser {
    /// Finds both programs; without them, skips (returns `None`) or fails when required.
    fn find() -> Option<Self> {
        let chromium = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| on_path(name));
        let driver = on_path("chromedriver");
        match (chromium, driver) {
            (Some(chromium), Some(driver)) => {
                let profile = std::env::temp_dir().join(format!(
                    "rbee-dashboard-test-{}-{}",
                    std::process::id(),
                    free_port()
                ));
                Some(Self {
                    chromium,
                    driver,
                    profile,
                })
            }
            _ => {
                let msg = "chromium and chromedriver are needed for the dashboard browser test \
                           (Debian: apt-get install chromium chromium-driver)";
                assert!(
                    std::env::var_os("RBEE_REQUIRE_BROWSER").is_none_or(|v| v != "1"),
                    "RBEE_REQUIRE_BROWSER=1 but {msg}"
                );
                #[allow(clippy::print_stderr, reason = "a skipped test says why")]
                {
                    eprintln!("SKIPPED dashboard browser test: {msg}");
                }
                None
            }
        }
    }

    async fn start_driver(&self) -> Driver {
        let port = free_port();
        let daemon = Daemon::builder_for(&self.driver)
            .name("chromedriver")
            .args([
                format!("--port={port}"),
                "--allowed-ips=127.0.0.1".to_owned(),
            ])
            .spawn();
        daemon.wait_for_line("started successfully", STARTUP).await;
        Driver {
            url: format!("http://127.0.0.1:{port}"),
            _daemon: daemon,
        }
    }

    async fn session(&self, driver: &Driver) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,800",
            &format!("--user-data-dir={}", self.profile.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": self.chromium, "args": args },
        });
        let caps = caps.as_object().expect("an object").clone();
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("cannot start a chromium session via {}: {e}", driver.url))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A running chromedriver; dropping it stops it.
#[derive(Debug)]
struct Driver {
    url: String,
    _daemon: Daemon,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
