//! A quick measurement of what a reservation costs, shared by both ledgers' timing tests.

use std::sync::Arc;
use std::time::Instant;

use pai_core::ledger::Unit;
use pai_core::{BudgetLedger, ScopeKey, ScopeLimit};

const PAIRS: u32 = 200_000;

/// Time reserve + settle on three scopes (provider, access key, agent cost), first from one
/// task, then from four at once, and print µs per pair.
pub(crate) async fn report(name: &str, ledger: Arc<dyn BudgetLedger>) {
    let scopes = Arc::new(
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
            limit: u128::MAX,
            amount: 4_096,
        }),
    );
    let started = Instant::now();
    pairs(&*ledger, &scopes[..], PAIRS).await;
    let one = started.elapsed().as_secs_f64() * 1e6 / f64::from(PAIRS);

    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (ledger, scopes) = (Arc::clone(&ledger), Arc::clone(&scopes));
            tokio::spawn(async move { pairs(&*ledger, &scopes[..], PAIRS / 4).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let four = started.elapsed().as_secs_f64() * 1e6 / f64::from(PAIRS);
    println!(
        "{name}: reserve+settle on 3 scopes: {one:.3} µs per pair from one task, \
         {four:.3} µs per pair (wall) from four tasks"
    );
}

async fn pairs(ledger: &dyn BudgetLedger, scopes: &[ScopeLimit], n: u32) {
    for _ in 0..n {
        let reservation = ledger.reserve(scopes).await.unwrap();
        ledger
            .settle(reservation, &[1_000, 1_000, 1_000])
            .await
            .unwrap();
    }
}
