//! Budgets through the assembled gateway: caps that hold under concurrency, midnight resets,
//! fallback when a budget runs out, dollar caps, and streams charged for what they produced.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use futures::StreamExt;
use http_body_util::BodyExt;
use pai_core::{AccessKeyHasher, BudgetLedger, ManualClock, ScopeKey, SystemClock};
use pai_store::MemoryLedger;
use tower::ServiceExt;

use common::{
    anthropic_request, collect, fast, harness_with, mint, openai_request, records, Options, SECRET,
};

fn key_scope(name: &str) -> ScopeKey {
    ScopeKey {
        kind: "access-key",
        name: name.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_never_exceed_the_cap() {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let h = harness_with(Options {
        reliability: Some(fast()),
        ledger: Some(ledger.clone()),
        ..Options::default()
    })
    .await;
    const CAP: u64 = 20_000;
    let key = mint(
        &h.store,
        &AccessKeyHasher::new(SECRET),
        "k-cap",
        "ant",
        Some(CAP),
    )
    .await;
    h.gateway.reload().await.unwrap();

    let mut seed: u64 = 0xC0FFEE;
    let mut jobs = Vec::new();
    for i in 0..500 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let max_tokens = 10 + seed % 190;
        let words = 3 + (seed >> 8) % (max_tokens - 2);
        let stream = seed & 1 == 0;
        jobs.push(anthropic_request(
            &key,
            serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": max_tokens, "stream": stream,
                "messages": [{"role": "user", "content": format!("request {i} [mock:words={words}]")}]}),
        ));
    }
    let gateway = h.gateway.clone();
    let statuses: Vec<u16> = futures::stream::iter(jobs.into_iter().map(|req| {
        let gw = gateway.clone();
        async move { collect(gw.oneshot(req).await.unwrap()).await.0.as_u16() }
    }))
    .buffer_unordered(64)
    .collect()
    .await;
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(admitted + refused, 500, "{statuses:?}");
    assert!(refused > 0 && admitted > 0);

    let recs = records(&h.store, 500).await;
    let used: u64 = recs
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.usage.unwrap().total_tokens())
        .sum();
    // Settles are spawned as responses end; give the last ones a moment.
    let mut spent = 0;
    for _ in 0..100 {
        spent = ledger.spent_today(&key_scope("k-cap")).await.unwrap();
        if spent == u128::from(used) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("budget: {admitted} admitted, {refused} refused; {used} tokens used of a {CAP} cap");
    assert_eq!(
        spent,
        u128::from(used),
        "the ledger holds exactly what was used"
    );
    assert!(used <= CAP, "admitted {used} over the cap {CAP}");
    assert!(
        used > CAP / 2,
        "the budget was used, not refused wholesale: {used}"
    );
    assert!(
        ledger.open_reservations().is_empty(),
        "no reservation left open"
    );
}

#[tokio::test]
async fn the_budget_resets_at_midnight_utc() {
    // 23:59:00 UTC.
    let clock = Arc::new(ManualClock::new(
        UNIX_EPOCH + Duration::from_secs(86_400 * 20_000 - 60),
    ));
    let ledger = Arc::new(MemoryLedger::new(clock.clone()));
    let h = harness_with(Options {
        ledger: Some(ledger),
        ..Options::default()
    })
    .await;
    let key = mint(
        &h.store,
        &AccessKeyHasher::new(SECRET),
        "k-day",
        "ant",
        Some(500),
    )
    .await;
    h.gateway.reload().await.unwrap();
    let call = |max_tokens: u64| {
        anthropic_request(
            &key,
            serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": "hi [mock:words=300]"}]}),
        )
    };
    let (status, _, _) = collect(h.gateway.clone().oneshot(call(400)).await.unwrap()).await;
    assert_eq!(status, 200);
    let (status, headers, body) =
        collect(h.gateway.clone().oneshot(call(400)).await.unwrap()).await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry), "{retry}");
    assert_eq!(headers["x-should-retry"], "false");
    let v: serde_json::Value = serde_json::from_slice(&body.concat()).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(r#"AccessKey "k-day" limits.maxTokensPerDay"#),
        "{msg}"
    );
    clock.advance(Duration::from_secs(61));
    let (status, _, _) = collect(h.gateway.clone().oneshot(call(400)).await.unwrap()).await;
    assert_eq!(status, 200, "a new day, a new budget");
}

