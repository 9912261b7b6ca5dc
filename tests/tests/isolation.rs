//! A gateway owns its state: two in one process keep their metrics apart, and time is what
//! the gateway's clock says.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use pai_core::price::{Price, PriceBook};
use pai_core::resource::{AccessKey, Resource};
use pai_core::{access_key, AccessKeyHasher, Clock, ManualClock, PriceTable, Store};
use pai_tower::metrics::Metrics;
use tower::ServiceExt;

use common::{collect, harness_with, mint, openai_request, records, Harness, Options, SECRET};

/// `gpt-4o-mini` at `input` and `output` USD per million tokens; cached input at half.
fn prices(input: f64, output: f64) -> Arc<dyn PriceTable> {
    Arc::new(PriceBook::empty().with_override(
        "gpt-4o-mini",
        Price::from_usd_per_million(input, input / 2.0, 0.0, output),
    ))
}

/// Mint an AccessKey `name` on the `oai` provider and wait until the gateway knows it.
async fn key(h: &Harness, name: &str) -> String {
    let raw = mint(&h.store, &AccessKeyHasher::new(SECRET), name, "oai", None).await;
    h.gateway.caught_up().await.unwrap();
    raw
}

/// A buffered and a streamed call to `gpt-4o-mini`, and one to a model the provider does not
/// allow; all must be answered as expected.
async fn calls(h: &Harness, key: &str) {
    for stream in [false, true] {
        let req = openai_request(
            key,
            serde_json::json!({"model": "gpt-4o-mini", "stream": stream,
                "messages": [{"role": "user", "content": "hi [mock:words=7]"}]}),
        );
        let (status, _, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
        assert_eq!(status, 200, "stream: {stream}");
    }
    let req = openai_request(
        key,
        serde_json::json!({"model": "priced-but-not-offered",
            "messages": [{"role": "user", "content": "hi"}]}),
    );
    let (status, _, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert!(status.is_client_error(), "{status}");
}

/// The samples of one series name, by their label set.
fn samples(text: &str, name: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of a series over the label sets that contain `labels`.
fn sum(text: &str, name: &str, labels: &str) -> f64 {
    samples(text, name)
        .iter()
        .filter(|(l, _)| l.contains(labels))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn two_gateways_in_one_process_count_only_their_own_calls_at_their_own_prices() {
    // The second gateway also prices a model its provider does not offer: for it, and only
    // for it, that model may be a label.
    let cheap = harness_with(Options {
        price_table: Some(prices(1.0, 2.0)),
        ..Options::default()
    })
    .await;
    let dear = harness_with(Options {
        price_table: Some(Arc::new(
            PriceBook::empty()
                .with_override(
                    "gpt-4o-mini",
                    Price::from_usd_per_million(10.0, 5.0, 0.0, 20.0),
                )
                .with_override(
                    "priced-but-not-offered",
                    Price::from_usd_per_million(1.0, 0.0, 0.0, 1.0),
                ),
        )),
        ..Options::default()
    })
    .await;
    let alice = key(&cheap, "alice").await;
    let bob = key(&dear, "bob").await;
    calls(&cheap, &alice).await;
    calls(&dear, &bob).await;
    calls(&dear, &bob).await;
    let cheap_records = records(&cheap.store, 3).await;
    let dear_records = records(&dear.store, 6).await;

    let one = cheap.gateway.metrics().render();
    let two = dear.gateway.metrics().render();
    // Each shows its own caller, never the other's.
    assert!(one.contains(r#"workload="ext:alice""#), "{one}");
    assert!(!one.contains("ext:bob"), "{one}");
    assert!(two.contains(r#"workload="ext:bob""#), "{two}");
    assert!(!two.contains("ext:alice"), "{two}");
    // Its own number of calls.
    let answered = r#"workload="ext:alice",model="gpt-4o-mini",status="200""#;
    assert_eq!(samples(&one, "pai_requests_total")[answered], 2.0, "{one}");
    let answered = r#"workload="ext:bob",model="gpt-4o-mini",status="200""#;
    assert_eq!(samples(&two, "pai_requests_total")[answered], 4.0, "{two}");
    // A model is a label where its gateway prices it, and `other` where it does not.
    assert!(!one.contains("priced-but-not-offered"), "{one}");
    assert!(
        one.contains(r#"workload="ext:alice",model="other""#),
        "{one}"
    );
    assert!(
        two.contains(r#"workload="ext:bob",model="priced-but-not-offered""#),
        "{two}"
    );

    // Costs at each gateway's own prices: what its records say, and ten times as much at
    // ten times the price for twice the calls.
    for (text, recs, who) in [
        (&one, &cheap_records, "ext:alice"),
        (&two, &dear_records, "ext:bob"),
    ] {
        let recorded: u128 = recs.iter().filter_map(|r| r.cost_pico_usd).sum();
        assert!(recorded > 0, "{recs:?}");
        let counted = sum(text, "pai_cost_usd_total", &format!("workload=\"{who}\""));
        let want = recorded as f64 / 1e12;
        assert!(
            (counted - want).abs() <= want * 1e-9,
            "{who}: counted {counted}, recorded {want}\n{text}"
        );
    }
    let tokens = |text: &str, who: &str| {
        sum(
            text,
            "pai_tokens_total",
            &format!("workload=\"{who}\",model=\"gpt-4o-mini\""),
        )
    };
    assert!(tokens(&one, "ext:alice") > 0.0, "{one}");
    assert_eq!(tokens(&two, "ext:bob"), 2.0 * tokens(&one, "ext:alice"));
    let dollars = |text: &str, who: &str| {
        sum(
            text,
            "pai_cost_usd_total",
            &format!("workload=\"{who}\",model=\"gpt-4o-mini\""),
        )
    };
    let ratio = dollars(&two, "ext:bob") / dollars(&one, "ext:alice");
    assert!((ratio - 20.0).abs() < 1e-6, "ratio {ratio}\n{one}\n{two}");
}

#[tokio::test]
async fn gateways_handed_the_same_metrics_are_rendered_together() {
    let shared = Metrics::new();
    let first = harness_with(Options {
        metrics: Some(shared.clone()),
        ..Options::default()
    })
    .await;
    let second = harness_with(Options {
        metrics: Some(shared.clone()),
        ..Options::default()
    })
    .await;
    let (k1, k2) = (key(&first, "first").await, key(&second, "second").await);
    calls(&first, &k1).await;
    calls(&second, &k2).await;
    let text = shared.render();
    assert_eq!(text, first.gateway.metrics().render());
    assert!(text.contains(r#"workload="ext:first""#), "{text}");
    assert!(text.contains(r#"workload="ext:second""#), "{text}");
}

/// Noon, some day in 2024: far from midnight, so a minute's move stays within the day.
fn noon() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(19_800 * 86_400 + 12 * 3_600)
}

fn get(path: &str, key: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn me(h: &Harness, key: &str) -> serde_json::Value {
    let res = h
        .gateway
        .clone()
        .oneshot(get("/ext/pai/v1/me", key))
        .await
        .unwrap();
    let (status, _, body) = collect(res).await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body.concat()).unwrap()
}

#[tokio::test]
async fn a_rotated_out_key_stops_working_when_the_gateways_clock_passes_its_grace() {
    let clock = Arc::new(ManualClock::new(noon()));
    let h = harness_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    // A key rotated a moment ago: the old one works for another minute.
    let (old, new) = (
        access_key::generate().unwrap(),
        access_key::generate().unwrap(),
    );
    let hasher = AccessKeyHasher::new(SECRET);
    let mut k: AccessKey = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "rotated"}, "spec": {"modelProvider": "oai"}}),
    )
    .unwrap();
    k.status.key_hash = Some(hasher.hash(&new).0);
    k.status.previous_key_hash = Some(hasher.hash(&old).0);
    k.status.previous_key_expires_at = Some(clock.unix_secs() + 60);
    h.store.apply(&Resource::AccessKey(k)).await.unwrap();
    h.gateway.caught_up().await.unwrap();

    let status = |key: &str| {
        let gateway = h.gateway.clone();
        let req = get("/ext/v1/models", key);
        async move { gateway.oneshot(req).await.unwrap().status() }
    };
    assert_eq!(status(&old).await, 200);
    clock.advance(Duration::from_secs(59));
    assert_eq!(status(&old).await, 200);
    // Past the grace by the gateway's clock, not the wall's: refused at once, no sleeping.
    clock.advance(Duration::from_secs(1));
    assert_eq!(status(&old).await, 401);
    assert_eq!(status(&new).await, 200);
}

#[tokio::test]
async fn calls_are_timed_and_days_are_told_by_the_gateways_clock() {
    let clock = Arc::new(ManualClock::new(noon()));
    let h = harness_with(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let req = openai_request(
        &h.openai_key,
        serde_json::json!({"model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi [mock:words=5]"}]}),
    );
    let (status, _, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    let rec = &records(&h.store, 1).await[0];
    let noon_ms = noon().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert_eq!(rec.started_at_ms, noon_ms);
    assert!(me(&h, &h.openai_key).await["tokensToday"].as_u64().unwrap() > 0);
    // The next day by the gateway's clock: nothing used today yet.
    clock.advance(Duration::from_secs(12 * 3_600));
    assert_eq!(me(&h, &h.openai_key).await["tokensToday"], 0);
}
