//! Where a pai gateway keeps its resources, access-key hashes, secrets and call records: the
//! implementations of [`pai_core::Store`].
//!
//! Two stores live here. [`MemoryStore`] keeps everything in the process, for tests and for
//! embedders that load their configuration at start and need nothing to outlive the process.
//! [`SqliteStore`] (cargo feature `sqlite`, on by default) is the embedded default: one SQLite
//! file, opened in WAL mode with `synchronous=FULL`, so every write that returns `Ok` is an
//! fsync'd commit that survives a crash of the process. The file is created with mode `0600`.
//! Secret values are sealed with AES-256-GCM under a key the caller holds outside the file, bound
//! to the secret's kind and name, so neither the file nor its write-ahead log ever holds them in
//! plain text, and a file opened with the wrong key answers [`StoreError::Corrupt`] rather than
//! garbage. Access keys reach the store only as the hashes `pai_core::access_key` makes of them.
//!
//! [`PostgresStore`] (cargo feature `postgres`) is the store replicas share: the same tables in
//! PostgreSQL, migrated on connect, with changes reaching every replica through
//! `LISTEN/NOTIFY` (and a read of the revision every [`RESYNC_INTERVAL`] for notifications
//! lost), and call records held in a bounded backlog while the database is unreachable.
//!
//! All three keep the same semantics, which the `contract` module (cargo feature
//! `contract-tests`) checks, and which other `Store` implementations can check against
//! themselves the same way:
//! - `apply` answers `Created`, `Configured` or `Unchanged` by comparing the resource's JSON; a
//!   change bumps `generation` and `updated_at` (unix seconds) and keeps `created_at`;
//! - `watch` yields a larger number after every write that changed something, and only then;
//! - `list` is sorted by name; `delete` says whether something was removed;
//! - `access_key_by_hash` finds the AccessKey whose `status.keyHash` is the hash, or whose
//!   `status.previousKeyHash` is while `status.previousKeyExpiresAt` is in the future; a previous
//!   hash without an expiry is never accepted, and two AccessKeys cannot claim one hash
//!   ([`StoreError::Conflict`]);
//! - `usage_since` sums calls per provider and access key, sorted by provider, then access key
//!   with keyless calls first; `usage_by_workload` sums them per workload, provider, model and
//!   ModelBinding, sorted by those with binding-less calls first, costs exact and calls that used
//!   tokens without a price counted as unpriced; `recent_calls` is newest first, ties in the
//!   order recorded;
//! - the audit chain ([`pai_core::audit`]): every recorded call is also an entry of the chain,
//!   appended in the same transaction; `append_audit` adds admin changes; the chain, its head
//!   and its seal verify under the key derived from the store's secret key, also after
//!   `prune_audit`.
//!
//! Budgets live here too: [`MemoryLedger`] and [`SqliteLedger`] implement
//! [`pai_core::BudgetLedger`] from one in-memory core (see the `ledger` module for the design),
//! the second writing behind to the same SQLite file as the store. [`PostgresLedger`] (feature
//! `postgres`, one transaction per call) and [`RedisLedger`] (feature `redis`, one Lua script per
//! call) keep the same contract across replicas. The `ledger_contract` module
//! (same feature) checks the ledger contract, concurrency included, against any implementation.
//!
//! # Writing another store
//!
//! A `Store` or `BudgetLedger` kept elsewhere (another database, a service of one's own) is
//! built from the same pieces as these two, so that it keeps the same semantics:
//! - [`apply::outcome`] decides what `apply` answers and keeps (generation, timestamps,
//!   `Unchanged` by JSON), and a [`Revision`] is what `watch` hands out;
//! - [`access_keys`] says which hashes an AccessKey is indexed under, whether one is still
//!   accepted, and how a second claim on a hash is refused;
//! - [`totals::UsageTally`] and [`totals::WorkloadTally`] sum calls into `usage_since` and
//!   `usage_by_workload`, sorted and exact;
//! - [`SecretBox`] seals secret values for a store that keeps them on disk;
//! - [`ledger::admit`] and [`ledger::charges`] are the ledger's arithmetic: when a reservation
//!   is refused, and what settling or expiring one charges.
//!
//! Then `contract::run_all` and `ledger_contract::run_all` check the result.
//! `examples/custom_store.rs` in the repository builds a store and a ledger this way and serves
//! calls through them.
//!
//! The gateway that uses a store is assembled in `pai-tower`; the vocabulary is `pai-core`'s.

pub mod access_keys;
pub mod apply;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod call_columns;
pub mod ledger;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod resource_row;
mod revision;
mod seal;
#[cfg(feature = "sqlite")]
mod sqlite;
pub mod totals;

#[cfg(all(test, any(feature = "sqlite", feature = "postgres")))]
mod audit_tamper;
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
#[cfg(any(test, feature = "contract-tests"))]
pub mod ledger_contract;
#[cfg(all(
    any(test, feature = "contract-tests"),
    any(feature = "postgres", feature = "redis")
))]
pub mod test_servers;

#[cfg(feature = "postgres")]
pub use ledger::PostgresLedger;
#[cfg(feature = "redis")]
pub use ledger::RedisLedger;
pub use ledger::{MemoryLedger, DEFAULT_RESERVATION_TTL};
#[cfg(feature = "sqlite")]
pub use ledger::{SqliteLedger, FLUSH_INTERVAL};
pub use memory::MemoryStore;
pub use pai_core::store::{Applied, CallRecord, Store, StoreError, Stored, UsageTotals};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, RECORD_BACKLOG, RESYNC_INTERVAL};
mod audit;
pub use revision::Revision;
pub use seal::SecretBox;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use pai_core::{Clock, SystemClock};

/// Unix seconds, now.
fn unix_now() -> u64 {
    SystemClock.unix_secs()
}
