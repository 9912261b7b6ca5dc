//! A store and a budget ledger of one's own, serving calls through the pai gateway.
//!
//! [`ToyStore`] (a [`pai_core::Store`]) and [`ToyLedger`] (a [`pai_core::BudgetLedger`]) keep
//! everything in hash maps behind a mutex, in place of the database or shared counter service
//! a real one talks to. They are built from the helpers `pai_store` makes public for exactly
//! this, so that they keep the same semantics as pai's own stores: `apply::outcome` and
//! `Revision` for writes and `watch`, `access_keys` for the key-hash index, the `totals`
//! tallies for usage, and `ledger::admit` and `ledger::charges` for the budget arithmetic.
//!
//! A store is ready when it passes pai-store's contract suites (cargo feature
//! `contract-tests`), which `tests/tests/custom_store.rs` runs against these two:
//!
//! ```ignore
//! pai_store::contract::run_all(&ToyStore::new()).await;
//! pai_store::ledger_contract::run_all(|clock| async move {
//!     Arc::new(ToyLedger::new(clock)) as Arc<dyn BudgetLedger>
//! })
//! .await;
//! ```
//!
//! Then a [`Gateway`] serves from them: this program starts a mock OpenAI upstream on loopback
//! (`pai_mock`), configures a provider and an access key capped at [`DAILY_TOKENS`] tokens a
//! day, and calls until the toy ledger refuses.
//!
//! ```sh
//! cargo run -p pai-examples --example custom_store
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use pai_core::resource::{load, AccessKey, Resource};
use pai_core::{
    access_key, AccessKeyHasher, Applied, BudgetLedger, CallRecord, Clock, Kind, LedgerError,
    Reservation, ScopeKey, ScopeLimit, Store, StoreError, Stored, SystemClock, UsageTotals,
    WorkloadTotals,
};
use pai_mock::{MockConfig, MockUpstream};
use pai_store::access_keys::{accepts, conflict, indexed_hashes};
use pai_store::totals::{UsageTally, WorkloadTally};
use pai_store::{apply, ledger, Revision};
use pai_tower::Gateway;
use tokio::sync::watch;
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// === impl ToyStore ===

/// A [`Store`] in a few hash maps. Nothing outlives the process, so there is nothing at rest to
/// encrypt; a store that writes to disk seals Secret values with `pai_store::SecretBox`.
#[derive(Debug, Default)]
pub struct ToyStore {
    state: Mutex<StoreState>,
    revision: Revision,
}

#[derive(Debug, Default)]
struct StoreState {
    resources: HashMap<(Kind, String), Stored>,
    /// Each hash an AccessKey answers to, and that key's name.
    key_hashes: HashMap<String, String>,
    /// In the order recorded.
    calls: Vec<CallRecord>,
}

impl ToyStore {
    /// An empty store.
    pub fn new() -> ToyStore {
        ToyStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        // Every write completes before the guard drops, so a poisoned lock guards whole data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for ToyStore {
    async fn apply(&self, resource: &Resource) -> Result<Applied, StoreError> {
        let key = (resource.kind(), resource.name().to_owned());
        let mut state = self.lock();
        let now = SystemClock.unix_secs();
        let (applied, Some(stored)) = apply::outcome(state.resources.get(&key), resource, now)
        else {
            return Ok(Applied::Unchanged);
        };
        if let Resource::AccessKey(access_key) = resource {
            // Refuse before changing anything: a refused write is not a change.
            let hashes = indexed_hashes(access_key);
            for (hash, _) in &hashes {
                if let Some(owner) = state.key_hashes.get(*hash).filter(|o| **o != key.1) {
                    return Err(conflict(&key.1, owner));
                }
            }
            state.key_hashes.retain(|_, owner| *owner != key.1);
            for (hash, _) in hashes {
                state.key_hashes.insert(hash.to_owned(), key.1.clone());
            }
        }
        state.resources.insert(key, stored);
        drop(state);
        self.revision.bump();
        Ok(applied)
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Stored>, StoreError> {
        Ok(self.lock().resources.get(&(kind, name.to_owned())).cloned())
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Stored>, StoreError> {
        let state = self.lock();
        let mut listed: Vec<Stored> = state
            .resources
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, stored)| stored.clone())
            .collect();
        drop(state);
        listed.sort_by(|a, b| a.resource.name().cmp(b.resource.name()));
        Ok(listed)
    }

    async fn delete(&self, kind: Kind, name: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let removed = state.resources.remove(&(kind, name.to_owned())).is_some();
        if removed && kind == Kind::AccessKey {
            state.key_hashes.retain(|_, owner| owner != name);
        }
        drop(state);
        if removed {
            self.revision.bump();
        }
        Ok(removed)
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    async fn access_key_by_hash(&self, hash: &str) -> Result<Option<Stored>, StoreError> {
        let now = SystemClock.unix_secs();
        let state = self.lock();
        let Some(owner) = state.key_hashes.get(hash) else {
            return Ok(None);
        };
        // The index finds the key; the key itself says whether it still takes this hash.
        Ok(state
            .resources
            .get(&(Kind::AccessKey, owner.clone()))
            .filter(|s| matches!(&s.resource, Resource::AccessKey(k) if accepts(k, hash, now)))
            .cloned())
    }

    async fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.lock().calls.push(record.clone());
        Ok(())
    }

    async fn usage_since(&self, since_ms: u64) -> Result<Vec<UsageTotals>, StoreError> {
        let mut tally = UsageTally::default();
        for call in self
            .lock()
            .calls
            .iter()
            .filter(|c| c.started_at_ms >= since_ms)
        {
            tally.add(call);
        }
        Ok(tally.finish())
    }

    async fn usage_by_workload(&self, since_ms: u64) -> Result<Vec<WorkloadTotals>, StoreError> {
        let mut tally = WorkloadTally::default();
        for call in self
            .lock()
            .calls
            .iter()
            .filter(|c| c.started_at_ms >= since_ms)
        {
            tally.add(call);
        }
        Ok(tally.finish())
    }

    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        let state = self.lock();
        // Latest recorded first, then a stable sort by start: ties keep that order.
        let mut calls: Vec<&CallRecord> = state.calls.iter().rev().collect();
        calls.sort_by_key(|c| std::cmp::Reverse(c.started_at_ms));
        Ok(calls.into_iter().take(limit).cloned().collect())
    }
}

