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
    /// Not enforced yet: refused at apply time, the error containing this text.
    Refused(&'static str),
}

use Fate::*;

const GUARDS: &str = "guards are not available yet";

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
    (Kind::ModelProvider, "spec.guards", Refused(GUARDS)),
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
    (Kind::Agent, "spec.guards", Refused(GUARDS)),
    (Kind::GuardBinding, "spec", Refused(GUARDS)),
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
        Kind::GuardBinding => "threshold: 0.8",
        _ => unreachable!("only kinds with refused fields"),
    };
    let spec = if extra.is_empty() {
        spec.to_owned()
    } else {
        format!("{spec}, {extra}")
    };
    format!("apiVersion: pai.io/v1\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{{spec}}}\n")
}

#[test]
fn fields_not_enforced_yet_are_refused_at_apply_time() {
    for (kind, path, fate) in FIELDS {
        let Refused(why) = fate else { continue };
        let yaml = match (kind, *path) {
            (Kind::GuardBinding, "spec") => document(*kind, ""),
            (_, "spec.guards") => document(*kind, "guards: [prompt-guard-default]"),
            other => panic!("no sample document for {other:?}"),
        };
        let problems = load(&yaml).err().map(|e| e.problems).unwrap_or_default();
        assert!(
            problems.iter().any(|p| p.contains(why) && p.contains(path)),
            "{kind} {path}: {problems:?}"
        );
    }
    // Without the refused field, the same documents load.
    for kind in [Kind::ModelProvider, Kind::Agent] {
        assert!(load(&document(kind, "")).is_ok(), "{kind}");
    }
    // An empty guard list names no guard: nothing to refuse.
    assert!(load(&document(Kind::ModelProvider, "guards: []")).is_ok());
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
