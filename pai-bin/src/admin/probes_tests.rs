//! `/readyz` driven through the real router, over a memory store and ledger that a test can
//! take down (every query fails) or stall (no query answers).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use pai_core::resource::Resource;
use pai_core::{
    AccessKeyHasher, Applied, BudgetLedger, CallRecord, Kind, LedgerError, Reservation, ScopeKey,
    ScopeLimit, Store, StoreError, Stored, SystemClock, UsageTotals, WorkloadTotals,
};
use pai_store::{MemoryLedger, MemoryStore};
use serde_json::Value;
use tower::ServiceExt;

use super::super::{public_router, AdminState};

const UP: u8 = 0;
const DOWN: u8 = 1;
const STALLED: u8 = 2;

/// How a backend behaves now: up, down (errors at once) or stalled (never answers).
#[derive(Default)]
struct Switch(AtomicU8);

impl Switch {
    fn set(&self, state: u8) {
        self.0.store(state, Ordering::SeqCst);
    }

    async fn pass(&self, what: &str) -> Result<(), String> {
        match self.0.load(Ordering::SeqCst) {
            UP => Ok(()),
            DOWN => Err(format!(
                "{what}: connection refused (postgres://pai:hunter2@10.0.0.5/pai)"
            )),
            _ => std::future::pending().await,
        }
    }
}

/// A memory store behind a switch.
struct Flaky {
    inner: MemoryStore,
    switch: Arc<Switch>,
}

impl Flaky {
    async fn pass(&self) -> Result<(), StoreError> {
        self.switch
            .pass("store")
            .await
            .map_err(StoreError::Unavailable)
    }
}

#[async_trait]
impl Store for Flaky {
    async fn apply(&self, r: &Resource) -> Result<Applied, StoreError> {
        self.pass().await?;
        self.inner.apply(r).await
    }
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Stored>, StoreError> {
        self.pass().await?;
        self.inner.get(kind, name).await
    }
    async fn list(&self, kind: Kind) -> Result<Vec<Stored>, StoreError> {
        self.pass().await?;
        self.inner.list(kind).await
    }
    async fn delete(&self, kind: Kind, name: &str) -> Result<bool, StoreError> {
        self.pass().await?;
        self.inner.delete(kind, name).await
    }
    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch()
    }
    async fn access_key_by_hash(&self, hash: &str) -> Result<Option<Stored>, StoreError> {
        self.pass().await?;
        self.inner.access_key_by_hash(hash).await
    }
    async fn record_call(&self, r: &CallRecord) -> Result<(), StoreError> {
        self.pass().await?;
        self.inner.record_call(r).await
    }
    async fn usage_since(&self, since_ms: u64) -> Result<Vec<UsageTotals>, StoreError> {
        self.pass().await?;
        self.inner.usage_since(since_ms).await
    }
    async fn usage_by_workload(&self, since_ms: u64) -> Result<Vec<WorkloadTotals>, StoreError> {
        self.pass().await?;
        self.inner.usage_by_workload(since_ms).await
    }
    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.pass().await?;
        self.inner.recent_calls(limit).await
    }
}

/// A memory ledger behind a switch.
struct FlakyLedger {
    inner: MemoryLedger,
    switch: Arc<Switch>,
}

impl FlakyLedger {
    async fn pass(&self) -> Result<(), LedgerError> {
        self.switch
            .pass("ledger")
            .await
            .map_err(LedgerError::Unavailable)
    }
}

#[async_trait]
impl BudgetLedger for FlakyLedger {
    async fn reserve(&self, scopes: &[ScopeLimit]) -> Result<Reservation, LedgerError> {
        self.pass().await?;
        self.inner.reserve(scopes).await
    }
    async fn settle(&self, reservation: Reservation, actual: &[u128]) -> Result<(), LedgerError> {
        self.pass().await?;
        self.inner.settle(reservation, actual).await
    }
    async fn spent_today(&self, key: &ScopeKey) -> Result<u128, LedgerError> {
        self.pass().await?;
        self.inner.spent_today(key).await
    }
}

