//! The example adapters, compiled to components and run under wasmtime.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{adapter, guests, header, load, request, runtime, runtime_with_kv, with_header};
use hmac::{KeyInit, Mac};
use mte_relay_adapter_runtime::{
    KvStore, MemoryKv, MeterSink, MeterSinkOptions, RequestOutcome, ResponseInfo, RouteClass,
    UsageRecord,
};
use serde_json::json;
use sha2::Digest;

fn sha256_hex(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn api_key_auth_forwards_the_label_or_answers_401() {
    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "keys",
            guests::API_KEY_AUTH,
            json!({ "config": {
                "header": "x-api-key",
                "label_header": "x-tenant",
                "keys": [ { "label": "acme", "sha256": sha256_hex("s3cret") } ] } }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["keys"]).unwrap();

    let mut ok = with_header(request("/"), "X-Api-Key", "s3cret");
    let RequestOutcome::Continue(edits) = chain.filters.on_request(&mut ok).await.unwrap() else {
        panic!("a valid key must pass");
    };
    assert_eq!(header(&ok.headers, "x-tenant"), Some("acme"));
    assert_eq!(
        header(&ok.headers, "x-api-key"),
        None,
        "the key is not forwarded"
    );
    let mut upstream = http::HeaderMap::new();
    upstream.insert("x-api-key", "s3cret".parse().unwrap());
    mte_relay_adapter_runtime::apply_edits(&mut upstream, &edits);
    assert_eq!(upstream["x-tenant"], "acme");
    assert!(!upstream.contains_key("x-api-key"));

    for (req, reason) in [
        (request("/"), "missing api key"),
        (
            with_header(request("/"), "x-api-key", "wrong"),
            "invalid api key",
        ),
    ] {
        let mut req = req;
        let RequestOutcome::Respond(reply) = chain.filters.on_request(&mut req).await.unwrap()
        else {
            panic!("expected a 401");
        };
        assert_eq!(reply.status, 401);
        assert_eq!(reply.adapter, "keys");
        assert_eq!(reply.headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["reason"], reason);
    }
}

fn hs256_token(secret: &[u8], claims: serde_json::Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        b64.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn jwt_auth_verifies_hs256_and_forwards_claims() {
    let secret = "an-hs256-secret-of-sufficient-len";
    let rt = runtime();
    load(
        &rt,
        vec![adapter(
            "jwt",
            guests::JWT_AUTH,
            json!({ "deadline_ms": 1000, "config": {
                "keys": [ { "alg": "HS256", "secret": secret } ],
                "issuer": "https://idp.test",
                "audiences": ["relay"],
                "forward_claims": { "sub": "x-user", "tenant": "x-tenant" } } }),
        )],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["jwt"]).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |exp: u64, iss: &str| json!({ "sub": "user-1", "tenant": "acme", "iss": iss, "aud": "relay", "iat": now, "exp": exp });

    let good = hs256_token(secret.as_bytes(), claims(now + 300, "https://idp.test"));
    let mut req = with_header(request("/"), "authorization", &format!("Bearer {good}"));
    let outcome = chain.filters.on_request(&mut req).await.unwrap();
    assert!(
        matches!(outcome, RequestOutcome::Continue(_)),
        "{outcome:?}"
    );
    assert_eq!(header(&req.headers, "x-user"), Some("user-1"));
    assert_eq!(header(&req.headers, "x-tenant"), Some("acme"));
    assert_eq!(header(&req.headers, "authorization"), None);

    let bad_tokens = [
        hs256_token(
            b"wrong-secret-wrong-secret-wrong!!",
            claims(now + 300, "https://idp.test"),
        ),
        hs256_token(secret.as_bytes(), claims(now - 3600, "https://idp.test")),
        hs256_token(secret.as_bytes(), claims(now + 300, "https://evil.test")),
        "garbage".to_string(),
    ];
    for token in bad_tokens {
        let mut req = with_header(request("/"), "authorization", &format!("Bearer {token}"));
        let RequestOutcome::Respond(reply) = chain.filters.on_request(&mut req).await.unwrap()
        else {
            panic!("token {token} must be refused");
        };
        assert_eq!(reply.status, 401);
    }
}

#[tokio::test]
async fn header_rewrite_templates_and_runs_in_chain_order() {
    let rt = runtime();
    load(
        &rt,
        vec![
            adapter(
                "first",
                guests::HEADER_REWRITE,
                json!({ "config": {
                    "request": [
                        { "op": "set", "name": "x-client", "value": "{client_id}@{domain}" },
                        { "op": "rename", "from": "x-legacy", "to": "x-modern" },
                        { "op": "set", "name": "x-order", "value": "first" } ],
                    "response": [ { "op": "append", "name": "x-order", "value": "first" } ] } }),
            ),
            adapter(
                "second",
                guests::HEADER_REWRITE,
                json!({ "config": {
                    // Sees the first filter's edits: renames what it set.
                    "request": [ { "op": "rename", "from": "x-order", "to": "x-order-seen" },
                                 { "op": "remove", "name": "x-drop" } ],
                    "response": [ { "op": "set", "name": "x-order", "value": "second" },
                                  { "op": "set", "name": "x-corr", "value": "{correlation_id}" } ] } }),
            ),
        ],
    )
    .await
    .unwrap();
    let chain = rt.chain(&["first", "second"]).unwrap();
    let mut req = with_header(
        with_header(request("/"), "x-legacy", "v1"),
        "x-drop",
        "gone",
    );
    let RequestOutcome::Continue(edits) = chain.filters.on_request(&mut req).await.unwrap() else {
        panic!("header-rewrite never answers locally");
    };
    assert_eq!(
        header(&req.headers, "x-client"),
        Some("client-7@api.example.com")
    );
    assert_eq!(header(&req.headers, "x-modern"), Some("v1"));
    assert_eq!(header(&req.headers, "x-legacy"), None);
    assert_eq!(header(&req.headers, "x-order-seen"), Some("first"));
    assert_eq!(header(&req.headers, "x-drop"), None);
    assert!(!edits.is_empty());

    // Responses run in reverse order: `second` sets, then `first` appends.
    let mut response = ResponseInfo {
        status: 200,
        headers: vec![],
    };
    chain
        .filters
        .on_response(&req, &mut response)
        .await
        .unwrap();
    let order: Vec<&str> = response
        .headers
        .iter()
        .filter(|h| h.name == "x-order")
        .map(|h| h.value.as_str())
        .collect();
    assert_eq!(order, ["second", "first"]);
    assert_eq!(header(&response.headers, "x-corr"), Some("req-42"));
}

fn usage(domain: &str, status: u16) -> UsageRecord {
    UsageRecord {
        domain: domain.into(),
        client_id: Some("client-7".into()),
        route_class: RouteClass::Mte,
        method: "POST".into(),
        status,
        bytes_in: 100,
        bytes_out: 1000,
        duration_us: 1500,
        upstream_us: 1000,
        decode_us: 50,
        encode_us: 60,
        timestamp_ms: 0,
    }
}

#[tokio::test]
async fn usage_log_counts_per_domain_through_the_meter_sink() {
    let kv = Arc::new(MemoryKv::new());
    let rt = runtime_with_kv(Some(kv.clone()));
    load(&rt, vec![adapter("usage", guests::USAGE_LOG, json!({}))])
        .await
        .unwrap();
    let chain = rt.chain(&["usage"]).unwrap();
    assert!(chain.filters.is_empty());
    assert_eq!(chain.meters.names(), ["usage"]);

    let sink = MeterSink::spawn(
        &rt,
        MeterSinkOptions {
            queue_capacity: 100,
            batch_size: 2,
            flush_interval: Duration::from_millis(20),
            tick_interval: Duration::from_millis(50),
        },
    );
    sink.record(&chain.meters, usage("a.test", 200));
    sink.record(&chain.meters, usage("a.test", 502));
    sink.record(&chain.meters, usage("b.test", 200));
    sink.shutdown().await;

    let counter = |key: &str| {
        let kv = kv.clone();
        let key = key.to_owned();
        async move {
            let bytes = kv.get("usage", &key).await.unwrap().unwrap_or_default();
            String::from_utf8(bytes).unwrap()
        }
    };
    assert_eq!(counter("requests:a.test").await, "2");
    assert_eq!(counter("errors:a.test").await, "1");
    assert_eq!(counter("bytes_out:a.test").await, "2000");
    assert_eq!(counter("requests:b.test").await, "1");
}

#[tokio::test]
async fn meter_sink_never_blocks_and_counts_drops() {
    let rt = runtime();
    load(&rt, vec![adapter("usage", guests::USAGE_LOG, json!({}))])
        .await
        .unwrap();
    let chain = rt.chain(&["usage"]).unwrap();
    let sink = MeterSink::spawn(
        &rt,
        MeterSinkOptions {
            queue_capacity: 4,
            ..MeterSinkOptions::default()
        },
    );
    // No await between records: the worker cannot drain, so the queue overflows.
    for _ in 0..100 {
        sink.record(&chain.meters, usage("a.test", 200));
    }
    assert!(sink.dropped() >= 90, "dropped {}", sink.dropped());
    sink.shutdown().await;
}

/// `init` tells the relay whether an instance edits responses; those that do not are
/// never called for `on-response` (one call per request saved).
#[tokio::test]
async fn filters_that_never_edit_responses_are_not_called_for_them() {
    let rt = runtime();
    load(
        &rt,
        vec![
            adapter(
                "keys",
                guests::API_KEY_AUTH,
                json!({ "config": { "keys": [ { "label": "a", "sha256": sha256_hex("k") } ] } }),
            ),
            adapter(
                "request-only",
                guests::HEADER_REWRITE,
                json!({ "config": { "request": [ { "op": "set", "name": "x-a", "value": "1" } ] } }),
            ),
            adapter(
                "both-ways",
                guests::HEADER_REWRITE,
                json!({ "config": { "response": [ { "op": "set", "name": "x-b", "value": "2" } ] } }),
            ),
        ],
    )
    .await
    .unwrap();
    let calls = |name: &str| {
        rt.stats()
            .into_iter()
            .find(|stats| stats.name == name)
            .unwrap()
            .calls
    };

    let quiet = rt.chain(&["keys", "request-only"]).unwrap();
    assert!(!quiet.filters.edits_responses());
    let both = rt.chain(&["keys", "request-only", "both-ways"]).unwrap();
    assert!(both.filters.edits_responses());

    let request = with_header(request("/"), "x-api-key", "k");
    let mut response = ResponseInfo {
        status: 200,
        headers: vec![],
    };
    let before = (calls("keys"), calls("request-only"), calls("both-ways"));
    let edits = both
        .filters
        .on_response(&request, &mut response)
        .await
        .unwrap();
    assert_eq!(edits.len(), 1);
    assert_eq!(header(&response.headers, "x-b"), Some("2"));
    assert_eq!(
        (calls("keys"), calls("request-only"), calls("both-ways")),
        (before.0, before.1, before.2 + 1),
        "only the filter with response rules was called"
    );
}
