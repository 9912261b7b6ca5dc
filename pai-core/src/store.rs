//! Where resources, access keys, secrets, usage and audit records live.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEnds, AuditEvent, AuditSeal, Positioned};
use crate::resource::{Kind, Resource};
use crate::usage::Usage;

/// A stored resource with its bookkeeping.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// The resource. Secrets come back decrypted; callers that show them must redact.
    pub resource: Resource,
    /// Unix seconds when first created.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// Incremented on every change.
    pub generation: u64,
}

/// What `apply` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed exactly so.
    Unchanged,
}

/// One call through the gateway, as usage and audit see it. Never holds key material.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The gateway's id for the call (`x-pai-call-id`).
    pub call_id: String,
    /// Unix milliseconds when the call started.
    pub started_at_ms: u64,
    /// `ext:<access-key-name>` or the agent's name.
    pub workload: String,
    /// The ModelProvider's name.
    pub provider: String,
    /// The AccessKey's name, for external calls.
    pub access_key: Option<String>,
    /// The model id sent upstream.
    pub model: String,
    /// The ModelBinding the call went through, if any. Absent in records written before
    /// bindings were recorded.
    #[serde(default)]
    pub binding: Option<String>,
    /// `chat.completions`, `messages`, `count_tokens`.
    pub operation: String,
    /// Whether the response streamed.
    pub stream: bool,
    /// The HTTP status the client received.
    pub status: u16,
    /// Tokens used, when known.
    pub usage: Option<Usage>,
    /// Cost in pico-USD, when the model's price is known.
    pub cost_pico_usd: Option<u128>,
    /// Wall time from request to end of response.
    pub duration_ms: u64,
    /// The client's address.
    pub client_ip: Option<String>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// What each guard that ran said, in the order they ran. Empty when no guard is bound (and
    /// in records written before guards were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<GuardVerdict>,
}

/// What one guard said about a call, as records keep it. Never the text it read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardVerdict {
    /// The GuardBinding's name.
    pub binding: String,
    /// What it decided.
    pub verdict: GuardDecision,
    /// Whether a block refused the call or was only recorded.
    pub enforcement: crate::guard::Enforcement,
    /// The guard's score, for a block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// What was found (for a block) or what failed (for an error), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// What the guard read: the request (written as nothing) or the model's answer.
    #[serde(default, skip_serializing_if = "GuardStage::is_prompt")]
    pub stage: GuardStage,
}

/// What a guard read of a call: the request (`scan.prompts`) or the answer (`scan.responses`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardStage {
    /// Every text of the request, before any model saw it.
    #[default]
    Prompt,
    /// The model's answer: a buffered one before it is returned, a streamed one as it passed
    /// (recorded when the stream ends; never refused, since its bytes already left).
    Answer,
}

impl GuardStage {
    /// `prompt` or `answer`, as headers write it.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardStage::Prompt => "prompt",
            GuardStage::Answer => "answer",
        }
    }

    fn is_prompt(&self) -> bool {
        *self == GuardStage::Prompt
    }
}

/// A guard's decision about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardDecision {
    /// Nothing found.
    Allow,
    /// Found something at or above its threshold.
    Block,
    /// The guard failed or did not answer in time; `onError` decided.
    Error,
}

impl GuardDecision {
    /// `allow`, `block` or `error`, as labels and headers write it.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardDecision::Allow => "allow",
            GuardDecision::Block => "block",
            GuardDecision::Error => "error",
        }
    }
}

/// Totals over a period, per provider and access key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// The ModelProvider's name.
    pub provider: String,
    /// The AccessKey's name, if external.
    pub access_key: Option<String>,
    /// Number of calls.
    pub requests: u64,
    /// Summed usage.
    pub usage: Usage,
    /// Summed cost in pico-USD of the calls whose price was known.
    pub cost_pico_usd: u128,
    /// Unix milliseconds of the latest call.
    pub last_used_ms: u64,
}

/// Totals over a period, per workload, provider, model and ModelBinding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadTotals {
    /// `ext:<access-key-name>` or the agent's name.
    pub workload: String,
    /// The ModelProvider's name; empty for calls refused before one was chosen.
    pub provider: String,
    /// The model id sent upstream.
    pub model: String,
    /// The ModelBinding the calls went through; `None` for calls through none.
    pub binding: Option<String>,
    /// Number of calls.
    pub requests: u64,
    /// Summed usage.
    pub usage: Usage,
    /// Summed cost in pico-USD of the calls whose price was known.
    pub cost_pico_usd: u128,
    /// Calls that used tokens but had no price, so are missing from `cost_pico_usd`.
    pub unpriced_requests: u64,
    /// Unix milliseconds of the latest call.
    pub last_used_ms: u64,
}

