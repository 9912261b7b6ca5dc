//! The resources users apply: ModelProvider, ModelBinding, AccessKey, Secret, Agent and
//! GuardBinding, all `apiVersion: pai.io/v1`.
//!
//! Field names are spelled exactly as users write them in YAML. [`load`] reads multi-document
//! YAML, refuses unknown fields with a suggestion of the nearest known one, and validates each
//! document with errors that name the document, the field and the fix.

#[cfg(test)]
mod fields_tests;
mod load;
#[cfg(test)]
mod load_fuzz_tests;
pub mod suggest;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::guard::Enforcement;
use crate::model::{ProviderKind, ProviderType};

pub use load::{load, load_one, LoadError, Loaded, HTTP_GUARD, PROMPT_GUARD};

/// The only API version there is.
pub const API_VERSION: &str = "pai.io/v1";

fn api_version() -> String {
    API_VERSION.to_owned()
}

/// The kinds of resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// A provider account: endpoint, key, allowed models, budgets.
    ModelProvider,
    /// One model of a provider, with its own key and budgets.
    ModelBinding,
    /// A key handed to a developer or service in place of the provider key.
    AccessKey,
    /// Named secret values, encrypted at rest.
    Secret,
    /// An application principal with its own models, budgets and guards.
    Agent,
    /// Guard configuration.
    GuardBinding,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::ModelProvider,
        Kind::ModelBinding,
        Kind::AccessKey,
        Kind::Secret,
        Kind::Agent,
        Kind::GuardBinding,
    ];

    /// The kind as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ModelProvider => "ModelProvider",
            Kind::ModelBinding => "ModelBinding",
            Kind::AccessKey => "AccessKey",
            Kind::Secret => "Secret",
            Kind::Agent => "Agent",
            Kind::GuardBinding => "GuardBinding",
        }
    }

    /// The plural used in URLs and on the command line (`model-providers`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::ModelProvider => "model-providers",
            Kind::ModelBinding => "models",
            Kind::AccessKey => "access-keys",
            Kind::Secret => "secrets",
            Kind::Agent => "agents",
            Kind::GuardBinding => "guard-bindings",
        }
    }

    /// Parse the names people type: `ModelProvider`, `model-provider`, `model-providers`, …
    pub fn from_cli(s: &str) -> Option<Kind> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        let norm = norm.strip_suffix('s').unwrap_or(&norm).to_owned();
        match norm.as_str() {
            "modelprovider" | "provider" | "mp" => Some(Kind::ModelProvider),
            "modelbinding" | "model" | "binding" => Some(Kind::ModelBinding),
            "accesskey" | "key" | "ak" => Some(Kind::AccessKey),
            "secret" => Some(Kind::Secret),
            "agent" => Some(Kind::Agent),
            "guardbinding" | "guard" => Some(Kind::GuardBinding),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                let near = suggest::close_matches(s, names.iter().copied());
                match near.first() {
                    Some(n) => format!("unknown kind {s:?}; did you mean {n:?}?"),
                    None => format!("unknown kind {s:?}; expected one of {}", names.join(", ")),
                }
            })
    }
}

/// Name and labels of a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Unique within its kind.
    pub name: String,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Which key of which Secret holds a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// The key inside it.
    #[serde(default = "SecretRef::default_key")]
    pub key: String,
}

impl SecretRef {
    fn default_key() -> String {
        "api-key".to_owned()
    }
}

/// A ModelBinding's secret reference, whose key defaults to `token`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSecretRef {
    /// The Secret's name.
    pub name: String,
    /// The key inside it.
    #[serde(default = "BindingSecretRef::default_key")]
    pub key: String,
}

impl BindingSecretRef {
    fn default_key() -> String {
        "token".to_owned()
    }
}

/// Whether and how far access keys may use a ModelProvider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAccess {
    /// Access keys are refused unless this is true.
    #[serde(default)]
    pub enabled: bool,
    /// A daily token cap for external traffic; unset shares the provider's main budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_day: Option<u64>,
}

/// A provider account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelProviderSpec {
    /// The kind of service: a built-in provider type, or the name of an adapter registered
    /// with the gateway.
    pub provider: ProviderType,
    /// Where the real API key is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretRef>,
    /// Base URL; required for vllm and azure-openai.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Models offered; for custom endpoints, the source of truth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_models: Vec<String>,
    /// Models never offered; beats `allowedModels`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_models: Vec<String>,
    /// Daily token cap for all traffic through this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_day: Option<u64>,
    /// Cap on input plus output of one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_request: Option<u64>,
    /// Requests per minute sent to this provider, per gateway process; past it, a call moves
    /// to its next candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_minute: Option<u32>,
    /// Guards applied to all traffic, the organisation's baseline: they run before an
    /// agent's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<GuardRef>,
    /// Access by AccessKeys.
    #[serde(default)]
    pub external_access: ExternalAccess,
    /// `provider/model-id` candidates tried in order when this provider fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
}

