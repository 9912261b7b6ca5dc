//! The semantics every [`BudgetLedger`] must keep, as checks a ledger can run against itself.
//!
//! Each check gets a fresh ledger from the caller's factory, built on a [`ManualClock`] the check
//! moves (starting at noon UTC), and panics with a message naming the broken rule. Run them on a
//! multi-threaded runtime: the concurrency check means little on one thread.
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn my_ledger_keeps_the_contract() {
//!     pai_store::ledger_contract::run_all(|clock| async move {
//!         Arc::new(MyLedger::connect(clock).await.unwrap()) as Arc<dyn BudgetLedger>
//!     })
//!     .await;
//! }
//! ```

// Test support: a failed expectation is a failed check, reported by panicking like `assert!`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use pai_core::ledger::Unit;
use pai_core::{
    BudgetLedger, Clock, LedgerError, ManualClock, Refusal, Reservation, ScopeKey, ScopeLimit,
};

/// A UTC noon: 2024-10-04T12:00:00Z.
const NOON_SECS: u64 = 20_000 * 86_400 + 12 * 3_600;

/// A clock standing at noon UTC.
pub fn noon() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        UNIX_EPOCH + Duration::from_secs(NOON_SECS),
    ))
}

/// Every check below, each on a fresh ledger from `new_ledger`, built on the clock it is given.
pub async fn run_all<F, Fut>(mut new_ledger: F)
where
    F: FnMut(Arc<ManualClock>) -> Fut,
    Fut: Future<Output = Arc<dyn BudgetLedger>>,
{
    macro_rules! check {
        ($check:ident) => {{
            let clock = noon();
            let ledger = new_ledger(Arc::clone(&clock)).await;
            $check(ledger, clock).await;
        }};
    }
    check!(reserves_on_every_scope_or_none);
    check!(refusal_names_the_scope_and_the_reset);
    check!(settle_replaces_the_reservation_with_actual);
    check!(settle_is_idempotent);
    check!(unsettled_reservations_expire_charged_in_full);
    check!(the_day_resets_at_midnight_utc);
    check!(concurrent_reservations_never_exceed_the_cap);
}

fn key(kind: &'static str, name: &str) -> ScopeKey {
    ScopeKey {
        kind,
        name: name.to_owned(),
    }
}

fn scope(key: &ScopeKey, limit: u128, amount: u128) -> ScopeLimit {
    ScopeLimit {
        key: key.clone(),
        unit: Unit::Tokens,
        limit,
        amount,
    }
}

async fn reserve(ledger: &dyn BudgetLedger, scopes: &[ScopeLimit]) -> Reservation {
    ledger
        .reserve(scopes)
        .await
        .unwrap_or_else(|e| panic!("reserve {scopes:?}: {e}"))
}

async fn refusal(ledger: &dyn BudgetLedger, scopes: &[ScopeLimit]) -> Refusal {
    match ledger.reserve(scopes).await {
        Err(LedgerError::Refused(refusal)) => refusal,
        other => panic!("reserve {scopes:?} should be refused, got {other:?}"),
    }
}

async fn settle(ledger: &dyn BudgetLedger, reservation: Reservation, actual: &[u128]) {
    ledger
        .settle(reservation, actual)
        .await
        .unwrap_or_else(|e| panic!("settle: {e}"));
}

async fn spent(ledger: &dyn BudgetLedger, key: &ScopeKey) -> u128 {
    ledger
        .spent_today(key)
        .await
        .unwrap_or_else(|e| panic!("spent_today {key:?}: {e}"))
}

