//! Requests per minute through the assembled gateway: on an AccessKey, an Agent and a
//! ModelProvider, in both dialects, across config reloads and under concurrency.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use futures::StreamExt;
use pai_core::resource::{AccessKey, Resource};
use pai_core::{access_key, AccessKeyHasher, Store};
use tower::ServiceExt;

use common::{
    anthropic_request, collect, harness, harness_with, openai_request, records, Harness, Options,
    SECRET,
};

/// Mint a key with `spec` (JSON) and load it into the gateway.
async fn key(h: &Harness, name: &str, spec: serde_json::Value) -> String {
    let raw = access_key::generate().unwrap();
    let mut key: AccessKey =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec}))
            .unwrap();
    key.status.key_hash = Some(AccessKeyHasher::new(SECRET).hash(&raw).0);
    h.store.apply(&Resource::AccessKey(key)).await.unwrap();
    h.gateway.reload().await.unwrap();
    raw
}

fn openai(key: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    openai_request(
        key,
        serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    )
}

fn anthropic(key: &str, model: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    anthropic_request(
        key,
        serde_json::json!({"model": model, "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
}

async fn send(
    h: &Harness,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> (u16, http::HeaderMap, serde_json::Value) {
    let (status, headers, body) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    let v = serde_json::from_slice(&body.concat()).unwrap_or(serde_json::Value::Null);
    (status.as_u16(), headers, v)
}

/// `retry-after` as whole seconds, at least 1 and at most a minute.
fn retry_after(headers: &http::HeaderMap) -> u64 {
    let secs: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    secs
}

#[tokio::test]
async fn a_key_gets_its_rate_then_429_in_the_openai_dialect() {
    let h = harness().await;
    let k = key(
        &h,
        "alice",
        serde_json::json!({"modelProvider": "oai", "limits": {"maxRequestsPerMinute": 3}}),
    )
    .await;
    for i in 0..3 {
        let (status, _, v) = send(&h, openai(&k)).await;
        assert_eq!(status, 200, "call {i}: {v}");
    }
    let (status, headers, v) = send(&h, openai(&k)).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(retry_after(&headers), 20);
    // Retrying after retry-after is right for a per-minute limit: the SDKs may retry.
    assert!(!headers.contains_key("x-should-retry"));
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(r#"AccessKey "alice" maxRequestsPerMinute (3)"#),
        "{msg}"
    );
    // Only three calls reached the upstream; the refusal is recorded and counted.
    assert_eq!(h.mock.requests().len(), 3);
    let recs = records(&h.store, 4).await;
    let refused: Vec<_> = recs.iter().filter(|r| r.status == 429).collect();
    assert_eq!(refused.len(), 1, "{recs:?}");
    assert_eq!(refused[0].access_key.as_deref(), Some("alice"));
    // Refused before its body was read: no model is known yet.
    assert_eq!(refused[0].model, "");
    assert!(refused[0]
        .error
        .as_deref()
        .unwrap()
        .contains("maxRequestsPerMinute"));
    let metrics = h.gateway.metrics().render();
    assert!(
        metrics.lines().any(|l| l.starts_with("pai_requests_total")
            && l.contains(r#"workload="ext:alice""#)
            && l.contains(r#"status="429""#)),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_key_gets_its_rate_then_429_in_the_anthropic_dialect() {
    let h = harness().await;
    let k = key(
        &h,
        "bob",
        serde_json::json!({"modelProvider": "ant", "limits": {"maxRequestsPerMinute": 3}}),
    )
    .await;
    for i in 0..3 {
        let (status, _, v) = send(&h, anthropic(&k, "claude-sonnet-4-6")).await;
        assert_eq!(status, 200, "call {i}: {v}");
    }
    let (status, headers, v) = send(&h, anthropic(&k, "claude-sonnet-4-6")).await;
    assert_eq!(status, 429, "{v}");
    retry_after(&headers);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains(r#"AccessKey "bob" maxRequestsPerMinute (3)"#));
}

#[tokio::test]
async fn an_agent_gets_its_rate_whichever_key_it_comes_by() {
    let h = harness_with(Options {
        extra_yaml: r#"
apiVersion: pai.io/v1
kind: Agent
metadata: {name: bot}
spec:
  models: [ant/claude-sonnet-4-6]
  rateLimits: {maxRequestsPerMinute: 3}
"#
        .to_owned(),
        ..Options::default()
    })
    .await;
    let k1 = key(&h, "bot-1", serde_json::json!({"agent": "bot"})).await;
    let k2 = key(&h, "bot-2", serde_json::json!({"agent": "bot"})).await;
    for k in [&k1, &k2, &k1] {
        let (status, _, v) = send(&h, anthropic(k, "ant/claude-sonnet-4-6")).await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, headers, v) = send(&h, anthropic(&k2, "ant/claude-sonnet-4-6")).await;
    assert_eq!(status, 429, "{v}");
    retry_after(&headers);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains(r#"Agent "bot" maxRequestsPerMinute (3)"#));
    // The agent's limit holds for an embedder's own identity too.
    let mut req = openai_request(
        "unused",
        serde_json::json!({"model": "ant/claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.extensions_mut()
        .insert(pai_tower::AgentIdentity("bot".into()));
    let (status, headers, v) = send(&h, req).await;
    assert_eq!(status, 429, "{v}");
    retry_after(&headers);
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn a_provider_at_its_rate_sends_the_call_to_the_next_model() {
    let h = harness_with(Options {
        extra_yaml: r#"
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {name: ant-slow}
spec:
  provider: anthropic
  endpoint: "{url}"
  apiKeySecretRef: {name: keys, key: anthropic}
  maxRequestsPerMinute: 2
---
apiVersion: pai.io/v1
kind: Agent
metadata: {name: bot}
spec:
  models: [ant-slow/claude-sonnet-4-6, oai/gpt-4o-mini]
---
apiVersion: pai.io/v1
kind: Agent
metadata: {name: loyal}
spec:
  models: [ant-slow/claude-sonnet-4-6]
"#
        .to_owned(),
        ..Options::default()
    })
    .await;
    let k = key(&h, "bot-key", serde_json::json!({"agent": "bot"})).await;
    for _ in 0..2 {
        let (status, headers, v) = send(&h, anthropic(&k, "ant-slow/claude-sonnet-4-6")).await;
        assert_eq!(status, 200, "{v}");
        assert!(!headers.contains_key("x-pai-fell-back-from"));
    }
    let (status, headers, v) = send(&h, anthropic(&k, "ant-slow/claude-sonnet-4-6")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        headers["x-pai-fell-back-from"],
        "ant-slow/claude-sonnet-4-6"
    );
    assert_eq!(headers["x-pai-model-id"], "gpt-4o-mini");
    assert_eq!(v["type"], "message");
    // With nowhere to fall back to, the provider's limit is the answer.
    let k = key(&h, "loyal-key", serde_json::json!({"agent": "loyal"})).await;
    let (status, headers, v) = send(&h, anthropic(&k, "ant-slow/claude-sonnet-4-6")).await;
    assert_eq!(status, 429, "{v}");
    retry_after(&headers);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains(r#"ModelProvider "ant-slow" maxRequestsPerMinute (2)"#));
}

#[tokio::test]
async fn a_limit_survives_an_unrelated_config_change() {
    let h = harness().await;
    let k = key(
        &h,
        "carol",
        serde_json::json!({"modelProvider": "oai", "limits": {"maxRequestsPerMinute": 2}}),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(send(&h, openai(&k)).await.0, 200);
    }
    // Another key, another agent: the snapshot is rebuilt, and carol's limiter is not.
    let _other = key(
        &h,
        "dave",
        serde_json::json!({"modelProvider": "oai", "limits": {"maxRequestsPerMinute": 5}}),
    )
    .await;
    let agent = pai_core::resource::load(
        "apiVersion: pai.io/v1\nkind: Agent\nmetadata: {name: other}\nspec: {models: [oai/gpt-4o-mini]}\n",
    )
    .unwrap();
    h.store.apply(&agent.resources[0]).await.unwrap();
    h.gateway.reload().await.unwrap();
    assert_eq!(send(&h, openai(&_other)).await.0, 200);
    let (status, headers, _) = send(&h, openai(&k)).await;
    assert_eq!(status, 429);
    retry_after(&headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_against_five_a_minute_admit_five() {
    let h = harness().await;
    let k = key(
        &h,
        "eve",
        serde_json::json!({"modelProvider": "oai", "limits": {"maxRequestsPerMinute": 5}}),
    )
    .await;
    let statuses: Vec<u16> = futures::stream::iter((0..20).map(|_| {
        let gw = h.gateway.clone();
        let req = openai(&k);
        async move { collect(gw.oneshot(req).await.unwrap()).await.0.as_u16() }
    }))
    .buffer_unordered(20)
    .collect()
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(h.mock.requests().len(), 5);
}
