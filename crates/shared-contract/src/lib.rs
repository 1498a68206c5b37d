//! Wire types shared by the hive and worker contracts and by everything that reads the queen's output.
//!
//! Decoding (serde) and validation are separate steps on purpose: a body that does not decode is a
//! `400`, a body that decodes but breaks a rule (an id with a space, port 0) is a `422`.

#![warn(missing_docs)]

mod heartbeat;
mod id;
mod lifecycle;
mod schema;
mod snapshot;
mod timestamp;
mod url;
mod validate;

pub use heartbeat::{
    ApiErrorBody, ApiErrorDetail, Difference, Heartbeat, HeartbeatAck, HeartbeatBody, Kind, Kinded,
};
pub use id::Id;
pub use lifecycle::{Health, HealthStatus, State, Status, Target};
pub use schema::{ID_PATTERN, TEXT_PATTERN};
pub use snapshot::{Entry, Snapshot, Transition};
pub use timestamp::{TimestampError, deserialize_timestamp, parse_timestamp};
pub use url::join_url;
pub use validate::{
    MAX_ID_LEN, ValidationError, check_id, check_optional_text, check_text, is_valid_id,
};

/// Timestamps on the wire: RFC 3339, any offset accepted, emitted as UTC with `Z`.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
