//! A light Server-Sent Events client: plain TCP, a chunked-transfer decoder and a streaming line parser.
//!
//! A thousand subscribers each receive every summary and every watch `sync`, which can be megabytes long, so
//! the parser keeps only the first few kilobytes of each line (enough for the `seq`, `timestamp` and
//! `revision` at their start, or a whole transition or upsert) and skips the rest with `memchr`.

use std::{collections::VecDeque, io, net::SocketAddr};

use chrono::{DateTime, Utc};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpSocket, TcpStream},
    time::Instant,
};

use crate::http::{parse_head, read_more};

/// How much of each line the parser keeps.
pub const LINE_CAP: usize = 4096;

/// One dispatched event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The `event:` name; `message` when none was given.
    pub event: String,
    /// The data, truncated to about [`LINE_CAP`] bytes.
    pub data: Vec<u8>,
    /// Whether `data` was truncated.
    pub truncated: bool,
    /// Bytes the event took on the wire, after de-chunking.
    pub bytes: u64,
    /// When the first byte of the event arrived.
    pub first_byte: Instant,
    /// When the blank line that completes the event arrived.
    pub at: Instant,
    /// The wall clock at `at`, to compare with timestamps the server put in the data.
    pub at_wall: DateTime<Utc>,
}

/// An open event stream.
#[derive(Debug)]
pub struct SseStream {
    stream: TcpStream,
    buf: Vec<u8>,
    parser: SseParser,
}

/// How much one read takes from the socket: large, because a watch `sync` is megabytes long.
const READ_CHUNK: usize = 64 * 1024;

/// Opens `GET path` on `addr` and checks for a `200` answer.
pub async fn subscribe(addr: SocketAddr, path: &str) -> io::Result<SseStream> {
    subscribe_with(addr, path, None).await
}

/// Opens `GET path` on `addr`, sending `Last-Event-ID` when given, and checks for a `200` answer.
pub async fn subscribe_with(
    addr: SocketAddr,
    path: &str,
    last_event_id: Option<&str>,
) -> io::Result<SseStream> {
    subscribe_opts(addr, path, last_event_id, None).await
}

/// Like [`subscribe_with`], with the socket's receive buffer set to `recv_buffer` bytes when given
/// (a small one makes a client that stops reading push back on the server at once).
pub async fn subscribe_opts(
    addr: SocketAddr,
    path: &str,
    last_event_id: Option<&str>,
    recv_buffer: Option<u32>,
) -> io::Result<SseStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let mut stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let resume = last_event_id
        .map(|id| format!("last-event-id: {id}\r\n"))
        .unwrap_or_default();
    let req =
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n{resume}\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let head = loop {
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        read_more(&mut stream, &mut buf).await?;
    };
    if head.status != 200 {
        return Err(io::Error::other(format!("stream answered {}", head.status)));
    }
    let mut parser = SseParser::new(head.chunked);
    parser.feed(&buf[head.head_len..], Instant::now());
    buf.clear();
    Ok(SseStream {
        stream,
        buf,
        parser,
    })
}