/// A refusal on one scope reserves nothing on the others; a success reserves on all.
pub async fn reserves_on_every_scope_or_none(
    ledger: Arc<dyn BudgetLedger>,
    _clock: Arc<ManualClock>,
) {
    let ledger = &*ledger;
    let wide = key("provider", "openai");
    let narrow = key("access-key", "alice");
    let refused = refusal(ledger, &[scope(&wide, 100, 60), scope(&narrow, 50, 60)]).await;
    assert_eq!(
        refused.scope, narrow,
        "the scope that would go over is named"
    );
    // Had the refused call held 60 on `wide`, 100 would not fit now.
    let all = reserve(ledger, &[scope(&wide, 100, 100)]).await;
    settle(ledger, all, &[0]).await;

    let both = reserve(ledger, &[scope(&wide, 100, 60), scope(&narrow, 50, 50)]).await;
    let on_wide = refusal(ledger, &[scope(&wide, 100, 41)]).await;
    assert_eq!(on_wide.reserved, 60, "a success holds on the first scope");
    let on_narrow = refusal(ledger, &[scope(&narrow, 50, 1)]).await;
    assert_eq!(
        on_narrow.reserved, 50,
        "a success holds on the second scope"
    );
    settle(ledger, both, &[10, 20]).await;
    assert_eq!(spent(ledger, &wide).await, 10);
    assert_eq!(spent(ledger, &narrow).await, 20);
}

/// A refusal names the first scope that would go over, what is spent and held there, its limit
/// and the seconds until midnight UTC; exactly reaching a limit is allowed.
pub async fn refusal_names_the_scope_and_the_reset(
    ledger: Arc<dyn BudgetLedger>,
    clock: Arc<ManualClock>,
) {
    let ledger = &*ledger;
    let provider = key("provider", "anthropic");
    let agent = key("agent-cost", "support-bot");
    let exact = reserve(ledger, &[scope(&provider, 1_000, 700)]).await;
    settle(ledger, exact, &[700]).await;
    let held = reserve(ledger, &[scope(&provider, 1_000, 200)]).await;
    let at_limit = reserve(ledger, &[scope(&provider, 1_000, 100)]).await;

    // Both would go over; the first in the call is named.
    let refused = refusal(ledger, &[scope(&agent, 10, 11), scope(&provider, 1_000, 1)]).await;
    assert_eq!(refused.scope, agent);
    let refused = refusal(ledger, &[scope(&provider, 1_000, 1), scope(&agent, 10, 11)]).await;
    assert_eq!(
        refused,
        Refusal {
            scope: provider.clone(),
            spent: 700,
            reserved: 300,
            limit: 1_000,
            resets_in_secs: clock.utc_day().1,
        }
    );
    assert_eq!(
        refused.resets_in_secs,
        12 * 3_600,
        "noon is 12 hours from midnight"
    );
    assert!(
        refused.to_string().contains("ModelProvider \"anthropic\""),
        "the refusal names the budget as users do: {refused}"
    );
    settle(ledger, held, &[200]).await;
    settle(ledger, at_limit, &[100]).await;
    assert_eq!(spent(ledger, &provider).await, 1_000);
}

/// Settling releases what was held and charges what was used, per scope in order.
pub async fn settle_replaces_the_reservation_with_actual(
    ledger: Arc<dyn BudgetLedger>,
    _clock: Arc<ManualClock>,
) {
    let ledger = &*ledger;
    let tokens = key("model-binding", "fast");
    let cost = key("agent-cost", "writer");
    let held = reserve(
        ledger,
        &[scope(&tokens, 1_000, 900), scope(&cost, 10_000, 9_000)],
    )
    .await;
    assert_eq!(spent(ledger, &tokens).await, 0, "held is not spent");
    settle(ledger, held, &[120, 1_500]).await;
    assert_eq!(spent(ledger, &tokens).await, 120);
    assert_eq!(spent(ledger, &cost).await, 1_500);
    // The 780 and 7_500 held and not used are free again.
    let rest = reserve(
        ledger,
        &[scope(&tokens, 1_000, 880), scope(&cost, 10_000, 8_500)],
    )
    .await;
    // Providers can return more than the bound: the overshoot is charged as it is.
    settle(ledger, rest, &[1_000, 8_500]).await;
    assert_eq!(spent(ledger, &tokens).await, 1_120);
    let over = refusal(ledger, &[scope(&tokens, 1_000, 0)]).await;
    assert_eq!((over.spent, over.reserved), (1_120, 0));
}