#[tokio::test]
async fn an_agent_falls_back_when_its_first_model_is_over_budget() {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let h = harness_with(Options {
        ledger: Some(ledger),
        prices: true,
        extra_yaml: r#"
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {name: ant-small}
spec:
  provider: anthropic
  endpoint: "{url}"
  apiKeySecretRef: {name: keys, key: anthropic}
  maxTokensPerDay: 600
---
apiVersion: pai.io/v1
kind: Agent
metadata: {name: support-bot}
spec:
  models: [ant-small/claude-sonnet-4-6, oai/gpt-4o-mini]
"#
        .to_owned(),
        ..Options::default()
    })
    .await;
    let raw = pai_core::access_key::generate().unwrap();
    let mut key: pai_core::resource::AccessKey = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bot-key"}, "spec": {"agent": "support-bot"}}))
    .unwrap();
    key.status.key_hash = Some(AccessKeyHasher::new(SECRET).hash(&raw).0);
    pai_core::Store::apply(h.store.as_ref(), &pai_core::Resource::AccessKey(key))
        .await
        .unwrap();
    h.gateway.reload().await.unwrap();

    let call = || {
        anthropic_request(
            &raw,
            serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 400,
                "messages": [{"role": "user", "content": "hi [mock:words=350]"}]}),
        )
    };
    let (status, headers, body) = collect(h.gateway.clone().oneshot(call()).await.unwrap()).await;
    assert_eq!(status, 200, "{:?}", body);
    assert!(!headers.contains_key("x-pai-fell-back-from"));
    assert!(headers.contains_key("x-pai-cost-usd"));
    // The first model's provider has spent its 600 tokens: the agent's next model answers,
    // translated back into the Anthropic dialect.
    let (status, headers, body) = collect(h.gateway.clone().oneshot(call()).await.unwrap()).await;
    assert_eq!(status, 200, "{:?}", body);
    assert_eq!(
        headers["x-pai-fell-back-from"],
        "ant-small/claude-sonnet-4-6"
    );
    assert_eq!(headers["x-pai-model-id"], "gpt-4o-mini");
    let v: serde_json::Value = serde_json::from_slice(&body.concat()).unwrap();
    assert_eq!(v["type"], "message");
    assert!(v["content"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("mock reply:"));
    let recs = records(&h.store, 2).await;
    assert!(recs.iter().all(|r| r.workload == "support-bot"));
}