/// A provider account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelProvider {
    /// Always `pai.io/v1`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// The provider.
    pub spec: ModelProviderSpec,
}

impl ModelProvider {
    /// The base URL calls go to, without a trailing slash.
    pub fn endpoint(&self) -> Option<String> {
        self.spec
            .endpoint
            .as_deref()
            .or(self.spec.provider.default_endpoint())
            .map(|e| e.trim_end_matches('/').to_owned())
    }

    /// Whether the endpoint is other than the provider's own public one (so its catalogue
    /// does not apply).
    pub fn has_custom_endpoint(&self) -> bool {
        match (&self.spec.endpoint, self.spec.provider.default_endpoint()) {
            (None, _) => false,
            (Some(e), Some(default)) => e.trim_end_matches('/') != default,
            (Some(_), None) => true,
        }
    }

    /// Whether pai cannot know what models the endpoint serves, so that `spec.allowedModels`
    /// is the only source of truth: vllm, azure-openai, openai at an endpoint of its own, and
    /// every adapter registered by a library user.
    pub fn serves_unknown_models(&self) -> bool {
        match self.spec.provider.kind() {
            Some(ProviderKind::Vllm | ProviderKind::AzureOpenAi) | None => true,
            Some(ProviderKind::OpenAi) => self.has_custom_endpoint(),
            Some(_) => false,
        }
    }
}

/// One model of a provider with its own credential and budgets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelBindingSpec {
    /// A ModelProvider's name, or a provider type (`anthropic`, `gemini`, `openai`,
    /// `openrouter`) called directly at its public endpoint with the binding's own key. A
    /// ModelProvider of that name wins over the type.
    pub provider: String,
    /// The model id; defaults to the binding's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Daily token cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_day: Option<u64>,
    /// Cap on input plus output of one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_request: Option<u64>,
    /// Its own key, overriding the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<BindingSecretRef>,
}

/// One model of a provider with its own credential and budgets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelBinding {
    /// Always `pai.io/v1`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// The binding.
    pub spec: ModelBindingSpec,
}

impl ModelBinding {
    /// The model id at the provider: `spec.model`, else the binding's name.
    pub fn model(&self) -> &str {
        self.spec.model.as_deref().unwrap_or(&self.metadata.name)
    }

    /// What the binding calls, given whether a ModelProvider of a name exists.
    pub fn target(&self, provider_exists: impl Fn(&str) -> bool) -> BindingTarget {
        let name = &self.spec.provider;
        if provider_exists(name) {
            return BindingTarget::ModelProvider(name.clone());
        }
        match name.parse::<ProviderKind>() {
            Ok(kind) if kind.default_endpoint().is_some() => BindingTarget::ProviderType(kind),
            Ok(kind) => BindingTarget::Unresolved(format!(
                "provider type {kind} has no public endpoint to call directly; create a ModelProvider {name:?} with its endpoint, or name one that exists"
            )),
            Err(_) => BindingTarget::Unresolved(format!(
                "{name:?} is neither an existing ModelProvider nor a provider type ({})",
                ProviderKind::DIRECT
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// What a ModelBinding's `spec.provider` resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingTarget {
    /// An existing ModelProvider: its endpoint and adapter, the binding's key and budgets.
    ModelProvider(String),
    /// A provider type called directly: its adapter and public endpoint, the binding's key.
    ProviderType(ProviderKind),
    /// Nothing it can call, and why.
    Unresolved(String),
}

/// What an access key may do, within its provider's limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restrictions {
    /// Models this key may use; empty means all its provider allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_models: Vec<String>,
    /// Client networks the key may be used from; empty means anywhere.
    #[serde(
        default,
        rename = "allowedCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_cidrs: Vec<String>,
}

/// Per-key limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Daily token cap for this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_day: Option<u64>,
    /// Requests per minute on this key, per gateway process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_minute: Option<u32>,
}

/// What an access key is bound to and how it is restricted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeySpec {
    /// The ModelProvider this key reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_provider: Option<String>,
    /// Or the Agent it acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Narrowing of what the provider allows.
    #[serde(default)]
    pub restrictions: Restrictions,
    /// Per-key limits.
    #[serde(default)]
    pub limits: Limits,
}

/// Server-owned state of an access key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyStatus {
    /// Tokens used today.
    #[serde(default)]
    pub tokens_today: u64,
    /// The keyed hash of the current key. Never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    /// The keyed hash of the previous key, accepted until `previousKeyExpiresAt` (rotation
    /// grace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_hash: Option<String>,
    /// Unix seconds when the previous key stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_expires_at: Option<u64>,
}

