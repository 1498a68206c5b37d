//! A table of malformed and hostile requests: each gets its status, the JSON error shape, and
//! leaves both registries and the event log exactly as they were.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::{Value, json};

use crate::support::{App, TOKEN, config, hive, with_token, worker};

/// How a case authenticates.
#[derive(Clone, Copy)]
enum Auth {
    Good,
    Missing,
    Wrong(&'static str),
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    auth: Auth,
    status: StatusCode,
}

fn case(
    name: &'static str,
    path: &'static str,
    body: impl Into<Vec<u8>>,
    status: StatusCode,
) -> Case {
    Case {
        name,
        method: "POST",
        path,
        content_type: Some("application/json"),
        body: body.into(),
        auth: Auth::Good,
        status,
    }
}

const W: &str = "/v1/worker-heartbeat";
const H: &str = "/v1/hive-heartbeat";

/// A worker body for `w1` (already registered) with `edit` applied to the worker object.
fn edited_worker(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut body = worker("w1");
    body["worker"]["status"] = json!("busy");
    edit(body["worker"].as_object_mut().unwrap());
    body.to_string().into_bytes()
}

fn edited_hive(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut body = hive("h1");
    body["hive"]["status"] = json!("draining");
    edit(body["hive"].as_object_mut().unwrap());
    body.to_string().into_bytes()
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    let bad = S::BAD_REQUEST;
    let invalid = S::UNPROCESSABLE_ENTITY;
    let mut oversized = worker("w1");
    oversized["worker"]["padding"] = json!("x".repeat(70 * 1024));
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let mut cases = vec![
        case("malformed json", W, "{\"worker\": {", bad),
        case(
            "trailing garbage",
            W,
            format!("{} trailing", worker("w1")),
            bad,
        ),
        case("a string, not an object", W, "\"hello\"", bad),
        case("a number", W, "42", bad),
        case("null body", W, "null", bad),
        case("array body", W, "[]", bad),
        case("array of bodies", W, format!("[{}]", worker("w1")), bad),
        case("empty body", W, "", bad),
        case("empty object", W, "{}", bad),
        case(
            "worker is null",
            W,
            json!({"worker": null, "timestamp": "2026-11-28T15:00:05Z"}).to_string(),
            bad,
        ),
        case(
            "port as a string",
            W,
            edited_worker(|w| {
                w.insert("port".into(), json!("9301"));
            }),
            bad,
        ),
        case(
            "port 70000",
            W,
            edited_worker(|w| {
                w.insert("port".into(), json!(70000));
            }),
            bad,
        ),
        case(
            "negative port",
            W,
            edited_worker(|w| {
                w.insert("port".into(), json!(-1));
            }),
            bad,
        ),
        case(
            "fractional port",
            W,
            edited_worker(|w| {
                w.insert("port".into(), json!(93.5));
            }),
            bad,
        ),
        case(
            "missing id",
            W,
            edited_worker(|w| {
                w.remove("id");
            }),
            bad,
        ),
        case(
            "missing model_id",
            W,
            edited_worker(|w| {
                w.remove("model_id");
            }),
            bad,
        ),
        case(
            "missing started_at",
            W,
            edited_worker(|w| {
                w.remove("started_at");
            }),
            bad,
        ),
        case(
            "missing timestamp",
            W,
            {
                let mut b = worker("w1");
                b.as_object_mut().unwrap().remove("timestamp");
                b.to_string()
            },
            bad,
        ),
        case(
            "unknown status",
            W,
            edited_worker(|w| {
                w.insert("status".into(), json!("sleeping"));
            }),
            bad,
        ),
        case(
            "status in capitals",
            W,
            edited_worker(|w| {
                w.insert("status".into(), json!("READY"));
            }),
            bad,
        ),
        case(
            "unknown health",
            W,
            edited_worker(|w| {
                w.insert("health".into(), json!({"status": "sick"}));
            }),
            bad,
        ),
        case(
            "bad started_at",
            W,
            edited_worker(|w| {
                w.insert("started_at".into(), json!("yesterday"));
            }),
            bad,
        ),
        case(
            "bad timestamp",
            W,
            {
                let mut b = worker("w1");
                b["timestamp"] = json!("2026-13-45T99:00:00Z");
                b.to_string()
            },
            bad,
        ),
        case(
            "id is an object",
            W,
            edited_worker(|w| {
                w.insert("id".into(), json!({"$ne": 1}));
            }),
            bad,
        ),
        case(
            "nested garbage",
            W,
            json!({"worker": {"worker": {"worker": [1, {"x": null}]}}, "timestamp": [[]]})
                .to_string(),
            bad,
        ),
        case("deeply nested arrays", W, deep, bad),
        case(
            "invalid utf-8",
            W,
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            bad,
        ),
        case(
            "port 0",
            W,
            edited_worker(|w| {
                w.insert("port".into(), json!(0));
            }),
            invalid,
        ),
        case(
            "id with a space",
            W,
            edited_worker(|w| {
                w.insert("id".into(), json!("w 1"));
            }),
            invalid,
        ),
        case(
            "id with a slash",
            W,
            edited_worker(|w| {
                w.insert("id".into(), json!("../etc/passwd"));
            }),
            invalid,
        ),
        case(
            "id of 129 characters",
            W,
            edited_worker(|w| {
                w.insert("id".into(), json!("a".repeat(129)));
            }),
            invalid,
        ),
        case(
            "unicode id",
            W,
            edited_worker(|w| {
                w.insert("id".into(), json!("wörker"));
            }),
            invalid,
        ),
        case(
            "empty id",
            W,
            edited_worker(|w| {
                w.insert("id".into(), json!(""));
            }),
            invalid,
        ),
        case(
            "id with a newline",
            W,
            edited_worker(|w| {
                w.insert("id".into(), json!("w1\nw2"));
            }),
            invalid,
        ),
        case(
            "bad hive_id",
            W,
            edited_worker(|w| {
                w.insert("hive_id".into(), json!("stu dio"));
            }),
            invalid,
        ),
        case(
            "empty model_id",
            W,
            edited_worker(|w| {
                w.insert("model_id".into(), json!(""));
            }),
            invalid,
        ),
        case(
            "model_id of 257 characters",
            W,
            edited_worker(|w| {
                w.insert("model_id".into(), json!("m".repeat(257)));
            }),
            invalid,
        ),
        case(
            "control character in model_id",
            W,
            edited_worker(|w| {
                w.insert("model_id".into(), json!("llama\u{0}"));
            }),
            invalid,
        ),
        case(
            "empty device",
            W,
            edited_worker(|w| {
                w.insert("device".into(), json!(""));
            }),
            invalid,
        ),
        case(
            "overlong health reason",
            W,
            edited_worker(|w| {
                w.insert(
                    "health".into(),
                    json!({"status": "degraded", "reason": "r".repeat(5000)}),
                );
            }),
            invalid,
        ),
        case(
            "hive without hostname",
            H,
            edited_hive(|h| {
                h.remove("hostname");
            }),
            bad,
        ),
        case(
            "hive devices not an array",
            H,
            edited_hive(|h| {
                h.insert("devices".into(), json!({"id": "cuda:0"}));
            }),
            bad,
        ),
        case(
            "hive memory negative",
            H,
            edited_hive(|h| {
                h.insert("system".into(), json!({"os": "linux", "cpu_cores": 1, "memory_total_bytes": -5, "memory_available_bytes": 0}));
            }),
            bad,
        ),
        case(
            "hive port 0",
            H,
            edited_hive(|h| {
                h.insert("port".into(), json!(0));
            }),
            invalid,
        ),
        case(
            "hive empty hostname",
            H,
            edited_hive(|h| {
                h.insert("hostname".into(), json!(""));
            }),
            invalid,
        ),
        case(
            "hive id with a slash",
            H,
            edited_hive(|h| {
                h.insert("id".into(), json!("a/b"));
            }),
            invalid,
        ),
        case(
            "hive with 65 devices",
            H,
            edited_hive(|h| {
                let device = json!({"id": "cuda:0", "name": "gpu", "memory_total_bytes": 1, "memory_used_bytes": 0});
                h.insert("devices".into(), Value::Array(vec![device; 65]));
            }),
            invalid,
        ),
        case(
            "worker body on the hive route",
            H,
            worker("w1").to_string(),
            bad,
        ),
        case(
            "body over 64 KiB",
            W,
            oversized.to_string(),
            S::PAYLOAD_TOO_LARGE,
        ),
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text/plain body",
                W,
                worker("w1").to_string(),
                S::UNSUPPORTED_MEDIA_TYPE,
            )
        },
        Case {
            content_type: None,
            ..case(
                "no content-type",
                W,
                worker("w1").to_string(),
                S::UNSUPPORTED_MEDIA_TYPE,
            )
        },
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case("form body", W, "worker=w1", S::UNSUPPORTED_MEDIA_TYPE)
        },
        Case {
            auth: Auth::Missing,
            ..case("no token", W, worker("w1").to_string(), S::UNAUTHORIZED)
        },
        Case {
            auth: Auth::Wrong("Bearer nope"),
            ..case("wrong token", W, worker("w1").to_string(), S::UNAUTHORIZED)
        },
        Case {
            auth: Auth::Wrong("Bearer s3cret-toke"),
            ..case("token prefix", W, worker("w1").to_string(), S::UNAUTHORIZED)
        },
        Case {
            auth: Auth::Wrong("Basic czNjcmV0LXRva2Vu"),
            ..case("basic scheme", W, worker("w1").to_string(), S::UNAUTHORIZED)
        },
        Case {
            auth: Auth::Wrong("Bearer "),
            ..case("empty bearer", H, hive("h1").to_string(), S::UNAUTHORIZED)
        },
    ];
    for (name, path, status) in [
        ("bad state filter", "/v1/workers?state=sleeping", bad),
        ("empty state filter", "/v1/hives?state=", bad),
        ("negative limit", "/v1/events?limit=-1", bad),
        ("non-numeric limit", "/v1/events?limit=abc", bad),
        ("unknown route", "/v1/nope", S::NOT_FOUND),
        ("unknown worker", "/v1/workers/nobody", S::NOT_FOUND),
        ("unknown hive", "/v1/hives/nobody", S::NOT_FOUND),
        ("path traversal", "/v1/workers/..%2F..%2Fetc", S::NOT_FOUND),
        ("get on a heartbeat route", W, S::METHOD_NOT_ALLOWED),
    ] {
        cases.push(Case {
            method: "GET",
            content_type: None,
            ..case(name, path, "", status)
        });
    }
    cases.push(Case {
        method: "PUT",
        ..case(
            "put on a listing",
            "/v1/workers",
            "{}",
            S::METHOD_NOT_ALLOWED,
        )
    });
    cases.push(Case {
        method: "DELETE",
        content_type: None,
        ..case(
            "delete an unknown worker",
            "/v1/workers/nobody",
            "",
            S::NOT_FOUND,
        )
    });
    cases.push(Case {
        method: "DELETE",
        content_type: None,
        ..case(
            "delete the snapshot",
            "/v1/heartbeats/snapshot",
            "",
            S::METHOD_NOT_ALLOWED,
        )
    });
    cases
}