#[tokio::test]
async fn an_agent_dollar_cap_holds() {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let h = harness_with(Options {
        ledger: Some(ledger),
        prices: true,
        extra_yaml: r#"
apiVersion: pai.io/v1
kind: Agent
metadata: {name: frugal}
spec:
  models: [ant/claude-sonnet-4-6]
  rateLimits: {maxCostPerDayUSD: 0.01}
"#
        .to_owned(),
        ..Options::default()
    })
    .await;
    let mut answered = 0;
    let mut refused = None;
    for _ in 0..20 {
        let req = anthropic_request(
            "unused",
            serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 200,
            "messages": [{"role": "user", "content": "hi [mock:words=150]"}]}),
        );
        let mut req = req;
        req.extensions_mut()
            .insert(pai_tower::AgentIdentity("frugal".into()));
        let (status, _, body) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
        match status.as_u16() {
            200 => answered += 1,
            429 => {
                refused = Some(String::from_utf8_lossy(&body.concat()).into_owned());
                break;
            }
            other => panic!("{other}: {:?}", body),
        }
    }
    // $3/M in, $15/M out: ~150 output tokens cost ~$0.00225, so a cent buys a handful of calls.
    assert!((2..=6).contains(&answered), "{answered}");
    assert!(refused
        .unwrap()
        .contains(r#"Agent \"frugal\" rateLimits.maxCostPerDayUSD"#));
    let recs = records(&h.store, answered).await;
    let total: u128 = recs.iter().filter_map(|r| r.cost_pico_usd).sum();
    assert!(
        total <= 10_000_000_000,
        "spent {total} pico-USD of a 1e10 cap"
    );
}

#[tokio::test]
async fn an_abandoned_stream_is_charged_for_what_it_produced() {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let h = harness_with(Options {
        ledger: Some(ledger.clone()),
        ..Options::default()
    })
    .await;
    let key = mint(
        &h.store,
        &AccessKeyHasher::new(SECRET),
        "k-abandon",
        "oai",
        Some(1_000_000),
    )
    .await;
    h.gateway.reload().await.unwrap();
    let req = openai_request(
        &key,
        serde_json::json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": "hi [mock:words=60,delay_ms=15]"}]}),
    );
    let mut body = h.gateway.clone().oneshot(req).await.unwrap().into_body();
    // The role chunk, then 20 content chunks, then the client goes away.
    for _ in 0..21 {
        body.frame().await.unwrap().unwrap();
    }
    drop(body);
    let rec = &records(&h.store, 1).await[0];
    let usage = rec.usage.expect("usage charged");
    assert!((20..=22).contains(&usage.output), "{usage:?}");
    assert!(usage.input > 0, "{usage:?}");
    let mut spent = 0;
    for _ in 0..100 {
        spent = ledger.spent_today(&key_scope("k-abandon")).await.unwrap();
        if spent > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(spent, u128::from(usage.total_tokens()));
}

#[tokio::test]
async fn max_tokens_per_request_refuses_big_inputs_and_bounds_the_output() {
    let h = harness_with(Options {
        extra_yaml: r#"
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {name: ant-bounded}
spec:
  provider: anthropic
  endpoint: "{url}"
  apiKeySecretRef: {name: keys, key: anthropic}
  maxTokensPerRequest: 300
  externalAccess: {enabled: true}
"#
        .to_owned(),
        ..Options::default()
    })
    .await;
    let key = mint(
        &h.store,
        &AccessKeyHasher::new(SECRET),
        "k-bounded",
        "ant-bounded",
        None,
    )
    .await;
    h.gateway.reload().await.unwrap();

    // An input alone over the limit is refused before any upstream call.
    let long = "word ".repeat(2000);
    let req = anthropic_request(
        &key,
        serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 10,
            "messages": [{"role": "user", "content": long}]}),
    );
    let (status, _, body) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&body.concat()).unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(r#"ModelProvider "ant-bounded" maxTokensPerRequest"#),
        "{msg}"
    );
    assert_eq!(h.mock.calls("/v1/messages"), 0);

    // A small input asking for more output than fits is bounded, and says so.
    let req = anthropic_request(
        &key,
        serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 4000,
            "messages": [{"role": "user", "content": "hi [mock:words=5]"}]}),
    );
    let (status, headers, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    let bound: u64 = headers["x-pai-max-output-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(bound > 0 && bound < 300, "{bound}");
    let sent = h.mock.requests().last().unwrap().json().unwrap();
    assert_eq!(sent["max_tokens"], bound);
}

#[tokio::test]
async fn call_records_name_the_model_binding_they_went_through() {
    let h = harness_with(Options {
        extra_yaml: r#"
apiVersion: pai.io/v1
kind: ModelBinding
metadata: {name: quick}
spec: {provider: oai, model: gpt-4o-mini}
---
apiVersion: pai.io/v1
kind: Agent
metadata: {name: bound-bot}
spec:
  models: [ant/claude-sonnet-4-6]
  modelBindings: [quick]
"#
        .to_owned(),
        ..Options::default()
    })
    .await;
    let raw = pai_core::access_key::generate().unwrap();
    let mut key: pai_core::resource::AccessKey = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bound-key"}, "spec": {"agent": "bound-bot"}}))
    .unwrap();
    key.status.key_hash = Some(AccessKeyHasher::new(SECRET).hash(&raw).0);
    pai_core::Store::apply(h.store.as_ref(), &pai_core::Resource::AccessKey(key))
        .await
        .unwrap();
    h.gateway.reload().await.unwrap();

    for model in ["quick", "ant/claude-sonnet-4-6"] {
        let req = anthropic_request(
            &raw,
            serde_json::json!({"model": model, "max_tokens": 20,
                "messages": [{"role": "user", "content": "hi"}]}),
        );
        let (status, _, body) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
        assert_eq!(status, 200, "{model}: {body:?}");
    }
    let recs = records(&h.store, 2).await;
    let mut seen: Vec<(String, String, Option<String>)> = recs
        .iter()
        .map(|r| (r.provider.clone(), r.model.clone(), r.binding.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("ant".into(), "claude-sonnet-4-6".into(), None),
            ("oai".into(), "gpt-4o-mini".into(), Some("quick".into())),
        ]
    );
    let totals = pai_core::Store::usage_by_workload(h.store.as_ref(), 0)
        .await
        .unwrap();
    let bindings: Vec<Option<&str>> = totals.iter().map(|t| t.binding.as_deref()).collect();
    assert_eq!(bindings, [None, Some("quick")]);
}

#[tokio::test]
async fn a_dollar_cap_refuses_a_model_without_a_price() {
    let h = harness_with(Options {
        ledger: Some(Arc::new(MemoryLedger::new(Arc::new(SystemClock)))),
        // No price table: the cap cannot be kept, so nothing is spent uncounted.
        prices: false,
        extra_yaml: r#"
apiVersion: pai.io/v1
kind: Agent
metadata: {name: capped}
spec:
  models: [ant/claude-sonnet-4-6]
  rateLimits: {maxCostPerDayUSD: 1}
"#
        .to_owned(),
        ..Options::default()
    })
    .await;
    let mut req = anthropic_request(
        "unused",
        serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.extensions_mut()
        .insert(pai_tower::AgentIdentity("capped".into()));
    let (status, _, body) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 403);
    let v: serde_json::Value = serde_json::from_slice(&body.concat()).unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(r#"Agent "capped" rateLimits.maxCostPerDayUSD"#) && msg.contains("no price"),
        "{msg}"
    );
    assert_eq!(h.mock.calls("/v1/messages"), 0);
}

/// A ModelBinding whose `provider` is a provider type (no ModelProvider at all) is called
/// directly with its own key; when its own daily cap is spent, the agent's next binding
/// answers. Every call is in the store once `Gateway::finished` returns, without polling.
#[tokio::test]
async fn a_binding_naming_a_provider_type_is_called_directly_and_falls_back_over_its_budget() {
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let h = harness_with(Options {
        ledger: Some(ledger.clone()),
        extra_yaml: r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {name: sonnet-key}
data: {token: sk-real-anthropic}
---
apiVersion: pai.io/v1
kind: Secret
metadata: {name: mini-key}
data: {api-key: sk-real-openai}
---
apiVersion: pai.io/v1
kind: ModelBinding
metadata: {name: sonnet}
spec: {provider: anthropic, model: claude-sonnet-4-6, maxTokensPerDay: 120, apiKeySecretRef: {name: sonnet-key}}
---
apiVersion: pai.io/v1
kind: ModelBinding
metadata: {name: mini}
spec: {provider: openai, model: gpt-4o-mini, apiKeySecretRef: {name: mini-key, key: api-key}}
---
apiVersion: pai.io/v1
kind: Agent
metadata: {name: direct-bot}
spec: {modelBindings: [sonnet, mini]}
"#
        .to_owned(),
        ..Options::default()
    })
    .await;
    let ask = || {
        let mut req = anthropic_request(
            "unused",
            serde_json::json!({"model": "sonnet", "max_tokens": 40,
                "messages": [{"role": "user", "content": "hi [mock:words=30]"}]}),
        );
        req.extensions_mut()
            .insert(pai_tower::AgentIdentity("direct-bot".into()));
        req
    };
    let mut answered_by = Vec::new();
    for _ in 0..6 {
        let (status, headers, body) =
            collect(h.gateway.clone().oneshot(ask()).await.unwrap()).await;
        assert_eq!(status, 200, "{body:?}");
        let fell_back = headers
            .get("x-pai-fell-back-from")
            .map(|v| v.to_str().unwrap().to_owned());
        answered_by.push(fell_back.clone());
        if fell_back.is_some() {
            break;
        }
    }
    assert_eq!(answered_by[0], None, "the first call fits sonnet's day");
    assert_eq!(
        answered_by.last().unwrap().as_deref(),
        Some("anthropic/claude-sonnet-4-6"),
        "sonnet's day runs out and mini answers: {answered_by:?}"
    );

    // Both upstreams were called with the binding's own key, at the mock (the endpoint
    // override), in their own dialect.
    let sent = h.mock.requests();
    assert!(
        sent.iter().any(|r| r.path.ends_with("/v1/messages")),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|r| r.path.ends_with("/v1/chat/completions")),
        "{sent:?}"
    );

    assert!(h.gateway.finished(Duration::from_secs(2)).await);
    let calls = pai_core::Store::recent_calls(h.store.as_ref(), 100)
        .await
        .unwrap();
    assert_eq!(
        calls.len(),
        answered_by.len(),
        "every call recorded at once"
    );
    let mut seen: Vec<(String, Option<String>)> = calls
        .iter()
        .map(|c| (c.provider.clone(), c.binding.clone()))
        .collect();
    seen.dedup();
    assert_eq!(
        seen,
        [
            ("openai".to_owned(), Some("mini".to_owned())),
            ("anthropic".to_owned(), Some("sonnet".to_owned())),
        ]
    );
    let spent = ledger
        .spent_today(&ScopeKey {
            kind: "model-binding",
            name: "sonnet".to_owned(),
        })
        .await
        .unwrap();
    let sonnet_tokens: u64 = calls
        .iter()
        .filter(|c| c.binding.as_deref() == Some("sonnet"))
        .filter_map(|c| c.usage.map(|u| u.total_tokens()))
        .sum();
    assert_eq!(
        spent,
        u128::from(sonnet_tokens),
        "settled as soon as finished"
    );
    assert!(spent <= 120, "{spent}");
}
