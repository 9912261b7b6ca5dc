//! Accepted means enforced: every field a resource document may carry is listed here with what
//! pai does with it, and the list must match the loader's. A field added to the loader without
//! a line here fails this test; a field pai does not enforce yet is refused at apply time.

use std::collections::BTreeSet;

use super::load::{known_fields, load};
use super::Kind;

/// What pai does with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Checked on every call or every write; the string says where.
    Enforced(&'static str),
    /// Describes the document itself (apiVersion, kind, name) or is free-form and only shown.
    Identity,
    /// Owned by the server: what a document says is not applied (and a warning says so).
    ServerOwned,
}

use Fate::*;

/// Every field path per kind. Free-form maps (labels, annotations, secret data) are leaves.
const FIELDS: &[(Kind, &str, Fate)] = &[
    (
        Kind::ModelProvider,
        "spec.provider",
        Enforced(
            "the adapter registered under that name (snapshot); a name the gateway has no adapter for is refused at apply",
        ),
    ),
    (
        Kind::ModelProvider,
        "spec.apiKeySecretRef.name",
        Enforced("credentials (snapshot)"),
    ),
    (
        Kind::ModelProvider,
        "spec.apiKeySecretRef.key",
        Enforced("credentials (snapshot)"),
    ),
    (
        Kind::ModelProvider,
        "spec.endpoint",
        Enforced("credentials.endpoint (snapshot)"),
    ),
    (
        Kind::ModelProvider,
        "spec.allowedModels",
        Enforced("proxy::policy"),
    ),
    (
        Kind::ModelProvider,
        "spec.deniedModels",
        Enforced("proxy::policy"),
    ),
    (
        Kind::ModelProvider,
        "spec.maxTokensPerDay",
        Enforced("budget scopes"),
    ),
    (
        Kind::ModelProvider,
        "spec.maxTokensPerRequest",
        Enforced("proxy::candidates bound"),
    ),
    (
        Kind::ModelProvider,
        "spec.maxRequestsPerMinute",
        Enforced("rate_limit, per candidate (proxy)"),
    ),
    (
        Kind::ModelProvider,
        "spec.guards.binding",
        Enforced(
            "guard layer: the GuardBinding runs on every call; one that does not exist is refused at apply (pai) and fails the call closed (503)",
        ),
    ),
    (
        Kind::ModelProvider,
        "spec.guards.scan.prompts",
        Enforced("guard layer, over every text of the request (guard_input); false with responses false is refused"),
    ),
    (
        Kind::ModelProvider,
        "spec.guards.scan.responses",
        Enforced("meter layer, over the answer in the client's dialect (answer_input, answer_delta): a buffered answer before it is returned, a stream recorded at its end"),
    ),
    (
        Kind::ModelProvider,
        "spec.guards.enforcement",
        Enforced("guard layer: enforce refuses with 403, audit records"),
    ),
    (
        Kind::ModelProvider,
        "spec.externalAccess.enabled",
        Enforced("auth"),
    ),
    (
        Kind::ModelProvider,
        "spec.externalAccess.maxTokensPerDay",
        Enforced("budget scopes"),
    ),
    (
        Kind::ModelProvider,
        "spec.fallbacks",
        Enforced("proxy::candidates"),
    ),
    (
        Kind::ModelBinding,
        "spec.provider",
        Enforced(
            "a ModelProvider, else a provider type called directly (snapshot, proxy::candidates); neither is refused at apply",
        ),
    ),
    (
        Kind::ModelBinding,
        "spec.model",
        Enforced("the model sent upstream (proxy::candidates)"),
    ),
    (
        Kind::ModelBinding,
        "spec.maxTokensPerDay",
        Enforced("budget scopes"),
    ),
    (
        Kind::ModelBinding,
        "spec.maxTokensPerRequest",
        Enforced("proxy::candidates bound"),
    ),
    (
        Kind::ModelBinding,
        "spec.apiKeySecretRef.name",
        Enforced("binding credentials (snapshot); required for a provider type, must exist at apply"),
    ),
    (
        Kind::ModelBinding,
        "spec.apiKeySecretRef.key",
        Enforced("binding credentials (snapshot), default `token`; must exist at apply"),
    ),
    (Kind::AccessKey, "spec.modelProvider", Enforced("auth")),
    (Kind::AccessKey, "spec.agent", Enforced("auth")),
    (
        Kind::AccessKey,
        "spec.restrictions.allowedModels",
        Enforced("proxy::policy"),
    ),
    (
        Kind::AccessKey,
        "spec.restrictions.allowedCIDRs",
        Enforced("auth"),
    ),
    (
        Kind::AccessKey,
        "spec.limits.maxTokensPerDay",
        Enforced("budget scopes"),
    ),
    (
        Kind::AccessKey,
        "spec.limits.maxRequestsPerMinute",
        Enforced("rate_limit, per principal (proxy)"),
    ),
    (Kind::AccessKey, "status.tokensToday", ServerOwned),
    (Kind::AccessKey, "status.keyHash", ServerOwned),
    (Kind::AccessKey, "status.previousKeyHash", ServerOwned),
    (Kind::AccessKey, "status.previousKeyExpiresAt", ServerOwned),
    (Kind::Secret, "data", Enforced("credentials (snapshot)")),
    (Kind::Agent, "spec.models", Enforced("proxy::candidates")),
    (
        Kind::Agent,
        "spec.modelBindings",
        Enforced("proxy::candidates"),
    ),
    (
        Kind::Agent,
        "spec.rateLimits.maxCostPerDayUSD",
        Enforced("budget scopes"),
    ),
    (
        Kind::Agent,
        "spec.rateLimits.maxRequestsPerMinute",
        Enforced("rate_limit, per principal (proxy)"),
    ),
    (
        Kind::Agent,
        "spec.guards.binding",
        Enforced(
            "guard layer: the GuardBinding runs on every call; one that does not exist is refused at apply (pai) and fails the call closed (503)",
        ),
    ),
    (
        Kind::Agent,
        "spec.guards.scan.prompts",
        Enforced("guard layer, over every text of the request (guard_input); false with responses false is refused"),
    ),
    (
        Kind::Agent,
        "spec.guards.scan.responses",
        Enforced("meter layer, over the answer in the client's dialect (answer_input, answer_delta): a buffered answer before it is returned, a stream recorded at its end"),
    ),
    (
        Kind::Agent,
        "spec.guards.enforcement",
        Enforced("guard layer: enforce refuses with 403, audit records"),
    ),
    (
        Kind::GuardBinding,
        "spec.guard",
        Enforced(
            "the guard kind registered with the gateway (guard layer); one pai does not have is refused at apply (pai) and fails closed (503)",
        ),
    ),
    (
        Kind::GuardBinding,
        "spec.threshold",
        Enforced("guard layer: a block scored below it is an allow; prompt-guard's cut-off"),
    ),
    (
        Kind::GuardBinding,
        "spec.format",
        Enforced("guard: http: the wire format the classifier is called in (guard::http)"),
    ),
    (
        Kind::GuardBinding,
        "spec.endpoint",
        Enforced("guard: http: the classifier's base URL (guard::http)"),
    ),
    (
        Kind::GuardBinding,
        "spec.apiKeySecretRef.name",
        Enforced("guard: http: the classifier's key, resolved from the Secret (snapshot)"),
    ),
    (
        Kind::GuardBinding,
        "spec.apiKeySecretRef.key",
        Enforced("guard: http: the classifier's key, resolved from the Secret (snapshot)"),
    ),
    (
        Kind::GuardBinding,
        "spec.timeoutMs",
        Enforced("guard layer: how long the guard may take on one call"),
    ),
    (
        Kind::GuardBinding,
        "spec.onError",
        Enforced("guard layer: a guard that fails or times out blocks the call or lets it through"),
    ),
    (
        Kind::GuardBinding,
        "spec.config",
        Enforced("handed to the registered kind's GuardKind::build; refused for prompt-guard"),
    ),
];

