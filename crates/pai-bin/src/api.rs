//! The JSON shapes of the admin API, shared by the server ([`crate::admin`]) and the CLI
//! ([`crate::client`]) so the two cannot drift apart.
//!
//! Field names are camelCase like the resources themselves. Every error is
//! `{"error":{"message":"…"}}`, with `problems` (one line each) when a document was invalid.

use pai_core::{Applied, Kind, Resource, UsageTotals};
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
    /// Tokens used since 00:00 UTC (model providers and access keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_today: Option<u64>,
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
}

/// The body of `POST /admin/v1/access-keys/{name}/rotate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateAccessKey {
    /// How long the old key keeps working; 0 revokes it at once.
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
    pub items: Vec<UsageTotals>,
}
