//! A small incremental parser for `text/event-stream` bodies.

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, `message` when absent.
    pub(crate) event: String,
    /// The `data:` lines joined with newlines.
    pub(crate) data: String,
}

/// Accumulates bytes as they arrive and yields complete events.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds a chunk of the body and returns the events it completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            return data.map(|data| SseEvent {
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            // `id:` and `retry:` matter to browsers; this client reconnects on its own schedule.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"retry: 1000\nid: 1\nevent: heart").is_empty());
        let events = p.push(b"beat\ndata: {\"seq\":1}\n\n: keep-alive\n\nevent: transition\r\ndata: a\r\ndata: b\r\n\r\n");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: "heartbeat".to_owned(),
                    data: "{\"seq\":1}".to_owned()
                },
                SseEvent {
                    event: "transition".to_owned(),
                    data: "a\nb".to_owned()
                },
            ]
        );
    }

    #[test]
    fn data_without_event_name_is_a_message() {
        let mut p = SseParser::default();
        let events = p.push(b"data:x\n\n");
        assert_eq!(events[0].event, "message");
        assert_eq!(events[0].data, "x");
    }
}
