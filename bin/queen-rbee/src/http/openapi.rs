//! `GET /v1/openapi.json`: an OpenAPI 3.1 description of every route, with schemas generated from
//! the contract types so that the document cannot drift from what the queen decodes and encodes.

use axum::{http::header, response::IntoResponse};
use hive_contract::{HiveHeartbeat, HiveInfo};
use shared_contract::{ApiErrorBody, Entry, HeartbeatAck, Id, Snapshot, Transition};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        ArrayBuilder, ComponentsBuilder, Content, ContentBuilder, InfoBuilder, ObjectBuilder,
        OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Response, ResponseBuilder,
        Schema, Type,
        path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem},
        request_body::RequestBodyBuilder,
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};
use worker_contract::{WorkerHeartbeat, WorkerInfo};

use crate::error::ApiError;

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

/// Builds the whole document: every route of [`crate::router`] and the schemas they use.
pub(crate) fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for (method, path, operation) in operations() {
        paths = paths.path(path, PathItem::new(method, operation));
    }
    let mut schemas = Vec::new();
    collect::<WorkerHeartbeat>(&mut schemas);
    collect::<HiveHeartbeat>(&mut schemas);
    collect::<HeartbeatAck>(&mut schemas);
    collect::<ApiErrorBody>(&mut schemas);
    collect::<Entry<WorkerInfo>>(&mut schemas);
    collect::<Entry<HiveInfo>>(&mut schemas);
    collect::<Snapshot<WorkerInfo, HiveInfo>>(&mut schemas);
    collect::<Transition>(&mut schemas);
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
                     snapshots, the live stream and transitions.",
                )),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// One operation per route, in the router's order.
fn operations() -> Vec<(HttpMethod, &'static str, OperationBuilder)> {
    use HttpMethod::{Delete, Get, Post};
    vec![
        (
            Get,
            "/",
            open("dashboard", "The live dashboard page; it holds no data")
                .response("200", text("the page", "text/html")),
        ),
        (
            Get,
            "/health",
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
                        .required("status"),
                ),
            ),
        ),
        (
            Get,
            "/metrics",
            guarded("metrics", "Prometheus text exposition")
                .response("200", text("the metrics", "text/plain")),
        ),
        (
            Get,
            "/v1/openapi.json",
            guarded("openapi", "This document").response(
                "200",
                json(
                    "the document",
                    ObjectBuilder::new().schema_type(Type::Object),
                ),
            ),
        ),
        (
            Post,
            "/v1/worker-heartbeat",
            ingest::<WorkerHeartbeat>("worker_heartbeat", "Records a worker heartbeat"),
        ),
        (
            Post,
            "/v1/hive-heartbeat",
            ingest::<HiveHeartbeat>("hive_heartbeat", "Records a hive heartbeat"),
        ),
        (
            Get,
            "/v1/workers",
            list::<Entry<WorkerInfo>>("list_workers", "Lists workers sorted by id"),
        ),
        (
            Get,
            "/v1/workers/{id}",
            one::<Entry<WorkerInfo>>("get_worker", "Returns one worker"),
        ),
        (
            Delete,
            "/v1/workers/{id}",
            remove("delete_worker", "Removes one worker at once"),
        ),
        (
            Get,
            "/v1/hives",
            list::<Entry<HiveInfo>>("list_hives", "Lists hives sorted by id"),
        ),
        (
            Get,
            "/v1/hives/{id}",
            one::<Entry<HiveInfo>>("get_hive", "Returns one hive"),
        ),
        (
            Delete,
            "/v1/hives/{id}",
            remove("delete_hive", "Removes one hive at once"),
        ),
        (
            Get,
            "/v1/heartbeats/snapshot",
            guarded("snapshot", "The current fleet snapshot").response(
                "200",
                json(
                    "the snapshot",
                    reference::<Snapshot<WorkerInfo, HiveInfo>>(),
                ),
            ),
        ),
        (
            Get,
            "/v1/heartbeats/stream",
            guarded(
                "stream",
                "Server-Sent Events: `heartbeat` (a FleetSnapshot) and `transition` (a Transition)",
            )
            .parameter(
                ParameterBuilder::new()
                    .name("token")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("the token, for clients that cannot send headers"))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            )
            .response("200", text("the event stream", "text/event-stream")),
        ),
        (
            Get,
            "/v1/events",
            guarded("events", "The most recent transitions, newest last")
                .parameter(
                    ParameterBuilder::new()
                        .name("limit")
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some("how many (default 100; at most 1000 are kept)"))
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(0)),
                        )),
                )
                .response(
                    "200",
                    json(
                        "the transitions",
                        ArrayBuilder::new().items(reference::<Transition>()),
                    ),
                )
                .response("400", error("invalid query parameter")),
        ),
    ]
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

fn ingest<B: ToSchema>(id: &str, summary: &str) -> OperationBuilder {
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
}

fn list<E: ToSchema>(id: &str, summary: &str) -> OperationBuilder {
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
            json("the entries", ArrayBuilder::new().items(reference::<E>())),
        )
        .response("400", error("invalid query parameter"))
}

fn one<E: ToSchema>(id: &str, summary: &str) -> OperationBuilder {
    guarded(id, summary)
        .parameter(id_parameter())
        .response("200", json("the entry", reference::<E>()))
        .response("404", error("unknown id"))
}

fn remove(id: &str, summary: &str) -> OperationBuilder {
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
