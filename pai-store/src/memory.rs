//! A store that keeps everything in the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use pai_core::audit::{
    AuditEnds, AuditEvent, AuditEvents, AuditKey, AuditSeal, ChainPosition, Positioned,
};
use pai_core::{
    Applied, CallRecord, Kind, PartlyRecorded, Resource, Store, StoreError, Stored, UsageTotals,
    WorkloadTotals,
};
use tokio::sync::watch;

use crate::access_keys::{accepts, conflict, indexed_hashes};
use crate::totals::{UsageTally, WorkloadTally};
use crate::{apply, unix_now, Revision};

/// A [`Store`] held in memory: for tests, and for embedders that apply their resources at start.
///
/// Nothing outlives the process, so there is nothing at rest to encrypt; every call recorded is
/// kept until the store is dropped. It never fails with [`StoreError::Unavailable`]. No lock is
/// held across an `.await`: every operation is a short critical section.
///
/// Its audit chain is MAC'd under the key derived from an all-zero secret unless it is made
/// [`with_secret_key`](MemoryStore::with_secret_key): nothing outside the process can reach it.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    revision: Revision,
    audit: AuditKey,
}

#[derive(Debug, Default)]
struct State {
    resources: BTreeMap<Kind, BTreeMap<String, Stored>>,
    /// Hash to the name of the AccessKey that holds it (see `access_keys::indexed_hashes`).
    key_hashes: HashMap<String, String>,
    /// In the order recorded.
    calls: Vec<CallRecord>,
    /// The audit chain, its head and the seal of what was pruned.
    audit: Vec<Positioned>,
    head: Option<ChainPosition>,
    seal: Option<AuditSeal>,
    last_pos: u64,
}

impl State {
    fn append(&mut self, key: &AuditKey, events: AuditEvents<'_>) {
        if events.is_empty() {
            return;
        }
        let mut at = self.head.take().unwrap_or_else(ChainPosition::genesis);
        for entry in key.append(&mut at, crate::audit::now_ms(), events) {
            self.last_pos += 1;
            self.audit.push(Positioned {
                pos: self.last_pos,
                entry,
            });
        }
        self.head = Some(at);
    }
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> MemoryStore {
        MemoryStore::with_secret_key(&[0; 32])
    }

