//! The JSON shapes of the admin API, shared by the server ([`crate::admin`]) and the CLI
//! ([`crate::client`]) so the two cannot drift apart.
//!
//! Field names are camelCase like the resources themselves. Every error is
//! `{"error":{"message":"…"}}`, with `problems` (one line each) when a document was invalid.

use pai_core::{Applied, Cost, Kind, Resource, Usage, UsageTotals};
use serde::{Deserialize, Serialize};

/// The prefix of every admin route.
pub const PREFIX: &str = "/admin/v1";

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// One sentence, or the problems joined by newlines.
    pub message: String,
    /// For invalid documents: one complete sentence per problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// What `POST /admin/v1/apply` did to one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    /// The resource's kind, as written in `kind:`.
    pub kind: Kind,
    /// The resource's name.
    pub name: String,
    /// `created`, `configured` or `unchanged`.
    pub result: Applied,
}

/// The answer to `POST /admin/v1/apply`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// One entry per document, in document order.
    pub results: Vec<ApplyResult>,
    /// Things worth telling the user that did not stop anything being applied.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One stored resource as listings show it: redacted, with its bookkeeping and today's usage.
///
/// The resource's own fields (`kind`, `apiVersion`, `metadata`, `spec`, …) sit at the top level
/// next to the bookkeeping fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The resource, secret values replaced by `***` and key hashes removed.
    #[serde(flatten)]
    pub resource: Resource,
    /// Unix seconds when it was first created.
    pub created_at: u64,
    /// Unix seconds of its last change.
    pub updated_at: u64,
    /// Incremented on every change.
    pub generation: u64,
    /// Unix milliseconds of the latest call through it (model providers and access keys);
    /// `null` if it was never used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<u64>,
    /// Tokens used since 00:00 UTC (model providers, access keys and agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_today: Option<u64>,
    /// What the calls since 00:00 UTC cost, in USD rounded to the micro-dollar (agents): the
    /// sum over its call records of the priced calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_today_usd: Option<String>,
    /// What a ModelBinding calls: the ModelProvider its `spec.provider` names, or that
    /// provider type directly, or nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<BindingCalls>,
}

/// What a ModelBinding calls, as the gateway resolves its `spec.provider`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "kebab-case")]
pub enum BindingCalls {
    /// An existing ModelProvider: its endpoint and adapter, the binding's key and budgets.
    ModelProvider {
        /// The ModelProvider's name.
        name: String,
    },
    /// The provider type directly: its adapter and public endpoint, the binding's own key.
    ProviderType {
        /// The type.
        provider: pai_core::ProviderKind,
    },
    /// Nothing it can call.
    Nothing {
        /// Why.
        reason: String,
    },
}

impl From<pai_core::resource::BindingTarget> for BindingCalls {
    fn from(t: pai_core::resource::BindingTarget) -> BindingCalls {
        use pai_core::resource::BindingTarget;
        match t {
            BindingTarget::ModelProvider(name) => BindingCalls::ModelProvider { name },
            BindingTarget::ProviderType(provider) => BindingCalls::ProviderType { provider },
            BindingTarget::Unresolved(reason) => BindingCalls::Nothing { reason },
        }
    }
}

/// The answer to `GET /admin/v1/{plural}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemList {
    /// The resources of the kind, by name.
    pub items: Vec<Item>,
}

/// The answer to `DELETE /admin/v1/{plural}/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// The kind of the deleted resource.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Always `deleted`.
    pub result: String,
}

/// The body of `POST /admin/v1/access-keys`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAccessKey {
    /// The new key's name; must not exist yet.
    pub name: String,
    /// The ModelProvider the key reaches (or `agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_provider: Option<String>,
    /// The Agent the key acts as (or `modelProvider`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Models the key may use; empty means all its provider allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_models: Vec<String>,
    /// Client networks the key may be used from; empty means anywhere.
    #[serde(
        default,
        rename = "allowedCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_cidrs: Vec<String>,
    /// Daily token cap for this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_day: Option<u64>,
    /// Requests per minute on this key, per gateway process; at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_minute: Option<u32>,
}

/// The body of `POST /admin/v1/access-keys/{name}/rotate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateAccessKey {
    /// How long the old key keeps working, at most a week; 0 revokes it at once.
    #[serde(default)]
    pub grace_seconds: u64,
}