/// What must not change: every entry as stored (minus its age) and the event log.
async fn fingerprint(app: &App) -> Value {
    let mut lists = Vec::new();
    for path in ["/v1/workers", "/v1/hives"] {
        let (_, mut list) = app.call("GET", path, None, Some(TOKEN)).await;
        for entry in list.as_array_mut().unwrap() {
            entry.as_object_mut().unwrap().remove("last_seen_ms_ago");
        }
        lists.push(list);
    }
    let (_, events) = app
        .call("GET", "/v1/events?limit=1000", None, Some(TOKEN))
        .await;
    json!({"lists": lists, "events": events})
}

#[tokio::test]
async fn hostile_requests_are_refused_with_json_and_change_nothing() {
    let app = App::new(&with_token(config()));
    let (status, _) = app.call("POST", W, Some(&worker("w1")), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.call("POST", H, Some(&hive("h1")), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let before = fingerprint(&app).await;

    let cases = cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let mut request = Request::builder().method(case.method).uri(case.path);
        if let Some(ct) = case.content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        match case.auth {
            Auth::Good => {
                request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            }
            Auth::Missing => {}
            Auth::Wrong(value) => request = request.header(header::AUTHORIZATION, value),
        }
        let (status, headers, body) = app.send(request.body(Body::from(case.body)).unwrap()).await;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let shape_ok = json["error"]["code"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
            && json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
            && headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/json");
        if status != case.status || !shape_ok {
            failures.push(format!(
                "{}: expected {}, got {status} {}",
                case.name,
                case.status,
                String::from_utf8_lossy(&body)
            ));
        }
        if fingerprint(&app).await != before {
            failures.push(format!("{}: changed the registries", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn decode_and_validation_errors_name_the_problem() {
    let app = App::new(&config());
    let mut body = worker("w1");
    body["worker"]["port"] = json!(70000);
    let (status, err) = app.post(W, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["code"], "invalid_json");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("port"),
        "{err}"
    );

    body["worker"]["port"] = json!(0);
    let (status, err) = app.post(W, &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["code"], "validation_failed");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("worker.port"),
        "{err}"
    );

    let (status, err) = app.get("/v1/workers?state=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["code"], "invalid_query");
}