impl SseStream {
    /// Returns the next event, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> io::Result<Option<SseEvent>> {
        loop {
            if let Some(ev) = self.parser.ready.pop_front() {
                return Ok(Some(ev));
            }
            if self.parser.ended {
                return Ok(None);
            }
            self.buf.clear();
            match read_more(&mut self.stream, &mut self.buf).await {
                Ok(()) => self.parser.feed(&self.buf, Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => self.parser.ended = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads once from the socket and parses what came; returns the bytes read (0 at the end).
    pub async fn read_some(&mut self) -> io::Result<usize> {
        if self.parser.ended {
            return Ok(0);
        }
        self.buf.clear();
        match read_more(&mut self.stream, &mut self.buf).await {
            Ok(()) => {
                self.parser.feed(&self.buf, Instant::now());
                Ok(self.buf.len())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.parser.ended = true;
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Returns an event already parsed, without reading.
    pub fn pop(&mut self) -> Option<SseEvent> {
        self.parser.pop()
    }

    /// The id of the last event dispatched, as a browser would send it in `Last-Event-ID`.
    pub fn last_event_id(&self) -> Option<&str> {
        self.parser.last_event_id.as_deref()
    }
}

/// The byte-level parser, independent of I/O so that it can be tested on any split of the input.
#[derive(Debug)]
pub struct SseParser {
    dechunk: Option<Dechunk>,
    line: Vec<u8>,
    line_truncated: bool,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    truncated: bool,
    first_byte: Option<Instant>,
    event_bytes: u64,
    ready: VecDeque<SseEvent>,
    ended: bool,
    /// The `id:` of the event being read; it becomes `last_event_id` when the event ends.
    pending_id: Option<String>,
    last_event_id: Option<String>,
}

impl SseParser {
    /// Creates a parser for a body that is chunked or not.
    pub fn new(chunked: bool) -> Self {
        Self {
            dechunk: chunked.then(Dechunk::default),
            line: Vec::with_capacity(256),
            line_truncated: false,
            event: None,
            data: Vec::new(),
            has_data: false,
            truncated: false,
            first_byte: None,
            event_bytes: 0,
            ready: VecDeque::new(),
            ended: false,
            pending_id: None,
            last_event_id: None,
        }
    }

    /// Feeds raw body bytes that arrived at `now`.
    pub fn feed(&mut self, input: &[u8], now: Instant) {
        match self.dechunk.take() {
            Some(mut dechunk) => {
                let ended = dechunk.feed(input, |body| self.feed_body(body, now));
                self.ended |= ended;
                self.dechunk = Some(dechunk);
            }
            None => self.feed_body(input, now),
        }
    }

    /// Returns the next complete event, if any.
    pub fn pop(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    fn feed_body(&mut self, mut body: &[u8], now: Instant) {
        while !body.is_empty() {
            if self.first_byte.is_none() {
                self.first_byte = Some(now);
            }
            match memchr::memchr(b'\n', body) {
                Some(i) => {
                    self.event_bytes += i as u64 + 1;
                    self.push_line_bytes(&body[..i]);
                    self.end_line(now);
                    body = &body[i + 1..];
                }
                None => {
                    self.event_bytes += body.len() as u64;
                    self.push_line_bytes(body);
                    body = &[];
                }
            }
        }
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) {
        let room = LINE_CAP.saturating_sub(self.line.len());
        if bytes.len() > room {
            self.line_truncated = true;
        }
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn end_line(&mut self, now: Instant) {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let line_truncated = std::mem::take(&mut self.line_truncated);
        if line.is_empty() {
            self.dispatch(now);
        } else if line[0] == b':' {
            // A comment (keep-alive) is not part of any event.
            if !self.has_data && self.event.is_none() {
                self.first_byte = None;
                self.event_bytes = 0;
            }
        } else {
            let (field, value) = match memchr::memchr(b':', &line) {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &[][..]),
            };
            match field {
                b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
                b"id" => self.pending_id = Some(String::from_utf8_lossy(value).into_owned()),
                b"data" => {
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                    self.has_data = true;
                    self.truncated |= line_truncated;
                }
                _ => {}
            }
        }
        line.clear();
        self.line = line;
    }

    fn dispatch(&mut self, now: Instant) {
        // As in a browser, an id counts even for an event without data (a keep-alive with an id).
        if let Some(id) = self.pending_id.take() {
            self.last_event_id = Some(id);
        }
        let first_byte = self.first_byte.take().unwrap_or(now);
        let event = self.event.take();
        let bytes = std::mem::take(&mut self.event_bytes);
        if !std::mem::take(&mut self.has_data) {
            self.data.clear();
            self.truncated = false;
            return;
        }
        self.ready.push_back(SseEvent {
            event: event.unwrap_or_else(|| "message".to_owned()),
            data: std::mem::take(&mut self.data),
            truncated: std::mem::take(&mut self.truncated),
            bytes,
            first_byte,
            at: now,
            at_wall: Utc::now(),
        });
    }
}

/// Decodes `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
struct Dechunk {
    state: ChunkState,
    size: usize,
}

#[derive(Debug, Default, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    SizeLine,
    Data,
    DataEnd(u8),
    Done,
}

impl Dechunk {
    /// Feeds encoded bytes, handing decoded slices to `out`; returns whether the last chunk was seen.
    fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> bool {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let b = input[0];
                    input = &input[1..];
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let digit = (b as char).to_digit(16).unwrap_or(0) as usize;
                            self.size = self.size.saturating_mul(16).saturating_add(digit);
                        }
                        b'\n' => self.end_size(),
                        _ => self.state = ChunkState::SizeLine,
                    }
                }
                ChunkState::SizeLine => match memchr::memchr(b'\n', input) {
                    Some(i) => {
                        input = &input[i + 1..];
                        self.end_size();
                    }
                    None => input = &[],
                },
                ChunkState::Data => {
                    let n = self.size.min(input.len());
                    out(&input[..n]);
                    input = &input[n..];
                    self.size -= n;
                    if self.size == 0 {
                        self.state = ChunkState::DataEnd(2);
                    }
                }
                ChunkState::DataEnd(left) => {
                    input = &input[1..];
                    self.state = if left > 1 {
                        ChunkState::DataEnd(left - 1)
                    } else {
                        ChunkState::Size
                    };
                }
                ChunkState::Done => return true,
            }
        }
        matches!(self.state, ChunkState::Done)
    }

    fn end_size(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Done
        } else {
            ChunkState::Data
        };
    }
}