/// A store that could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// It cannot be reached; the gateway answers 503 rather than guess.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// What is stored cannot be read back.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// The write conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
}

/// A batch of call records that was written only in part: the first `written` of them are
/// stored, the rest are not.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error} ({written} of the batch written)")]
pub struct PartlyRecorded {
    /// How many of the first records were written.
    pub written: usize,
    /// Why the next one was not.
    pub error: StoreError,
}

/// Resources, access keys, secrets, usage and audit records.
///
/// Contract:
/// - every write that returns `Ok` survives a crash of the process (an fsync'd commit in a
///   durable store);
/// - secrets are encrypted at rest; the provider key never appears in logs or errors;
/// - `watch` yields a new revision number after every change, so gateways can reload their
///   snapshot without polling;
/// - a store that cannot be reached answers [`StoreError::Unavailable`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Create or replace a resource by kind and name.
    async fn apply(&self, resource: &Resource) -> Result<Applied, StoreError>;

    /// One resource.
    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Stored>, StoreError>;

    /// Every resource of a kind, by name.
    async fn list(&self, kind: Kind) -> Result<Vec<Stored>, StoreError>;

    /// Remove a resource; `false` if there was none.
    async fn delete(&self, kind: Kind, name: &str) -> Result<bool, StoreError>;

    /// A receiver whose value changes after every write.
    fn watch(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The AccessKey whose current key hashes to `hash`, or whose previous key does while its
    /// rotation grace lasts.
    async fn access_key_by_hash(&self, hash: &str) -> Result<Option<Stored>, StoreError>;

    /// Record one call (usage and audit).
    async fn record_call(&self, record: &CallRecord) -> Result<(), StoreError>;

    /// Record many calls, in order. The gateway's recorder writes in batches so that records
    /// keep up with the request rate; a store that can commit many rows at once (one
    /// transaction, one fsync) should override this. On failure it says how many of the first
    /// records were written, so the caller can go on from there without writing any twice. The
    /// default writes them one by one.
    async fn record_calls(&self, records: &[CallRecord]) -> Result<(), PartlyRecorded> {
        for (written, record) in records.iter().enumerate() {
            self.record_call(record)
                .await
                .map_err(|error| PartlyRecorded { written, error })?;
        }
        Ok(())
    }

    /// Totals of calls started at or after `since_ms`, per provider and access key.
    async fn usage_since(&self, since_ms: u64) -> Result<Vec<UsageTotals>, StoreError>;

    /// Totals of calls started at or after `since_ms`, per workload, provider, model and
    /// binding, sorted by those (calls without a binding first).
    async fn usage_by_workload(&self, since_ms: u64) -> Result<Vec<WorkloadTotals>, StoreError>;

    /// The most recent calls, newest first.
    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError>;

    /// Append events to the audit chain ([`crate::audit`]), after every entry already there,
    /// in one durable write; the store also appends a call entry for every call it records, in
    /// the same transaction as the record. A store shared by replicas appends under a lock so
    /// the chain never forks. The default keeps no chain and says so.
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let _ = events;
        Err(no_audit_chain())
    }

    /// Up to `limit` entries of the audit chain in stored order, after position `after_pos`.
    async fn audit_page(
        &self,
        after_pos: u64,
        limit: usize,
    ) -> Result<Vec<Positioned>, StoreError> {
        let _ = (after_pos, limit);
        Err(no_audit_chain())
    }

    /// The head and seal stored beside the chain, and the last position in use.
    async fn audit_ends(&self) -> Result<AuditEnds, StoreError> {
        Err(no_audit_chain())
    }

    /// Remove the entries appended before `before_ms`, up to the last checkpoint before it,
    /// and seal the removed range so that the chain still verifies. Returns how many entries
    /// were removed and the seal, or `None` when nothing was old enough.
    async fn prune_audit(&self, before_ms: u64) -> Result<Option<(u64, AuditSeal)>, StoreError> {
        let _ = before_ms;
        Err(no_audit_chain())
    }
}

fn no_audit_chain() -> StoreError {
    StoreError::Unavailable("this store keeps no audit chain".into())
}
