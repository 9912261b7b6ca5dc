use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use pai_core::{BudgetLedger, Call, Dialect, Error, ProviderKind, ScopeKey, SystemClock, Usage};
use pai_providers::estimate;
use pai_store::{MemoryLedger, MemoryStore};
use serde_json::{json, Value};
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

use super::BudgetLayer;
use crate::call_log::CallLogLayer;
use crate::error::{CallError, Next};
use crate::meter::CallSink;
use crate::snapshot::SharedSnapshot;
use crate::testing::{
    call, call_with, key_principal, ok, provider, refused, request, snapshot, Calls,
};

async fn one_provider() -> SharedSnapshot {
    snapshot(&[provider("p", json!({"allowedModels": ["gpt-4o-mini"]}))]).await
}

fn ledger() -> Arc<MemoryLedger> {
    Arc::new(MemoryLedger::new(Arc::new(SystemClock)))
}

fn key_scope() -> ScopeKey {
    ScopeKey {
        kind: "access-key",
        name: "k".to_owned(),
    }
}

/// A request by key `k` of provider `p`, with `limits`.
fn by_key(snapshot: &SharedSnapshot, limits: Value) -> Request<Full<Bytes>> {
    let principal = key_principal(snapshot, "p", json!({"limits": limits}));
    request(
        "/v1/chat/completions",
        Some(principal),
        Some(call("gpt-4o-mini")),
    )
}

/// A handler that used 10 tokens in and 5 out, counting its calls.
fn handler(
    calls: Calls,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<Full<Bytes>>| {
        calls.add();
        assert!(
            req.extensions().get::<Arc<Call>>().is_some(),
            "the call is handed on"
        );
        async {
            let mut res = ok();
            res.extensions_mut().insert(Usage {
                input: 10,
                output: 5,
                ..Usage::default()
            });
            Ok(res)
        }
    })
}

#[tokio::test]
async fn a_call_that_fits_is_reserved_then_settled_with_what_it_used() {
    let snapshot = one_provider().await;
    let ledger = ledger();
    let sink = CallSink::spawn(Arc::new(MemoryStore::new()));
    let seen = ledger.clone();
    let inner = service_fn(move |_req: Request<Full<Bytes>>| {
        // While the call runs, its worst case is held: its input and 4096 tokens of output.
        let open = seen.open_reservations();
        async move {
            assert_eq!(open.len(), 1);
            let held = open[0].scopes[0].amount;
            assert!(held > 4096 && held < 4200, "{held}");
            let mut res = ok();
            res.extensions_mut().insert(Usage {
                input: 10,
                output: 5,
                ..Usage::default()
            });
            Ok::<_, Infallible>(res)
        }
    });
    let service = ServiceBuilder::new()
        .layer(CallLogLayer::new(sink.clone()))
        .layer(BudgetLayer::new(Some(ledger.clone()), None))
        .service(inner);
    let res = service
        .oneshot(by_key(&snapshot, json!({"maxTokensPerDay": 10_000})))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    assert!(sink.finished(Duration::from_secs(2)).await);
    assert!(ledger.open_reservations().is_empty());
    assert_eq!(ledger.spent_today(&key_scope()).await.unwrap(), 15);
}