/// A key handed out in place of the provider key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    /// Always `pai.io/v1`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// Binding and restrictions.
    pub spec: AccessKeySpec,
    /// Server-owned state.
    #[serde(default)]
    pub status: AccessKeyStatus,
}

/// Named secret values. `Debug` never shows them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Always `pai.io/v1`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// Key to value.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("metadata", &self.metadata)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secret {
    /// The same secret with every value replaced by `***`, for listings.
    pub fn redacted(&self) -> Secret {
        Secret {
            api_version: self.api_version.clone(),
            metadata: self.metadata.clone(),
            data: self
                .data
                .keys()
                .map(|k| (k.clone(), "***".to_owned()))
                .collect(),
        }
    }
}

/// Rate limits of an agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRateLimits {
    /// Daily spend cap in USD.
    #[serde(
        default,
        rename = "maxCostPerDayUSD",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_cost_per_day_usd: Option<f64>,
    /// Requests per minute by this agent, per gateway process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_minute: Option<u32>,
}

/// An application principal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// `provider/model-id`, first is primary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Names of ModelBindings it may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_bindings: Vec<String>,
    /// Rate limits.
    #[serde(default)]
    pub rate_limits: AgentRateLimits,
    /// Guards applied to its traffic, after its providers' guards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<GuardRef>,
}

/// An application principal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// Always `pai.io/v1`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// The agent.
    pub spec: AgentSpec,
}

/// What a guard reads of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardScan {
    /// Every text of the request: system prompts, messages, tool calls and tool results.
    #[serde(default = "yes")]
    pub prompts: bool,
    /// The model's answer.
    #[serde(default)]
    pub responses: bool,
}

fn yes() -> bool {
    true
}

impl Default for GuardScan {
    fn default() -> GuardScan {
        GuardScan {
            prompts: true,
            responses: false,
        }
    }
}

/// One guard a ModelProvider or an Agent runs: a GuardBinding, what it reads, and whether its
/// block refuses the call. Written as an object, or as the binding's bare name (prompts
/// scanned, enforced).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardRef {
    /// The GuardBinding's name.
    pub binding: String,
    /// What it reads.
    #[serde(default)]
    pub scan: GuardScan,
    /// `enforce` (a block is a 403) or `audit` (a block is only recorded).
    #[serde(default)]
    pub enforcement: Enforcement,
}

impl GuardRef {
    /// The binding `name`, scanning prompts, enforced.
    pub fn named(name: &str) -> GuardRef {
        GuardRef {
            binding: name.to_owned(),
            scan: GuardScan::default(),
            enforcement: Enforcement::Enforce,
        }
    }
}

impl<'de> Deserialize<'de> for GuardRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GuardRef, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Written {
            binding: String,
            #[serde(default)]
            scan: GuardScan,
            #[serde(default)]
            enforcement: Enforcement,
        }
        use serde::de::Error as _;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(name) => Ok(GuardRef::named(&name)),
            v @ serde_json::Value::Object(_) => serde_json::from_value::<Written>(v)
                .map(|w| GuardRef {
                    binding: w.binding,
                    scan: w.scan,
                    enforcement: w.enforcement,
                })
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "a guard is a GuardBinding's name, or {binding, scan, enforcement}",
            )),
        }
    }
}

/// The wire format of an external guard service (`guard: http`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuardFormat {
    /// Hugging Face Text Embeddings Inference, `POST /predict`.
    Tei,
    /// Azure AI Content Safety Prompt Shields, `text:shieldPrompt`.
    AzurePromptShields,
    /// Lakera Guard, `POST /v2/guard`.
    Lakera,
}

/// What happens to a call when its guard fails or does not answer in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Refuse the call (fail closed).
    #[default]
    Block,
    /// Let it through, recording that the guard could not tell.
    Allow,
}

