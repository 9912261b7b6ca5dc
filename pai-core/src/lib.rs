//! The vocabulary of pai, an LLM gateway.
//!
//! This crate names what the gateway talks about and nothing more: the resources users apply
//! ([`resource`]), model references ([`model`]), wire dialects ([`dialect`]), token usage and
//! money ([`usage`], [`price`]), the one error type whose variants know their HTTP status and
//! render in the caller's dialect ([`error`]), access keys ([`access_key`]), and the traits the
//! other crates implement: [`Provider`], [`Store`], [`Guard`], [`PriceTable`], [`BudgetLedger`],
//! [`Transport`] and [`Clock`].
//!
//! It has no server, no HTTP client and no database driver. Adapters live in `pai-providers`,
//! stores in `pai-store`, and the tower layers that assemble a gateway in `pai-tower`.

pub mod access_key;
pub mod audit;
pub mod catalog;
pub mod clock;
pub mod dialect;
pub mod error;
pub mod guard;
pub mod json;
pub mod ledger;
pub mod model;
pub mod net;
pub mod price;
pub mod provider;
pub mod resource;
pub mod sse;
pub mod store;
pub mod timefmt;
pub mod transport;
pub mod usage;

pub use access_key::{AccessKeyHasher, KeyHash};
pub use audit::{AuditEvent, AuditKey};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dialect::{Dialect, Operation};
pub use error::Error;
pub use guard::{Enforcement, Guard, GuardInput, TextSource, Verdict};
pub use json::JsonObject;
pub use ledger::{BudgetLedger, LedgerError, Refusal, Reservation, ScopeKey, ScopeLimit};
pub use model::{ModelRef, ProviderKind, ProviderType};
pub use price::{Cost, Price, PriceTable};
pub use provider::{Call, Credentials, EventAction, Passed, Provider, StreamObserver};
pub use resource::{Kind, Resource};
pub use sse::SseEvent;
pub use store::{
    Applied, CallRecord, GuardDecision, GuardStage, GuardVerdict, PartlyRecorded, Store,
    StoreError, Stored, UsageTotals, WorkloadTotals,
};
pub use transport::{BoxError, Transport, TransportError, UpstreamBody};
pub use usage::Usage;
