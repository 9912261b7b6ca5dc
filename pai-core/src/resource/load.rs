//! Reading resources from YAML (or JSON) that people wrote.
//!
//! Three passes per document: parse into a tree, check every field name against the known ones
//! (an unknown field is an error that suggests the nearest known field), then deserialize into
//! the typed resource with the path of any type error, then validate the meaning. Every error
//! names the document, the field and the fix.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::suggest::close_matches;
use super::{GuardBinding, GuardRef, Kind, ModelProvider, Resource, API_VERSION};
use crate::model::ModelRef;
use crate::net::Cidr;

/// What was read: the resources, and warnings that do not stop them being applied.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The resources, in document order.
    pub resources: Vec<Resource>,
    /// Things worth telling the user, e.g. a custom endpoint with no allowedModels.
    pub warnings: Vec<String>,
}

/// Why a file could not be read. Each entry is a complete sentence about one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for LoadError {}

/// Read every document of a multi-document YAML (or JSON) text. All problems are reported
/// together; nothing is returned unless every document is valid.
pub fn load(text: &str) -> Result<Loaded, LoadError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, yaml_options()).map_err(|e| LoadError {
            problems: vec![format!("not valid YAML: {e}")],
        })?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    let many = docs.len() > 1;
    let mut loaded = Loaded::default();
    let mut problems = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let at = if many {
            format!(" (document {})", i + 1)
        } else {
            String::new()
        };
        match from_value(doc) {
            Ok((resource, warnings)) => {
                let who = resource.describe();
                loaded
                    .warnings
                    .extend(warnings.into_iter().map(|w| format!("{who}{at}: {w}")));
                loaded.resources.push(resource);
            }
            Err((who, errs)) => {
                problems.extend(errs.into_iter().map(|e| format!("{who}{at}: {e}")));
            }
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(LoadError { problems })
    }
}

/// Limits for resource files, far above any real configuration and far below what makes a
/// parse slow: an alias bomb or a deeply nested document is refused in milliseconds.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 50_000;
    budget.max_aliases = 1_000;
    budget.max_depth = 32;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Read exactly one resource.
pub fn load_one(text: &str) -> Result<Resource, LoadError> {
    let mut loaded = load(text)?;
    match loaded.resources.len() {
        1 => Ok(loaded.resources.remove(0)),
        n => Err(LoadError {
            problems: vec![format!("expected one resource, found {n}")],
        }),
    }
}

type Problems = (String, Vec<String>);

/// One document, from a tree to a valid resource, with warnings.
pub(crate) fn from_value(doc: Value) -> Result<(Resource, Vec<String>), Problems> {
    let Value::Object(map) = &doc else {
        return Err((
            "document".to_owned(),
            vec!["must be a mapping with apiVersion, kind, metadata".to_owned()],
        ));
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let kind_str = map.get("kind").and_then(Value::as_str).unwrap_or("");
    let kind: Kind = match kind_str.parse() {
        Ok(k) => k,
        Err(e) if kind_str.is_empty() => {
            let _ = e;
            return Err((
                format!("resource {name:?}"),
                vec!["kind is required (ModelProvider, ModelBinding, AccessKey, Secret, Agent or GuardBinding)".to_owned()],
            ));
        }
        Err(e) => return Err((format!("resource {name:?}"), vec![e])),
    };
    let who = format!("{kind} {name:?}");
    let mut problems = Vec::new();

    match map.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        Some(other) => problems.push(format!(
            "apiVersion {other:?} is not supported; use {API_VERSION}"
        )),
        None => problems.push(format!("apiVersion is required; use {API_VERSION}")),
    }
    check_fields(kind, &doc, "", &mut problems);
    if !problems.is_empty() {
        return Err((who, problems));
    }
    let has_status = kind == Kind::AccessKey && map.contains_key("status");

    let resource = match kind {
        Kind::ModelProvider => typed(doc).map(Resource::ModelProvider),
        Kind::ModelBinding => typed(doc).map(Resource::ModelBinding),
        Kind::AccessKey => typed(doc).map(Resource::AccessKey),
        Kind::Secret => typed(doc).map(Resource::Secret),
        Kind::Agent => typed(doc).map(Resource::Agent),
        Kind::GuardBinding => typed(doc).map(Resource::GuardBinding),
    }
    .map_err(|e| (who.clone(), vec![e]))?;

    let mut warnings = Vec::new();
    if has_status {
        warnings.push(
            "status is owned by the server and is not applied from documents (keys are minted with `pai access-key create` or `rotate`)".to_owned(),
        );
    }
    validate(&resource, &mut problems, &mut warnings);
    if problems.is_empty() {
        Ok((resource, warnings))
    } else {
        Err((who, problems))
    }
}

