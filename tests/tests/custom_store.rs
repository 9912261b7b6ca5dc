//! `examples/custom_store.rs` checked the way a third-party store is: its toy `Store` and
//! `BudgetLedger` pass pai-store's public contract suites, and a gateway built on them answers
//! calls, records them in the toy store and stops a key at its daily budget in the toy ledger.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The example's own types, so that what the example shows is what is tested.
#[allow(dead_code)]
#[path = "../../examples/custom_store.rs"]
mod example;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use pai_core::{BudgetLedger, ScopeKey, Store, SystemClock};
use pai_mock::{MockConfig, MockUpstream};

use example::{ToyLedger, ToyStore};

#[tokio::test]
async fn the_toy_store_keeps_the_store_contract() {
    pai_store::contract::run_all(&ToyStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_toy_ledger_keeps_the_ledger_contract() {
    pai_store::ledger_contract::run_all(|clock| async move {
        Arc::new(ToyLedger::new(clock)) as Arc<dyn BudgetLedger>
    })
    .await;
}

#[tokio::test]
async fn a_gateway_on_them_answers_records_and_enforces_the_daily_budget() {
    let upstream =
        MockUpstream::start(MockConfig::default().with_openai_key(example::UPSTREAM_KEY))
            .await
            .unwrap();
    let store = Arc::new(ToyStore::new());
    let ledger = Arc::new(ToyLedger::new(Arc::new(SystemClock)));
    let key = example::configure(store.as_ref(), &format!("{}/v1", upstream.url()))
        .await
        .unwrap();
    let gateway = example::gateway_on(store.clone(), ledger.clone())
        .await
        .unwrap();

    let (status, answer) = example::chat(&gateway, &key).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    let reply = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(reply.starts_with("mock reply: alpha"), "{reply}");
    assert_eq!(answer["usage"]["completion_tokens"], 30, "{answer}");
    let per_call = answer["usage"]["total_tokens"].as_u64().unwrap();
    // The upstream got the provider's key from the toy store's Secret, never the access key.
    let sent = upstream.requests();
    let expected = format!("Bearer {}", example::UPSTREAM_KEY);
    assert_eq!(sent[0].header("authorization"), Some(expected.as_str()));

    // Call until the toy ledger refuses: each call reserves its worst case (input estimate +
    // 40) and settles at what it used, so a 200-token day admits a few.
    let mut answered = 1;
    let refusal = loop {
        let (status, answer) = example::chat(&gateway, &key).await.unwrap();
        match status {
            StatusCode::OK => answered += 1,
            StatusCode::TOO_MANY_REQUESTS => break answer,
            other => panic!("{other}: {answer}"),
        }
        assert!(answered <= 10, "the daily budget was never enforced");
    };
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"AccessKey "example" limits.maxTokensPerDay"#),
        "the refusal names the budget: {message}"
    );
    assert_eq!(
        upstream.calls("/v1/chat/completions"),
        answered,
        "a refused call never reaches the upstream"
    );

    // Every answered call is settled in the toy ledger at what it used, under the cap.
    assert!(gateway.finished(Duration::from_secs(5)).await);
    let scope = ScopeKey {
        kind: "access-key",
        name: example::KEY_NAME.to_owned(),
    };
    let spent = ledger.spent_today(&scope).await.unwrap();
    assert_eq!(spent, u128::from(per_call) * answered as u128);
    assert!(spent <= u128::from(example::DAILY_TOKENS), "{spent}");
    assert!((2..=5).contains(&answered), "{answered} calls answered");

    // And recorded in the toy store, the refused one too, with what the usage views show.
    let calls = store.recent_calls(100).await.unwrap();
    assert_eq!(calls.len(), answered + 1, "{calls:?}");
    assert_eq!(calls[0].status, 429);
    assert!(calls.iter().all(|c| c.workload == "ext:example"));
    let totals = store.usage_since(0).await.unwrap();
    assert_eq!(totals.len(), 1, "{totals:?}");
    assert_eq!(totals[0].requests, answered as u64 + 1);
    assert_eq!(u128::from(totals[0].usage.total_tokens()), spent);
}
