//! W3C Trace Context through the relay: `traceparent` reaches the upstream unchanged,
//! inside the sealed head for MTE requests, and the access line carries its trace id.

use bytes::Bytes;
use http::Request;
use mte_relay_tests::client;

use crate::support::{RecordingUpstream, access_lines, client_for, relay_for};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn the_trace_context_reaches_the_upstream_and_the_access_log() {
    let upstream = RecordingUpstream::start().await;
    let relay = relay_for(
        &upstream.upstream.url(),
        &[("PASS_THROUGH_ROUTES", "/public/*")],
    );
    let client = client_for(&relay);
    let request = Request::post("/orders")
        .header("traceparent", TRACEPARENT)
        .body(Bytes::from_static(b"{}"))
        .expect("request");
    let response = client.send(request).await.expect("answered");
    assert_eq!(response.status(), 200);
    response.into_body().collect_bytes().await.expect("body");
    let plain = client::request("GET", "127.0.0.1", "/public/page")
        .header("traceparent", TRACEPARENT.replace("4bf9", "aaaa"))
        .body(mte_relay_tests::upstream::full(Bytes::new()))
        .expect("request");
    assert_eq!(client::send(relay.addr(), plain).await.status(), 200);
    let forged = client::request("GET", "127.0.0.1", "/public/other")
        .header("traceparent", "00-not-a-trace-id-01")
        .body(mte_relay_tests::upstream::full(Bytes::new()))
        .expect("request");
    assert_eq!(client::send(relay.addr(), forged).await.status(), 200);

    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].headers["traceparent"], TRACEPARENT,
        "inside the MTE head"
    );
    let lines = mte_relay_tests::within("the access lines", async {
        loop {
            let lines = access_lines(&relay);
            if lines
                .iter()
                .filter(|json| json["route"] != "pair" && json["route"] != "capabilities")
                .count()
                >= 3
            {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let trace_of = |route: &str, nth: usize| {
        lines
            .iter()
            .filter(|json| json["route"] == route)
            .nth(nth)
            .map(|json| json["trace_id"].clone())
    };
    assert_eq!(trace_of("mte", 0), Some(serde_json::json!(TRACE_ID)));
    assert_eq!(
        trace_of("pass-through", 0),
        Some(serde_json::json!(TRACE_ID.replace("4bf9", "aaaa")))
    );
    assert_eq!(
        trace_of("pass-through", 1),
        Some(serde_json::json!("-")),
        "malformed: not logged"
    );
}

/// What an OTLP/HTTP collector received: the path, content type and body of each
/// export.
#[derive(Clone, Debug)]
struct Export {
    path: String,
    content_type: String,
    body: Bytes,
}

/// A real OTLP/HTTP receiver on a loopback port: it records every export and answers
/// as a collector does (200, an empty partial-success document).
async fn collector() -> (
    mte_relay_tests::upstream::Upstream,
    std::sync::Arc<std::sync::Mutex<Vec<Export>>>,
) {
    use http_body_util::BodyExt;
    let exports: std::sync::Arc<std::sync::Mutex<Vec<Export>>> = Default::default();
    let record = exports.clone();
    let server = mte_relay_tests::upstream::Upstream::start(move |request| {
        let record = record.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.expect("export body").to_bytes();
            let content_type = parts
                .headers
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let json = content_type.contains("json");
            record.lock().expect("lock").push(Export {
                path: parts.uri.path().to_owned(),
                content_type,
                body,
            });
            let mut response = http::Response::new(mte_relay_tests::upstream::full(if json {
                "{}"
            } else {
                ""
            }));
            response.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static(if json {
                    "application/json"
                } else {
                    "application/x-protobuf"
                }),
            );
            response
        }
    })
    .await;
    (server, exports)
}

/// The spans of every JSON export so far, each with its resource's service name.
fn json_spans(exports: &[Export]) -> Vec<(String, serde_json::Value)> {
    let mut spans = Vec::new();
    for export in exports {
        let document: serde_json::Value = serde_json::from_slice(&export.body).expect("JSON");
        for resource in document["resourceSpans"].as_array().into_iter().flatten() {
            let service = resource["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|attribute| attribute["key"] == "service.name")
                .and_then(|attribute| attribute["value"]["stringValue"].as_str())
                .unwrap_or_default()
                .to_owned();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    spans.push((service.clone(), span.clone()));
                }
            }
        }
    }
    spans
}