#[tokio::test]
async fn a_call_that_fits_only_by_its_exact_count_is_admitted() {
    // The upper bound of the input does not fit, the lower does: the layer probes with the
    // lower bound, then counts exactly and reserves that.
    let snapshot = one_provider().await;
    let call = call_with(json!({
        "model": "gpt-4o-mini",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hello world ".repeat(200)}],
    }));
    let (kind, dialect) = (ProviderKind::OpenAi, Dialect::OpenAi);
    let bounds = estimate::input_bounds(kind, dialect, "gpt-4o-mini", &call.body);
    let exact = estimate::input_tokens_for(kind, dialect, "gpt-4o-mini", &call.body);
    let limit = exact + 10;
    assert!(
        bounds.upper + 10 > limit && bounds.lower + 10 < limit,
        "{bounds:?} {exact}"
    );

    let ledger = ledger();
    let sink = CallSink::spawn(Arc::new(MemoryStore::new()));
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(CallLogLayer::new(sink.clone()))
        .layer(BudgetLayer::new(Some(ledger.clone()), None))
        .service(handler(calls.clone()));
    let principal = key_principal(
        &snapshot,
        "p",
        json!({"limits": {"maxTokensPerDay": limit}}),
    );
    let req = request("/v1/chat/completions", Some(principal), Some(call));
    let res = service.oneshot(req).await;
    let res = res.map_err(|e| e.error).map(|r| r.status());
    assert_eq!(res, Ok(http::StatusCode::OK));
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn a_call_that_does_not_fit_is_refused_for_the_next_candidate() {
    let snapshot = one_provider().await;
    let ledger = ledger();
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(CallLogLayer::new(sink.clone()))
        .layer(BudgetLayer::new(Some(ledger.clone()), None))
        .service(handler(calls.clone()));
    // The prompt and the default output reserve do not fit in 100 tokens.
    let e = refused(
        service
            .oneshot(by_key(&snapshot, json!({"maxTokensPerDay": 100})))
            .await,
    );
    assert!(
        matches!(&e.error, Error::BudgetExceeded { budget, .. }
            if budget == "AccessKey \"k\" limits.maxTokensPerDay"),
        "{e:?}"
    );
    assert_eq!(e.error.status(), 429);
    assert_eq!(e.next, Next::NextCandidate { cool: false });
    assert_eq!(calls.get(), 0);
    assert!(ledger.open_reservations().is_empty());
    assert_eq!(ledger.spent_today(&key_scope()).await.unwrap(), 0);
    assert!(sink.drain(Duration::from_secs(2)).await);
    let records = pai_core::Store::recent_calls(store.as_ref(), 10)
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 429);
}

#[tokio::test]
async fn a_call_with_a_budget_and_no_call_log_outside_is_an_internal_error() {
    let snapshot = one_provider().await;
    let calls = Calls::default();
    let service = BudgetLayer::new(Some(ledger()), None).layer(handler(calls.clone()));
    let e = service
        .oneshot(by_key(&snapshot, json!({"maxTokensPerDay": 10_000})))
        .await
        .unwrap_err();
    assert_eq!(e.error.status(), 500);
    assert!(e.error.to_string().contains("CallLogLayer"), "{e}");
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn a_call_with_a_budget_and_no_ledger_is_refused_with_503() {
    let snapshot = one_provider().await;
    let sink = CallSink::spawn(Arc::new(MemoryStore::new()));
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(CallLogLayer::new(sink))
        .layer(BudgetLayer::new(None, None))
        .service(handler(calls.clone()));
    let e = refused(
        service
            .oneshot(by_key(&snapshot, json!({"maxTokensPerDay": 10_000})))
            .await,
    );
    assert_eq!(e.error.status(), 503);
    assert_eq!(e.next, Next::Final);
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn a_call_without_budgets_needs_neither_ledger_nor_log() {
    let snapshot = one_provider().await;
    let calls = Calls::default();
    let service = BudgetLayer::new(None, None).layer(handler(calls.clone()));
    let res = service.oneshot(by_key(&snapshot, json!({}))).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn a_request_without_a_parsed_call_is_refused() {
    let snapshot = one_provider().await;
    let calls = Calls::default();
    let principal = key_principal(&snapshot, "p", json!({}));
    let service = BudgetLayer::new(None, None).layer(handler(calls.clone()));
    let e: CallError = service
        .oneshot(request("/v1/chat/completions", Some(principal), None))
        .await
        .unwrap_err();
    assert!(e.error.to_string().contains("ParseLayer"), "{e}");
    assert_eq!(calls.get(), 0);
}