/// How one guard is configured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardBindingSpec {
    /// The guard kind: `prompt-guard` (built in), `http`, or one a library user registered.
    #[serde(default)]
    pub guard: String,
    /// Block at or above this score (0 to 1); unset, the kind's own default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// For `guard: http`: the service's wire format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<GuardFormat>,
    /// For `guard: http`: the service's base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// For `guard: http`: where the service's key is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretRef>,
    /// How long the guard may take on one call; unset, the gateway's guard timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// What a failure or timeout of the guard does to the call.
    #[serde(default)]
    pub on_error: OnError,
    /// Free-form configuration handed to a guard kind a library user registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// Guard configuration: which guard, how strict, and how it fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardBinding {
    /// Always `pai.io/v1`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// The configuration.
    #[serde(default)]
    pub spec: GuardBindingSpec,
}

/// Any resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
#[allow(clippy::large_enum_variant)]
pub enum Resource {
    /// A ModelProvider.
    ModelProvider(ModelProvider),
    /// A ModelBinding.
    ModelBinding(ModelBinding),
    /// An AccessKey.
    AccessKey(AccessKey),
    /// A Secret.
    Secret(Secret),
    /// An Agent.
    Agent(Agent),
    /// A GuardBinding.
    GuardBinding(GuardBinding),
}

impl Resource {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::ModelProvider(_) => Kind::ModelProvider,
            Resource::ModelBinding(_) => Kind::ModelBinding,
            Resource::AccessKey(_) => Kind::AccessKey,
            Resource::Secret(_) => Kind::Secret,
            Resource::Agent(_) => Kind::Agent,
            Resource::GuardBinding(_) => Kind::GuardBinding,
        }
    }

    /// Its metadata.
    pub fn metadata(&self) -> &Metadata {
        match self {
            Resource::ModelProvider(r) => &r.metadata,
            Resource::ModelBinding(r) => &r.metadata,
            Resource::AccessKey(r) => &r.metadata,
            Resource::Secret(r) => &r.metadata,
            Resource::Agent(r) => &r.metadata,
            Resource::GuardBinding(r) => &r.metadata,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// `ModelProvider "openai"`, as error messages name it.
    pub fn describe(&self) -> String {
        format!("{} {:?}", self.kind(), self.name())
    }

    /// A copy fit to show: secret values replaced by `***`, key hashes removed.
    pub fn redacted(&self) -> Resource {
        match self {
            Resource::Secret(s) => Resource::Secret(s.redacted()),
            Resource::AccessKey(k) => {
                let mut k = k.clone();
                k.status.key_hash = None;
                k.status.previous_key_hash = None;
                Resource::AccessKey(k)
            }
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(provider: &str) -> ModelBinding {
        match load_one(&format!(
            "apiVersion: pai.io/v1\nkind: ModelBinding\nmetadata: {{name: b}}\nspec: {{provider: {provider}}}\n"
        )) {
            Ok(Resource::ModelBinding(b)) => b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_binding_calls_a_model_provider_of_its_name_else_the_provider_type() {
        let exists = |names: &'static [&'static str]| move |n: &str| names.contains(&n);
        assert_eq!(
            binding("gemini").target(exists(&[])),
            BindingTarget::ProviderType(ProviderKind::Gemini)
        );
        assert_eq!(
            binding("gemini").target(exists(&["gemini"])),
            BindingTarget::ModelProvider("gemini".to_owned())
        );
        assert_eq!(
            binding("openai-prod").target(exists(&["openai-prod"])),
            BindingTarget::ModelProvider("openai-prod".to_owned())
        );
        let BindingTarget::Unresolved(why) = binding("vllm").target(exists(&[])) else {
            panic!("vllm has no public endpoint");
        };
        assert!(why.contains("no public endpoint"), "{why}");
        let BindingTarget::Unresolved(why) = binding("gemni").target(exists(&[])) else {
            panic!("a typo names nothing");
        };
        assert!(
            why.contains("anthropic, gemini, openai, openrouter"),
            "{why}"
        );
        assert_eq!(binding("gemini").model(), "b");
        // The key of a binding's secret defaults to `token`.
        let b = load_one("apiVersion: pai.io/v1\nkind: ModelBinding\nmetadata: {name: b}\nspec: {provider: gemini, apiKeySecretRef: {name: s}}\n");
        let Ok(Resource::ModelBinding(b)) = b else {
            panic!("{b:?}")
        };
        assert_eq!(
            b.spec.api_key_secret_ref.map(|r| r.key),
            Some("token".to_owned())
        );
    }
}