/// A freshly minted key: the only time the raw key is ever returned.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedKey {
    /// The AccessKey's name.
    pub name: String,
    /// The raw key, `pak_…`.
    pub key: String,
    /// The same key in the Anthropic-looking form `sk-ant-api03-pak-…-AA`.
    pub wrapped: String,
    /// After a rotation with grace: Unix seconds when the previous key stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_expires_at: Option<u64>,
    /// Things worth telling the user, e.g. that the provider refuses external access.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keeps the key out of any log line that prints the struct.
        f.debug_struct("IssuedKey")
            .field("name", &self.name)
            .field("previous_key_expires_at", &self.previous_key_expires_at)
            .finish_non_exhaustive()
    }
}

/// The answer to `GET /admin/v1/usage`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// Unix milliseconds the totals start from.
    pub since_ms: u64,
    /// Totals per provider and access key.
    pub items: Vec<UsageLine>,
}

/// Totals of one provider and access key over a period: [`UsageTotals`] as the store sums
/// them, plus the cost in dollars as a decimal string.
///
/// The store's field names (`access_key`, `cost_pico_usd`, `last_used_ms`) are kept as they
/// were before `costUsd` was added, so existing readers keep working.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageLine {
    /// The ModelProvider's name.
    pub provider: String,
    /// The AccessKey's name, if the calls were made with one.
    pub access_key: Option<String>,
    /// Number of calls.
    pub requests: u64,
    /// Summed usage.
    pub usage: Usage,
    /// Summed cost in pico-USD of the calls whose price was known (exact).
    pub cost_pico_usd: u128,
    /// The same in USD, rounded to the micro-dollar: `"0.012300"`.
    #[serde(rename = "costUsd", default)]
    pub cost_usd: String,
    /// Unix milliseconds of the latest call.
    pub last_used_ms: u64,
}

impl From<UsageTotals> for UsageLine {
    fn from(t: UsageTotals) -> UsageLine {
        UsageLine {
            cost_usd: usd(t.cost_pico_usd),
            provider: t.provider,
            access_key: t.access_key,
            requests: t.requests,
            usage: t.usage,
            cost_pico_usd: t.cost_pico_usd,
            last_used_ms: t.last_used_ms,
        }
    }
}

/// The answer to `GET /admin/v1/usage/workloads`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadUsageReport {
    /// Unix milliseconds the totals start from.
    pub since_ms: u64,
    /// Totals per workload, provider, model and binding, sorted by those (calls through no
    /// binding first).
    pub items: Vec<WorkloadUsage>,
}

/// Totals of one workload (`ext:<access-key>` or an agent's name) on one model of one
/// provider, through one ModelBinding or none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadUsage {
    /// `ext:<access-key-name>`, or the agent's name.
    pub workload: String,
    /// The ModelProvider that answered; empty for calls refused before one was chosen.
    pub provider: String,
    /// The model id sent upstream (for a ModelBinding, the model behind it).
    pub model: String,
    /// The ModelBinding the calls went through; absent for calls through none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// Number of calls.
    pub requests: u64,
    /// Summed usage.
    pub usage: Usage,
    /// Summed cost of the calls whose price was known, in pico-USD (exact).
    pub cost_pico_usd: u128,
    /// The same in USD, rounded to the micro-dollar: `"0.012300"`.
    pub cost_usd: String,
    /// Calls whose tokens have no price, so are missing from `costUsd`.
    pub unpriced_requests: u64,
    /// Unix milliseconds of the latest call.
    pub last_used_ms: u64,
}

/// The answer to `GET /admin/v1/budgets`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    /// Every budget with a limit, by scope then name.
    pub items: Vec<Budget>,
}

/// One daily budget and what has been spent on it since 00:00 UTC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// The ledger scope: `provider`, `provider-external`, `access-key`, `model-binding` or
    /// `agent-cost`.
    pub scope: String,
    /// The resource's name.
    pub name: String,
    /// The budget as refusals name it: `AccessKey "alice" limits.maxTokensPerDay`.
    pub budget: String,
    /// `tokens` or `usd`.
    pub unit: BudgetUnit,
    /// Settled today, in `unit` (whole tokens, or dollars).
    pub spent: serde_json::Number,
    /// The cap, in `unit`.
    pub limit: serde_json::Number,
    /// Seconds until 00:00 UTC, when every budget starts again.
    pub resets_in_seconds: u64,
}

/// What a budget counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetUnit {
    /// Tokens: the whole prompt and the output.
    Tokens,
    /// US dollars.
    Usd,
}

/// Pico-USD as a dollar string rounded to the micro-dollar, as `x-pai-cost-usd` shows it.
pub fn usd(pico_usd: u128) -> String {
    Cost { pico_usd }.to_string()
}
