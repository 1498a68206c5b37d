//! What a daemon plugs into the sender: the payload it wants to report right now.

use std::{future::Future, time::Duration};

use shared_contract::HeartbeatBody;

/// Produces the payloads a daemon reports; the sender owns it and calls it once per beat.
pub trait PayloadSource: Send + 'static {
    /// The request body type, which fixes the payload type and the queen route.
    type Body: HeartbeatBody;

    /// Returns the payload for the next heartbeat.
    ///
    /// Called right before each beat, so it may refresh data (system figures, a backend probe);
    /// `interval` is the current pace and bounds how long such work may take.
    fn current(
        &mut self,
        interval: Duration,
    ) -> impl Future<Output = <Self::Body as HeartbeatBody>::Payload> + Send;

    /// Returns the final payload, which announces the graceful exit (status `stopping`).
    fn stopping(&mut self) -> <Self::Body as HeartbeatBody>::Payload;
}
