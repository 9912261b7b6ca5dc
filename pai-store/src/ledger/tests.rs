use std::sync::Arc;
use std::time::Duration;

use pai_core::ledger::Unit;
use pai_core::{BudgetLedger, ScopeKey, ScopeLimit};

use super::MemoryLedger;
use crate::ledger_contract::{self, noon};

fn alice(amount: u128) -> [ScopeLimit; 1] {
    [ScopeLimit {
        key: ScopeKey {
            kind: "access-key",
            name: "alice".to_owned(),
        },
        unit: Unit::Tokens,
        limit: 1_000,
        amount,
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keeps_the_ledger_contract() {
    ledger_contract::run_all(|clock| async move {
        Arc::new(MemoryLedger::new(clock)) as Arc<dyn BudgetLedger>
    })
    .await;
}

#[tokio::test]
async fn the_ttl_is_configurable_and_sweep_charges_on_demand() {
    let clock = noon();
    let ledger = MemoryLedger::new(clock.clone()).with_reservation_ttl(Duration::from_secs(30));
    assert_eq!(ledger.reservation_ttl(), Duration::from_secs(30));
    let held = ledger.reserve(&alice(400)).await.unwrap();
    assert_eq!(ledger.open_reservations(), vec![held.clone()]);
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        ledger.sweep(),
        0,
        "exactly the TTL old is not older than it"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(ledger.sweep(), 1);
    assert!(ledger.open_reservations().is_empty());
    assert_eq!(ledger.spent_on(&alice(0)[0].key, held.day), 400);
}

#[tokio::test]
async fn a_settle_after_midnight_charges_the_day_reserved() {
    let clock = noon();
    let ledger = MemoryLedger::new(clock.clone());
    clock.advance(Duration::from_secs(12 * 3_600 - 60));
    let held = ledger.reserve(&alice(400)).await.unwrap();
    clock.advance(Duration::from_secs(60));
    ledger.settle(held.clone(), &[250]).await.unwrap();
    let key = &alice(0)[0].key;
    assert_eq!(ledger.spent_on(key, held.day), 250);
    assert_eq!(ledger.spent_on(key, held.day + 1), 0);
    assert_eq!(ledger.spent_today(key).await.unwrap(), 0);
}

#[tokio::test]
async fn a_missing_actual_is_charged_the_amount_reserved() {
    let ledger = MemoryLedger::new(noon());
    let held = ledger.reserve(&alice(400)).await.unwrap();
    ledger.settle(held, &[]).await.unwrap();
    assert_eq!(ledger.spent_today(&alice(0)[0].key).await.unwrap(), 400);
}

/// Reserve + settle, one after another, on one scope; prints µs per pair. Run with
/// `cargo test -p pai-store --release -- --ignored --nocapture cost_per_reservation`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run by hand with --nocapture"]
async fn cost_per_reservation_memory() {
    let ledger: Arc<dyn BudgetLedger> = Arc::new(MemoryLedger::new(noon()));
    super::timing::report("MemoryLedger", ledger).await;
}
