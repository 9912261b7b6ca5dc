//! The assembled gateway, in process, in front of the mock upstream on loopback.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use pai_core::{AccessKeyHasher, Store};
use tower::ServiceExt;

use common::{anthropic_request, collect, harness, mint, openai_request, records, SECRET};

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
    // Every frame holds whole events: the split writes upstream were reassembled, and nothing
    // is held back waiting for more.
    for f in &frames {
        let s = std::str::from_utf8(f).unwrap();
        assert!(
            s.starts_with("event: ") || s.starts_with(": pai-usage "),
            "{s:?}"
        );
        assert!(s.ends_with("\n\n"), "{s:?}");
    }
    let text = String::from_utf8(frames.concat()).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    // The usage and cost ride along as an SSE comment just before the final event.
    let n = events.len();
    assert!(
        events[n - 1].starts_with("event: message_stop"),
        "{events:?}"
    );
    let comment = events[n - 2];
    assert!(comment.starts_with(": pai-usage {"), "{comment}");
    assert!(comment.contains("\"output_tokens\":10"), "{comment}");
    let deltas = events
        .iter()
        .filter(|e| e.starts_with("event: content_block_delta"))
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
    let last = common::last_event(&frames);
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
    let fresh = mint(&h.store, &hasher, "k-new", "oai", None).await;
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