    /// An empty store whose audit chain is MAC'd under the key derived from `secret_key`.
    pub fn with_secret_key(secret_key: &[u8; 32]) -> MemoryStore {
        MemoryStore {
            state: Mutex::new(State::default()),
            revision: Revision::new(),
            audit: AuditKey::derive(secret_key),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave `State` half-written: every write below completes
        // before the guard drops, so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn apply(&self, resource: &Resource) -> Result<Applied, StoreError> {
        let (kind, name) = (resource.kind(), resource.name());
        let now = unix_now();
        let mut state = self.lock();
        let existing = state
            .resources
            .get(&kind)
            .and_then(|by_name| by_name.get(name));
        let (applied, Some(stored)) = apply::outcome(existing, resource, now) else {
            return Ok(Applied::Unchanged);
        };
        if let Resource::AccessKey(key) = resource {
            let hashes = indexed_hashes(key);
            for (hash, _) in &hashes {
                match state.key_hashes.get(*hash) {
                    Some(owner) if owner != name => return Err(conflict(name, owner)),
                    _ => {}
                }
            }
            state.key_hashes.retain(|_, owner| owner != name);
            for (hash, _) in hashes {
                state.key_hashes.insert(hash.to_owned(), name.to_owned());
            }
        }
        state
            .resources
            .entry(kind)
            .or_default()
            .insert(name.to_owned(), stored);
        drop(state);
        self.revision.bump();
        Ok(applied)
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Stored>, StoreError> {
        let state = self.lock();
        Ok(state
            .resources
            .get(&kind)
            .and_then(|by_name| by_name.get(name))
            .cloned())
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Stored>, StoreError> {
        let state = self.lock();
        Ok(state
            .resources
            .get(&kind)
            .map(|by_name| by_name.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn delete(&self, kind: Kind, name: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let removed = state
            .resources
            .get_mut(&kind)
            .and_then(|by_name| by_name.remove(name))
            .is_some();
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
        let now = unix_now();
        let state = self.lock();
        let Some(owner) = state.key_hashes.get(hash) else {
            return Ok(None);
        };
        let stored = state
            .resources
            .get(&Kind::AccessKey)
            .and_then(|keys| keys.get(owner))
            .filter(|s| matches!(&s.resource, Resource::AccessKey(k) if accepts(k, hash, now)));
        Ok(stored.cloned())
    }

    async fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.record_calls(std::slice::from_ref(record))
            .await
            .map_err(|e| e.error)
    }

    async fn record_calls(&self, records: &[CallRecord]) -> Result<(), PartlyRecorded> {
        let mut state = self.lock();
        state.calls.extend_from_slice(records);
        state.append(&self.audit, AuditEvents::Calls(records));
        Ok(())
    }

    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.lock().append(&self.audit, events.into());
        Ok(())
    }

    async fn audit_page(
        &self,
        after_pos: u64,
        limit: usize,
    ) -> Result<Vec<Positioned>, StoreError> {
        let state = self.lock();
        let start = state.audit.partition_point(|e| e.pos <= after_pos);
        Ok(state.audit[start..].iter().take(limit).cloned().collect())
    }

    async fn audit_ends(&self) -> Result<AuditEnds, StoreError> {
        let state = self.lock();
        Ok(AuditEnds {
            seal: state.seal.clone(),
            head: state.head.as_ref().map(|at| self.audit.head(at)),
            last_pos: state.last_pos,
        })
    }

    async fn prune_audit(&self, before_ms: u64) -> Result<Option<(u64, AuditSeal)>, StoreError> {
        let mut state = self.lock();
        let cut = state.audit.iter().rposition(|e| {
            e.entry.at_ms < before_ms && matches!(e.entry.event(), Some(AuditEvent::Checkpoint(_)))
        });
        let Some(cut) = cut.filter(|&cut| cut > 0) else {
            return Ok(None);
        };
        let first_kept = &state.audit[cut].entry;
        let seal = self
            .audit
            .seal(first_kept.seq.saturating_sub(1), &first_kept.prev);
        state.audit.drain(..cut);
        state.seal = Some(seal.clone());
        let removed = u64::try_from(cut).unwrap_or(u64::MAX);
        let pruned = [crate::audit::pruned(removed, &seal)];
        state.append(&self.audit, AuditEvents::Events(&pruned));
        Ok(Some((removed, seal)))
    }

    async fn usage_since(&self, since_ms: u64) -> Result<Vec<UsageTotals>, StoreError> {
        let state = self.lock();
        let mut totals = UsageTally::default();
        for call in state.calls.iter().filter(|c| c.started_at_ms >= since_ms) {
            totals.add(call);
        }
        Ok(totals.finish())
    }

    async fn usage_by_workload(&self, since_ms: u64) -> Result<Vec<WorkloadTotals>, StoreError> {
        let state = self.lock();
        let mut groups = WorkloadTally::default();
        for call in state.calls.iter().filter(|c| c.started_at_ms >= since_ms) {
            groups.add(call);
        }
        Ok(groups.finish())
    }

    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        let state = self.lock();
        // Latest recorded first, then a stable sort: ties keep that order.
        let mut calls: Vec<&CallRecord> = state.calls.iter().rev().collect();
        calls.sort_by_key(|c| std::cmp::Reverse(c.started_at_ms));
        Ok(calls.into_iter().take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_store_contract() {
        crate::contract::run_all(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn keeps_the_audit_chain_contract() {
        let key = pai_core::AuditKey::derive(&[3; 32]);
        crate::contract::audit_chain(&MemoryStore::with_secret_key(&[3; 32]), &key).await;
    }
}
