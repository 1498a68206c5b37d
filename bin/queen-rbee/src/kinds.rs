//! The kinds of sender the queen tracks, in one list.
//!
//! Everything that must handle every kind (registries, expiry, metrics, routes, OpenAPI,
//! snapshots, the watch) goes through [`for_each_kind`] or [`Registries::get`]. Adding a kind
//! means a contract crate, a `Kind` variant, an impl of [`Registered`] and one arm in each of
//! the two matches below; the compiler points at every match that is still missing it.

use heartbeat_registry::{Registry, RegistryConfig, Sink};
use hive_contract::{HiveHeartbeat, HiveInfo};
use shared_contract::{Heartbeat, HeartbeatBody, Kind};
use worker_contract::{WorkerHeartbeat, WorkerInfo};

/// A payload type the queen keeps a registry of.
pub(crate) trait Registered: Heartbeat + utoipa::ToSchema {
    /// The request body that carries it.
    type Body: HeartbeatBody<Payload = Self> + utoipa::ToSchema;
    /// The plural used in routes and JSON keys: `workers`, `hives`.
    const PLURAL: &'static str;
    /// The ingest route: `/v1/worker-heartbeat`.
    const INGEST_PATH: &'static str;
    /// Returns this kind's registry.
    fn registry(registries: &Registries) -> &Registry<Self>;
}

impl Registered for WorkerInfo {
    type Body = WorkerHeartbeat;
    const PLURAL: &'static str = "workers";
    const INGEST_PATH: &'static str = "/v1/worker-heartbeat";
    fn registry(registries: &Registries) -> &Registry<Self> {
        &registries.workers
    }
}

impl Registered for HiveInfo {
    type Body = HiveHeartbeat;
    const PLURAL: &'static str = "hives";
    const INGEST_PATH: &'static str = "/v1/hive-heartbeat";
    fn registry(registries: &Registries) -> &Registry<Self> {
        &registries.hives
    }
}

/// Something done once per kind.
pub(crate) trait EachKind {
    /// Called once for each kind, in [`Kind::ALL`] order.
    fn kind<T: Registered>(&mut self);
}

/// Calls `visitor` once per kind.
pub(crate) fn for_each_kind(visitor: &mut impl EachKind) {
    for kind in Kind::ALL {
        match kind {
            Kind::Worker => visitor.kind::<WorkerInfo>(),
            Kind::Hive => visitor.kind::<HiveInfo>(),
        }
    }
}

/// Makes the sink of one kind's registry.
pub(crate) trait MakeSink {
    /// Returns the sink for kind `T`.
    fn sink<T: Registered>(&self) -> Sink<T>;
}

/// One registry per kind.
#[derive(Debug)]
pub(crate) struct Registries {
    workers: Registry<WorkerInfo>,
    hives: Registry<HiveInfo>,
}

impl Registries {
    /// Creates every kind's registry, each with its sink.
    pub(crate) fn new(config: RegistryConfig, sinks: &impl MakeSink) -> Self {
        Self {
            workers: Registry::with_sink(config, sinks.sink::<WorkerInfo>()),
            hives: Registry::with_sink(config, sinks.sink::<HiveInfo>()),
        }
    }

    /// Returns kind `T`'s registry.
    pub(crate) fn get<T: Registered>(&self) -> &Registry<T> {
        T::registry(self)
    }
}