fn typed<T: DeserializeOwned>(doc: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })
}

/// The field names allowed in the object at `path` of a `kind` document; `None` for free-form
/// maps (labels, secret data, a GuardBinding's `spec.config`).
pub(super) fn known_fields(kind: Kind, path: &str) -> Option<&'static [&'static str]> {
    const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
    Some(match (kind, path) {
        (Kind::Secret, "") => &["apiVersion", "kind", "metadata", "data"],
        (Kind::AccessKey, "") => &["apiVersion", "kind", "metadata", "spec", "status"],
        (_, "") => TOP,
        (_, "metadata") => &["name", "labels", "annotations"],
        (Kind::ModelProvider, "spec") => &[
            "provider",
            "apiKeySecretRef",
            "endpoint",
            "allowedModels",
            "deniedModels",
            "maxTokensPerDay",
            "maxTokensPerRequest",
            "maxRequestsPerMinute",
            "guards",
            "externalAccess",
            "fallbacks",
        ],
        (Kind::ModelProvider | Kind::Agent, "spec.guards") => &["binding", "scan", "enforcement"],
        (Kind::ModelProvider | Kind::Agent, "spec.guards.scan") => &["prompts", "responses"],
        (Kind::ModelProvider, "spec.apiKeySecretRef") => &["name", "key"],
        (Kind::ModelProvider, "spec.externalAccess") => &["enabled", "maxTokensPerDay"],
        (Kind::ModelBinding, "spec") => &[
            "provider",
            "model",
            "maxTokensPerDay",
            "maxTokensPerRequest",
            "apiKeySecretRef",
        ],
        (Kind::ModelBinding, "spec.apiKeySecretRef") => &["name", "key"],
        (Kind::AccessKey, "spec") => &["modelProvider", "agent", "restrictions", "limits"],
        (Kind::AccessKey, "spec.restrictions") => &["allowedModels", "allowedCIDRs"],
        (Kind::AccessKey, "spec.limits") => &["maxTokensPerDay", "maxRequestsPerMinute"],
        (Kind::AccessKey, "status") => &[
            "tokensToday",
            "keyHash",
            "previousKeyHash",
            "previousKeyExpiresAt",
        ],
        (Kind::Agent, "spec") => &["models", "modelBindings", "rateLimits", "guards"],
        (Kind::Agent, "spec.rateLimits") => &["maxCostPerDayUSD", "maxRequestsPerMinute"],
        (Kind::GuardBinding, "spec") => &[
            "guard",
            "threshold",
            "format",
            "endpoint",
            "apiKeySecretRef",
            "timeoutMs",
            "onError",
            "config",
        ],
        (Kind::GuardBinding, "spec.apiKeySecretRef") => &["name", "key"],
        _ => return None,
    })
}