// === impl ToyLedger ===

/// A [`BudgetLedger`] in two hash maps: counters per scope and UTC day, and the reservations
/// not yet settled. One mutex makes a reservation atomic across its scopes; a ledger kept in a
/// database does the same in one transaction.
///
/// Kept simple: expired reservations are found by a scan, and the counters of past days are
/// never dropped.
pub struct ToyLedger {
    clock: Arc<dyn Clock>,
    state: Mutex<LedgerState>,
}

#[derive(Debug, Default)]
struct LedgerState {
    /// `(spent, reserved)` per scope and UTC day.
    counters: HashMap<(ScopeKey, u64), (u128, u128)>,
    /// Open reservations by id, with the moment after which they are charged in full.
    open: HashMap<u64, (Reservation, SystemTime)>,
    next_id: u64,
}

impl ToyLedger {
    /// An empty ledger whose days turn at midnight UTC of `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> ToyLedger {
        ToyLedger {
            clock,
            state: Mutex::new(LedgerState::default()),
        }
    }

    /// The state with every reservation past its time charged in full: each call starts here,
    /// so an abandoned reservation is charged before anyone reads or reserves (fail closed).
    fn lock_and_expire(&self) -> MutexGuard<'_, LedgerState> {
        let now = self.clock.now();
        // Updates are saturating arithmetic that cannot stop halfway: a poisoned lock still
        // guards whole counters.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let expired: Vec<u64> = state
            .open
            .iter()
            .filter(|(_, (_, expires_at))| *expires_at < now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            state.close(id, &[]);
        }
        state
    }
}

impl LedgerState {
    /// Settle an open reservation with `actual`, or expire it with `&[]` (charged in full). A
    /// reservation already closed, or never made here, is left alone: settling is idempotent.
    fn close(&mut self, id: u64, actual: &[u128]) {
        let Some((reservation, _)) = self.open.remove(&id) else {
            return;
        };
        for (scope, charge) in ledger::charges(&reservation.scopes, actual) {
            let key = (scope.key.clone(), reservation.day);
            let (spent, reserved) = self.counters.entry(key).or_default();
            *reserved = reserved.saturating_sub(scope.amount);
            *spent = spent.saturating_add(charge);
        }
    }
}

#[async_trait]
impl BudgetLedger for ToyLedger {
    async fn reserve(&self, scopes: &[ScopeLimit]) -> Result<Reservation, LedgerError> {
        let (day, resets_in_secs) = self.clock.utc_day();
        let expires_at = self.clock.now() + self.reservation_ttl();
        let mut state = self.lock_and_expire();
        let counters = &state.counters;
        ledger::admit(
            scopes,
            |key| {
                counters
                    .get(&(key.clone(), day))
                    .copied()
                    .unwrap_or_default()
            },
            resets_in_secs,
        )?;
        for scope in scopes {
            let (_, reserved) = state.counters.entry((scope.key.clone(), day)).or_default();
            *reserved = reserved.saturating_add(scope.amount);
        }
        state.next_id += 1;
        let reservation = Reservation {
            id: state.next_id,
            day,
            scopes: scopes.to_vec(),
        };
        state
            .open
            .insert(reservation.id, (reservation.clone(), expires_at));
        Ok(reservation)
    }

