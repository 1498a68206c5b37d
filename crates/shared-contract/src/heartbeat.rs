//! The traits every heartbeat payload implements, and the queen's acknowledgement and error bodies.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::ToSchema;

use crate::{Health, Status, Timestamp, ValidationError};

/// Which registry a payload belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An `llm-worker` process.
    Worker,
    /// An `rbee-hive` machine.
    Hive,
}

impl Kind {
    /// Every kind, in the order the queen lists them.
    pub const ALL: [Kind; 2] = [Kind::Worker, Kind::Hive];

    /// Returns the lowercase name, which is also the payload's field name in bodies and entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Worker => "worker",
            Kind::Hive => "hive",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A type that knows which registry it belongs to; implemented through `Arc` and `&` too so
/// that entries can be serialized from shared payloads without copying them.
pub trait Kinded {
    /// The registry this payload belongs to.
    const KIND: Kind;
}

impl<T: Kinded + ?Sized> Kinded for Arc<T> {
    const KIND: Kind = T::KIND;
}

impl<T: Kinded + ?Sized> Kinded for &T {
    const KIND: Kind = T::KIND;
}

/// The payload of a heartbeat (`worker` or `hive` object): what the generic registry needs to know.
pub trait Heartbeat:
    Kinded + Serialize + DeserializeOwned + Clone + PartialEq + fmt::Debug + Send + Sync + 'static
{
    /// Returns the sender's id (validated by [`Heartbeat::validate`]).
    fn id(&self) -> &str;
    /// Returns when the sending process started; a change marks a new incarnation.
    fn started_at(&self) -> Timestamp;
    /// Returns the reported lifecycle status.
    fn status(&self) -> Status;
    /// Returns the reported health.
    fn health(&self) -> &Health;
    /// Checks every rule beyond decoding: id syntax, lengths, port range.
    fn validate(&self) -> Result<(), ValidationError>;
    /// Compares this payload with the previous one of the same entry, for the change log.
    ///
    /// Payloads without usage figures differ materially whenever they differ at all.
    fn difference(&self, previous: &Self) -> Difference {
        if self == previous {
            Difference::None
        } else {
            Difference::Material
        }
    }
}

/// How a heartbeat's payload differs from the previous one of the same entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// Nothing changed.
    None,
    /// Only usage figures changed (a hive's free memory, say): they make a revision at most once
    /// per snapshot interval, so that a busy machine does not flood every watcher.
    Usage,
    /// Something a watcher must see changed.
    Material,
}

/// A whole heartbeat request body: the payload plus the sender's timestamp.
pub trait HeartbeatBody: Serialize + DeserializeOwned + Send + 'static {
    /// The payload type.
    type Payload: Heartbeat;
    /// Wraps a payload stamped with the sender's clock.
    fn new(payload: Self::Payload, timestamp: Timestamp) -> Self;
    /// Returns the payload.
    fn payload(&self) -> &Self::Payload;
    /// Splits the body into payload and sender timestamp.
    fn into_parts(self) -> (Self::Payload, Timestamp);
}

/// The queen's answer to a valid heartbeat; senders adopt `next_heartbeat_ms` as their interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatAck {
    /// Always `ok`.
    pub status: String,
    /// A human-readable confirmation.
    pub message: String,
    /// The interval the queen asks of the sender, in milliseconds.
    pub next_heartbeat_ms: u64,
}

impl HeartbeatAck {
    /// Builds the acknowledgement for a heartbeat of `kind` from `id`.
    pub fn ok(kind: Kind, id: &str, next_heartbeat_ms: u64) -> Self {
        Self {
            status: "ok".to_owned(),
            message: format!("heartbeat received from {kind} {id}"),
            next_heartbeat_ms,
        }
    }
}

/// Every error the queen returns: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorBody {
    /// The error.
    pub error: ApiErrorDetail,
}

/// The inside of [`ApiErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorDetail {
    /// A stable machine-readable code such as `invalid_json`.
    pub code: String,
    /// A precise human-readable message.
    pub message: String,
}
