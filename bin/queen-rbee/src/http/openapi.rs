//! `GET /v1/openapi.json`: an OpenAPI 3.1 description of every route, with schemas generated from
//! the contract types so that the document cannot drift from what the queen decodes and encodes.

use axum::{http::header, response::IntoResponse};
use hive_contract::HiveInfo;
use shared_contract::{ApiErrorBody, Entry, HeartbeatAck, Id, Snapshot, Transition};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ArrayBuilder, ComponentsBuilder, Content, ContentBuilder, InfoBuilder, KnownFormat,
        ObjectBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Response,
        ResponseBuilder, Schema, SchemaFormat, Type,
        path::{OperationBuilder, ParameterBuilder, ParameterIn, PathItem},
        request_body::RequestBodyBuilder,
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};
use worker_contract::WorkerInfo;

use crate::{
    cluster::ClusterView,
    error::ApiError,
    kinds::{EachKind, Registered, for_each_kind},
};

/// The name of the bearer-token security scheme in the document.
const BEARER: &str = "bearer";

/// Serves the document; like every data route it needs the token when one is configured.
pub(super) async fn serve() -> Result<impl IntoResponse, ApiError> {
    let json = document().to_json().map_err(|error| {
        tracing::error!(%error, "cannot serialize the openapi document");
        ApiError::Internal
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json))
}

/// Builds the whole document from [`super::routes`], the list the router is built from too.
pub(crate) fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in super::routes() {
        paths = paths.path(route.path, PathItem::new(route.method, route.doc));
    }
    let mut schemas = Vec::new();
    struct Collect<'a>(&'a mut Vec<(String, RefOr<Schema>)>);
    impl EachKind for Collect<'_> {
        fn kind<T: Registered>(&mut self) {
            collect::<T::Body>(self.0);
            collect::<Entry<T>>(self.0);
        }
    }
    for_each_kind(&mut Collect(&mut schemas));
    collect::<HeartbeatAck>(&mut schemas);
    collect::<ApiErrorBody>(&mut schemas);
    collect::<Snapshot<WorkerInfo, HiveInfo>>(&mut schemas);
    collect::<Transition>(&mut schemas);
    collect::<ClusterView>(&mut schemas);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("queen-rbee")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The rbee orchestrator: heartbeat ingest, hive and worker registries, \
                     snapshots, the summary stream, the watch stream and transitions.",
                )),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

pub(super) fn dashboard() -> OperationBuilder {
    open("dashboard", "The live dashboard page; it holds no data")
        .response("200", text("the page", "text/html"))
}

pub(super) fn health() -> OperationBuilder {
    open(
        "health",
        "Answers while the queen is serving; never needs a token",
    )
    .response(
        "200",
        json(
            "serving",
            ObjectBuilder::new()
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["ok"])),
                )
                .required("status")
                .property(
                    "store",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["ok", "failing", "none"]))
                        .description(Some(
                            "whether the kept state is written (ok), writes fail (failing) or nothing is kept (none)",
                        )),
                )
                .required("store"),
        ),
    )
}

pub(super) fn metrics() -> OperationBuilder {
    guarded("metrics", "Prometheus text exposition")
        .response("200", text("the metrics", "text/plain"))
}

pub(super) fn openapi() -> OperationBuilder {
    guarded("openapi", "This document").response(
        "200",
        json(
            "the document",
            ObjectBuilder::new().schema_type(Type::Object),
        ),
    )
}

pub(super) fn snapshot() -> OperationBuilder {
    guarded(
        "snapshot",
        "The current fleet: the summary, every entry, and the epoch and revision it shows",
    )
    .response(
        "200",
        json(
            "the snapshot",
            reference::<Snapshot<WorkerInfo, HiveInfo>>(),
        ),
    )
}

pub(super) fn summary_stream() -> OperationBuilder {
    guarded(
        "stream",
        "Server-Sent Events: `heartbeat` (the fleet summary: counts and online ids) and `transition` (a Transition)",
    )
    .parameter(token_parameter())
    .response("200", text("the event stream", "text/event-stream"))
}

pub(super) fn watch() -> OperationBuilder {
    guarded(
        "watch",
        "Server-Sent Events: `sync` (every entry at a revision), then `upsert` and `remove` per change; ids are EPOCH:REVISION and resume with Last-Event-ID or ?since=",
    )
    .parameter(token_parameter())
    .parameter(
        ParameterBuilder::new()
            .name("kind")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("only this kind's entries"))
            .schema(Some(
                string().enum_values(Some(shared_contract::Kind::ALL.map(|k| k.as_str()))),
            )),
    )
    .parameter(
        ParameterBuilder::new()
            .name("since")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some("resume after EPOCH:REVISION (from an event id or a snapshot)"))
            .schema(Some(string().pattern(Some("^.+:[0-9]+$")))),
    )
    .response("200", text("the event stream", "text/event-stream"))
    .response("400", error("invalid query parameter"))
}