/// Extracts the first unsigned integer after `"key":` from the start of some JSON.
pub fn json_u64(data: &[u8], key: &str) -> Option<u64> {
    let mut pattern = Vec::with_capacity(key.len() + 3);
    pattern.push(b'"');
    pattern.extend_from_slice(key.as_bytes());
    pattern.extend_from_slice(b"\":");
    let start = memchr::memmem::find(data, &pattern)? + pattern.len();
    let digits = data[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&data[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

/// Extracts the first string value of `"key":"…"` from some JSON (no escapes expected).
pub fn json_str<'a>(data: &'a [u8], key: &str) -> Option<&'a str> {
    let mut pattern = Vec::with_capacity(key.len() + 4);
    pattern.push(b'"');
    pattern.extend_from_slice(key.as_bytes());
    pattern.extend_from_slice(b"\":\"");
    let start = memchr::memmem::find(data, &pattern)? + pattern.len();
    let len = memchr::memchr(b'"', &data[start..])?;
    std::str::from_utf8(&data[start..start + len]).ok()
}

/// Extracts the `"timestamp"` of a snapshot from the start of its JSON.
pub fn snapshot_timestamp(data: &[u8]) -> Option<DateTime<Utc>> {
    const KEY: &[u8] = b"\"timestamp\":\"";
    let start = memchr::memmem::find(data, KEY)? + KEY.len();
    let len = memchr::memchr(b'"', &data[start..])?;
    let text = std::str::from_utf8(&data[start..start + len]).ok()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(body: &str) -> String {
        format!("{:x}\r\n{body}\r\n", body.len())
    }

    fn all_events(input: &[u8], chunked: bool, step: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new(chunked);
        for piece in input.chunks(step) {
            p.feed(piece, Instant::now());
        }
        std::iter::from_fn(|| p.pop()).collect()
    }

    #[test]
    fn parses_chunked_events_split_anywhere() {
        let body = format!(
            "{}{}{}{}0\r\n\r\n",
            chunk("retry: 1000\n\n"),
            chunk(
                "event: heartbeat\nid: 1\ndata: {\"seq\":1,\"timestamp\":\"2026-11-28T15:00:05Z\"}\n\n"
            ),
            chunk(": keep-alive\n\n"),
            chunk("event: transition\ndata: {\"id\":\"w1\"}\n\n"),
        );
        for step in [1, 2, 3, 7, 64, body.len()] {
            let events = all_events(body.as_bytes(), true, step);
            assert_eq!(events.len(), 2, "step {step}");
            assert_eq!(events[0].event, "heartbeat");
            let ts = snapshot_timestamp(&events[0].data).unwrap();
            assert_eq!(ts.to_rfc3339(), "2026-11-28T15:00:05+00:00");
            assert_eq!(events[1].event, "transition");
            assert_eq!(events[1].data, b"{\"id\":\"w1\"}");
        }
    }

    #[test]
    fn long_lines_are_truncated_not_buffered() {
        let long = "x".repeat(LINE_CAP * 3);
        let body = format!(
            "data: {{\"seq\":2,\"timestamp\":\"2026-11-28T15:00:05Z\",\"pad\":\"{long}\"}}\n\n"
        );
        let events = all_events(body.as_bytes(), false, 1000);
        assert_eq!(events.len(), 1);
        assert!(events[0].truncated);
        assert!(events[0].data.len() <= LINE_CAP);
        assert_eq!(events[0].event, "message");
        assert!(snapshot_timestamp(&events[0].data).is_some());
    }

    #[test]
    fn ids_survive_data_less_events_and_fields_are_found() {
        let body = "event: sync\nid: e1:7\ndata: {\"epoch\":\"e1\",\"revision\":7,\"workers\":[]}\n\n\
                    : keep-alive\nid: e1:9\n\n";
        let mut p = SseParser::new(false);
        p.feed(body.as_bytes(), Instant::now());
        let sync = p.pop().unwrap();
        assert_eq!(sync.event, "sync");
        assert_eq!(json_u64(&sync.data, "revision"), Some(7));
        assert_eq!(json_str(&sync.data, "epoch"), Some("e1"));
        assert_eq!(json_u64(&sync.data, "missing"), None);
        assert!(p.pop().is_none());
        assert_eq!(p.last_event_id.as_deref(), Some("e1:9"));
    }

    #[test]
    fn last_chunk_ends_the_stream() {
        let mut p = SseParser::new(true);
        p.feed(b"0\r\n\r\n", Instant::now());
        assert!(p.ended);
    }
}
