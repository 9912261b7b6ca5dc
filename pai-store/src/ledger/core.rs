//! The in-memory counters both ledgers answer from: one mutex, short critical sections.
//!
//! Everything here is synchronous and allocation-light; nothing awaits while the lock is held.
//! With a journal (the SQLite ledger) the core also remembers what changed since the last
//! batch, so the writer can persist a consistent snapshot without re-reading everything.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use pai_core::{Clock, Refusal, Reservation, ScopeKey};

use super::arithmetic::{admit, charges};

/// Spent and held on one scope for one UTC day.
#[derive(Clone, Copy, Debug, Default)]
struct Counter {
    spent: u128,
    reserved: u128,
    /// Changed since the journal last took it (journal mode only).
    dirty: bool,
}

/// A reservation not yet settled or expired.
#[derive(Debug)]
struct Open {
    reservation: Reservation,
    /// Unix milliseconds after which it is charged in full.
    expires_at_ms: u64,
}

/// What changed since the last batch, for the write-behind journal.
#[derive(Debug, Default)]
struct Journal {
    /// Counts every change; a batch carries the value it was taken at.
    seq: u64,
    /// Counters whose `spent` changed (each listed once: see `Counter::dirty`).
    spent: Vec<(ScopeKey, u64)>,
    /// Reservations opened since the last batch: not on disk yet.
    opened: HashSet<u64>,
    /// Reservations closed (settled or expired) that an earlier batch put on disk.
    closed: Vec<u64>,
}

/// A consistent snapshot of what changed, taken under the lock in one go.
// The journal's side is only read by the SQLite writer.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The journal's `seq` when the batch was taken: persisting it makes every change up to
    /// and including that one durable.
    pub(crate) seq: u64,
    /// `(scope, day, spent)`, the absolute value to write.
    pub(crate) spent: Vec<(ScopeKey, u64, u128)>,
    /// Reservations to insert, with their expiry in unix milliseconds.
    pub(crate) opened: Vec<(Reservation, u64)>,
    /// Reservation ids to delete.
    pub(crate) closed: Vec<u64>,
}

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.spent.is_empty() && self.opened.is_empty() && self.closed.is_empty()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Per scope, its counters by day: usually one entry (today), two around midnight.
    counters: HashMap<ScopeKey, Vec<(u64, Counter)>>,
    open: HashMap<u64, Open>,
    /// `(expires_at_ms, id)` of every open reservation, soonest first.
    expiry: BTreeSet<(u64, u64)>,
    next_id: u64,
    /// The last day seen; counters of earlier days are dropped once nothing refers to them.
    today: u64,
    journal: Option<Journal>,
}

/// The counters, the open reservations and the clock they are read by.
pub(crate) struct Core {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    /// Milliseconds an unsettled reservation lives; read once per reservation.
    ttl_ms: AtomicU64,
}

impl Core {
    /// An empty core; `journal` makes it record changes for a write-behind writer.
    pub(crate) fn new(clock: Arc<dyn Clock>, ttl: Duration, journal: bool) -> Core {
        let today = clock.utc_day().0;
        Core {
            state: Mutex::new(State {
                next_id: 1,
                today,
                journal: journal.then(Journal::default),
                ..State::default()
            }),
            clock,
            ttl_ms: AtomicU64::new(millis(ttl)),
        }
    }

