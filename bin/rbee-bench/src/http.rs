//! A minimal HTTP/1.1 keep-alive client connection.
//!
//! The load generator must cost far less CPU than the server it measures, or the ratio would measure the
//! generator. So each request is one pre-built buffer written in one call, and a response is read with one
//! small parser that only looks for the status and the body length.

use std::{io, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// One keep-alive connection that reconnects when the server closes it.
#[derive(Debug)]
pub struct HttpConn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Where the last response's body lies in `buf`.
    body: std::ops::Range<usize>,
}

/// The parts of a response head the bench needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Bytes up to and including the blank line.
    pub head_len: usize,
    /// The `content-length`, if given.
    pub content_length: Option<usize>,
    /// Whether the body is chunked.
    pub chunked: bool,
    /// Whether the server will close the connection after this response.
    pub close: bool,
}

impl HttpConn {
    /// Creates a connection to `addr`; it connects on first use.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
            body: 0..0,
        }
    }

    /// Sends one complete request and returns the response status once the whole body has arrived.
    pub async fn request(&mut self, req: &[u8]) -> io::Result<u16> {
        let reused = self.stream.is_some();
        match self.try_request(req).await {
            Ok(status) => Ok(status),
            Err(_) if reused => {
                // The server may have closed an idle keep-alive connection: retry once on a fresh one.
                self.stream = None;
                let r = self.try_request(req).await;
                if r.is_err() {
                    self.stream = None;
                }
                r
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    /// The body of the last response [`HttpConn::request`] returned a status for.
    pub fn body(&self) -> &[u8] {
        self.buf.get(self.body.clone()).unwrap_or_default()
    }

    async fn try_request(&mut self, req: &[u8]) -> io::Result<u16> {
        self.body = 0..0;
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(req).await?;
        self.buf.clear();
        let head = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            read_more(stream, &mut self.buf).await?;
        };
        if head.chunked {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "chunked responses are not expected on ingest",
            ));
        }
        let total = head.head_len + head.content_length.unwrap_or(0);
        while self.buf.len() < total {
            read_more(stream, &mut self.buf).await?;
        }
        if head.close {
            self.stream = None;
        }
        self.body = head.head_len..total;
        Ok(head.status)
    }
}

/// Sends `GET path` to `addr` on a fresh connection and returns the status and the body.
pub async fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut conn = HttpConn::new(addr);
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    let status = conn.request(req.as_bytes()).await?;
    Ok((status, conn.body().to_vec()))
}

/// Parses a response head once `buf` holds all of it; `None` means more bytes are needed.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<ResponseHead>> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err(invalid("response head over 64 KiB"));
        }
        return Ok(None);
    };
    let text =
        std::str::from_utf8(&buf[..end]).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut head = ResponseHead {
        status,
        head_len: end + 4,
        content_length: None,
        chunked: false,
        close: status_line.starts_with("HTTP/1.0"),
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(value.parse().map_err(|_| invalid("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some(head))
}

/// Reads at least one more byte into `buf`; end of stream is an error.
pub(crate) async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "server closed the connection",
        ));
    }
    Ok(())
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_length_and_connection() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"status\":\"ok\"}..";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.content_length, Some(17));
        assert_eq!(&raw[head.head_len..head.head_len + 2], b"{\"");
        assert!(!head.chunked && !head.close);
    }

    #[test]
    fn incomplete_head_needs_more_bytes() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
    }

    #[test]
    fn chunked_and_close_are_seen() {
        let raw = b"HTTP/1.1 429 Too Many Requests\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 429);
        assert!(head.chunked && head.close);
    }
}
