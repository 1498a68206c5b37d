//! Strict RFC 3339 decoding for the timestamps senders supply.
//!
//! chrono's own serde decoder also accepts extended years such as `+12026-…`, and an offset can move
//! `0000-01-01T00:30:00+01:00` to year -1 in UTC. Either would be stored and later written back in a
//! form that is not RFC 3339, breaking every client that reads the queen's output, so such values
//! are refused when the body is decoded (a `400`, like any other bad timestamp).

use std::borrow::Cow;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Deserializer};

use crate::Timestamp;

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not RFC 3339 text.
    #[error("not an RFC 3339 timestamp")]
    Syntax,
    /// Outside the years 0000-9999 once converted to UTC, so it could not be written back.
    #[error("timestamp is out of range (years 0000-9999 in UTC)")]
    OutOfRange,
}

/// Parses RFC 3339 text (any offset) into a UTC timestamp that can be written back as RFC 3339.
pub fn parse_timestamp(s: &str) -> Result<Timestamp, TimestampError> {
    let parsed = DateTime::parse_from_rfc3339(s).map_err(|_| TimestampError::Syntax)?;
    let utc = parsed.with_timezone(&Utc);
    if (0..=9999).contains(&utc.year()) {
        Ok(utc)
    } else {
        Err(TimestampError::OutOfRange)
    }
}

/// A serde `deserialize_with` function for sender-supplied timestamps, see [`parse_timestamp`].
pub fn deserialize_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Timestamp, D::Error> {
    let s = <Cow<'de, str>>::deserialize(deserializer)?;
    parse_timestamp(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_offset_and_refuses_what_cannot_be_written_back() {
        let t = parse_timestamp("2026-11-28T16:00:05+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-28T15:00:05+00:00");
        assert!(parse_timestamp("0000-01-01T00:00:00Z").is_ok());
        assert_eq!(
            parse_timestamp("0000-01-01T00:30:00+01:00"),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59-23:59"),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            parse_timestamp("+12026-11-28T15:00:00Z"),
            Err(TimestampError::Syntax)
        );
        assert_eq!(
            parse_timestamp("2026-11-28T15:00:00"),
            Err(TimestampError::Syntax)
        );
    }
}
