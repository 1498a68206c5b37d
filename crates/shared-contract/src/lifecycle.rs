//! Lifecycle status and health reported by senders, and the liveness state the queen derives.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The lifecycle a hive or worker reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Booting; not yet able to take work.
    Starting,
    /// Idle and able to take work.
    Ready,
    /// Working at capacity.
    Busy,
    /// Finishing current work, refusing new work.
    Draining,
    /// Shutting down gracefully.
    Stopping,
    /// Shut down.
    Stopped,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::Starting,
        Status::Ready,
        Status::Busy,
        Status::Draining,
        Status::Stopping,
        Status::Stopped,
    ];

    /// Returns the lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Ready => "ready",
            Status::Busy => "busy",
            Status::Draining => "draining",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
        }
    }

    /// Returns whether this status announces a graceful exit (`stopping` or `stopped`).
    pub fn is_leaving(self) -> bool {
        matches!(self, Status::Stopping | Status::Stopped)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Health as reported by the sender; `degraded` and `unhealthy` carry a reason.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "lowercase", from = "HealthWire")]
pub enum Health {
    /// Working normally.
    #[default]
    Healthy,
    /// Working, but with a problem worth showing.
    Degraded {
        /// What is wrong.
        #[serde(default)]
        #[schema(max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
        reason: String,
    },
    /// Not able to serve.
    Unhealthy {
        /// What is wrong.
        #[serde(default)]
        #[schema(max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
        reason: String,
    },
}

/// How [`Health`] is decoded: the same object read as a flat struct, which serde decodes in
/// one pass instead of buffering every field to find the `status` tag first (ingest's hot path).
#[derive(Deserialize)]
struct HealthWire {
    status: HealthStatus,
    #[serde(default)]
    reason: String,
}

impl From<HealthWire> for Health {
    fn from(wire: HealthWire) -> Self {
        let reason = wire.reason;
        match wire.status {
            HealthStatus::Healthy => Health::Healthy,
            HealthStatus::Degraded => Health::Degraded { reason },
            HealthStatus::Unhealthy => Health::Unhealthy { reason },
        }
    }
}

impl Health {
    /// Returns the health status without its reason.
    pub fn status(&self) -> HealthStatus {
        match self {
            Health::Healthy => HealthStatus::Healthy,
            Health::Degraded { .. } => HealthStatus::Degraded,
            Health::Unhealthy { .. } => HealthStatus::Unhealthy,
        }
    }

    /// Returns the reason, if the health carries one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Degraded { reason } | Health::Unhealthy { reason } => Some(reason),
        }
    }
}

/// The health status alone, for comparisons and metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// See [`Health::Healthy`].
    Healthy,
    /// See [`Health::Degraded`].
    Degraded,
    /// See [`Health::Unhealthy`].
    Unhealthy,
}

/// Liveness as judged by the queen on its own monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A heartbeat was received within the timeout.
    Online,
    /// No heartbeat within the timeout: crashed, frozen or cut off.
    Offline,
    /// The last heartbeat announced a graceful exit.
    Left,
}

impl State {
    /// Every state.
    pub const ALL: [State; 3] = [State::Online, State::Offline, State::Left];

    /// Returns the lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Online => "online",
            State::Offline => "offline",
            State::Left => "left",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a transition leads: a state, or out of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// See [`State::Online`].
    Online,
    /// See [`State::Offline`].
    Offline,
    /// See [`State::Left`].
    Left,
    /// The entry was deleted or its retention ran out.
    Removed,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [
        Target::Online,
        Target::Offline,
        Target::Left,
        Target::Removed,
    ];

    /// Returns the lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Online => "online",
            Target::Offline => "offline",
            Target::Left => "left",
            Target::Removed => "removed",
        }
    }
}

impl From<State> for Target {
    fn from(state: State) -> Self {
        match state {
            State::Online => Target::Online,
            State::Offline => Target::Offline,
            State::Left => Target::Left,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_uses_a_status_tag() {
        let h: Health =
            serde_json::from_str(r#"{"status":"degraded","reason":"low memory"}"#).unwrap();
        assert_eq!(h.status(), HealthStatus::Degraded);
        assert_eq!(h.reason(), Some("low memory"));
        assert_eq!(
            serde_json::to_string(&Health::Healthy).unwrap(),
            r#"{"status":"healthy"}"#
        );
        assert!(serde_json::from_str::<Health>(r#"{"status":"sick"}"#).is_err());
        assert!(serde_json::from_str::<Health>(r#"{"reason":"x"}"#).is_err());
        let h: Health = serde_json::from_str(r#"{"reason":"gone","status":"unhealthy"}"#).unwrap();
        assert_eq!(h.reason(), Some("gone"));
        let h: Health = serde_json::from_str(r#"{"status":"degraded"}"#).unwrap();
        assert_eq!(h.reason(), Some(""));
        let h: Health = serde_json::from_str(r#"{"status":"healthy","reason":"x"}"#).unwrap();
        assert_eq!(h, Health::Healthy);
    }

    #[test]
    fn status_names_are_lowercase() {
        for s in Status::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), s);
        }
        assert!(serde_json::from_str::<Status>("\"Ready\"").is_err());
    }
}