/// Fields every kind has.
const COMMON: &[(&str, Fate)] = &[
    ("apiVersion", Identity),
    ("kind", Identity),
    ("metadata.name", Identity),
    ("metadata.labels", Identity),
    ("metadata.annotations", Identity),
];

/// The leaf paths the loader accepts for `kind`, found by walking its table of known fields.
fn accepted(kind: Kind) -> BTreeSet<String> {
    fn walk(kind: Kind, path: &str, out: &mut BTreeSet<String>) {
        match known_fields(kind, path) {
            Some(fields) => {
                for f in fields {
                    let child = if path.is_empty() {
                        (*f).to_owned()
                    } else {
                        format!("{path}.{f}")
                    };
                    walk(kind, &child, out);
                }
            }
            None => {
                out.insert(path.to_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(kind, "", &mut out);
    out
}

#[test]
fn every_accepted_field_has_a_fate() {
    assert!(COMMON.iter().all(|(_, fate)| *fate == Identity));
    for kind in Kind::ALL {
        let listed: BTreeSet<String> = FIELDS
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, p, _)| (*p).to_owned())
            .chain(COMMON.iter().map(|(p, _)| (*p).to_owned()))
            .collect();
        assert_eq!(
            accepted(kind),
            listed,
            "{kind}: the loader's fields and this list differ; say what pai does with each"
        );
    }
}

/// A minimal valid document of `kind`, with `extra` merged into its `spec`.
fn document(kind: Kind, extra: &str) -> String {
    let spec = match kind {
        Kind::ModelProvider => "provider: openai, apiKeySecretRef: {name: k}",
        Kind::Agent => "models: [openai/gpt-4o-mini]",
        Kind::GuardBinding => "guard: prompt-guard, threshold: 0.8",
        _ => unreachable!("only the kinds this test writes"),
    };
    let spec = if extra.is_empty() {
        spec.to_owned()
    } else {
        format!("{spec}, {extra}")
    };
    format!("apiVersion: pai.io/v1\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{{spec}}}\n")
}

#[test]
fn guard_scans_are_checked_at_apply_time() {
    // The minimal documents load; a guard is a name or an object, reading prompts, answers or both.
    for kind in [Kind::ModelProvider, Kind::Agent, Kind::GuardBinding] {
        assert!(load(&document(kind, "")).is_ok(), "{kind}");
    }
    for guards in [
        "guards: []",
        "guards: [prompt-guard-default]",
        "guards: [{binding: g, scan: {prompts: true}, enforcement: audit}]",
        "guards: [{binding: g, scan: {prompts: true, responses: true}}]",
        "guards: [{binding: g, scan: {prompts: false, responses: true}}]",
    ] {
        assert!(
            load(&document(Kind::ModelProvider, guards)).is_ok(),
            "{guards}"
        );
    }
    // A guard that would scan nothing.
    let problems = |yaml: String| load(&yaml).err().map(|e| e.problems).unwrap_or_default();
    let nothing = problems(document(
        Kind::Agent,
        "guards: [{binding: g, scan: {prompts: false}}]",
    ));
    assert!(
        nothing
            .iter()
            .any(|p| p.contains("spec.guards[0].scan reads neither prompts nor responses")),
        "{nothing:?}"
    );
}

#[test]
fn a_status_written_in_a_document_is_reported_as_not_applied() {
    let yaml = "apiVersion: pai.io/v1\nkind: AccessKey\nmetadata: {name: k}\nspec: {modelProvider: p}\nstatus: {tokensToday: 0}\n";
    let loaded = load(yaml).unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("status") && w.contains("server")),
        "{:?}",
        loaded.warnings
    );
}