pub(super) fn events() -> OperationBuilder {
    let query = |name: &str, description: &str, schema: ObjectBuilder| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(schema))
    };
    let time = || string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    guarded(
        "events",
        "Transitions from the kept history, oldest first: with since the first limit from then on, \
         without it the newest limit",
    )
    .parameter(query(
        "limit",
        "how many (default 100, at most 1000 per answer)",
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0)),
    ))
    .parameter(query(
        "since",
        "from this time on (RFC 3339, inclusive)",
        time(),
    ))
    .parameter(query(
        "until",
        "before this time (RFC 3339, exclusive)",
        time(),
    ))
    .parameter(query(
        "kind",
        "only this kind",
        string().enum_values(Some(shared_contract::Kind::ALL.map(|k| k.as_str()))),
    ))
    .parameter(query(
        "id",
        "only this entry",
        string().min_length(Some(1)).max_length(Some(128)),
    ))
    .response(
        "200",
        json(
            "the transitions",
            ArrayBuilder::new().items(reference::<Transition>()),
        ),
    )
    .response("400", error("invalid query parameter"))
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn token_parameter() -> ParameterBuilder {
    ParameterBuilder::new()
        .name("token")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some("the token, for clients that cannot send headers"))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
}

/// An operation that needs no token.
fn open(id: &str, summary: &str) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .securities(Some(Vec::<SecurityRequirement>::new()))
}

/// An operation behind the token (when the queen has one).
fn guarded(id: &str, summary: &str) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
        .response("401", error("missing or wrong token"))
}

pub(super) fn ingest<B: ToSchema>(id: &str, summary: &str) -> OperationBuilder {
    guarded(id, summary)
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", content(reference::<B>()))
                .build(),
        ))
        .response("200", json("accepted", reference::<HeartbeatAck>()))
        .response("400", error("the body does not decode into the contract"))
        .response("413", error("the body is over 64 KiB"))
        .response("415", error("the body is not declared as json"))
        .response("422", error("the body decodes but breaks a contract rule"))
        .response("429", error("the registry is full and the id is new"))
        .response(
            "307",
            error("in a cluster, this queen follows: the same request belongs at `Location`, the leader"),
        )
        .response("503", error("in a cluster, no leader is known right now"))
}

pub(super) fn cluster() -> OperationBuilder {
    guarded(
        "cluster",
        "This queen's cluster: its role, the leader, the members and etcd",
    )
    .response(
        "200",
        json(
            "the cluster as this queen sees it",
            reference::<ClusterView>(),
        ),
    )
    .response("404", error("the queen runs alone, not in a cluster"))
}

pub(super) fn list<T: Registered>(id: &str, summary: &str) -> OperationBuilder {
    guarded(id, summary)
        .parameter(
            ParameterBuilder::new()
                .name("state")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["all", "online", "available"]))
                        .default(Some("all".into())),
                )),
        )
        .response(
            "200",
            json(
                "the entries",
                ArrayBuilder::new().items(reference::<Entry<T>>()),
            ),
        )
        .response("400", error("invalid query parameter"))
}

pub(super) fn one<T: Registered>(id: &str, summary: &str) -> OperationBuilder {
    guarded(id, summary)
        .parameter(id_parameter())
        .response("200", json("the entry", reference::<Entry<T>>()))
        .response("404", error("unknown id"))
}

pub(super) fn remove(id: &str, summary: &str) -> OperationBuilder {
    guarded(id, summary)
        .parameter(id_parameter())
        .response(
            "204",
            ResponseBuilder::new()
                .description("removed; a `removed` transition is recorded")
                .build(),
        )
        .response("404", error("unknown id"))
}

fn id_parameter() -> ParameterBuilder {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(Id::schema()))
}

fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn content(schema: impl Into<RefOr<Schema>>) -> Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn json(description: &str, schema: impl Into<RefOr<Schema>>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content(schema))
        .build()
}

fn text(description: &str, media_type: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            media_type,
            content(ObjectBuilder::new().schema_type(Type::String)),
        )
        .build()
}

fn error(description: &str) -> Response {
    json(description, reference::<ApiErrorBody>())
}

/// Adds `T` and every schema it references.
fn collect<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}