    pub(crate) fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    /// Reservations made from now on expire after `ttl`.
    pub(crate) fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms.store(millis(ttl), Ordering::Relaxed);
    }

    /// Seed a spent counter (loading from disk); not journaled.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn load_spent(&self, key: ScopeKey, day: u64, spent: u128) {
        if let Some(counter) = self.lock().counter_mut(&key, day) {
            counter.spent = counter.spent.saturating_add(spent);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below is saturating arithmetic that cannot panic halfway, so a poisoned
        // lock (a panic elsewhere while holding it) still guards consistent counters.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(millis)
            .unwrap_or(0)
    }

    /// Reserve every scope's amount on today's counters, or nothing.
    pub(crate) fn reserve(&self, scopes: &[pai_core::ScopeLimit]) -> Result<Reservation, Refusal> {
        let (day, resets_in_secs) = self.clock.utc_day();
        let now = self.now_ms();
        let expires_at_ms = now.saturating_add(self.ttl_ms.load(Ordering::Relaxed));
        // Copies are made outside the lock: it guards arithmetic, not the allocator.
        let kept = scopes.to_vec();
        let mut state = self.lock();
        state.tick(day, now);
        admit(scopes, |key| state.counter(key, day), resets_in_secs)?;
        for scope in scopes {
            if let Some(counter) = state.counter_mut(&scope.key, day) {
                counter.reserved = counter.reserved.saturating_add(scope.amount);
            }
        }
        let id = state.next_id;
        state.next_id = state.next_id.wrapping_add(1);
        state.open.insert(
            id,
            Open {
                reservation: Reservation {
                    id,
                    day,
                    scopes: kept,
                },
                expires_at_ms,
            },
        );
        state.expiry.insert((expires_at_ms, id));
        if let Some(journal) = &mut state.journal {
            journal.seq = journal.seq.wrapping_add(1);
            journal.opened.insert(id);
        }
        drop(state);
        Ok(Reservation {
            id,
            day,
            scopes: scopes.to_vec(),
        })
    }

    /// Release an open reservation and charge `actual` (per scope; a missing entry charges the
    /// amount reserved). Whether it was still open: a settled, expired or unknown id is left
    /// alone.
    pub(crate) fn settle(&self, id: u64, actual: &[u128]) -> bool {
        let (day, _) = self.clock.utc_day();
        let now = self.now_ms();
        let mut state = self.lock();
        // Expire first: a settle that arrives after its reservation's deadline finds it already
        // charged in full, so crossing the deadline never depends on who gets the lock first.
        state.tick(day, now);
        state.close(id, Some(actual))
    }

    /// Spent on a scope on a day (settled and expired; not what is held).
    pub(crate) fn spent_on(&self, key: &ScopeKey, day: u64) -> u128 {
        let (today, _) = self.clock.utc_day();
        let now = self.now_ms();
        let mut state = self.lock();
        state.tick(today, now);
        state.counter(key, day).0
    }

    pub(crate) fn today(&self) -> u64 {
        self.clock.utc_day().0
    }

    /// Charge every reservation past its time in full; how many there were.
    pub(crate) fn sweep(&self) -> usize {
        let (day, _) = self.clock.utc_day();
        let now = self.now_ms();
        self.lock().tick(day, now)
    }

    /// The reservations still open, oldest first.
    pub(crate) fn open_reservations(&self) -> Vec<Reservation> {
        let state = self.lock();
        let mut open: Vec<Reservation> =
            state.open.values().map(|o| o.reservation.clone()).collect();
        open.sort_by_key(|r| r.id);
        open
    }

    /// The journal's count of changes so far (0 without a journal).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn seq(&self) -> u64 {
        self.lock().journal.as_ref().map_or(0, |j| j.seq)
    }

    /// Take what changed since the last batch (empty without a journal). Also charges expired
    /// reservations first, so a ledger left idle still persists their charge.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn take_batch(&self) -> Batch {
        let (day, _) = self.clock.utc_day();
        let now = self.now_ms();
        let mut state = self.lock();
        state.tick(day, now);
        let State {
            counters,
            open,
            journal,
            ..
        } = &mut *state;
        let Some(journal) = journal else {
            return Batch::default();
        };
        let mut batch = Batch {
            seq: journal.seq,
            spent: Vec::with_capacity(journal.spent.len()),
            opened: Vec::with_capacity(journal.opened.len()),
            closed: std::mem::take(&mut journal.closed),
        };
        for (key, day) in journal.spent.drain(..) {
            let counter = counters
                .get_mut(&key)
                .and_then(|days| days.iter_mut().find(|(d, _)| *d == day));
            if let Some((_, counter)) = counter {
                counter.dirty = false;
                batch.spent.push((key, day, counter.spent));
            }
        }
        for id in journal.opened.drain() {
            if let Some(o) = open.get(&id) {
                batch.opened.push((o.reservation.clone(), o.expires_at_ms));
            }
        }
        batch
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// === impl State ===

impl State {
    /// Roll the day and expire what is due. How many reservations expired.
    fn tick(&mut self, day: u64, now_ms: u64) -> usize {
        if day != self.today {
            self.today = day;
            // Keep earlier days only while a reservation still holds on them or the journal
            // has not written them yet.
            self.counters.retain(|_, days| {
                days.retain(|(d, c)| *d >= day || c.reserved > 0 || c.dirty);
                !days.is_empty()
            });
        }
        let mut expired = 0;
        while let Some(&(at, id)) = self.expiry.first() {
            if at >= now_ms {
                break;
            }
            self.close(id, None);
            expired += 1;
        }
        expired
    }

    /// Settle (`Some(actual)`) or expire (`None`, charged in full) an open reservation.
    fn close(&mut self, id: u64, actual: Option<&[u128]>) -> bool {
        let Some(open) = self.open.remove(&id) else {
            return false;
        };
        self.expiry.remove(&(open.expires_at_ms, id));
        let day = open.reservation.day;
        for (scope, charge) in charges(&open.reservation.scopes, actual.unwrap_or(&[])) {
            let journaled = self.journal.is_some();
            let Some(counter) = self.counter_mut(&scope.key, day) else {
                continue;
            };
            counter.reserved = counter.reserved.saturating_sub(scope.amount);
            counter.spent = counter.spent.saturating_add(charge);
            let newly_dirty = journaled && !counter.dirty;
            counter.dirty |= journaled;
            if let (true, Some(journal)) = (newly_dirty, &mut self.journal) {
                journal.spent.push((scope.key.clone(), day));
            }
        }
        if let Some(journal) = &mut self.journal {
            journal.seq = journal.seq.wrapping_add(1);
            // Opened and closed within one batch: it never needs to reach the disk.
            if !journal.opened.remove(&id) {
                journal.closed.push(id);
            }
        }
        true
    }

    /// `(spent, reserved)` of a scope on a day.
    fn counter(&self, key: &ScopeKey, day: u64) -> (u128, u128) {
        self.counters
            .get(key)
            .and_then(|days| days.iter().find(|(d, _)| *d == day))
            .map_or((0, 0), |(_, c)| (c.spent, c.reserved))
    }

    /// The counter of a scope on a day, created at zero if missing. `None` cannot happen (the
    /// entry is made first); it is an `Option` only because the borrow checker cannot yet see
    /// that a lookup by reference and an insert by clone are exclusive.
    fn counter_mut(&mut self, key: &ScopeKey, day: u64) -> Option<&mut Counter> {
        // Look up by reference: the key is cloned only the first time a scope is seen.
        if !self.counters.contains_key(key) {
            self.counters.insert(key.clone(), Vec::with_capacity(2));
        }
        let days = self.counters.get_mut(key)?;
        let at = match days.iter().position(|(d, _)| *d == day) {
            Some(at) => at,
            None => {
                days.push((day, Counter::default()));
                days.len() - 1
            }
        };
        days.get_mut(at).map(|(_, c)| c)
    }
}
