//! Reads Server-Sent Events from a stream of body chunks (such as reqwest's `bytes_stream()`).
//!
//! Parsing is `eventsource-stream`'s, which follows the HTML specification: it joins `data:`
//! lines, keeps the last `id:` across events, ignores comments, and decodes UTF-8 across chunk
//! boundaries. Two of its rules matter to rbee's streams:
//!
//! - A block without `data:` dispatches nothing. The queen's keep-alive (a comment plus `id:`)
//!   and its opening `retry:` block are therefore invisible; the keep-alive's id only becomes the
//!   id of the next event.
//! - `retry:` reaches the caller only on an event that also has data.
//!
//! What this crate adds is [`WholeLines`]: `eventsource-stream` re-scans its whole pending
//! buffer on every chunk, so a multi-megabyte `data:` line (a `sync` of 10,000 workers) arriving
//! in 16 KiB chunks costs time quadratic in its length (over a minute in a debug build). Handing
//! it whole lines only keeps the cost linear.

#![warn(missing_docs)]

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Bytes, BytesMut};
use eventsource_stream::{EventStream, Eventsource as _};
use futures_util::Stream;

/// Returns the events of an SSE body given as a stream of chunks.
pub fn events<S, E>(body: S) -> EventStream<WholeLines<S>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    WholeLines::new(body).eventsource()
}

/// Regroups body chunks so that each one it yields ends at a line break (`\n` or `\r`), except
/// a final unterminated remainder.
///
/// Line breaks are ASCII bytes, which never occur inside a multi-byte UTF-8 character, so every
/// chunk it yields is also whole UTF-8 when the body is.
#[derive(Debug)]
pub struct WholeLines<S> {
    inner: Pin<Box<S>>,
    pending: BytesMut,
    done: bool,
}

impl<S> WholeLines<S> {
    /// Wraps a stream of chunks.
    pub fn new(inner: S) -> Self {
        Self {
            inner: Box::pin(inner),
            pending: BytesMut::new(),
            done: false,
        }
    }
}

impl<S, E> Stream for WholeLines<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    let Some(end) = memchr::memrchr2(b'\n', b'\r', &chunk) else {
                        this.pending.extend_from_slice(&chunk);
                        continue;
                    };
                    let lines = if this.pending.is_empty() {
                        chunk.slice(..=end)
                    } else {
                        this.pending.extend_from_slice(&chunk[..=end]);
                        this.pending.split().freeze()
                    };
                    this.pending.extend_from_slice(&chunk[end + 1..]);
                    return Poll::Ready(Some(Ok(lines)));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    this.done = true;
                    if !this.pending.is_empty() {
                        return Poll::Ready(Some(Ok(this.pending.split().freeze())));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, time::Instant};

    use futures_util::{StreamExt as _, stream};

    use super::*;

    fn chunked(body: &[u8], size: usize) -> impl Stream<Item = Result<Bytes, Infallible>> {
        let chunks: Vec<_> = body
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        stream::iter(chunks)
    }

    async fn collect(body: &[u8], size: usize) -> Vec<eventsource_stream::Event> {
        events(chunked(body, size))
            .map(|e| e.expect("a well-formed stream"))
            .collect()
            .await
    }

    #[tokio::test]
    async fn every_split_gives_the_same_events() {
        let body = "retry: 2000\n\nevent: sync\nid: e:1\ndata: {\"name\":\"Grüße ✓ 🐝\"}\n\n\
                    : keep-alive\nid: e:1\n\n\
                    event: upsert\r\nid: e:2\r\ndata: a\r\ndata: b\r\n\r\n\
                    data: plain\n\n";
        let whole = collect(body.as_bytes(), body.len()).await;
        assert_eq!(whole.len(), 3, "{whole:?}");
        assert_eq!(whole[0].event, "sync");
        assert_eq!(whole[0].id, "e:1");
        assert_eq!(whole[0].data, "{\"name\":\"Grüße ✓ 🐝\"}");
        assert_eq!(whole[1].event, "upsert");
        assert_eq!(whole[1].data, "a\nb");
        assert_eq!(whole[2].event, "message");
        // The spec keeps the last id for events that carry none.
        assert_eq!(whole[2].id, "e:2");
        for size in 1..body.len() {
            assert_eq!(
                collect(body.as_bytes(), size).await,
                whole,
                "chunks of {size}"
            );
        }
    }

    #[tokio::test]
    async fn a_keep_alive_with_an_id_dispatches_nothing() {
        let got = collect(b"retry: 2000\n\n: keep-alive\nid: e:9\n\n", 5).await;
        assert!(got.is_empty(), "{got:?}");
    }

    #[tokio::test]
    async fn chunks_end_at_line_breaks_and_the_tail_comes_last() {
        let chunks: Vec<Result<Bytes, Infallible>> = vec![
            Ok(Bytes::from_static(b"data: x\n")),
            Ok(Bytes::from_static(b"\ndata: y")),
        ];
        let out: Vec<Bytes> = WholeLines::new(stream::iter(chunks))
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(
            out,
            vec![
                Bytes::from_static(b"data: x\n"),
                Bytes::from_static(b"\n"),
                Bytes::from_static(b"data: y")
            ]
        );
    }

    #[tokio::test]
    async fn a_long_line_in_small_chunks_parses_in_linear_time() {
        // 4 MiB in 16 KiB chunks: without whole lines this takes over a minute in a debug build.
        let data = "x".repeat(4 << 20);
        let body = format!("event: sync\ndata: {data}\n\n");
        let started = Instant::now();
        let got = collect(body.as_bytes(), 16 << 10).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data.len(), data.len());
        assert!(
            started.elapsed().as_secs() < 20,
            "took {:?}",
            started.elapsed()
        );
    }
}
