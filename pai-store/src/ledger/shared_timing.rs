//! Reserve + settle latency on the shared ledgers, against the real servers: p50 and p99 of
//! one pair from one task, and pairs per second from 16 tasks on one shared scope. Run by hand:
//!
//! ```text
//! cargo test -p pai-store --features postgres,redis --release -- --ignored --nocapture shared_ledger_latency
//! ```

// Test support: a failed call is a failed measurement.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pai_core::ledger::Unit;
use pai_core::{BudgetLedger, ScopeKey, ScopeLimit, SystemClock};

use crate::test_servers::{PgSchema, RedisSpace};

const PAIRS: usize = 2_000;
const TASKS: usize = 16;

fn scopes() -> Vec<ScopeLimit> {
    [
        ("provider", "openai"),
        ("access-key", "alice"),
        ("agent-cost", "bot"),
    ]
    .map(|(kind, name)| ScopeLimit {
        key: ScopeKey {
            kind,
            name: name.to_owned(),
        },
        unit: Unit::Tokens,
        limit: u128::MAX / 2,
        amount: 4_096,
    })
    .to_vec()
}

async fn report(name: &str, ledger: Arc<dyn BudgetLedger>) {
    let scopes = Arc::new(scopes());
    // Warm up connections and plans.
    for _ in 0..100 {
        let r = ledger.reserve(&scopes).await.unwrap();
        ledger.settle(r, &[1_000, 1_000, 1_000]).await.unwrap();
    }
    let mut pairs: Vec<Duration> = Vec::with_capacity(PAIRS);
    for _ in 0..PAIRS {
        let started = Instant::now();
        let r = ledger.reserve(&scopes).await.unwrap();
        ledger.settle(r, &[1_000, 1_000, 1_000]).await.unwrap();
        pairs.push(started.elapsed());
    }
    pairs.sort();
    let at = |q: f64| pairs[((pairs.len() as f64 * q) as usize).min(pairs.len() - 1)];
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (ledger, scopes) = (Arc::clone(&ledger), Arc::clone(&scopes));
            tokio::spawn(async move {
                for _ in 0..PAIRS / TASKS {
                    let r = ledger.reserve(&scopes).await.unwrap();
                    ledger.settle(r, &[1_000, 1_000, 1_000]).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rate = PAIRS as f64 / started.elapsed().as_secs_f64();
    println!(
        "{name}: reserve+settle on 3 scopes, one task: p50 {:.3} ms, p99 {:.3} ms; \
         {TASKS} tasks on the same scopes: {rate:.0} pairs/s",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run by hand with --nocapture"]
async fn shared_ledger_latency() {
    if let Some(schema) = PgSchema::create("postgres ledger timing").await {
        let ledger = super::PostgresLedger::connect(&schema.url, Arc::new(SystemClock))
            .await
            .unwrap();
        report("PostgresLedger", Arc::new(ledger)).await;
        schema.drop().await;
    }
    if let Some(space) = RedisSpace::create("redis ledger timing").await {
        let ledger = super::RedisLedger::connect(&space.url, &space.prefix, Arc::new(SystemClock))
            .await
            .unwrap();
        report("RedisLedger", Arc::new(ledger)).await;
        space.drop().await;
    }
}
