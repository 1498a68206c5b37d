//! How a change and the meta key are written as etcd values.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Change;

/// The value of a `log/{revision}` key, as written.
#[derive(Serialize)]
struct LogValue<'a> {
    revision: u64,
    kind: &'a str,
    id: &'a str,
    kept: Option<&'a str>,
    transition: Option<&'a str>,
    frame: &'a str,
}

/// The value of a `log/{revision}` key, as read back (escaped strings cannot be borrowed).
#[derive(Deserialize)]
struct LogValueOwned {
    revision: u64,
    kind: String,
    id: String,
    kept: Option<String>,
    transition: Option<String>,
    frame: String,
}

/// The value of the `meta` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) epoch: String,
    pub(crate) revision: u64,
}

pub(crate) fn encode_change(change: &Change) -> Vec<u8> {
    let value = LogValue {
        revision: change.revision,
        kind: &change.kind,
        id: &change.id,
        kept: change.kept.as_deref(),
        transition: change.transition.as_deref(),
        // Frames are SSE text; a frame that is not UTF-8 cannot be served anyway.
        frame: std::str::from_utf8(&change.frame).unwrap_or_default(),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

pub(crate) fn decode_change(bytes: &[u8]) -> Option<Change> {
    let value: LogValueOwned = serde_json::from_slice(bytes).ok()?;
    Some(Change {
        revision: value.revision,
        kind: value.kind,
        id: value.id,
        kept: value.kept,
        transition: value.transition,
        frame: Bytes::from(value.frame),
    })
}

pub(crate) fn encode_meta(meta: &Meta) -> Vec<u8> {
    serde_json::to_vec(meta).unwrap_or_default()
}

pub(crate) fn decode_meta(bytes: &[u8]) -> Option<Meta> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_round_trips() {
        let change = Change {
            revision: 7,
            kind: "worker".to_owned(),
            id: "w-1".to_owned(),
            kept: Some(r#"{"state":"online"}"#.to_owned()),
            transition: None,
            frame: Bytes::from_static(b"event: upsert\nid: e:7\ndata: {\"a\":\"\\n\"}\n\n"),
        };
        assert_eq!(decode_change(&encode_change(&change)), Some(change));
        assert_eq!(decode_change(b"not json"), None);
    }
}