/// Settling the same reservation twice (or a clone of it) charges once.
pub async fn settle_is_idempotent(ledger: Arc<dyn BudgetLedger>, _clock: Arc<ManualClock>) {
    let ledger = &*ledger;
    let key = key("access-key", "twice");
    let held = reserve(ledger, &[scope(&key, 1_000, 500)]).await;
    let other = reserve(ledger, &[scope(&key, 1_000, 300)]).await;
    settle(ledger, held.clone(), &[100]).await;
    settle(ledger, held.clone(), &[100]).await;
    settle(ledger, held, &[400]).await;
    assert_eq!(spent(ledger, &key).await, 100, "settled once");
    // And the second settle did not release someone else's hold.
    let refused = refusal(ledger, &[scope(&key, 1_000, 601)]).await;
    assert_eq!((refused.spent, refused.reserved), (100, 300));
    settle(ledger, other, &[300]).await;
    assert_eq!(spent(ledger, &key).await, 400);
}

/// A reservation not settled within the TTL is charged in full; a late settle changes nothing.
pub async fn unsettled_reservations_expire_charged_in_full(
    ledger: Arc<dyn BudgetLedger>,
    clock: Arc<ManualClock>,
) {
    let ledger = &*ledger;
    let key = key("provider-external", "crashy");
    let ttl = ledger.reservation_ttl();
    let abandoned = reserve(ledger, &[scope(&key, 1_000, 600)]).await;
    clock.advance(ttl / 2);
    let young = reserve(ledger, &[scope(&key, 1_000, 100)]).await;
    clock.advance(ttl / 2 + Duration::from_secs(1));
    // The first is past its time, the second is not. Touching the scope expires it.
    let refused = refusal(ledger, &[scope(&key, 1_000, 301)]).await;
    assert_eq!(
        (refused.spent, refused.reserved),
        (600, 100),
        "an expired reservation is charged in full, never released"
    );
    assert_eq!(spent(ledger, &key).await, 600);
    settle(ledger, abandoned, &[10]).await;
    assert_eq!(
        spent(ledger, &key).await,
        600,
        "a late settle changes nothing"
    );
    settle(ledger, young, &[50]).await;
    assert_eq!(spent(ledger, &key).await, 650);
}

/// Counters start from zero at midnight UTC; a reservation made before midnight and settled
/// after charges the day it was made on.
pub async fn the_day_resets_at_midnight_utc(
    ledger: Arc<dyn BudgetLedger>,
    clock: Arc<ManualClock>,
) {
    let ledger = &*ledger;
    let key = key("access-key", "nightly");
    clock.advance(Duration::from_secs(12 * 3_600 - 60)); // 23:59:00
    let used = reserve(ledger, &[scope(&key, 1_000, 1_000)]).await;
    settle(ledger, used, &[900]).await;
    let late = reserve(ledger, &[scope(&key, 1_000, 100)]).await;
    let refused = refusal(ledger, &[scope(&key, 1_000, 1)]).await;
    assert_eq!(refused.resets_in_secs, 60, "one minute to midnight");

    clock.advance(Duration::from_secs(60)); // 00:00:00, a new day
    assert_eq!(spent(ledger, &key).await, 0, "a new day starts from zero");
    let yesterday = late.day;
    settle(ledger, late, &[100]).await;
    assert_eq!(
        spent(ledger, &key).await,
        0,
        "yesterday's call is yesterday's spend"
    );
    let fresh = reserve(ledger, &[scope(&key, 1_000, 1_000)]).await;
    assert_eq!(fresh.day, yesterday + 1, "reservations carry their day");
    let refused = refusal(ledger, &[scope(&key, 1_000, 1)]).await;
    assert_eq!(refused.resets_in_secs, 86_400);
    settle(ledger, fresh, &[1]).await;
    assert_eq!(spent(ledger, &key).await, 1);
}

