//! The dashboard at 10,000 workers in a real headless Chromium fed by a real queen: counts, a
//! table that never holds thousands of rows, search, a status change on screen within 200 ms,
//! and no long task (over 50 ms) while 100 changes a second arrive for 20 s.
//!
//! The figures it measures are printed to stderr (`--nocapture` shows them).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fantoccini::{Client, Locator, key::Key};
use serde_json::{Value, json};
use test_support::{Daemon, JsonClient, wait_until};

use crate::browser::{Browser, STARTUP, target_dir};

const WORKERS: usize = 10_000;
const HIVES: usize = 20;
const TOKEN: &str = "dashboard-fleet-token";
const MODELS: [&str; 4] = [
    "meta-llama/Llama-3.2-1B-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "microsoft/Phi-3-mini-4k-instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
];
/// Registration runs this many heartbeats at once.
const CONCURRENCY: usize = 32;
const CHURN: Duration = Duration::from_secs(20);
const CHURN_PER_SECOND: u64 = 100;
/// The SPEC's bound on how long applying a change may block the page, and the browser's own
/// threshold for a long task.
const LONG_TASK_MS: f64 = 50.0;
const VISIBLE_WITHIN_MS: f64 = 200.0;
/// Loading 10,000 entries on a busy debug build; generous because it is not what is measured.
const LOAD: Duration = Duration::from_secs(120);
const STARTED_AT: &str = "2026-01-01T00:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_stays_usable_at_ten_thousand_workers() {
    let _slot = crate::fleet::exclusive().await;
    let Some(browser) = Browser::find() else {
        return;
    };
    // The timeout outlasts the test, so every registered worker stays online without re-beating.
    let queen = Daemon::spawn(
        "queen-rbee",
        [
            "--ephemeral",
            "--bind",
            "127.0.0.1:0",
            "--heartbeat-interval",
            "60s",
            "--heartbeat-timeout",
            "600s",
            "--snapshot-interval",
            "1s",
            "--token",
            TOKEN,
        ],
    );
    let base = queen.base_url(STARTUP).await;
    let api = JsonClient::new(base.clone()).with_token(TOKEN);
    register_fleet(&api).await;

    let driver = browser.start_driver().await;
    let page = browser.session(&driver).await;
    let opened = Instant::now();
    page.goto(&format!("{base}/#token={TOKEN}")).await.unwrap();
    wait_until("the page to show 10,000 workers online", LOAD, || async {
        let counts = page
            .execute(
                "return [document.getElementById('workers-online').dataset.value, \
                 document.getElementById('conn-status').dataset.status];",
                vec![],
            )
            .await
            .ok()?;
        (counts == json!([WORKERS.to_string(), "connected"])).then_some(())
    })
    .await;
    let seen_after = opened.elapsed();
    let first_render_ms = page
        .execute("return window.__rbee_firstRender;", vec![])
        .await
        .unwrap()
        .as_f64()
        .expect("the page records when it first rendered the fleet");

    // However big the fleet, the DOM holds a window of it.
    let dom = page
        .execute(
            "return [document.querySelectorAll('#workers-body tr').length, \
             document.querySelectorAll('#workers-body tr[data-id]').length, \
             document.getElementsByTagName('*').length, \
             document.getElementById('workers-range').dataset.total];",
            vec![],
        )
        .await
        .unwrap();
    let table_rows = dom[0].as_u64().unwrap();
    assert!(
        table_rows < 200,
        "the workers table holds {table_rows} rows"
    );
    assert!(dom[1].as_u64().unwrap() > 5, "too few rows shown: {dom}");
    let elements = dom[2].as_u64().unwrap();
    assert!(elements < 5_000, "the page holds {elements} elements");
    assert_eq!(dom[3], json!(WORKERS.to_string()));
    let rollup = page
        .execute(
            "return document.querySelectorAll('#rollup li[data-hive-state=\"online\"]').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(rollup, json!(HIVES), "every hive is in the rollup, online");

    // Search by id finds exactly that worker; by hive and by model, that hive's and model's.
    let target = worker_id(4321);
    search(&page, &target).await;
    wait_rows(&page, "the searched worker alone", |ids, total| {
        ids == [target.as_str()] && total == 1
    })
    .await;
    search(&page, &hive_id(7)).await;
    wait_rows(&page, "one hive's workers", |ids, total| {
        total == WORKERS / HIVES && ids.iter().all(|id| id_index(id) % HIVES == 7)
    })
    .await;
    search(&page, &MODELS[2].to_lowercase()).await;
    wait_rows(&page, "one model's workers", |_, total| {
        total == WORKERS / MODELS.len()
    })
    .await;
    search(&page, &target).await;
    wait_rows(&page, "the searched worker again", |ids, _| {
        ids == [target.as_str()]
    })
    .await;

    // A status change, timed in the page from before the heartbeat is sent until its row shows it.
    let mut idle_latencies = Vec::new();
    for (n, status) in ["busy", "ready", "busy", "ready", "busy"]
        .iter()
        .enumerate()
    {
        let ms = change_latency(&page, 4321, status, n).await;
        idle_latencies.push(ms);
    }
    for ms in &idle_latencies {
        assert!(
            *ms < VISIBLE_WITHIN_MS,
            "a status change took {ms:.0} ms to appear: {idle_latencies:?}"
        );
    }

    // 20 s of 100 changes a second, watched for long tasks from just before they start.
    page.execute(
        "window.__longtasks = []; \
         new PerformanceObserver((list) => { for (const e of list.getEntries()) \
           window.__longtasks.push([Math.round(e.startTime), Math.round(e.duration)]); }) \
           .observe({ type: 'longtask' }); \
         const s = window.__rbee_stats; s.flushes = 0; s.maxFlushMs = 0; s.totalFlushMs = 0; s.slow = [];",
        vec![],
    )
    .await
    .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let churn = tokio::spawn(churn(api.clone(), sent.clone()));
    // Midway, one more timed change, this time among the others.
    tokio::time::sleep(CHURN / 2).await;
    let busy_latency = change_latency(&page, 4321, "ready", 9).await;
    let failed = churn.await.unwrap();
    assert_eq!(failed, 0, "some churn heartbeats failed");
    let changes = sent.load(Ordering::Relaxed);
    assert!(
        changes >= CHURN_PER_SECOND * CHURN.as_secs() * 9 / 10,
        "only {changes} changes were sent in {CHURN:?}"
    );
    let churn_view = page
        .execute("return [window.__longtasks, window.__rbee_stats];", vec![])
        .await
        .unwrap();
    let long_tasks = churn_view[0].clone();
    let stats = churn_view[1].clone();

    // The page kept up: its counts match the queen's once the last change is in.
    let snapshot = api.get_ok("/v1/heartbeats/snapshot").await.unwrap();
    let available = snapshot["workers_available"].clone();
    wait_until("the page's counts to match the queen's", LOAD, || async {
        let shown = page
            .execute(
                "return [document.getElementById('workers-available').dataset.value, \
                 document.getElementById('workers-online').dataset.value];",
                vec![],
            )
            .await
            .ok()?;
        (shown == json!([available.to_string(), WORKERS.to_string()])).then_some(())
    })
    .await;

    // Screenshots to look at: the problems view at full width, and a phone-sized screen.
    clear_search(&page).await;
    page.find(Locator::Css("#filters [data-filter='problems']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    std::fs::write(
        target_dir().join("dashboard-10k.png"),
        page.screenshot().await.unwrap(),
    )
    .unwrap();
    let phone = browser.phone_session(&driver, 400, 800).await;
    phone.goto(&format!("{base}/#token={TOKEN}")).await.unwrap();
    wait_until("the phone view to show the fleet", LOAD, || async {
        let shown = phone
            .execute(
                "return [window.innerWidth, document.getElementById('workers-online').dataset.value];",
                vec![],
            )
            .await
            .ok()?;
        (shown == json!([400, WORKERS.to_string()])).then_some(())
    })
    .await;
    std::fs::write(
        target_dir().join("dashboard-10k-narrow.png"),
        phone.screenshot().await.unwrap(),
    )
    .unwrap();
    phone.close().await.unwrap();

    #[allow(clippy::print_stderr, reason = "the test reports what it measured")]
    {
        eprintln!(
            "dashboard at {WORKERS} workers: first render {first_render_ms:.0} ms after navigation \
             (counts seen by the test after {seen_after:?}); {table_rows} table rows, {elements} \
             elements; change -> visible idle {idle_latencies:.0?} ms, during churn \
             {busy_latency:.0} ms; {changes} changes in {CHURN:?}; long tasks (start, ms) {long_tasks}; \
             page apply+render {stats}"
        );
    }
    assert!(
        busy_latency < VISIBLE_WITHIN_MS,
        "a status change among 100 a second took {busy_latency:.0} ms to appear"
    );
    assert!(
        long_tasks.as_array().is_some_and(Vec::is_empty),
        "long tasks (start ms, duration ms) over {LONG_TASK_MS} ms during the churn: {long_tasks}"
    );

    page.close().await.unwrap();
    drop(driver);
    drop(queen);
}

fn worker_id(i: usize) -> String {
    format!("w-{i:05}")
}

fn hive_id(i: usize) -> String {
    format!("hive-{i:02}")
}

fn id_index(id: &str) -> usize {
    id.trim_start_matches("w-").parse().unwrap()
}

fn worker_beat(i: usize, status: &str) -> Value {
    json!({
        "worker": {
            "id": worker_id(i), "hive_id": hive_id(i % HIVES), "model_id": MODELS[i % MODELS.len()],
            "device": format!("cuda:{}", i % 8), "port": 9000 + i % 1000, "status": status,
            "started_at": STARTED_AT, "health": {"status": "healthy"}
        },
        "timestamp": chrono::Utc::now().to_rfc3339(),
    })
}

fn hive_beat(i: usize) -> Value {
    json!({
        "hive": {
            "id": hive_id(i), "hostname": format!("gpu-node-{i:02}"), "port": 7000, "status": "ready",
            "started_at": STARTED_AT, "health": {"status": "healthy"},
            "system": {"os": "linux", "cpu_cores": 64, "memory_total_bytes": 512_u64 << 30,
                       "memory_available_bytes": 300_u64 << 30},
            "devices": (0..8).map(|d| json!({
                "id": format!("cuda:{d}"), "name": "NVIDIA H100", "memory_total_bytes": 80_u64 << 30,
                "memory_used_bytes": 20_u64 << 30
            })).collect::<Vec<_>>()
        },
        "timestamp": chrono::Utc::now().to_rfc3339(),
    })
}

/// Registers the hives, then the workers, a bounded number of heartbeats at a time.
async fn register_fleet(api: &JsonClient) {
    for i in 0..HIVES {
        post_ok(api, "/v1/hive-heartbeat", &hive_beat(i)).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..CONCURRENCY {
        let api = api.clone();
        tasks.spawn(async move {
            for i in (lane..WORKERS).step_by(CONCURRENCY) {
                post_ok(&api, "/v1/worker-heartbeat", &worker_beat(i, "ready")).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    wait_until("the queen to hold the fleet", LOAD, || async {
        let s = api.get_ok("/v1/heartbeats/snapshot").await?;
        (s["workers_online"] == WORKERS && s["hives_online"] == HIVES).then_some(())
    })
    .await;
}

async fn post_ok(api: &JsonClient, path: &str, body: &Value) {
    let (status, answer) = api.post(path, body).await.unwrap();
    assert!(status.is_success(), "{path}: {status} {answer}");
}

/// Flips random workers between ready and busy, `CHURN_PER_SECOND` a second for `CHURN`;
/// returns how many heartbeats failed.
async fn churn(api: JsonClient, sent: Arc<AtomicU64>) -> u64 {
    let lanes: u64 = 4;
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        let api = api.clone();
        let sent = sent.clone();
        tasks.spawn(async move {
            let mut failed = 0;
            let mut tick =
                tokio::time::interval(Duration::from_millis(1000 * lanes / CHURN_PER_SECOND));
            let end = tokio::time::Instant::now() + CHURN;
            let mut n: u64 = lane;
            while tokio::time::Instant::now() < end {
                tick.tick().await;
                // A stride that visits every worker before repeating one, so each beat changes it.
                let i = usize::try_from(n.wrapping_mul(7919) % WORKERS as u64).unwrap();
                if i != 4321 {
                    let status = if (n / WORKERS as u64).is_multiple_of(2) {
                        "busy"
                    } else {
                        "ready"
                    };
                    match api
                        .post("/v1/worker-heartbeat", &worker_beat(i, status))
                        .await
                    {
                        Ok((s, _)) if s.is_success() => {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => failed += 1,
                    }
                }
                n += lanes;
            }
            failed
        });
    }
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        failed += done.unwrap();
    }
    failed
}

/// Sends a heartbeat from the page itself and times, on the page's clock, how long until the
/// worker's row shows the new status.
async fn change_latency(page: &Client, i: usize, status: &str, n: usize) -> f64 {
    let body = worker_beat(i, status).to_string();
    let script = r#"
const [id, status, token, body] = arguments;
const done = arguments[arguments.length - 1];
const shows = () => {
  const row = document.querySelector('#workers-body tr[data-id="' + id + '"]');
  return row !== null && row.dataset.status === status;
};
const t0 = performance.now();
const observer = new MutationObserver(() => {
  if (shows()) { observer.disconnect(); done({ ms: performance.now() - t0 }); }
});
observer.observe(document.getElementById('workers-body'), { subtree: true, attributes: true, childList: true });
fetch('/v1/worker-heartbeat', {
  method: 'POST', body,
  headers: { 'content-type': 'application/json', 'authorization': 'Bearer ' + token },
}).then((res) => { if (!res.ok) { observer.disconnect(); done({ error: res.status }); } },
        (err) => { observer.disconnect(); done({ error: String(err) }); });
setTimeout(() => { observer.disconnect(); done({ error: 'not shown within 5 s' }); }, 5000);
"#;
    let answer = page
        .execute_async(
            script,
            vec![
                json!(worker_id(i)),
                json!(status),
                json!(TOKEN),
                json!(body),
            ],
        )
        .await
        .unwrap();
    answer["ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("change {n} to {status}: {answer}"))
}

async fn search(page: &Client, text: &str) {
    clear_search(page).await;
    let input = page.find(Locator::Id("search")).await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn clear_search(page: &Client) {
    let input = page.find(Locator::Id("search")).await.unwrap();
    input.clear().await.unwrap();
    // clear() fires no input event; an Escape in the box clears the filter the page keeps.
    input.send_keys(&Key::Escape).await.unwrap();
}

/// Waits until the worker rows shown and the filtered total satisfy `pred`.
async fn wait_rows(page: &Client, what: &str, pred: impl Fn(&[&str], usize) -> bool) {
    let last = std::sync::Mutex::new(Value::Null);
    let found = test_support::try_wait_until(STARTUP, || async {
        let view = page
            .execute(
                "return [Array.from(document.querySelectorAll('#workers-body tr[data-id]')) \
                 .map((r) => r.dataset.id), Number(document.getElementById('workers-range').dataset.total)];",
                vec![],
            )
            .await
            .ok()?;
        let ids: Vec<&str> = view[0]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let total = usize::try_from(view[1].as_u64()?).ok()?;
        let ok = pred(&ids, total);
        *last.lock().unwrap() = view.clone();
        ok.then_some(())
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}; the table shows {}",
            last.lock().unwrap()
        )
    });
}
