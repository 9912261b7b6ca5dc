//! The assembled gateway, in process, in front of the mock upstream on loopback.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use pai_core::resource::{load, AccessKey, Resource};
use pai_core::{access_key, AccessKeyHasher, Store};
use pai_mock::{MockConfig, MockUpstream};
use pai_store::MemoryStore;
use pai_tower::{Gateway, ResponseBody};
use tower::ServiceExt;

const SECRET: &[u8] = b"integration test secret 32 bytes";

struct Harness {
    gateway: Gateway,
    store: Arc<MemoryStore>,
    mock: MockUpstream,
    openai_key: String,
    anthropic_key: String,
}

async fn harness() -> Harness {
    let mock = MockUpstream::start(
        MockConfig::default()
            .with_openai_key("sk-real-openai")
            .with_anthropic_key("sk-real-anthropic"),
    )
    .await
    .unwrap();
    let url = mock.url();
    let store = Arc::new(MemoryStore::new());
    let yaml = format!(
        r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: keys}}
data: {{openai: sk-real-openai, anthropic: sk-real-anthropic}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: oai}}
spec:
  provider: openai
  endpoint: {url}/v1
  apiKeySecretRef: {{name: keys, key: openai}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: true}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: ant}}
spec:
  provider: anthropic
  endpoint: {url}
  apiKeySecretRef: {{name: keys, key: anthropic}}
  externalAccess: {{enabled: true}}
"#
    );
    for r in load(&yaml).unwrap().resources {
        store.apply(&r).await.unwrap();
    }
    let hasher = AccessKeyHasher::new(SECRET);
    let openai_key = mint(&store, &hasher, "k-oai", "oai").await;
    let anthropic_key = mint(&store, &hasher, "k-ant", "ant").await;
    let gateway = Gateway::builder()
        .store(store.clone())
        .key_hasher(hasher)
        .build()
        .await
        .unwrap();
    Harness {
        gateway,
        store,
        mock,
        openai_key,
        anthropic_key,
    }
}

async fn mint(store: &MemoryStore, hasher: &AccessKeyHasher, name: &str, provider: &str) -> String {
    let raw = access_key::generate().unwrap();
    let mut key: AccessKey = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"modelProvider": provider},
    }))
    .unwrap();
    key.status.key_hash = Some(hasher.hash(&raw).0);
    store.apply(&Resource::AccessKey(key)).await.unwrap();
    raw
}

fn openai_request(key: &str, body: serde_json::Value) -> Request<Full<Bytes>> {
    Request::post("/ext/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn anthropic_request(key: &str, body: serde_json::Value) -> Request<Full<Bytes>> {
    Request::post("/ext/v1/messages?beta=true")
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn collect(res: http::Response<ResponseBody>) -> (StatusCode, http::HeaderMap, Vec<Bytes>) {
    let (parts, mut body) = res.into_parts();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames.push(data);
        }
    }
    (parts.status, parts.headers, frames)
}

/// Wait (boundedly) for the call recorder to write `n` records.
async fn records(store: &MemoryStore, n: usize) -> Vec<pai_core::CallRecord> {
    for _ in 0..200 {
        let calls = store.recent_calls(10_000).await.unwrap();
        if calls.len() >= n {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.recent_calls(10_000).await.unwrap()
}

#[tokio::test]
async fn anthropic_stream_passes_event_by_event_and_is_metered() {
    let h = harness().await;
    let req = anthropic_request(
        &h.anthropic_key,
        serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "hi [mock:words=10,split]"}]}),
    );
    let res = h.gateway.clone().oneshot(req).await.unwrap();
    let (status, headers, frames) = collect(res).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(headers.contains_key("x-pai-call-id"));
    // One frame per event, each a complete event: the split writes upstream were reassembled.
    for f in &frames {
        let s = std::str::from_utf8(f).unwrap();
        assert!(s.starts_with("event: "), "{s:?}");
        assert!(s.ends_with("\n\n"), "{s:?}");
    }
    let deltas = frames
        .iter()
        .filter(|f| f.starts_with(b"event: content_block_delta"))
        .count();
    assert_eq!(deltas, 10);
    // The upstream got the query string and the real key.
    let seen = h.mock.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.query.as_deref(), Some("beta=true"));
    let rec = &records(&h.store, 1).await[0];
    let usage = rec.usage.unwrap();
    assert_eq!(usage.output, 10);
    assert!(usage.input > 0);
    assert_eq!(rec.workload, "ext:k-ant");
    assert_eq!(rec.error, None);
}

#[tokio::test]
async fn a_broken_upstream_stream_ends_with_an_in_band_error_and_is_recorded() {
    let h = harness().await;
    let req = openai_request(
        &h.openai_key,
        serde_json::json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": "hi [mock:words=10,reset_after=3]"}]}),
    );
    let res = h.gateway.clone().oneshot(req).await.unwrap();
    let (status, _, frames) = collect(res).await;
    assert_eq!(status, 200);
    let last = std::str::from_utf8(frames.last().unwrap()).unwrap();
    assert!(last.starts_with("data: {\"error\""), "{last}");
    let rec = &records(&h.store, 1).await[0];
    assert!(
        rec.error.as_deref().unwrap_or("").contains("broke"),
        "{rec:?}"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_is_still_recorded() {
    let h = harness().await;
    let req = anthropic_request(
        &h.anthropic_key,
        serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "hi [mock:words=50,delay_ms=20]"}]}),
    );
    let res = h.gateway.clone().oneshot(req).await.unwrap();
    let mut body = res.into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
    }
    drop(body);
    let rec = &records(&h.store, 1).await[0];
    assert!(
        rec.error.as_deref().unwrap_or("").contains("disconnected"),
        "{rec:?}"
    );
    // message_start carried the input tokens: they are charged even though the stream was cut.
    assert!(rec.usage.unwrap().input > 0);
}

#[tokio::test]
async fn concurrent_calls_are_all_answered_and_recorded() {
    let h = harness().await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let gw = h.gateway.clone();
        let key = h.openai_key.clone();
        tasks.push(tokio::spawn(async move {
            let req = openai_request(
                &key,
                serde_json::json!({"model": "gpt-4o-mini", "stream": i % 2 == 0,
                    "messages": [{"role": "user", "content": format!("call {i} [mock:words=5]")}]}),
            );
            let (status, _, _) = collect(gw.oneshot(req).await.unwrap()).await;
            status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let recs = records(&h.store, 64).await;
    assert_eq!(recs.len(), 64);
    assert!(recs.iter().all(|r| r.usage.is_some_and(|u| u.output == 5)));
}

#[tokio::test]
async fn new_and_revoked_keys_take_effect_without_restart() {
    let h = harness().await;
    let hasher = AccessKeyHasher::new(SECRET);
    let fresh = mint(&h.store, &hasher, "k-new", "oai").await;
    let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let mut status = StatusCode::UNAUTHORIZED;
    for _ in 0..200 {
        status = h
            .gateway
            .clone()
            .oneshot(openai_request(&fresh, body.clone()))
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status, 200);
    h.store
        .delete(pai_core::Kind::AccessKey, "k-new")
        .await
        .unwrap();
    for _ in 0..200 {
        status = h
            .gateway
            .clone()
            .oneshot(openai_request(&fresh, body.clone()))
            .await
            .unwrap()
            .status();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status, 401);
}
