use std::sync::Arc;
use std::time::Duration;

use pai_core::ledger::Unit;
use pai_core::{BudgetLedger, Clock, ManualClock, ScopeKey, ScopeLimit};

use super::RedisLedger;
use crate::ledger_contract;
use crate::test_servers::RedisSpace;

async fn ledger(space: &RedisSpace, clock: Arc<ManualClock>) -> RedisLedger {
    RedisLedger::connect(&space.url, &space.prefix, clock)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keeps_the_ledger_contract() {
    let Some(space) = RedisSpace::create("redis ledger contract").await else {
        return;
    };
    let mut spaces = Vec::new();
    ledger_contract::run_all(|clock| {
        // Each check on a prefix of its own: a fresh, empty ledger.
        let prefix = format!("{}:{}", space.prefix, spaces.len());
        spaces.push(RedisSpace {
            prefix: prefix.clone(),
            url: space.url.clone(),
        });
        let url = space.url.clone();
        async move {
            Arc::new(RedisLedger::connect(&url, &prefix, clock).await.unwrap())
                as Arc<dyn BudgetLedger>
        }
    })
    .await;
    for space in spaces {
        space.drop().await;
    }
}

#[tokio::test]
async fn amounts_beyond_two_to_the_53_are_exact() {
    let Some(space) = RedisSpace::create("redis ledger u128").await else {
        return;
    };
    let ledger = ledger(&space, ledger_contract::noon()).await;
    let key = ScopeKey {
        kind: "agent-cost",
        name: "big".into(),
    };
    let limit = u128::MAX - 1;
    let amount = (1u128 << 100) + 12_345;
    let scope = |amount| ScopeLimit {
        key: key.clone(),
        unit: Unit::PicoUsd,
        limit,
        amount,
    };
    let held = ledger.reserve(&[scope(amount)]).await.unwrap();
    ledger.settle(held, &[amount - 1]).await.unwrap();
    assert_eq!(ledger.spent_today(&key).await.unwrap(), amount - 1);
    let refused = ledger
        .reserve(&[scope(limit - amount + 2)])
        .await
        .unwrap_err();
    assert!(matches!(refused, pai_core::LedgerError::Refused(r) if r.spent == amount - 1));
    space.drop().await;
}

#[tokio::test]
async fn day_keys_expire() {
    let Some(space) = RedisSpace::create("redis ledger day keys").await else {
        return;
    };
    let clock = ledger_contract::noon();
    let ledger = ledger(&space, Arc::clone(&clock)).await;
    let key = ScopeKey {
        kind: "access-key",
        name: "alice".into(),
    };
    let held = ledger
        .reserve(&[ScopeLimit {
            key: key.clone(),
            unit: Unit::Tokens,
            limit: 100,
            amount: 10,
        }])
        .await
        .unwrap();
    ledger.settle(held, &[5]).await.unwrap();
    let client = redis::Client::open(space.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let day_key = format!("{{{}}}:day:{}", space.prefix, clock.utc_day().0);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&day_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Noon: twelve hours to the day's end, then one more day.
    let expected = 36 * 3_600;
    assert!(
        (expected - 5..=expected).contains(&ttl),
        "day key {day_key} expires in {ttl} s, expected about {expected}"
    );
    space.drop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_not_a_refusal() {
    let Some(space) = RedisSpace::create("redis ledger unreachable").await else {
        return;
    };
    // A port nothing listens on: connecting fails, and says so without the URL's secrets.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let clock: Arc<dyn Clock> = ledger_contract::noon();
    let started = std::time::Instant::now();
    let err = RedisLedger::connect(&url, &space.prefix, clock)
        .await
        .unwrap_err();
    assert!(matches!(err, pai_core::LedgerError::Unavailable(_)));
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    space.drop().await;
}
