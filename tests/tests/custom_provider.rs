//! `examples/custom_provider.rs` as its users run it: an adapter of a library user's own,
//! registered with the gateway by name and named by a ModelProvider, serving both client
//! dialects whole and streamed; and what happens to a provider no adapter is registered for.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

// The example's own adapter and helpers, so that what the example shows is what is tested.
#[allow(dead_code)]
#[path = "../../examples/custom_provider.rs"]
mod example;

use std::sync::Arc;

use http::StatusCode;
use pai_core::AccessKeyHasher;
use pai_store::MemoryStore;
use pai_tower::Gateway;
use serde_json::Value;

use example::{ask, Client};

const SECRET: &[u8] = b"custom provider test secret 32 b";

/// An Acme server, a gateway with the Acme adapter, the Acme provider and a key for it.
async fn acme() -> (Gateway, Arc<MemoryStore>, String) {
    let addr = example::serve_acme().await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let hasher = AccessKeyHasher::new(SECRET);
    let gateway = example::gateway(store.clone(), hasher.clone())
        .await
        .unwrap();
    example::apply(&gateway, &store, &example::acme_provider_yaml(addr))
        .await
        .unwrap();
    let key = example::mint(&gateway, &store, &hasher, "acme")
        .await
        .unwrap();
    (gateway, store, key)
}

#[tokio::test]
async fn the_example_runs() {
    example::demo().await.unwrap();
}

#[tokio::test]
async fn calls_are_metered_and_recorded_under_the_custom_provider() {
    let (gateway, store, key) = acme().await;
    let (status, body) = ask(
        &gateway,
        &key,
        Client::Anthropic,
        "one two three",
        false,
        64,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = ask(&gateway, &key, Client::OpenAi, "one two three", true, 64)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let records = common::records(&store, 2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    for r in &records {
        assert_eq!(r.provider, "acme");
        assert_eq!(r.model, example::MODEL);
        assert_eq!(r.error, None);
        // "one two three" read; "Acme heard: one two three" written.
        let usage = r.usage.unwrap();
        assert_eq!((usage.input, usage.output), (3, 5), "{r:?}");
    }
}

#[tokio::test]
async fn the_output_limit_stops_the_answer_in_both_dialects() {
    let (gateway, _store, key) = acme().await;
    let (status, body) = ask(&gateway, &key, Client::OpenAi, "a b c d", false, 2)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Acme heard:");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");

    let (status, body) = ask(&gateway, &key, Client::Anthropic, "a b c d", true, 2)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = example::sse_events(&body);
    let delta = events
        .iter()
        .find(|(name, _)| *name == Some("message_delta"))
        .map(|(_, data)| serde_json::from_str::<Value>(data).unwrap())
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens", "{body}");
    assert_eq!(delta["usage"]["output_tokens"], 2, "{body}");
}

#[tokio::test]
async fn an_upstream_refusing_the_providers_key_is_a_502_in_the_clients_dialect() {
    let (gateway, store, key) = acme().await;
    let wrong = "apiVersion: pai.io/v1\nkind: Secret\nmetadata: {name: acme-key}\ndata: {api-key: not-the-acme-key}\n";
    example::apply(&gateway, &store, wrong).await.unwrap();
    let (status, body) = ask(&gateway, &key, Client::Anthropic, "hi", false, 64)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["type"], "error", "{body}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rejected the gateway's credentials"),
        "{body}"
    );
}

#[tokio::test]
async fn a_provider_no_adapter_is_registered_for_is_refused_and_never_called() {
    let addr = example::serve_acme().await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let hasher = AccessKeyHasher::new(SECRET);
    // pai's own adapters only.
    let gateway = Gateway::builder()
        .store(store.clone())
        .key_hasher(hasher.clone())
        .build()
        .await
        .unwrap();

    // Checked before it is stored: refused, naming the providers there are.
    let yaml = example::acme_provider_yaml(addr);
    let why = example::apply(&gateway, &store, &yaml)
        .await
        .unwrap_err()
        .to_string();
    assert!(why.contains("no adapter for provider \"acme\""), "{why}");
    assert!(why.contains("anthropic, azure-openai, gemini"), "{why}");

    // Stored anyway (by another process, or before the adapter was dropped): kept in the
    // snapshot without an adapter, and calls to it are refused, not sent anywhere.
    for resource in pai_core::resource::load(&yaml).unwrap().resources {
        pai_core::Store::apply(store.as_ref(), &resource)
            .await
            .unwrap();
    }
    let key = example::mint(&gateway, &store, &hasher, "acme")
        .await
        .unwrap();
    let snapshot = gateway.snapshot();
    assert!(snapshot.provider("acme").unwrap().adapter.is_none());
    for client in [Client::OpenAi, Client::Anthropic] {
        let (status, body) = ask(&gateway, &key, client, "hi", false, 64).await.unwrap();
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
        assert!(
            body.contains("names provider acme, which this gateway has no adapter for"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_adapter_name_no_provider_could_give_fails_the_build() {
    let e = Gateway::builder()
        .store(Arc::new(MemoryStore::new()))
        .key_hasher(AccessKeyHasher::new(SECRET))
        .provider("Acme Corp", Arc::new(example::AcmeAdapter))
        .build()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("cannot name a provider adapter"),
        "{e}"
    );
}
