//! The `listening on http://IP:PORT` line: how a server announces its address, and how the
//! programs and tests that start it find the address again.

use std::{fmt, net::SocketAddr};

const PREFIX: &str = "listening on http://";

/// Formats as `listening on http://IP:PORT`; log it at info once the listener is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening(pub SocketAddr);

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.0)
    }
}

/// Returns the address in a line that contains `listening on http://IP:PORT`, wherever the
/// phrase sits in the line (after a log prefix, before other fields).
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(PREFIX)? + PREFIX.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Returns the address of the first line of `text` that [`parse_listening`] accepts.
pub fn find_listening(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(parse_listening)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_round_trips() {
        let addr: SocketAddr = "127.0.0.1:43121".parse().unwrap();
        let line = format!("2026-11-28T15:00:00Z  INFO queen_rbee: {}", Listening(addr));
        assert_eq!(parse_listening(&line), Some(addr));
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(parse_listening(&Listening(v6).to_string()), Some(v6));
    }

    #[test]
    fn the_address_ends_where_the_line_moves_on() {
        let log =
            "2026-11-29T05:00:00Z  INFO queen_rbee: listening on http://127.0.0.1:41234 addr=x";
        assert_eq!(
            parse_listening(log),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(
            parse_listening("listening on http://[::1]:80/ now"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_listening("listening on http://127.0.0.1:9,\"x\""),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(parse_listening("listening on http://nope"), None);
        assert_eq!(parse_listening("starting"), None);
    }

    #[test]
    fn the_first_listening_line_of_a_log_wins() {
        let text = "starting\nceiling server listening on http://127.0.0.1:9\nlistening on http://127.0.0.1:10\n";
        assert_eq!(find_listening(text), Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(find_listening("starting\n"), None);
    }
}
