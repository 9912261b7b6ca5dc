//! Budgets that hold under concurrency: reserve before the call, settle after.
//!
//! # Why reservations
//!
//! A gateway that checks spend before a call and adds usage after lets a burst of concurrent
//! requests pass the check together and overshoot the cap, and lets N replicas each spend the
//! whole cap. A [`BudgetLedger`] instead reserves the worst case a call can cost (its estimated
//! input plus its output bound) atomically across every scope the call touches, and refuses when
//! any scope would go over. When the call ends, [`BudgetLedger::settle`] replaces the reservation
//! with the real usage. The guarantee: with any number of concurrent requests, across any number
//! of replicas sharing the ledger, what is admitted never exceeds a cap except by what providers
//! return beyond a request's own output bound.
//!
//! A reservation that is never settled (its replica crashed) expires after a bounded time and is
//! charged in full: the ledger fails closed. The same contract must be implementable in one Redis
//! Lua script and in one SQL transaction.

use std::time::Duration;

use async_trait::async_trait;

/// What a scope counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Tokens.
    Tokens,
    /// Pico-USD (see [`crate::Cost`]).
    PicoUsd,
}

/// One budget counter, named the way users name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    /// `provider`, `provider-external`, `access-key`, `model-binding` or `agent-cost`.
    pub kind: &'static str,
    /// The resource's name.
    pub name: String,
}

impl ScopeKey {
    /// How the budget is named in a refusal, e.g. `AccessKey "alice" limits.maxTokensPerDay`.
    pub fn describe(&self) -> String {
        match self.kind {
            "provider" => format!("ModelProvider {:?} maxTokensPerDay", self.name),
            "provider-external" => {
                format!(
                    "ModelProvider {:?} externalAccess.maxTokensPerDay",
                    self.name
                )
            }
            "access-key" => format!("AccessKey {:?} limits.maxTokensPerDay", self.name),
            "model-binding" => format!("ModelBinding {:?} maxTokensPerDay", self.name),
            "agent-cost" => format!("Agent {:?} rateLimits.maxCostPerDayUSD", self.name),
            other => format!("{other} {:?}", self.name),
        }
    }
}

/// A scope with its daily limit and what this call may cost on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeLimit {
    /// Which counter.
    pub key: ScopeKey,
    /// What it counts.
    pub unit: Unit,
    /// The cap for the current UTC day.
    pub limit: u128,
    /// The worst case this call adds.
    pub amount: u128,
}

/// A successful reservation, to be settled exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The ledger's id for it.
    pub id: u64,
    /// The UTC day it was made on; settling charges that day even after midnight.
    pub day: u64,
    /// What was reserved, per scope.
    pub scopes: Vec<ScopeLimit>,
}

/// Why a reservation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} is exhausted: {spent} spent and {reserved} reserved of {limit}", scope.describe())]
pub struct Refusal {
    /// The first scope that would go over.
    pub scope: ScopeKey,
    /// Spent so far today.
    pub spent: u128,
    /// Held by reservations in flight.
    pub reserved: u128,
    /// The cap.
    pub limit: u128,
    /// Seconds until the day ends and the scope resets.
    pub resets_in_secs: u64,
}

/// A ledger that cannot answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Over a cap.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The backing store could not be reached; the gateway answers 503 rather than guess.
    #[error("budget ledger unavailable: {0}")]
    Unavailable(String),
}

/// Daily counters per scope with atomic reservations. See the module docs for the contract.
#[async_trait]
pub trait BudgetLedger: Send + Sync + 'static {
    /// Reserve `amount` on every scope, or on none. Refuses when, on any scope,
    /// `spent + reserved + amount > limit`, naming that scope and when it resets.
    async fn reserve(&self, scopes: &[ScopeLimit]) -> Result<Reservation, LedgerError>;

    /// Release the reservation and add what was really used, per scope, in the order the
    /// scopes were reserved.
    async fn settle(&self, reservation: Reservation, actual: &[u128]) -> Result<(), LedgerError>;

    /// Spent (settled) today on a scope.
    async fn spent_today(&self, key: &ScopeKey) -> Result<u128, LedgerError>;

    /// How long an unsettled reservation lives before it is charged in full.
    fn reservation_ttl(&self) -> Duration {
        Duration::from_secs(15 * 60)
    }

    /// Wait until every reservation and settlement made so far is durable, for a graceful
    /// shutdown. Ledgers that write through (or keep nothing) have nothing to wait for.
    async fn flush(&self) -> Result<(), LedgerError> {
        Ok(())
    }
}