struct Harness {
    store: Arc<Switch>,
    ledger: Arc<Switch>,
    inner: Arc<Flaky>,
    state: AdminState,
}

fn harness() -> Harness {
    let store = Arc::new(Switch::default());
    let ledger = Arc::new(Switch::default());
    let inner = Arc::new(Flaky {
        inner: MemoryStore::new(),
        switch: store.clone(),
    });
    let state = AdminState::new(
        inner.clone(),
        Arc::new(FlakyLedger {
            inner: MemoryLedger::new(Arc::new(SystemClock)),
            switch: ledger.clone(),
        }),
        AccessKeyHasher::new(b"a test secret of thirty-two bytes"),
        "pai_admin_probe-test-token",
    );
    Harness {
        store,
        ledger,
        inner,
        state,
    }
}

/// GET `path` on the public routes, without any token: status, JSON body, raw text.
async fn get(state: &AdminState, path: &str) -> (StatusCode, Value, String) {
    let router = public_router(state.clone(), pai_tower::metrics::Metrics::new());
    let response = router
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

#[tokio::test]
async fn ready_when_store_and_ledger_answer_without_a_token() {
    let h = harness();
    let (status, body, text) = get(&h.state, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["notReady"], serde_json::json!([]));
    assert_eq!(body["checks"]["store"], "ok");
    assert_eq!(body["checks"]["ledger"], "ok");
    assert_eq!(body["checks"]["configuration"], "ok");
}

#[tokio::test]
async fn an_unreachable_store_is_503_naming_it_and_never_its_url() {
    let h = harness();
    h.store.set(DOWN);
    let (status, body, text) = get(&h.state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["notReady"], serde_json::json!(["store"]));
    assert_eq!(body["checks"]["store"], "error");
    assert_eq!(body["checks"]["ledger"], "ok");
    for secret in ["hunter2", "postgres://", "10.0.0.5", "refused"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[tokio::test]
async fn an_unreachable_ledger_is_503_naming_it() {
    let h = harness();
    h.ledger.set(DOWN);
    let (status, body, _) = get(&h.state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["notReady"], serde_json::json!(["ledger"]));
}

#[tokio::test]
async fn a_store_that_never_answers_is_503_within_the_bound() {
    let h = harness();
    h.store.set(STALLED);
    h.ledger.set(STALLED);
    let started = Instant::now();
    let (status, body, text) = get(&h.state, "/readyz").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(body["notReady"], serde_json::json!(["store", "ledger"]));
    assert_eq!(body["checks"]["store"], "no answer within 2s");
    // The checks run at once: one timeout, not two.
    assert!(took < Duration::from_millis(3_500), "took {took:?}");
}

#[tokio::test]
async fn a_gateway_that_cannot_load_the_latest_configuration_is_not_ready() {
    let h = harness();
    let gateway = pai_tower::Gateway::builder()
        .store(h.inner.clone())
        .key_hasher(AccessKeyHasher::new(b"a test secret of thirty-two bytes"))
        .build()
        .await
        .unwrap();
    let state = h.state.clone().follow_gateway(gateway);
    let (status, _, text) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{text}");

    // A write the gateway cannot load: the store moved on, then went down.
    let secret: Resource = serde_json::from_value(serde_json::json!({
        "kind": "Secret", "metadata": {"name": "s"}, "data": {"api-key": "x"}
    }))
    .unwrap();
    h.store.set(DOWN);
    h.inner.inner.apply(&secret).await.unwrap();
    let (status, body, text) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(body["checks"]["configuration"], "error");
    assert_eq!(body["checks"]["store"], "error");

    // Back up: it catches up and is ready again.
    h.store.set(UP);
    let (status, _, text) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{text}");
}
