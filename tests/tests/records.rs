//! Call records under load: written in batches that keep up, and a bounded backlog that holds
//! new calls back instead of growing or dropping records.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pai_core::{
    Applied, CallRecord, Kind, PartlyRecorded, Resource, Store, StoreError, Stored, UsageTotals,
    WorkloadTotals,
};
use pai_store::{MemoryStore, SqliteStore};
use pai_tower::CallSink;
use tokio::sync::Semaphore;
use tower::ServiceExt;

fn record(i: usize) -> CallRecord {
    CallRecord {
        call_id: format!("call-{i}"),
        started_at_ms: 1_000 + i as u64,
        workload: "ext:load".to_owned(),
        provider: "oai".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        status: 200,
        ..CallRecord::default()
    }
}

/// The embedded store keeps up: 20,000 records through the recorder, every one written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_written_in_batches_and_keep_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("pai.db"), [1; 32])
            .await
            .unwrap(),
    );
    // One by one, as the recorder wrote before: the rate to beat.
    let started = Instant::now();
    for i in 0..500 {
        store.record_call(&record(i)).await.unwrap();
    }
    let one_by_one = 500.0 / started.elapsed().as_secs_f64();

    let sink = CallSink::spawn(store.clone());
    let started = Instant::now();
    for i in 500..20_500 {
        sink.admit().await.unwrap().send(record(i));
    }
    assert!(sink.drain(Duration::from_secs(60)).await, "drained");
    let batched = 20_000.0 / started.elapsed().as_secs_f64();
    eprintln!("records/s: one by one {one_by_one:.0}, batched {batched:.0}");
    assert_eq!(store.recent_calls(100_000).await.unwrap().len(), 20_500);
    assert_eq!(sink.backlog(), 0);
    assert!(
        batched > 2.0 * one_by_one,
        "batched {batched:.0}/s vs one by one {one_by_one:.0}/s"
    );
}

/// A store whose record writes wait for a gate the test opens.
struct Gated {
    inner: MemoryStore,
    gate: Semaphore,
}

#[async_trait]
impl Store for Gated {
    async fn apply(&self, r: &Resource) -> Result<Applied, StoreError> {
        self.inner.apply(r).await
    }
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Stored>, StoreError> {
        self.inner.get(kind, name).await
    }
    async fn list(&self, kind: Kind) -> Result<Vec<Stored>, StoreError> {
        self.inner.list(kind).await
    }
    async fn delete(&self, kind: Kind, name: &str) -> Result<bool, StoreError> {
        self.inner.delete(kind, name).await
    }
    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch()
    }
    async fn access_key_by_hash(&self, hash: &str) -> Result<Option<Stored>, StoreError> {
        self.inner.access_key_by_hash(hash).await
    }
    async fn record_call(&self, r: &CallRecord) -> Result<(), StoreError> {
        self.record_calls(std::slice::from_ref(r))
            .await
            .map_err(|e| e.error)
    }
    async fn record_calls(&self, records: &[CallRecord]) -> Result<(), PartlyRecorded> {
        // Wait for the gate and put the permit back: one opening lets every later batch pass.
        drop(self.gate.acquire().await.unwrap());
        self.inner.record_calls(records).await
    }
    async fn usage_since(&self, since_ms: u64) -> Result<Vec<UsageTotals>, StoreError> {
        self.inner.usage_since(since_ms).await
    }
    async fn usage_by_workload(&self, since_ms: u64) -> Result<Vec<WorkloadTotals>, StoreError> {
        self.inner.usage_by_workload(since_ms).await
    }
    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.inner.recent_calls(limit).await
    }
}

/// With the recorder stuck and its backlog full, a new call waits, then gets 503 in its own
/// dialect; once the store moves again, calls go through and every record is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_holds_new_calls_back_and_loses_nothing() {
    let h = common::harness().await;
    let store = Arc::new(Gated {
        inner: MemoryStore::new(),
        gate: Semaphore::new(0),
    });
    // The harness's resources and keys, in the gated store.
    for kind in Kind::ALL {
        for stored in h.store.list(kind).await.unwrap() {
            store.apply(&stored.resource).await.unwrap();
        }
    }
    let gateway = pai_tower::Gateway::builder()
        .store(store.clone())
        .key_hasher(pai_core::AccessKeyHasher::new(common::SECRET))
        .record_backlog(3)
        .build()
        .await
        .unwrap();
    let call = || {
        gateway.clone().oneshot(common::anthropic_request(
            &h.anthropic_key,
            serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}]}),
        ))
    };
    for _ in 0..3 {
        assert_eq!(call().await.unwrap().status(), 200);
    }
    // Three records wait behind the closed gate: the fourth call is held, then refused.
    let started = Instant::now();
    let (status, _, body) = common::collect(call().await.unwrap()).await;
    let body = String::from_utf8_lossy(&body.concat()).into_owned();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"type\":\"error\"") && body.contains("call records"),
        "{body}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // A call that arrives while the backlog is full goes through once the store moves again.
    let held = tokio::spawn(call());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "a call went ahead of a full backlog");
    store.gate.add_permits(1);
    assert_eq!(held.await.unwrap().unwrap().status(), 200);
    assert!(gateway.drain(Duration::from_secs(5)).await);
    // Every answered call is recorded; the refused one never started, so it has no record.
    assert_eq!(store.recent_calls(100).await.unwrap().len(), 4);
}
