//! The HTTP surface: every route, declared once with its OpenAPI operation, behind one gate
//! (CORS, token, metrics) and the body limit.

mod entries;
mod events;
mod gate;
mod heartbeats;
mod openapi;
mod ops;
mod stream;

pub(crate) use gate::CorsPolicy;

use std::collections::BTreeMap;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    handler::Handler,
    routing::{MethodFilter, MethodRouter, on},
};
use tower::ServiceBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};

use crate::{
    error::ApiError,
    kinds::{EachKind, Registered, for_each_kind},
    state::AppState,
};

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Builds the queen's router over `state`, with every route of [`routes`].
pub fn router(state: AppState) -> Router {
    let mut by_path: BTreeMap<String, MethodRouter<AppState>> = BTreeMap::new();
    for route in routes() {
        let merged = match by_path.remove(&route.path) {
            Some(existing) => existing.merge(route.handler),
            None => route.handler,
        };
        by_path.insert(route.path, merged);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(&path, handler)
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One composite layer, so each request passes one boxed service instead of one per layer.
        .layer(
            ServiceBuilder::new()
                .layer(gate::GateLayer(state.clone()))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .with_state(state)
}

/// One route: method, path, handler and OpenAPI operation, declared together so that the router
/// and the document are built from one list and cannot drift apart.
pub(crate) struct Route {
    method: HttpMethod,
    path: String,
    handler: MethodRouter<AppState>,
    doc: OperationBuilder,
}

impl Route {
    fn new<H, T>(
        method: HttpMethod,
        path: impl Into<String>,
        handler: H,
        doc: OperationBuilder,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match method {
            HttpMethod::Get => MethodFilter::GET,
            HttpMethod::Post => MethodFilter::POST,
            HttpMethod::Put => MethodFilter::PUT,
            HttpMethod::Delete => MethodFilter::DELETE,
            HttpMethod::Patch => MethodFilter::PATCH,
            HttpMethod::Head => MethodFilter::HEAD,
            HttpMethod::Options => MethodFilter::OPTIONS,
            HttpMethod::Trace => MethodFilter::TRACE,
        };
        Self {
            method,
            path: path.into(),
            handler: on(filter, handler),
            doc,
        }
    }
}

/// Every route of the queen, in the order the OpenAPI document lists them.
pub(crate) fn routes() -> Vec<Route> {
    use HttpMethod::{Delete, Get, Post};
    let mut routes = vec![
        Route::new(Get, "/", ops::dashboard, openapi::dashboard()),
        Route::new(Get, "/health", ops::health, openapi::health()),
        Route::new(Get, "/metrics", ops::metrics, openapi::metrics()),
        Route::new(Get, "/v1/openapi.json", openapi::serve, openapi::openapi()),
    ];
    struct PerKind<'a>(&'a mut Vec<Route>);
    impl EachKind for PerKind<'_> {
        fn kind<T: Registered>(&mut self) {
            let (kind, plural) = (T::KIND, T::PLURAL);
            let one = format!("/v1/{plural}/{{id}}");
            self.0.extend([
                Route::new(
                    Post,
                    T::INGEST_PATH,
                    heartbeats::ingest::<T>,
                    openapi::ingest::<T::Body>(
                        &format!("{kind}_heartbeat"),
                        &format!("Records a {kind} heartbeat"),
                    ),
                ),
                Route::new(
                    Get,
                    format!("/v1/{plural}"),
                    entries::list::<T>,
                    openapi::list::<T>(
                        &format!("list_{plural}"),
                        &format!("Lists {plural} sorted by id"),
                    ),
                ),
                Route::new(
                    Get,
                    one.clone(),
                    entries::get::<T>,
                    openapi::one::<T>(&format!("get_{kind}"), &format!("Returns one {kind}")),
                ),
                Route::new(
                    Delete,
                    one,
                    entries::delete::<T>,
                    openapi::remove(
                        &format!("delete_{kind}"),
                        &format!("Removes one {kind} at once"),
                    ),
                ),
            ]);
        }
    }
    for_each_kind(&mut PerKind(&mut routes));
    routes.extend([
        Route::new(
            Get,
            "/v1/heartbeats/snapshot",
            stream::snapshot,
            openapi::snapshot(),
        ),
        Route::new(
            Get,
            "/v1/heartbeats/stream",
            stream::summary,
            openapi::summary_stream(),
        ),
        Route::new(Get, "/v1/watch", stream::watch, openapi::watch()),
        Route::new(Get, "/v1/events", events::recent, openapi::events()),
        Route::new(Get, "/v1/cluster", ops::cluster, openapi::cluster()),
    ]);
    routes
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Parses a `?kind=` query value: one of the kinds, or a 400 naming them.
fn kind_param(value: Option<&str>) -> Result<Option<shared_contract::Kind>, ApiError> {
    use shared_contract::Kind;
    value
        .map(|s| {
            Kind::ALL
                .into_iter()
                .find(|k| k.as_str() == s)
                .ok_or_else(|| {
                    ApiError::InvalidQuery(format!(
                        "kind must be one of {}",
                        Kind::ALL.map(Kind::as_str).join(", ")
                    ))
                })
        })
        .transpose()
}