fn check_fields(kind: Kind, value: &Value, path: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let Some(known) = known_fields(kind, path) else {
                return;
            };
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if known.contains(&key.as_str()) {
                    check_fields(kind, child, &child_path, problems);
                } else {
                    let near = close_matches(key, known.iter().copied());
                    problems.push(match near.first() {
                        Some(n) => format!("unknown field {child_path}; did you mean {n}?"),
                        None => format!(
                            "unknown field {child_path}; the fields here are {}",
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                check_fields(kind, item, path, problems);
            }
        }
        _ => {}
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
        })
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

fn valid_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

/// The meaning of a resource: required fields, cross-field rules, well-formed references.
pub(crate) fn validate(
    resource: &Resource,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let name = resource.name();
    if name.is_empty() {
        problems.push("metadata.name is required".to_owned());
    } else if !valid_name(name) {
        problems.push(format!(
            "metadata.name {name:?} must be lower-case letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    match resource {
        Resource::ModelProvider(p) => {
            validate_provider(p, problems, warnings);
            validate_guard_refs(&p.spec.guards, problems);
        }
        Resource::ModelBinding(b) => {
            if b.spec.provider.is_empty() {
                problems.push("spec.provider is required: the name of a ModelProvider".to_owned());
            }
            if b.spec.max_tokens_per_request == Some(0) {
                problems.push("spec.maxTokensPerRequest must be at least 1".to_owned());
            }
        }
        Resource::AccessKey(k) => {
            match (&k.spec.model_provider, &k.spec.agent) {
                (None, None) => problems.push(
                    "spec.modelProvider is required: the name of the ModelProvider this key reaches (or spec.agent)".to_owned(),
                ),
                (Some(_), Some(_)) => problems
                    .push("set spec.modelProvider or spec.agent, not both".to_owned()),
                _ => {}
            }
            refuse_zero_rate(
                "spec.limits.maxRequestsPerMinute",
                k.spec.limits.max_requests_per_minute,
                problems,
            );
            for (i, cidr) in k.spec.restrictions.allowed_cidrs.iter().enumerate() {
                if let Err(e) = cidr.parse::<Cidr>() {
                    problems.push(format!("spec.restrictions.allowedCIDRs[{i}]: {e}"));
                }
            }
        }
        Resource::Secret(s) => {
            if s.data.is_empty() {
                warnings.push("data is empty".to_owned());
            }
        }
        Resource::Agent(a) => {
            if a.spec.models.is_empty() && a.spec.model_bindings.is_empty() {
                problems.push(
                    "spec.models or spec.modelBindings must name at least one model".to_owned(),
                );
            }
            for (i, m) in a.spec.models.iter().enumerate() {
                if let Err(e) = m.parse::<ModelRef>() {
                    problems.push(format!("spec.models[{i}]: {e}"));
                }
            }
            validate_guard_refs(&a.spec.guards, problems);
            refuse_zero_rate(
                "spec.rateLimits.maxRequestsPerMinute",
                a.spec.rate_limits.max_requests_per_minute,
                problems,
            );
            if let Some(c) = a.spec.rate_limits.max_cost_per_day_usd {
                if !c.is_finite() || c < 0.0 {
                    problems.push(
                        "spec.rateLimits.maxCostPerDayUSD must be a non-negative number".to_owned(),
                    );
                }
            }
        }
        Resource::GuardBinding(g) => validate_guard_binding(g, problems),
    }
}

/// The built-in guard kind.
pub const PROMPT_GUARD: &str = "prompt-guard";

/// The kind of external guards: a classifier service called over HTTP.
pub const HTTP_GUARD: &str = "http";

/// The longest a guard may be given per call.
const MAX_GUARD_TIMEOUT_MS: u64 = 60_000;

fn validate_guard_binding(g: &GuardBinding, problems: &mut Vec<String>) {
    let spec = &g.spec;
    if spec.guard.is_empty() {
        problems.push(format!(
            "spec.guard is required: {PROMPT_GUARD} (built in), {HTTP_GUARD} (an external classifier), or a kind registered with the gateway"
        ));
    }
    if spec.guard == HTTP_GUARD {
        validate_http_guard(spec, problems);
    } else {
        let http_only = [
            ("spec.format", spec.format.is_some()),
            ("spec.endpoint", spec.endpoint.is_some()),
            ("spec.apiKeySecretRef", spec.api_key_secret_ref.is_some()),
        ];
        for (path, set) in http_only {
            if set {
                problems.push(format!(
                    "{path} is only for guard: {HTTP_GUARD} (this binding has guard: {:?}); remove {path}",
                    spec.guard
                ));
            }
        }
    }
    if let Some(t) = spec.threshold {
        if !(t.is_finite() && t > 0.0 && t <= 1.0) {
            problems.push(format!(
                "spec.threshold {t} must be above 0 and at most 1 (a block is a score at or above it)"
            ));
        }
    }
    if let Some(ms) = spec.timeout_ms {
        if ms == 0 || ms > MAX_GUARD_TIMEOUT_MS {
            problems.push(format!(
                "spec.timeoutMs {ms} must be between 1 and {MAX_GUARD_TIMEOUT_MS}"
            ));
        }
    }
    if spec.config.is_some() && (spec.guard == PROMPT_GUARD || spec.guard == HTTP_GUARD) {
        problems.push(format!(
            "spec.config is for guard kinds a library registers; {} takes none (it is configured by the other spec fields); remove spec.config",
            spec.guard
        ));
    }
}

/// `guard: http`: a format, a base URL the gateway can call, and a key where the service
/// needs one.
fn validate_http_guard(spec: &super::GuardBindingSpec, problems: &mut Vec<String>) {
    use super::GuardFormat;
    match spec.format {
        None => problems.push(
            "spec.format is required for guard: http: tei (Hugging Face Text Embeddings Inference), azure-prompt-shields or lakera".to_owned(),
        ),
        Some(GuardFormat::AzurePromptShields | GuardFormat::Lakera)
            if spec.api_key_secret_ref.is_none() =>
        {
            let format = match spec.format {
                Some(GuardFormat::Lakera) => "lakera",
                _ => "azure-prompt-shields",
            };
            problems.push(format!(
                "spec.apiKeySecretRef is required for format: {format} (the service refuses calls without a key); add apiKeySecretRef: {{name: SECRET, key: api-key}}"
            ));
        }
        Some(_) => {}
    }
    match &spec.endpoint {
        None => problems.push(
            "spec.endpoint is required for guard: http: the service's base URL, e.g. http://guard.internal:8080".to_owned(),
        ),
        Some(e) if !valid_url(e) || e.contains(['?', '#']) => problems.push(format!(
            "spec.endpoint {e:?} must be an http:// or https:// base URL without a query (pai adds the format's path)"
        )),
        Some(_) => {}
    }
}

/// A ModelProvider's or Agent's `spec.guards`.
fn validate_guard_refs(guards: &[GuardRef], problems: &mut Vec<String>) {
    for (i, g) in guards.iter().enumerate() {
        if g.binding.is_empty() {
            problems.push(format!(
                "spec.guards[{i}].binding is required: the name of a GuardBinding"
            ));
        } else if !valid_name(&g.binding) {
            problems.push(format!(
                "spec.guards[{i}].binding {:?} is not a resource name (lower-case letters, digits, '-', '_' or '.')",
                g.binding
            ));
        }
        if !g.scan.prompts && !g.scan.responses {
            problems.push(format!(
                "spec.guards[{i}].scan reads neither prompts nor responses, so the guard would never run; set scan.prompts or scan.responses to true, or remove the guard"
            ));
        }
    }
}

/// A rate of 0 would refuse every call: a key or provider is disabled by deleting it, not by a
/// limit nothing can pass.
fn refuse_zero_rate(path: &str, limit: Option<u32>, problems: &mut Vec<String>) {
    if limit == Some(0) {
        problems.push(format!(
            "{path} must be at least 1; leave it out for no limit"
        ));
    }
}

fn validate_provider(p: &ModelProvider, problems: &mut Vec<String>, warnings: &mut Vec<String>) {
    let kind = &p.spec.provider;
    match &p.spec.endpoint {
        None if kind.default_endpoint().is_none() => problems.push(format!(
            "spec.endpoint is required when spec.provider is {kind}"
        )),
        Some(e) if !valid_url(e) => problems.push(format!(
            "spec.endpoint {e:?} must be an http:// or https:// URL"
        )),
        _ => {}
    }
    if kind.requires_api_key() && p.spec.api_key_secret_ref.is_none() {
        problems.push(format!(
            "spec.apiKeySecretRef is required when spec.provider is {kind}: name the Secret holding the API key (pai add secret NAME --from-literal api-key=...)"
        ));
    }
    if let Some(r) = &p.spec.api_key_secret_ref {
        if r.name.is_empty() {
            problems.push("spec.apiKeySecretRef.name is required".to_owned());
        }
    }
    if p.spec.max_tokens_per_request == Some(0) {
        problems.push("spec.maxTokensPerRequest must be at least 1".to_owned());
    }
    refuse_zero_rate(
        "spec.maxRequestsPerMinute",
        p.spec.max_requests_per_minute,
        problems,
    );
    for (i, f) in p.spec.fallbacks.iter().enumerate() {
        if let Err(e) = f.parse::<ModelRef>() {
            problems.push(format!("spec.fallbacks[{i}]: {e}"));
        }
    }
    let custom = p.serves_unknown_models();
    if custom && p.spec.allowed_models.is_empty() {
        warnings.push(format!(
            "spec.allowedModels is empty; pai cannot know what a custom {kind} endpoint serves, so every model will be refused until you list them"
        ));
    }
    let builtin = kind.kind().filter(|_| !custom);
    if let Some((builtin, catalogue)) =
        builtin.and_then(|k| crate::catalog::catalogue(k).map(|c| (k, c)))
    {
        for (i, m) in p.spec.allowed_models.iter().enumerate() {
            if crate::catalog::knows(builtin, m) == Some(false) {
                let near = close_matches(m, catalogue.iter().copied());
                let hint = match near.first() {
                    Some(n) => format!("; did you mean {n}?"),
                    None => String::new(),
                };
                warnings.push(format!(
                    "spec.allowedModels[{i}]: {m:?} is not in pai's {kind} catalogue{hint}"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProviderKind;

    fn problems(yaml: &str) -> Vec<String> {
        load(yaml)
            .map(|_| Vec::new())
            .unwrap_or_else(|e| e.problems)
    }

    #[test]
    fn a_full_multi_document_file_loads() {
        let yaml = r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {name: openai-key}
data: {api-key: sk-test}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata:
  name: openai
spec:
  provider: openai
  apiKeySecretRef: {name: openai-key}
  allowedModels: [gpt-4o, gpt-4o-mini]
  maxTokensPerDay: 1000000
  externalAccess: {enabled: true, maxTokensPerDay: 50000}
  fallbacks: [anthropic/claude-sonnet-4-6]
---
apiVersion: pai.io/v1
kind: AccessKey
metadata: {name: alice}
spec:
  modelProvider: openai
  restrictions: {allowedModels: [gpt-4o-mini], allowedCIDRs: [10.0.0.0/8, "2001:db8::/32"]}
  limits: {maxTokensPerDay: 1000}
---
apiVersion: pai.io/v1
kind: Agent
metadata: {name: support-bot}
spec:
  models: [openai/gpt-4o, nvidia/meta/llama-3.1-70b-instruct]
  rateLimits: {maxCostPerDayUSD: 12.5}
---
apiVersion: pai.io/v1
kind: ModelBinding
metadata: {name: llama}
spec: {provider: vllm-local, model: meta/llama, apiKeySecretRef: {name: llama-token}}
"#;
        let loaded = load(yaml).unwrap();
        assert_eq!(loaded.resources.len(), 5);
        let Resource::ModelProvider(p) = &loaded.resources[1] else {
            panic!()
        };
        assert_eq!(p.spec.provider, ProviderKind::OpenAi);
        assert_eq!(p.spec.api_key_secret_ref.as_ref().unwrap().key, "api-key");
        assert_eq!(p.spec.external_access.max_tokens_per_day, Some(50000));
        let Resource::AccessKey(k) = &loaded.resources[2] else {
            panic!()
        };
        assert_eq!(k.spec.restrictions.allowed_cidrs.len(), 2);
        let Resource::ModelBinding(b) = &loaded.resources[4] else {
            panic!()
        };
        assert_eq!(b.spec.api_key_secret_ref.as_ref().unwrap().key, "token");
        let Resource::Agent(a) = &loaded.resources[3] else {
            panic!()
        };
        assert_eq!(a.spec.rate_limits.max_cost_per_day_usd, Some(12.5));
    }

    #[test]
    fn rates_per_minute_load_and_zero_is_refused() {
        let yaml = "apiVersion: pai.io/v1\nkind: AccessKey\nmetadata: {name: k}\nspec: {modelProvider: p, limits: {maxRequestsPerMinute: 60}}\n---\napiVersion: pai.io/v1\nkind: Agent\nmetadata: {name: a}\nspec: {models: [p/m], rateLimits: {maxRequestsPerMinute: 5}}\n---\napiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {name: p}\nspec: {provider: vllm, endpoint: \"http://127.0.0.1:1\", allowedModels: [m], maxRequestsPerMinute: 7}\n";
        let loaded = load(yaml).unwrap();
        let Resource::AccessKey(k) = &loaded.resources[0] else {
            panic!()
        };
        assert_eq!(k.spec.limits.max_requests_per_minute, Some(60));
        let Resource::Agent(a) = &loaded.resources[1] else {
            panic!()
        };
        assert_eq!(a.spec.rate_limits.max_requests_per_minute, Some(5));
        let Resource::ModelProvider(p) = &loaded.resources[2] else {
            panic!()
        };
        assert_eq!(p.spec.max_requests_per_minute, Some(7));
        let zero = problems(
            &yaml
                .replace("60", "0")
                .replace(": 5", ": 0")
                .replace(": 7", ": 0"),
        );
        for path in [
            "spec.limits.maxRequestsPerMinute",
            "spec.rateLimits.maxRequestsPerMinute",
            "spec.maxRequestsPerMinute",
        ] {
            assert!(
                zero.iter()
                    .any(|p| p.contains(&format!("): {path} must be at least 1"))),
                "{path}: {zero:?}"
            );
        }
    }

    #[test]
    fn vllm_needs_an_endpoint() {
        let p = problems(
            "apiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {name: vllm-local}\nspec: {provider: vllm}\n",
        );
        assert_eq!(
            p,
            vec![
                r#"ModelProvider "vllm-local": spec.endpoint is required when spec.provider is vllm"#
            ]
        );
    }

    #[test]
    fn unknown_fields_suggest_the_nearest() {
        let p = problems(
            "apiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {name: x}\nspec: {provider: vllm, endpont: 'http://h:8000/v1'}\n",
        );
        assert_eq!(
            p,
            vec![r#"ModelProvider "x": unknown field spec.endpont; did you mean endpoint?"#]
        );
        let p = problems(
            "apiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {name: x}\nspec: {provider: openai, apiKeySecretRef: {name: k}, externalAccess: {enabeld: true}}\n",
        );
        assert_eq!(
            p,
            vec![
                r#"ModelProvider "x": unknown field spec.externalAccess.enabeld; did you mean enabled?"#
            ]
        );
    }

    #[test]
    fn errors_name_the_document_and_the_field() {
        let yaml = "apiVersion: pai.io/v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: b}\n---\napiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {name: big}\nspec: {provider: openai, apiKeySecretRef: {name: s}, maxTokensPerDay: lots}\n";
        let p = problems(yaml);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with(r#"ModelProvider "big" (document 2): spec.maxTokensPerDay"#),
            "{}",
            p[0]
        );
    }

    #[test]
    fn kinds_and_versions_are_checked() {
        let p = problems("apiVersion: pai.io/v2\nkind: ModelProvidr\nmetadata: {name: x}\n");
        assert!(p[0].contains("did you mean \"ModelProvider\""), "{p:?}");
        let p = problems("apiVersion: pai.io/v2\nkind: Secret\nmetadata: {name: x}\n");
        assert!(
            p[0].contains("apiVersion \"pai.io/v2\" is not supported"),
            "{p:?}"
        );
    }

    #[test]
    fn custom_endpoints_without_models_warn() {
        let loaded = load("apiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {name: v}\nspec: {provider: vllm, endpoint: 'http://127.0.0.1:8000/v1'}\n").unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("allowedModels is empty"));
    }

    #[test]
    fn access_keys_need_a_target_and_valid_cidrs() {
        let p = problems("apiVersion: pai.io/v1\nkind: AccessKey\nmetadata: {name: k}\nspec: {restrictions: {allowedCIDRs: [10.0.0.0/40]}}\n");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].contains("allowedCIDRs[0]"));
    }

    #[test]
    fn guard_bindings_and_references_are_checked() {
        let guard = |spec: &str| {
            problems(&format!(
                "apiVersion: pai.io/v1\nkind: GuardBinding\nmetadata: {{name: g}}\nspec: {{{spec}}}\n"
            ))
        };
        assert!(
            guard("guard: prompt-guard, threshold: 0.8, timeoutMs: 300, onError: allow").is_empty()
        );
        for (spec, says) in [
            ("threshold: 0.8", "spec.guard is required"),
            (
                "guard: prompt-guard, threshold: 1.5",
                "spec.threshold 1.5 must be above 0",
            ),
            (
                "guard: prompt-guard, threshold: 0",
                "spec.threshold 0 must be above 0",
            ),
            (
                "guard: prompt-guard, timeoutMs: 0",
                "spec.timeoutMs 0 must be between 1 and 60000",
            ),
            (
                "guard: prompt-guard, config: {a: 1}",
                "prompt-guard takes none",
            ),
            ("guard: prompt-guard, onError: maybe", "spec.onError"),
            (
                "guard: prompt-guard, treshold: 0.8",
                "did you mean threshold?",
            ),
        ] {
            let p = guard(spec);
            assert!(p.iter().any(|p| p.contains(says)), "{spec}: {p:?}");
        }
        // A kind of a library's own takes free-form config.
        assert!(guard("guard: keywords, config: {phrases: [a]}").is_empty());
        let refs = |guards: &str| {
            problems(&format!(
                "apiVersion: pai.io/v1\nkind: Agent\nmetadata: {{name: a}}\nspec: {{models: [p/m], guards: {guards}}}\n"
            ))
        };
        assert!(refs("[g, {binding: h, enforcement: audit}]").is_empty());
        let p = refs("[{binding: h, enforcement: sometimes}]");
        assert!(
            p.iter()
                .any(|p| p.contains("spec.guards[0]") && p.contains("sometimes")),
            "{p:?}"
        );
        let p = refs("[{binding: Bad_Name}]");
        assert!(
            p.iter()
                .any(|p| p.contains("spec.guards[0].binding \"Bad_Name\"")),
            "{p:?}"
        );
        let p = refs("[{bindng: h}]");
        assert!(
            p.iter().any(|p| p.contains("did you mean binding?")),
            "{p:?}"
        );
    }

    #[test]
    fn http_guards_need_a_format_an_endpoint_and_a_key_where_the_service_wants_one() {
        let guard = |spec: &str| {
            problems(&format!(
                "apiVersion: pai.io/v1\nkind: GuardBinding\nmetadata: {{name: g}}\nspec: {{{spec}}}\n"
            ))
        };
        for ok in [
            "guard: http, format: tei, endpoint: 'http://tei:8080', threshold: 0.8, timeoutMs: 300",
            "guard: http, format: tei, endpoint: 'https://tei.example/base/', apiKeySecretRef: {name: s}",
            "guard: http, format: azure-prompt-shields, endpoint: 'https://x.cognitiveservices.azure.com', apiKeySecretRef: {name: s, key: k}, onError: allow",
            "guard: http, format: lakera, endpoint: 'https://api.lakera.ai', apiKeySecretRef: {name: s}",
        ] {
            assert!(guard(ok).is_empty(), "{ok}: {:?}", guard(ok));
        }
        for (spec, says) in [
            (
                "guard: http, endpoint: 'http://tei:8080'",
                "spec.format is required for guard: http",
            ),
            (
                "guard: http, format: onnx, endpoint: 'http://tei:8080'",
                "spec.format",
            ),
            ("guard: http, format: tei", "spec.endpoint is required"),
            (
                "guard: http, format: tei, endpoint: 'tei:8080'",
                "spec.endpoint \"tei:8080\" must be an http:// or https:// base URL",
            ),
            (
                "guard: http, format: tei, endpoint: 'http://tei:8080/?key=x'",
                "without a query",
            ),
            (
                "guard: http, format: azure-prompt-shields, endpoint: 'https://x'",
                "spec.apiKeySecretRef is required for format: azure-prompt-shields",
            ),
            (
                "guard: http, format: lakera, endpoint: 'https://x'",
                "spec.apiKeySecretRef is required for format: lakera",
            ),
            (
                "guard: http, format: tei, endpoint: 'http://x', config: {labels: [a]}",
                "http takes none",
            ),
            (
                "guard: http, format: tei, endpoint: 'http://x', threshold: 0",
                "spec.threshold 0 must be above 0",
            ),
            (
                "guard: http, format: tei, endpoint: 'http://x', timeoutMs: 61000",
                "spec.timeoutMs 61000 must be between 1 and 60000",
            ),
            (
                "guard: prompt-guard, endpoint: 'http://x'",
                "spec.endpoint is only for guard: http",
            ),
            (
                "guard: prompt-guard, format: tei",
                "spec.format is only for guard: http",
            ),
            (
                "guard: keywords, apiKeySecretRef: {name: s}",
                "spec.apiKeySecretRef is only for guard: http",
            ),
        ] {
            let p = guard(spec);
            assert!(p.iter().any(|p| p.contains(says)), "{spec}: {p:?}");
        }
    }

    #[test]
    fn json_round_trip_of_the_typed_form() {
        let loaded =
            load("apiVersion: pai.io/v1\nkind: Secret\nmetadata: {name: s}\ndata: {api-key: v}\n")
                .unwrap();
        let json = serde_json::to_string(&loaded.resources[0]).unwrap();
        assert!(json.contains("\"kind\":\"Secret\""));
        let back: Resource = serde_json::from_str(&json).unwrap();
        assert_eq!(back, loaded.resources[0]);
        assert!(!format!("{:?}", back).contains("\"v\""));
    }
}
