//! Bodies built to slip past the gateway's estimate, budgets and labels: numbers out of range,
//! deep nesting, `n` choices, odd output bounds, huge model names, and bodies that would freeze
//! the runtime if counted on it.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use pai_core::{AccessKeyHasher, BudgetLedger, SystemClock};
use pai_store::MemoryLedger;
use tower::ServiceExt;

use common::{collect, harness_with, mint, records, Options, SECRET};

fn raw_request(path: &str, key: &str, body: String) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("authorization", format!("Bearer {key}"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

const CHAT: &str = "/ext/v1/chat/completions";
const MESSAGES: &str = "/ext/v1/messages";

async fn send(
    h: &common::Harness,
    path: &str,
    key: &str,
    body: String,
) -> (u16, serde_json::Value) {
    let res = h
        .gateway
        .clone()
        .oneshot(raw_request(path, key, body))
        .await
        .unwrap();
    let (status, _, frames) = collect(res).await;
    let v = serde_json::from_slice(&frames.concat()).unwrap_or(serde_json::Value::Null);
    (status.as_u16(), v)
}

/// About 7,500 tokens of prose.
fn long_prompt() -> String {
    "The quick brown fox jumps over the lazy dog. ".repeat(750)
}

#[tokio::test]
async fn fields_the_estimate_cannot_parse_do_not_hide_the_prompt() {
    let h = harness_with(Options {
        oai_spec: "  maxTokensPerRequest: 200".to_owned(),
        ..Options::default()
    })
    .await;
    let prompt = serde_json::to_string(&long_prompt()).unwrap();
    let plain = format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":10,"messages":[{{"role":"user","content":{prompt}}}]}}"#
    );
    let huge_number = format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":10,"messages":[{{"role":"user","content":{prompt},"x":1e400}}]}}"#
    );
    let deep = format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":10,"messages":[{{"role":"user","content":{prompt},"x":{}1{}}}]}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    for (what, body) in [("plain", plain), ("1e400", huge_number), ("deep", deep)] {
        let (status, v) = send(&h, CHAT, &h.openai_key, body).await;
        assert_eq!(status, 400, "{what}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("maxTokensPerRequest"), "{what}: {msg}");
    }
    assert_eq!(h.mock.calls("/v1/chat/completions"), 0);
}

