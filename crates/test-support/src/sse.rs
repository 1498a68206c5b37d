//! Records a Server-Sent Events stream in the background so tests can wait on its events.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use parking_lot::Mutex;
use reqwest::Client;
use serde_json::Value;
use tokio::{task::JoinHandle, time::Instant};

use crate::wait::try_wait_until;

/// One event as received.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The `event:` name; `message` when the frame has none.
    pub event: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// When the recorder parsed it.
    pub received: Instant,
}

impl SseEvent {
    /// Returns the data parsed as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// Holds the events of one stream connection; dropping it closes the connection.
#[derive(Debug)]
pub struct SseRecorder {
    events: Arc<Mutex<Vec<SseEvent>>>,
    ended: Arc<Mutex<bool>>,
    task: JoinHandle<()>,
}

impl SseRecorder {
    /// Connects to `url` (optionally with a bearer token) and records events in the background.
    ///
    /// Panics unless the server answers 200 with `text/event-stream`.
    pub async fn connect(url: &str, token: Option<&str>) -> SseRecorder {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("a client with only timeouts set always builds");
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        assert_eq!(
            response.status(),
            200,
            "stream {url} answered {}",
            response.status()
        );
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "stream {url} has content type {content_type:?}"
        );
        let events = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(false));
        let task = tokio::spawn({
            let events = Arc::clone(&events);
            let ended = Arc::clone(&ended);
            async move {
                let mut body = response.bytes_stream();
                let mut parser = Parser::default();
                while let Some(Ok(chunk)) = body.next().await {
                    for event in parser.push(&chunk) {
                        events.lock().push(event);
                    }
                }
                *ended.lock() = true;
            }
        });
        SseRecorder {
            events,
            ended,
            task,
        }
    }

    /// Returns every event received so far.
    pub fn events(&self) -> Vec<SseEvent> {
        self.events.lock().clone()
    }

    /// Returns whether the server closed the stream.
    pub fn ended(&self) -> bool {
        *self.ended.lock()
    }

    /// Counts the events so far that satisfy `pred`.
    pub fn count(&self, pred: impl Fn(&SseEvent) -> bool) -> usize {
        self.events.lock().iter().filter(|e| pred(e)).count()
    }

    /// Waits for an event satisfying `pred` (described by `what`) and returns the first such
    /// event; panics listing the events received on timeout.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&SseEvent) -> bool,
    ) -> SseEvent {
        let found = try_wait_until(timeout, || {
            let event = self.events.lock().iter().find(|e| pred(e)).cloned();
            async move { event }
        })
        .await;
        found.unwrap_or_else(|| {
            let names: Vec<String> = self
                .events()
                .iter()
                .map(|e| match e.event.as_str() {
                    "transition" => format!("transition {}", e.data),
                    other => other.to_owned(),
                })
                .collect();
            panic!("no SSE event {what} within {timeout:?}; received: {names:#?}")
        })
    }

    /// Waits for an event named `name` whose JSON data satisfies `pred`, and returns that data.
    pub async fn wait_for_json(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for(what, timeout, |e| e.event == name && pred(&e.json()))
            .await
            .json()
    }
}

impl Drop for SseRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Incremental SSE frame parser (the subset servers send: `event`, `data`, `id`, comments).
#[derive(Debug, Default)]
struct Parser {
    buf: String,
    event: Option<String>,
    id: Option<String>,
    data: Vec<String>,
}

impl Parser {
    fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(pos) = self.buf.find('\n') {
            let line: String = self.buf.drain(..=pos).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() || self.event.is_some() {
                    out.push(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".to_owned()),
                        id: self.id.take(),
                        data: std::mem::take(&mut self.data).join("\n"),
                        received: Instant::now(),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => self.data.push(value.to_owned()),
                "id" => self.id = Some(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_chunks_parse() {
        let mut p = Parser::default();
        assert!(
            p.push(b"retry: 1000\n\n: keep-alive\n\nevent: heart")
                .is_empty()
        );
        let events = p.push(b"beat\nid: 7\ndata: {\"seq\":1}\r\n\r\ndata: a\ndata: b\n\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "heartbeat");
        assert_eq!(events[0].id.as_deref(), Some("7"));
        assert_eq!(events[0].json()["seq"], 1);
        assert_eq!(events[1].event, "message");
        assert_eq!(events[1].data, "a\nb");
    }
}
