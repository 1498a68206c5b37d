//! `GET /v1/openapi.json`: a well-formed OpenAPI 3 document that lists exactly the router's routes.

use std::collections::BTreeSet;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::Value;
use tower::ServiceExt as _;

use crate::support::{App, TOKEN, config, with_token};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

async fn document() -> Value {
    let (status, doc) = App::new(&config()).get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    doc
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                routes.insert((method.clone(), path.clone()));
            }
        }
    }
    routes
}

/// Sends one request and returns the status and, unless it is a stream, the JSON body.
async fn probe(app: &App, method: &str, path: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        return (status, Value::Null);
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn document_is_openapi_3_with_resolvable_references() {
    let doc = document().await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "queen-rbee");
    assert!(doc["info"]["version"].is_string());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "WorkerHeartbeat",
        "HiveHeartbeat",
        "WorkerInfo",
        "HiveInfo",
        "HeartbeatAck",
        "ApiErrorBody",
        "WorkerEntry",
        "HiveEntry",
        "FleetSnapshot",
        "Transition",
        "Health",
        "Status",
        "State",
        "Id",
    ] {
        assert!(schemas.contains_key(name), "schema {name} is missing");
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(schemas.contains_key(name), "dangling reference {r}");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            assert!(op["operationId"].is_string(), "{method} {path}");
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            let templated: Vec<&str> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(params, templated, "{method} {path} path parameters");
        }
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_lists_exactly_the_contract_routes() {
    // The router and the document are built from one list; this pins that list to the contract.
    let doc = document().await;
    let expected: BTreeSet<(String, String)> = [
        ("get", "/"),
        ("get", "/health"),
        ("get", "/metrics"),
        ("get", "/v1/openapi.json"),
        ("post", "/v1/worker-heartbeat"),
        ("post", "/v1/hive-heartbeat"),
        ("get", "/v1/workers"),
        ("get", "/v1/workers/{id}"),
        ("delete", "/v1/workers/{id}"),
        ("get", "/v1/hives"),
        ("get", "/v1/hives/{id}"),
        ("delete", "/v1/hives/{id}"),
        ("get", "/v1/heartbeats/snapshot"),
        ("get", "/v1/heartbeats/stream"),
        ("get", "/v1/watch"),
        ("get", "/v1/events"),
        ("get", "/v1/cluster"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(documented_routes(&doc), expected);
}

#[tokio::test]
async fn documented_routes_are_served_and_other_methods_are_refused() {
    let doc = document().await;
    let app = App::new(&config());
    let documented = documented_routes(&doc);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path.replace("{id}", "probe-1");
        for method in METHODS {
            let (status, body) = probe(&app, &method.to_uppercase(), &concrete).await;
            if documented.contains(&(method.to_owned(), path.clone())) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_ne!(
                    body["error"]["message"], "no such route",
                    "{method} {path} reached the fallback"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is undocumented but answered"
                );
            }
        }
    }
    for path in [
        "/v1",
        "/v1/worker",
        "/v1/workers/a/b",
        "/v1/heartbeats",
        "/openapi.json",
        "/v2/workers",
    ] {
        let (status, body) = probe(&app, "GET", path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn the_document_needs_the_token_like_any_data_route() {
    let app = App::new(&with_token(config()));
    let (status, body) = app.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, doc) = app.call("GET", "/v1/openapi.json", None, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/v1/worker-heartbeat"]["post"]["security"].is_array());
    assert_eq!(
        doc["paths"]["/health"]["get"]["security"],
        Value::Array(vec![])
    );
}