#[tokio::test]
async fn n_choices_are_reserved_n_times() {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let h = harness_with(Options {
        ledger: Some(ledger),
        ..Options::default()
    })
    .await;
    let key = mint(
        &h.store,
        &AccessKeyHasher::new(SECRET),
        "k-100m",
        "oai",
        Some(100_000_000),
    )
    .await;
    h.gateway.reload().await.unwrap();
    let body = |extra: &str| {
        format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
    };
    let (status, v) = send(&h, CHAT, &key, body(r#","max_tokens":150000000"#)).await;
    assert_eq!(status, 429, "{v}");
    let (status, v) = send(&h, CHAT, &key, body(r#","max_tokens":50000000,"n":3"#)).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(h.mock.calls("/v1/chat/completions"), 0);
}

#[tokio::test]
async fn odd_output_bounds_are_refused_naming_the_field() {
    let h = harness_with(Options::default()).await;
    let chat = |extra: &str| {
        format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
    };
    for (field, value) in [
        ("max_tokens", "-5"),
        ("max_tokens", "1e308"),
        ("max_tokens", "\"99999999\""),
        ("max_tokens", "1.5"),
        ("max_completion_tokens", "-5"),
        ("max_completion_tokens", "1e400"),
        ("max_completion_tokens", "18446744073709551615"),
        ("n", "0"),
        ("n", "-1"),
        ("n", "2.5"),
        ("n", "1000000"),
    ] {
        let (status, v) = send(
            &h,
            CHAT,
            &h.openai_key,
            chat(&format!(r#","{field}":{value}"#)),
        )
        .await;
        assert_eq!(status, 400, "{field}={value}: {v}");
        assert_eq!(v["error"]["param"], field, "{field}={value}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{field}={value}: {v}"
        );
    }
    let msgs = |value: &str| {
        format!(
            r#"{{"model":"claude-sonnet-4-6","max_tokens":{value},"messages":[{{"role":"user","content":"hi"}}]}}"#
        )
    };
    for value in ["-5", "1e308", "\"99999999\"", "1.5", "0"] {
        let (status, v) = send(&h, MESSAGES, &h.anthropic_key, msgs(value)).await;
        assert_eq!(status, 400, "max_tokens={value}: {v}");
        assert_eq!(v["type"], "error", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_tokens"),
            "{v}"
        );
    }
    assert_eq!(h.mock.calls("/v1/chat/completions"), 0);
    assert_eq!(h.mock.calls("/v1/messages"), 0);
}

#[tokio::test]
async fn huge_and_odd_model_names_are_refused_in_the_clients_dialect() {
    let h = harness_with(Options::default()).await;
    let long = "m".repeat(300);
    for model in [long.as_str(), "gpt-4o-mini\r\nx", "gpt\u{0}"] {
        let model = serde_json::to_string(model).unwrap();
        let chat = format!(r#"{{"model":{model},"messages":[{{"role":"user","content":"hi"}}]}}"#);
        let (status, v) = send(&h, CHAT, &h.openai_key, chat).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["param"], "model", "{v}");
        let msgs = format!(
            r#"{{"model":{model},"max_tokens":5,"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        let (status, v) = send(&h, MESSAGES, &h.anthropic_key, msgs).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    // What is recorded of a refused name is bounded.
    let recs = records(&h.store, 6).await;
    assert!(recs.len() >= 6);
    assert!(
        recs.iter().all(|r| r.model.len() <= 256),
        "a record kept a huge model name"
    );
    // ... and still says what the client sent: its first 256 bytes.
    assert_eq!(
        recs.iter().filter(|r| r.model == "m".repeat(256)).count(),
        2,
        "{:?}",
        recs.iter().map(|r| &r.model).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn unknown_model_names_never_become_metric_labels() {
    let h = harness_with(Options::default()).await;
    let made_up = "gpt-4o-mini-madeup-label-zz9";
    let chat = format!(r#"{{"model":"{made_up}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let (status, _) = send(&h, CHAT, &h.openai_key, chat).await;
    assert_eq!(status, 404);
    let _ = records(&h.store, 1).await;
    let text = h.gateway.metrics().render();
    assert!(!text.contains(made_up), "the made-up name is a label");
    assert!(text.contains("model=\"other\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_do_not_stall_the_runtime() {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let h = harness_with(Options {
        ledger: Some(ledger),
        oai_spec: "  maxTokensPerRequest: 200".to_owned(),
        ..Options::default()
    })
    .await;
    let key = mint(
        &h.store,
        &AccessKeyHasher::new(SECRET),
        "k-big",
        "oai",
        Some(100_000_000),
    )
    .await;
    h.gateway.reload().await.unwrap();
    // One long word: the worst case for a BPE, whose merges are quadratic in a word's length.
    let text = "a".repeat(2_000_000);
    let body = format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":10,"messages":[{{"role":"user","content":"{text}"}}]}}"#
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut last = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(2)).await;
                worst = worst.max(last.elapsed());
                last = Instant::now();
            }
            worst
        })
    };
    let started = Instant::now();
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let gw = h.gateway.clone();
        let req = raw_request(CHAT, &key, body.clone());
        jobs.push(tokio::spawn(async move {
            collect(gw.oneshot(req).await.unwrap()).await.0.as_u16()
        }));
    }
    for job in jobs {
        let status = job.await.unwrap();
        assert_eq!(status, 400, "a 2 MB word is over 200 tokens");
    }
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = ticker.await.unwrap();
    assert!(
        took < Duration::from_secs(5),
        "two refusals took {took:?}: the exact count ran"
    );
    assert!(
        worst < Duration::from_millis(50),
        "the runtime stalled {worst:?} while two big bodies were estimated (in {took:?})"
    );
}

#[tokio::test]
async fn a_spent_budget_is_refused_without_counting() {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let h = harness_with(Options {
        ledger: Some(ledger.clone()),
        ..Options::default()
    })
    .await;
    const CAP: u64 = 100_000;
    let key = mint(
        &h.store,
        &AccessKeyHasher::new(SECRET),
        "k-spent",
        "oai",
        Some(CAP),
    )
    .await;
    h.gateway.reload().await.unwrap();
    // Spend it all.
    let scope = pai_core::ScopeLimit {
        key: pai_core::ScopeKey {
            kind: "access-key",
            name: "k-spent".to_owned(),
        },
        unit: pai_core::ledger::Unit::Tokens,
        limit: u128::from(CAP),
        amount: u128::from(CAP),
    };
    let r = ledger.reserve(&[scope]).await.unwrap();
    ledger.settle(r, &[u128::from(CAP)]).await.unwrap();
    // A body whose exact count takes seconds: one 1 MB word.
    let body = format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":10,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "b".repeat(1_000_000)
    );
    let started = Instant::now();
    let (status, v) = send(&h, CHAT, &key, body).await;
    let took = started.elapsed();
    assert_eq!(status, 429, "{v}");
    assert!(
        took < Duration::from_millis(500),
        "a spent key waited {took:?} for its refusal"
    );
}
