use std::sync::{Arc, Mutex};

use pai_core::ledger::Unit;
use pai_core::{BudgetLedger, Clock, LedgerError, ManualClock, ScopeKey, ScopeLimit};

use super::SqliteLedger;
use crate::ledger_contract::{self, noon};
use crate::SqliteStore;

const KEY: [u8; 32] = [7; 32];

async fn open_store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("pai.db"), KEY)
        .await
        .unwrap()
}

fn scope(kind: &'static str, name: &str, amount: u128) -> ScopeLimit {
    ScopeLimit {
        key: ScopeKey {
            kind,
            name: name.to_owned(),
        },
        unit: Unit::Tokens,
        limit: 10_000,
        amount,
    }
}

fn alice(amount: u128) -> [ScopeLimit; 2] {
    [
        scope("provider", "openai", amount),
        scope("access-key", "alice", amount),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keeps_the_ledger_contract() {
    let dirs = Arc::new(Mutex::new(Vec::new()));
    ledger_contract::run_all(|clock| {
        let dirs = Arc::clone(&dirs);
        async move {
            let dir = tempfile::tempdir().unwrap();
            let store = open_store(&dir).await;
            dirs.lock().unwrap().push(dir);
            Arc::new(SqliteLedger::open(&store, clock).await.unwrap()) as Arc<dyn BudgetLedger>
        }
    })
    .await;
}

#[tokio::test]
async fn a_restart_keeps_todays_spend_in_the_stores_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = noon();
    {
        let store = open_store(&dir).await;
        let ledger = SqliteLedger::open(&store, clock.clone()).await.unwrap();
        let held = ledger.reserve(&alice(1_000)).await.unwrap();
        ledger.settle(held, &[400, 400]).await.unwrap();
        ledger.flush().await.unwrap();
        let on_disk: String = sqlx::query_scalar(
            "SELECT spent FROM ledger_spent WHERE scope_kind = 'access-key' AND scope_name = 'alice'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(on_disk, "400");
        drop(ledger);
        store.close().await;
    }
    let store = open_store(&dir).await;
    let ledger = SqliteLedger::open(&store, clock.clone()).await.unwrap();
    let key = &alice(0)[1].key;
    assert_eq!(ledger.spent_today(key).await.unwrap(), 400);
    let refused = ledger.reserve(&alice(9_601)).await.unwrap_err();
    assert!(matches!(refused, LedgerError::Refused(r) if r.spent == 400));

    // The next day starts from zero, restart or not.
    clock.advance(std::time::Duration::from_secs(12 * 3_600));
    drop(ledger);
    let ledger = SqliteLedger::open(&store, clock).await.unwrap();
    assert_eq!(ledger.spent_today(key).await.unwrap(), 0);
}

#[tokio::test]
async fn a_reservation_open_at_a_crash_is_charged_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let clock = noon();
    let store = open_store(&dir).await;
    let ledger = SqliteLedger::open(&store, clock.clone()).await.unwrap();
    let settled = ledger.reserve(&alice(500)).await.unwrap();
    ledger.settle(settled, &[100, 100]).await.unwrap();
    let _in_flight = ledger.reserve(&alice(700)).await.unwrap();
    let _other_day_later = ledger
        .reserve(&[scope("agent-cost", "bot", 50)])
        .await
        .unwrap();
    ledger.flush().await.unwrap();
    // The process dies here: nothing settles the two reservations.
    drop(ledger);
    store.close().await;

    let store = open_store(&dir).await;
    let ledger = SqliteLedger::open(&store, clock).await.unwrap();
    assert_eq!(
        ledger.spent_today(&alice(0)[0].key).await.unwrap(),
        800,
        "100 settled + 700 held at the crash"
    );
    assert_eq!(ledger.spent_today(&alice(0)[1].key).await.unwrap(), 800);
    let bot = scope("agent-cost", "bot", 0).key;
    assert_eq!(ledger.spent_today(&bot).await.unwrap(), 50);
    assert!(ledger.open_reservations().is_empty());
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_reservations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        left, 0,
        "charged once: a second restart must not charge them again"
    );
    drop(ledger);
    let ledger = SqliteLedger::open(&store, noon()).await.unwrap();
    assert_eq!(ledger.spent_today(&bot).await.unwrap(), 50);
}

#[tokio::test]
async fn a_reservation_settled_within_one_batch_never_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let ledger = SqliteLedger::open(&store, noon()).await.unwrap();
    let held = ledger.reserve(&alice(500)).await.unwrap();
    ledger.settle(held, &[10, 10]).await.unwrap();
    ledger.flush().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_reservations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let held = ledger.reserve(&alice(500)).await.unwrap();
    ledger.flush().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_reservations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1, "open across a batch: on disk");
    ledger.settle(held, &[10, 10]).await.unwrap();
    ledger.flush().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_reservations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0, "and gone once settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_concurrent_run_the_file_holds_what_memory_held() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let clock = noon();
    let ledger = Arc::new(SqliteLedger::open(&store, clock.clone()).await.unwrap());
    ledger_contract::concurrent_reservations_never_exceed_the_cap(
        Arc::clone(&ledger) as Arc<dyn BudgetLedger>,
        clock.clone(),
    )
    .await;
    ledger.flush().await.unwrap();
    let key = ScopeKey {
        kind: "provider",
        name: "contended".to_owned(),
    };
    let in_memory = ledger.spent_today(&key).await.unwrap();
    drop(ledger);
    let reopened = SqliteLedger::open(&store, clock).await.unwrap();
    assert_eq!(reopened.spent_today(&key).await.unwrap(), in_memory);
}

#[tokio::test]
async fn a_ledger_that_cannot_persist_refuses_to_admit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let ledger = SqliteLedger::open(&store, noon()).await.unwrap();
    store.close().await;
    let held = ledger.reserve(&alice(100)).await.unwrap();
    assert!(matches!(
        ledger.flush().await,
        Err(LedgerError::Unavailable(_))
    ));
    assert!(matches!(
        ledger.reserve(&alice(100)).await,
        Err(LedgerError::Unavailable(_))
    ));
    // Settling still counts, in memory.
    ledger.settle(held, &[60, 60]).await.unwrap();
    assert_eq!(ledger.spent_today(&alice(0)[0].key).await.unwrap(), 60);
}

#[tokio::test]
async fn the_ttl_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let clock: Arc<ManualClock> = noon();
    let ledger = SqliteLedger::open(&store, clock.clone())
        .await
        .unwrap()
        .with_reservation_ttl(std::time::Duration::from_secs(5));
    assert_eq!(ledger.reservation_ttl().as_secs(), 5);
    let held = ledger.reserve(&alice(100)).await.unwrap();
    clock.advance(std::time::Duration::from_secs(6));
    assert_eq!(ledger.sweep(), 1);
    assert_eq!(ledger.spent_on(&alice(0)[0].key, held.day), 100);
    assert_eq!(clock.utc_day().0, held.day);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run by hand with --nocapture"]
async fn cost_per_reservation_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    let ledger = Arc::new(SqliteLedger::open(&store, noon()).await.unwrap());
    crate::ledger::timing::report("SqliteLedger", Arc::clone(&ledger) as Arc<dyn BudgetLedger>)
        .await;
    let started = std::time::Instant::now();
    ledger.flush().await.unwrap();
    println!("SqliteLedger: final flush took {:?}", started.elapsed());
}