    async fn settle(&self, reservation: Reservation, actual: &[u128]) -> Result<(), LedgerError> {
        // The ledger's own copy decides what is released, not the caller's.
        self.lock_and_expire().close(reservation.id, actual);
        Ok(())
    }

    async fn spent_today(&self, key: &ScopeKey) -> Result<u128, LedgerError> {
        let (day, _) = self.clock.utc_day();
        let state = self.lock_and_expire();
        Ok(state.counters.get(&(key.clone(), day)).map_or(0, |c| c.0))
    }

    fn reservation_ttl(&self) -> Duration {
        pai_store::DEFAULT_RESERVATION_TTL
    }
}

// === serving calls ===

/// The access key's daily budget, in tokens.
pub const DAILY_TOKENS: u64 = 200;
/// The access key [`configure`] mints.
pub const KEY_NAME: &str = "example";
/// The key the upstream expects: pai sends it, clients never see it.
pub const UPSTREAM_KEY: &str = "sk-upstream-example";

/// Hashes access keys; in production the secret is operator-held and stable across restarts.
pub fn hasher() -> AccessKeyHasher {
    AccessKeyHasher::new(b"example secret, 32 bytes or more")
}

/// Put an OpenAI-style provider at `endpoint` into `store`, and an access key to it capped at
/// [`DAILY_TOKENS`] a day; the raw access key.
pub async fn configure(store: &dyn Store, endpoint: &str) -> Result<String, BoxError> {
    let yaml = format!(
        r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: upstream-key}}
data: {{api-key: {UPSTREAM_KEY}}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: openai}}
spec:
  provider: openai
  endpoint: {endpoint}
  apiKeySecretRef: {{name: upstream-key}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: true}}
"#
    );
    for resource in load(&yaml)?.resources {
        store.apply(&resource).await?;
    }
    let raw = access_key::generate().map_err(|_| "no randomness")?;
    let mut key: AccessKey = serde_json::from_value(serde_json::json!({
        "metadata": {"name": KEY_NAME},
        "spec": {"modelProvider": "openai", "limits": {"maxTokensPerDay": DAILY_TOKENS}},
    }))?;
    key.status.key_hash = Some(hasher().hash(&raw).0);
    store.apply(&Resource::AccessKey(key)).await?;
    Ok(raw)
}

/// A gateway that reads its configuration from `store` and counts budgets in `ledger`.
pub async fn gateway_on(store: Arc<ToyStore>, ledger: Arc<ToyLedger>) -> Result<Gateway, BoxError> {
    Ok(Gateway::builder()
        .store(store)
        .ledger(ledger)
        .key_hasher(hasher())
        .build()
        .await?)
}

/// One chat completion through `gateway` with access key `key`, asking the mock upstream for a
/// 30-word answer within 40 tokens of output; the status and the JSON answer.
pub async fn chat(
    gateway: &Gateway,
    key: &str,
) -> Result<(StatusCode, serde_json::Value), BoxError> {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "max_tokens": 40,
        "messages": [{"role": "user", "content": "Say something [mock:words=30]"}],
    });
    let request = http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let response = gateway.clone().oneshot(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes)?))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let upstream = MockUpstream::start(MockConfig::default().with_openai_key(UPSTREAM_KEY)).await?;
    let store = Arc::new(ToyStore::new());
    let ledger = Arc::new(ToyLedger::new(Arc::new(SystemClock)));
    let key = configure(store.as_ref(), &format!("{}/v1", upstream.url())).await?;
    let gateway = gateway_on(store.clone(), ledger.clone()).await?;

    for call in 1..=20 {
        let (status, answer) = chat(&gateway, &key).await?;
        if status == StatusCode::OK {
            let reply = &answer["choices"][0]["message"]["content"];
            let tokens = &answer["usage"]["total_tokens"];
            println!("call {call}: {status}, {tokens} tokens: {reply}");
            continue;
        }
        println!("call {call}: {status}: {}", answer["error"]["message"]);
        if status != StatusCode::TOO_MANY_REQUESTS {
            return Err(format!("expected 200 or 429, got {status}").into());
        }
        if !gateway.finished(Duration::from_secs(5)).await {
            return Err("calls were not recorded within 5 s".into());
        }
        let scope = ScopeKey {
            kind: "access-key",
            name: KEY_NAME.to_owned(),
        };
        let spent = ledger.spent_today(&scope).await?;
        let recorded = store.recent_calls(100).await?.len();
        println!("{spent} of {DAILY_TOKENS} tokens spent today; {recorded} calls recorded");
        return Ok(());
    }
    Err("the daily budget was never enforced".into())
}
