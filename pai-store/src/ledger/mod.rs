//! Daily budgets that stay exact under concurrency: the implementations of
//! [`pai_core::BudgetLedger`].
//!
//! # Design
//!
//! **One lock, held only for arithmetic.** Every counter (spent and reserved, per scope per UTC
//! day) and every open reservation sit behind one `std::sync::Mutex`. A reservation checks
//! `spent + reserved + amount <= limit` on all of its scopes and then adds its amount to all of
//! them in the same critical section, so it is atomic across scopes without any ordering of
//! per-scope locks, and two concurrent reservations can never both take the last of a budget.
//! The critical section is a few hash lookups, additions and the copy of the reservation it
//! keeps — no I/O, never an `.await` — so one lock does not become the bottleneck (about a
//! microsecond per reservation, against an upstream call of hundreds of milliseconds). Sharding
//! the lock by scope would need a lock order across shards for multi-scope atomicity and would
//! buy nothing measurable.
//!
//! **Refusals are exact.** The first scope, in the order given, that would go over is the one
//! named, with its spent, what is held in flight, its limit, and the seconds to midnight UTC
//! when it resets. A refused reservation changes nothing.
//!
//! **Settling is idempotent.** `settle` looks the reservation up by id and removes it: settling
//! twice, settling a reservation this ledger never made, or settling one that already expired
//! does nothing and answers `Ok`. `actual` is read per scope in the order reserved; a missing
//! entry is charged the amount reserved (fail closed). Settling charges the day the reservation
//! was made on, even after midnight.
//!
//! **Fail closed on abandonment.** A reservation older than the TTL (15 minutes unless set
//! with `with_reservation_ttl`) is charged in full: its amount moves from reserved to spent.
//! Expiry is lazy — every `reserve`, `settle` and `spent_today` first expires what is due (an
//! ordered index by deadline makes this O(1) when nothing is) — and `sweep` does it on demand.
//! A late `settle` of an expired reservation changes nothing: it was already charged.
//!
//! **Days come from the clock.** The day is `Clock::utc_day()` at the moment of the call: a new
//! day starts from zero, and counters of earlier days are dropped once no open reservation or
//! unwritten change refers to them.
//!
//! **Durability without waiting.** [`MemoryLedger`] keeps nothing. [`SqliteLedger`] wraps the
//! same core with a journal of what changed and a writer task that commits a consistent
//! snapshot of those changes every few milliseconds in one transaction; the hot path never
//! waits on the disk. Its docs say exactly what a crash can lose.
//!
//! The contract both keep is checked by `ledger_contract` (cargo feature `contract-tests`),
//! which other `BudgetLedger` implementations run the same way. The arithmetic they share —
//! when a reservation is refused ([`admit`]) and what closing one charges ([`charges`]) — is
//! public, so that a ledger kept elsewhere (one SQL transaction, one Redis script, a service of
//! its own) admits and charges exactly as these do.

mod arithmetic;
mod core;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(all(test, feature = "postgres", feature = "redis"))]
mod shared_timing;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timing;

use std::time::Duration;

pub use arithmetic::{admit, charges};
pub use memory::MemoryLedger;
#[cfg(feature = "postgres")]
pub use postgres::PostgresLedger;
#[cfg(feature = "redis")]
pub use redis::{RedisLedger, COMMAND_TIMEOUT};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteLedger, FLUSH_INTERVAL};

/// How long an unsettled reservation lives unless told otherwise.
pub const DEFAULT_RESERVATION_TTL: Duration = Duration::from_secs(15 * 60);
