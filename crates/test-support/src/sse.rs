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
                let mut stream = sse_client::events(response.bytes_stream());
                // A transport or framing error ends the recording as the server closing would.
                while let Some(Ok(event)) = stream.next().await {
                    events.lock().push(SseEvent::from_parsed(event));
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

impl SseEvent {
    fn from_parsed(event: eventsource_stream::Event) -> SseEvent {
        SseEvent {
            event: event.event,
            // The parser keeps the last `id:` seen (as browsers do) and gives "" before any.
            id: (!event.id.is_empty()).then_some(event.id),
            data: event.data,
            received: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpListener,
    };

    use super::*;
    use crate::wait::wait_for;

    /// Serves one SSE response on loopback, written in the given pieces with a pause between
    /// them so that the client reads each piece as a chunk of its own.
    async fn serve_in_pieces(pieces: Vec<Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.set_nodelay(true).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            // No length and no chunking: the body runs until the connection closes.
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            for piece in pieces {
                socket.write_all(&piece).await.unwrap();
                socket.flush().await.unwrap();
                // Pacing only: the assertions hold however the pieces are coalesced.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        format!("http://{addr}/stream")
    }

    #[tokio::test]
    async fn a_character_split_across_chunks_arrives_whole() {
        let text = "Grüße ✓ 🐝";
        let frame =
            format!("retry: 2000\n\nevent: note\nid: e:1\ndata: {{\"text\":\"{text}\"}}\n\n");
        let bytes = frame.into_bytes();
        // Split inside the four-byte bee, one byte into it.
        let split = bytes.windows(4).position(|w| w == "🐝".as_bytes()).unwrap() + 1;
        let url = serve_in_pieces(vec![bytes[..split].to_vec(), bytes[split..].to_vec()]).await;
        let recorder = SseRecorder::connect(&url, None).await;
        let event = recorder
            .wait_for("note", Duration::from_secs(10), |e| e.event == "note")
            .await;
        assert_eq!(event.json()["text"], text);
        assert_eq!(event.id.as_deref(), Some("e:1"));
        wait_for("the end of the stream", Duration::from_secs(10), || {
            recorder.ended()
        })
        .await;
        assert_eq!(recorder.events().len(), 1);
    }

    #[tokio::test]
    async fn frames_split_across_chunks_parse() {
        let url = serve_in_pieces(vec![
            b"retry: 1000\n\n: keep-alive\n\nevent: heart".to_vec(),
            b"beat\nid: 7\ndata: {\"seq\":1}\r\n\r\nid: 8\ndata: a\ndata: b\n\n".to_vec(),
        ])
        .await;
        let recorder = SseRecorder::connect(&url, None).await;
        wait_for("the end of the stream", Duration::from_secs(10), || {
            recorder.ended()
        })
        .await;
        let events = recorder.events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].event, "heartbeat");
        assert_eq!(events[0].id.as_deref(), Some("7"));
        assert_eq!(events[0].json()["seq"], 1);
        assert_eq!(events[1].event, "message");
        assert_eq!(events[1].id.as_deref(), Some("8"));
        assert_eq!(events[1].data, "a\nb");
    }
}