fn attribute<'a>(span: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|attribute| attribute["key"] == key)
        .map(|attribute| &attribute["value"])
}

#[tokio::test]
async fn each_request_becomes_a_span_at_the_otlp_collector_in_the_callers_trace() {
    let (collector, exports) = collector().await;
    let upstream = RecordingUpstream::start().await;
    let endpoint = collector.url();
    let relay = relay_for(
        &upstream.upstream.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/public/*"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_SERVICE_NAME", "relay-under-test"),
            // The SDK's batch delay, so the test does not wait the default 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let client = client_for(&relay);
    // An MTE request: its traceparent travels inside the sealed head.
    let request = Request::get("/secret/path?q=1")
        .header("traceparent", TRACEPARENT)
        .body(())
        .expect("request");
    let response = client.send(request).await.expect("answered");
    assert_eq!(response.status(), 200);
    response.into_body().collect_bytes().await.expect("body");
    // A pass-through request without one: a span of a trace of its own.
    let plain = client::request("GET", "127.0.0.1", "/public/page")
        .body(mte_relay_tests::upstream::full(Bytes::new()))
        .expect("request");
    assert_eq!(client::send(relay.addr(), plain).await.status(), 200);

    let spans = mte_relay_tests::within("both request spans at the collector", async {
        loop {
            let spans = json_spans(&exports.lock().expect("lock"));
            let requests = spans
                .iter()
                .filter(|(_, span)| attribute(span, "mte.route").is_some())
                .count();
            if requests >= 2 {
                return spans;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let exported = exports.lock().expect("lock").clone();
    assert!(exported.iter().all(|export| export.path == "/v1/traces"));
    assert!(
        exported
            .iter()
            .all(|export| export.content_type == "application/json")
    );

    let (service, mte) = spans
        .iter()
        .find(|(_, span)| {
            attribute(span, "mte.route") == Some(&serde_json::json!({"stringValue": "mte"}))
        })
        .expect("the MTE request's span");
    assert_eq!(service, "relay-under-test");
    assert_eq!(mte["traceId"], TRACE_ID, "the caller's trace: {mte}");
    assert_eq!(
        mte["parentSpanId"], "00f067aa0ba902b7",
        "the caller's span: {mte}"
    );
    assert_eq!(mte["kind"], 2, "a server span: {mte}");
    assert_eq!(mte["name"], "GET mte");
    assert_eq!(
        attribute(mte, "http.response.status_code"),
        Some(&serde_json::json!({"intValue": "200"})),
        "{mte}"
    );
    assert!(
        attribute(mte, "url.path").is_none(),
        "an MTE path never leaves the relay: {mte}"
    );
    let text = mte.to_string();
    assert!(!text.contains("/secret/path"), "{text}");

    let (_, plain) = spans
        .iter()
        .find(|(_, span)| {
            attribute(span, "mte.route")
                == Some(&serde_json::json!({"stringValue": "pass-through"}))
        })
        .expect("the pass-through request's span");
    assert_ne!(plain["traceId"], TRACE_ID);
    assert_eq!(
        attribute(plain, "url.path"),
        Some(&serde_json::json!({"stringValue": "/public/page"}))
    );
}

#[tokio::test]
async fn spans_go_out_as_protobuf_by_default() {
    let (collector, exports) = collector().await;
    let upstream = RecordingUpstream::start().await;
    let endpoint = format!("{}/v1/traces", collector.url());
    let relay = relay_for(
        &upstream.upstream.url(),
        &[
            ("PASS_THROUGH_ROUTES", "/public/*"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "relay-under-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let plain = client::request("GET", "127.0.0.1", "/public/page")
        .header("traceparent", TRACEPARENT)
        .body(mte_relay_tests::upstream::full(Bytes::new()))
        .expect("request");
    assert_eq!(client::send(relay.addr(), plain).await.status(), 200);
    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let export = mte_relay_tests::within("a protobuf export", async {
        loop {
            let found = exports
                .lock()
                .expect("lock")
                .iter()
                .find(|export| export.body.windows(16).any(|window| window == trace_id))
                .cloned();
            if let Some(export) = found {
                return export;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(export.path, "/v1/traces");
    assert_eq!(export.content_type, "application/x-protobuf");
    let body = export.body.as_ref();
    for text in ["relay-under-test", "/public/page", "pass-through"] {
        assert!(
            body.windows(text.len())
                .any(|window| window == text.as_bytes()),
            "{text} in the protobuf export"
        );
    }
}
