//! Fault injection against the mock upstream: retries, fallbacks, cooldowns, timeouts, pings,
//! overload — and a chaos run in which every request ends well-formed.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pai_core::SystemClock;
use pai_store::MemoryLedger;

use futures::StreamExt;
use pai_mock::{MockConfig, MockUpstream};
use pai_tower::Reliability;
use tower::ServiceExt;

use common::{anthropic_request, collect, fast, harness_with, openai_request, records, Options};

fn chat(content: &str) -> serde_json::Value {
    serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn two_529s_then_success_is_one_answer_after_three_calls() {
    let h = harness_with(Options {
        reliability: Some(fast()),
        ..Options::default()
    })
    .await;
    let req = anthropic_request(
        &h.anthropic_key,
        serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi [mock:status=529,times=2]"}]}),
    );
    let (status, headers, frames) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200, "{:?}", frames);
    assert_eq!(headers["x-pai-retries"], "2");
    assert_eq!(h.mock.calls("/v1/messages"), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let h = harness_with(Options {
        reliability: Some(fast()),
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let req = openai_request(
        &h.openai_key,
        chat("hi [mock:status=429,times=1,retry_after=1]"),
    );
    let (status, headers, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-pai-retries"], "1");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_failing_primary_falls_back_and_then_cools_down() {
    // The primary is a second upstream that refuses the gateway's key: every call to it fails.
    let broken =
        MockUpstream::start(MockConfig::default().with_openai_key("a-key-pai-does-not-have"))
            .await
            .unwrap();
    let policy = Reliability {
        cooldown_after: 2,
        cooldown: Duration::from_millis(400),
        ..fast()
    };
    let h = harness_with(Options {
        reliability: Some(policy),
        extra_yaml: format!(
            r#"
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: flaky}}
spec:
  provider: openai
  endpoint: {}/v1
  apiKeySecretRef: {{name: keys, key: openai}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: true}}
  fallbacks: [oai/gpt-4o-mini]
"#,
            broken.url()
        ),
        ..Options::default()
    })
    .await;
    let hasher = pai_core::AccessKeyHasher::new(common::SECRET);
    let key = common::mint(&h.store, &hasher, "k-flaky", "flaky", None).await;
    h.gateway.reload().await.unwrap();

    for round in 0..2 {
        let (status, headers, _) = collect(
            h.gateway
                .clone()
                .oneshot(openai_request(&key, chat("hi")))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "round {round}");
        assert_eq!(headers["x-pai-fell-back-from"], "flaky/gpt-4o-mini");
        assert_eq!(headers["x-pai-model-id"], "gpt-4o-mini");
    }
    assert_eq!(broken.calls("/v1/chat/completions"), 2);
    // Cooling down: the primary is skipped.
    for _ in 0..3 {
        let (status, _, _) = collect(
            h.gateway
                .clone()
                .oneshot(openai_request(&key, chat("hi")))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        broken.calls("/v1/chat/completions"),
        2,
        "called during cooldown"
    );
    // It comes back on its own.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let _ = collect(
        h.gateway
            .clone()
            .oneshot(openai_request(&key, chat("hi")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(broken.calls("/v1/chat/completions"), 3);
}

#[tokio::test]
async fn a_reset_mid_stream_is_not_retried_and_ends_in_band() {
    let h = harness_with(Options {
        reliability: Some(fast()),
        ..Options::default()
    })
    .await;
    let req = anthropic_request(
        &h.anthropic_key,
        serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": "hi [mock:words=10,reset_after=4]"}]}),
    );
    let (status, _, frames) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    let last = common::last_event(&frames);
    assert!(last.starts_with("event: error\n"), "{last}");
    assert!(last.contains("\"type\":\"error\""), "{last}");
    assert_eq!(h.mock.calls("/v1/messages"), 1);
    let rec = &records(&h.store, 1).await[0];
    assert!(rec.usage.is_some_and(|u| u.input > 0), "{rec:?}");
}

#[tokio::test]
async fn a_stalled_stream_times_out_and_a_slow_one_does_not() {
    let h = harness_with(Options {
        reliability: Some(Reliability {
            idle_timeout: Duration::from_millis(1000),
            ..fast()
        }),
        ..Options::default()
    })
    .await;
    let stream = |content: &str| {
        serde_json::json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": content}]})
    };
    let (_, _, frames) = collect(
        h.gateway
            .clone()
            .oneshot(openai_request(
                &h.openai_key,
                stream("[mock:words=6,stall_ms=4000]"),
            ))
            .await
            .unwrap(),
    )
    .await;
    let last = common::last_event(&frames);
    assert!(last.contains("sent no complete event for 1 s"), "{last}");

    let (_, _, frames) = collect(
        h.gateway
            .clone()
            .oneshot(openai_request(
                &h.openai_key,
                stream("[mock:words=6,delay_ms=100]"),
            ))
            .await
            .unwrap(),
    )
    .await;
    let last = common::last_event(&frames);
    assert!(last.starts_with("data: [DONE]"), "{last}");
}

#[tokio::test]
async fn silences_on_anthropic_streams_are_filled_with_pings() {
    let h = harness_with(Options {
        reliability: Some(Reliability {
            ping_interval: Duration::from_millis(100),
            ..fast()
        }),
        ..Options::default()
    })
    .await;
    let req = anthropic_request(
        &h.anthropic_key,
        serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": "hi [mock:words=4,stall_ms=550]"}]}),
    );
    let (status, _, frames) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    let pings = common::events(&frames)
        .iter()
        .filter(|e| e.starts_with("event: ping"))
        .count();
    // One from upstream, and ours during the 550 ms stall (about five; timers on a busy
    // machine may fire late).
    assert!(pings >= 3, "{pings} pings");
    assert!(common::last_event(&frames).starts_with("event: message_stop"));
}

#[tokio::test]
async fn a_full_queue_answers_503() {
    let h = harness_with(Options {
        reliability: Some(Reliability {
            max_concurrency: 1,
            max_queue: 0,
            ..fast()
        }),
        ..Options::default()
    })
    .await;
    let slow = h.gateway.clone().oneshot(openai_request(
        &h.openai_key,
        serde_json::json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": "[mock:words=5,delay_ms=100]"}]}),
    ));
    let slow = slow.await.unwrap();
    let (status, _, frames) = collect(
        h.gateway
            .clone()
            .oneshot(openai_request(&h.openai_key, chat("hi")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503, "{frames:?}");
    let body: serde_json::Value = serde_json::from_slice(&frames.concat()).unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("overloaded"));
    let (status, _, _) = collect(slow).await;
    assert_eq!(status, 200);
    // The slot came back with the end of the stream.
    let (status, _, _) = collect(
        h.gateway
            .clone()
            .oneshot(openai_request(&h.openai_key, chat("hi")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

/// Every request with a random fault ends in a correct answer or a well-formed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos() {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let h = harness_with(Options {
        reliability: Some(Reliability {
            idle_timeout: Duration::from_millis(500),
            ..fast()
        }),
        ledger: Some(ledger.clone()),
        ..Options::default()
    })
    .await;
    // Keys with a (large) daily budget, so every call reserves and must settle.
    let hasher = pai_core::AccessKeyHasher::new(common::SECRET);
    let openai_key = common::mint(&h.store, &hasher, "chaos-oai", "oai", Some(1 << 40)).await;
    let anthropic_key = common::mint(&h.store, &hasher, "chaos-ant", "ant", Some(1 << 40)).await;
    h.gateway.reload().await.unwrap();
    const N: usize = 2000;
    let faults = [
        "",
        "[mock:status=529,times=1]",
        "[mock:status=500]",
        "[mock:status=429,times=2]",
        "[mock:status=400]",
        "[mock:midstream_error]",
        "[mock:reset_after=2]",
        "[mock:stall_ms=800]",
        "[mock:split,crlf]",
    ];
    let mut seed: u64 = 0x5eed;
    let mut jobs = Vec::new();
    for i in 0..N {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let fault = faults[(seed % faults.len() as u64) as usize];
        let stream = seed & 64 == 0;
        let anthropic = seed & 128 == 0;
        // A unique prefix keeps `times` counters per request.
        let content = format!("call {i} {fault} [mock:words=5]");
        let req = if anthropic {
            anthropic_request(
                &anthropic_key,
                serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 50, "stream": stream,
                    "messages": [{"role": "user", "content": content}]}),
            )
        } else {
            openai_request(
                &openai_key,
                serde_json::json!({"model": "gpt-4o-mini", "stream": stream,
                    "messages": [{"role": "user", "content": content}]}),
            )
        };
        jobs.push((anthropic, stream, fault, req));
    }
    let gateway = h.gateway.clone();
    let results = futures::stream::iter(jobs.into_iter().map(|(anthropic, stream, fault, req)| {
        let gw = gateway.clone();
        async move {
            let (status, _, frames) = collect(gw.oneshot(req).await.unwrap()).await;
            (anthropic, stream, fault, status, frames.concat())
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<_>>();
    let results = tokio::time::timeout(Duration::from_secs(240), results)
        .await
        .unwrap();

    let (mut answered, mut failed, mut in_band) = (0, 0, 0);
    for (anthropic, stream, fault, status, body) in &results {
        let text = String::from_utf8_lossy(body);
        if !status.is_success() {
            failed += 1;
            let v: serde_json::Value = serde_json::from_slice(body)
                .unwrap_or_else(|e| panic!("{fault}: error body is not JSON ({e}): {text}"));
            if *anthropic {
                assert_eq!(v["type"], "error", "{fault}: {text}");
                assert!(v["error"]["type"].is_string(), "{fault}: {text}");
            } else {
                assert!(v["error"]["message"].is_string(), "{fault}: {text}");
            }
            continue;
        }
        if !*stream {
            let v: serde_json::Value =
                serde_json::from_slice(body).unwrap_or_else(|e| panic!("{fault}: {e}: {text}"));
            let content = if *anthropic {
                &v["content"][0]["text"]
            } else {
                &v["choices"][0]["message"]["content"]
            };
            assert!(
                content.as_str().unwrap().starts_with("mock reply:"),
                "{fault}: {text}"
            );
            answered += 1;
            continue;
        }
        // A stream ends with its proper terminator, or with an in-band error in its dialect.
        let complete = if *anthropic {
            text.contains("event: message_stop")
        } else {
            text.contains("data: [DONE]")
        };
        let errored = if *anthropic {
            text.contains("event: error")
        } else {
            text.contains("data: {\"error\"")
        };
        assert!(complete || errored, "{fault}: {text}");
        if complete {
            answered += 1
        } else {
            in_band += 1
        }
    }
    println!("chaos: {N} requests: {answered} answered, {failed} refused with a status, {in_band} ended with an in-band error");
    assert_eq!(answered + failed + in_band, N);
    assert_eq!(records(&h.store, N).await.len(), N, "every call recorded");
    // Settles are spawned as responses end; afterwards no reservation may be left open.
    for _ in 0..200 {
        if ledger.open_reservations().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        ledger.open_reservations().len(),
        0,
        "open reservations after chaos"
    );
}