/// Tasks in the concurrency check, the largest request, and the shared cap.
const TASKS: usize = 500;
const MAX_REQUEST: u128 = 2_000;
const CAP: u128 = 3_000_000;
/// Per-key limits: generous, so the shared cap is what runs out.
const KEYS: usize = 8;
const KEY_CAP: u128 = CAP / 2;

/// 500 concurrent tasks reserve random amounts on a shared cap (and a per-key scope) and settle
/// with at most what they reserved, until the cap runs out. Admitted never exceeds the cap;
/// every refusal is one the arithmetic demands (`spent + reserved + amount > limit`); admission
/// continues until what is left is smaller than a request; both scopes are charged alike.
pub async fn concurrent_reservations_never_exceed_the_cap(
    ledger: Arc<dyn BudgetLedger>,
    _clock: Arc<ManualClock>,
) {
    let shared = key("provider", "contended");
    // Client-side: raised just after a reserve succeeds, lowered by what was not used just
    // before settling. It rises after the ledger's spent + reserved does and falls before it
    // does, so it never reads above it: if it exceeds the cap, the ledger admitted too much.
    let admitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let ledger = Arc::clone(&ledger);
        let admitted = Arc::clone(&admitted);
        let shared = shared.clone();
        let own = key("access-key", &format!("key-{}", task % KEYS));
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix64(task as u64 + 1);
            let mut calls = 0u64;
            loop {
                let amount = 1 + u128::from(rng.next()) % MAX_REQUEST;
                let scopes = [scope(&shared, CAP, amount), scope(&own, KEY_CAP, amount)];
                match ledger.reserve(&scopes).await {
                    Ok(reservation) => {
                        let now =
                            admitted.fetch_add(amount as u64, Ordering::SeqCst) + amount as u64;
                        assert!(u128::from(now) <= CAP, "admitted {now} over the cap {CAP}");
                        // Hold it across a yield, as a call would, so reservations overlap.
                        tokio::task::yield_now().await;
                        let actual = 1 + u128::from(rng.next()) % amount;
                        admitted.fetch_sub((amount - actual) as u64, Ordering::SeqCst);
                        ledger
                            .settle(reservation, &[actual, actual])
                            .await
                            .expect("settle");
                        calls += 1;
                    }
                    Err(LedgerError::Refused(r)) => {
                        assert!(
                            r.spent + r.reserved + amount > r.limit,
                            "refused {amount} with {} spent and {} held of {}",
                            r.spent,
                            r.reserved,
                            r.limit
                        );
                        assert!(r.spent + r.reserved <= r.limit, "over the limit: {r:?}");
                        // Nothing in flight and still no room: this task is done. Otherwise
                        // others will settle and free what they hold; try again.
                        if r.reserved == 0 {
                            assert_eq!(r.scope, shared, "the per-key limits never run out");
                            return (calls, r.limit - r.spent);
                        }
                        tokio::task::yield_now().await;
                    }
                    Err(e) => panic!("reserve: {e}"),
                }
            }
        }));
    }
    let mut calls = 0;
    for task in tasks {
        let (n, _left) = task.await.expect("task");
        calls += n;
    }
    let total = spent(&*ledger, &shared).await;
    assert!(total <= CAP, "spent {total} over the cap {CAP}");
    assert!(
        CAP - total < MAX_REQUEST,
        "admission stopped with {} of {CAP} left, more than a request",
        CAP - total
    );
    assert_eq!(
        u128::from(admitted.load(Ordering::SeqCst)),
        total,
        "client and ledger agree"
    );
    let mut per_key = 0;
    for k in 0..KEYS {
        per_key += spent(&*ledger, &key("access-key", &format!("key-{k}"))).await;
    }
    assert_eq!(per_key, total, "every call charged both scopes alike");
    assert!(calls > 2_000, "only {calls} calls were admitted");
}

/// A small, seeded, good-enough PRNG (SplitMix64): reproducible runs without a dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
