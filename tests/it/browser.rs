//! A headless Chromium driven through chromedriver, and what the dashboard shows, read through
//! stable ids and data attributes. Shared by the dashboard's browser tests.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`).
//! Without them a test skips with a message, unless `RBEE_REQUIRE_BROWSER=1` makes that a failure.

use std::{net::TcpListener, path::PathBuf, time::Duration};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use test_support::Daemon;

/// How long a browser, a driver or a daemon may take to come up on a busy machine.
pub(crate) const STARTUP: Duration = Duration::from_secs(60);

/// What the page shows, read through stable ids and data attributes.
pub(crate) const PROBE: &str = r#"
const count = (id) => {
  const n = document.getElementById(id);
  return n && n.dataset.value !== undefined ? Number(n.dataset.value) : null;
};
const rows = (body) => Array.from(document.querySelectorAll('#' + body + ' tr[data-id]')).map((r) => ({
  id: r.dataset.id, state: r.dataset.state, status: r.dataset.status, text: r.textContent,
  restored: r.dataset.restored === 'true',
  age: (r.querySelector('td.age') || {}).textContent,
}));
return {
  conn: document.getElementById('conn-status').dataset.status,
  notice: document.getElementById('notice').hidden ? null : document.getElementById('notice').textContent,
  workersOnline: count('workers-online'), workersAvailable: count('workers-available'),
  hivesOnline: count('hives-online'), hivesAvailable: count('hives-available'),
  workers: rows('workers-body'), hives: rows('hives-body'),
  feedCount: Number(document.getElementById('feed').dataset.count || 0),
  feedHistory: document.getElementById('feed-history').textContent,
  feed: Array.from(document.querySelectorAll('#feed li[data-id]')).map((li) => ({
    kind: li.dataset.kind, id: li.dataset.id, to: li.dataset.to, text: li.textContent,
  })),
};
"#;

pub(crate) async fn probe(page: &Client) -> Value {
    page.execute(PROBE, vec![]).await.unwrap()
}

/// Polls the page until `pred` holds and returns that view; panics with the last view on timeout.
pub(crate) async fn wait_page(
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

pub(crate) fn rows<'a>(view: &'a Value, table: &str) -> &'a [Value] {
    view[table].as_array().map_or(&[], Vec::as_slice)
}

pub(crate) fn row<'a>(view: &'a Value, table: &str, id: &str) -> Option<&'a Value> {
    rows(view, table).iter().find(|r| r["id"] == id)
}

pub(crate) fn feed(view: &Value) -> &[Value] {
    rows(view, "feed")
}

/// `target/` of this build: the test executable runs from `target/<profile>/deps/`.
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// A Chromium and its chromedriver found on this machine.
#[derive(Debug)]
pub(crate) struct Browser {
    chromium: PathBuf,
    driver: PathBuf,
    profile: PathBuf,
}

impl Browser {
    /// Finds both programs; without them, skips (returns `None`) or fails when required.
    pub(crate) fn find() -> Option<Self> {
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

    pub(crate) async fn start_driver(&self) -> Driver {
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

    pub(crate) async fn session(&self, driver: &Driver) -> Client {
        self.session_sized(driver, None).await
    }

    /// A session whose viewport is `width`×`height` CSS pixels, as on a phone: a desktop window
    /// cannot be made narrower than 500 px, so this emulates the device's screen.
    pub(crate) async fn phone_session(&self, driver: &Driver, width: u32, height: u32) -> Client {
        self.session_sized(driver, Some((width, height))).await
    }

    async fn session_sized(&self, driver: &Driver, screen: Option<(u32, u32)>) -> Client {
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
            // Each session its own profile: two browsers cannot share one.
            &format!(
                "--user-data-dir={}",
                self.profile.join(free_port().to_string()).display()
            ),
        ];
        let mut options = json!({ "binary": self.chromium, "args": args });
        if let Some((width, height)) = screen {
            options["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1 } });
        }
        let caps = json!({ "browserName": "chrome", "goog:chromeOptions": options });
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
pub(crate) struct Driver {
    url: String,
    _daemon: Daemon,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
