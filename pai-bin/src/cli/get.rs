//! `pai get KIND [NAME]`: tables of resources, or their JSON or YAML; and `pai get metrics` and
//! `pai get budgets`, which are not resources but read like them.
//!
//! What is shown comes redacted from the server: no secret value, no key, no key hash.

use clap::Args;
use pai_core::{Kind, Resource};

use super::{now_ms, parse_kind, CliError, Output};
use crate::api::{BindingCalls, Item, ItemList};
use crate::client::{AdminClient, ClientOpts};
use crate::table::{self, Table};

/// Options of `pai get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to list: model-providers, models, access-keys, secrets, agents, guard-bindings
    /// (singular or plural, any case); or metrics (today's tokens and cost per provider and
    /// access key) or budgets (daily limits and today's spend).
    kind: String,
    /// Show only this one.
    name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(flatten)]
    client: ClientOpts,
}

/// Run `pai get`.
pub async fn run(args: GetArgs) -> Result<(), CliError> {
    let what = args.kind.to_ascii_lowercase();
    if matches!(what.as_str(), "metrics" | "metric" | "budgets" | "budget") {
        if let Some(name) = &args.name {
            return Err(CliError::msg(format!(
                "`pai get {what}` takes no name (got {name:?})"
            )));
        }
        return if what.starts_with("metric") {
            super::metrics::run(&args.client, args.output).await
        } else {
            super::budgets::run(&args.client, args.output).await
        };
    }
    let kind = parse_kind(&args.kind)?;
    let client = AdminClient::new(&args.client)?;
    let items = match &args.name {
        Some(name) => vec![
            client
                .get::<Item>(&format!("/{}/{}", kind.plural(), path_segment(name)))
                .await?,
        ],
        None => {
            client
                .get::<ItemList>(&format!("/{}", kind.plural()))
                .await?
                .items
        }
    };
    match args.output {
        Output::Table => {
            if items.is_empty() {
                eprintln!("No {} found.", kind.plural());
            } else {
                print!("{}", render(kind, &items, now_ms()));
            }
        }
        Output::Json => {
            let text = match (&args.name, items.as_slice()) {
                (Some(_), [one]) => serde_json::to_string_pretty(one),
                _ => serde_json::to_string_pretty(&items),
            }
            .map_err(|e| CliError::msg(e.to_string()))?;
            println!("{text}");
        }
        Output::Yaml => {
            let docs = items
                .iter()
                .map(serde_saphyr::to_string)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError::msg(e.to_string()))?;
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(())
}

/// Names are lower-case letters, digits, `-`, `_`, `.`; anything else is escaped so a strange
/// name cannot change the path.
pub(super) fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The table for `kind`, with ages measured from `now_ms`.
pub fn render(kind: Kind, items: &[Item], now_ms: u64) -> String {
    let age = |item: &Item| table::age((now_ms / 1_000).saturating_sub(item.created_at));
    let mut t = match kind {
        Kind::ModelProvider => Table::new(&[
            "NAME",
            "PROVIDER",
            "ENDPOINT",
            "MAX/DAY",
            "LAST USED",
            "AGE",
        ]),
        Kind::AccessKey => Table::new(&[
            "NAME",
            "PROVIDER",
            "MODELS",
            "CIDRS",
            "MAX/DAY",
            "TOKENS TODAY",
            "LAST USED",
            "AGE",
        ]),
        Kind::Secret => Table::new(&["NAME", "KEYS", "AGE"]),
        Kind::ModelBinding => {
            Table::new(&["NAME", "PROVIDER", "MODEL", "MAX/DAY", "MAX/REQUEST", "AGE"])
        }
        Kind::Agent => Table::new(&[
            "NAME",
            "MODELS",
            "BINDINGS",
            "MAX COST/DAY",
            "COST TODAY",
            "AGE",
        ]),
        Kind::GuardBinding => Table::new(&["NAME", "AGE"]),
    };
    for item in items {
        let name = item.resource.name().to_owned();
        let row = match &item.resource {
            Resource::ModelProvider(p) => vec![
                name,
                p.spec.provider.to_string(),
                p.endpoint().unwrap_or_default(),
                table::limit(p.spec.max_tokens_per_day),
                table::ago(item.last_used_ms, now_ms),
                age(item),
            ],
            Resource::AccessKey(k) => vec![
                name,
                match (&k.spec.model_provider, &k.spec.agent) {
                    (Some(p), _) => p.clone(),
                    (None, Some(a)) => format!("agent:{a}"),
                    (None, None) => String::new(),
                },
                table::list(&k.spec.restrictions.allowed_models, "*"),
                table::list(&k.spec.restrictions.allowed_cidrs, "*"),
                table::limit(k.spec.limits.max_tokens_per_day),
                table::thousands(item.tokens_today.unwrap_or(k.status.tokens_today)),
                table::ago(item.last_used_ms, now_ms),
                age(item),
            ],
            Resource::Secret(s) => vec![
                name,
                s.data.keys().cloned().collect::<Vec<_>>().join(","),
                age(item),
            ],
            Resource::ModelBinding(b) => vec![
                name.clone(),
                calls(&b.spec.provider, item.calls.as_ref()),
                b.model().to_owned(),
                table::limit(b.spec.max_tokens_per_day),
                table::limit(b.spec.max_tokens_per_request),
                age(item),
            ],
            Resource::Agent(a) => vec![
                name,
                table::list(&a.spec.models, "-"),
                table::list(&a.spec.model_bindings, "-"),
                a.spec
                    .rate_limits
                    .max_cost_per_day_usd
                    .map(table::dollar_cap)
                    .unwrap_or_default(),
                item.cost_today_usd
                    .as_ref()
                    .map(|c| format!("${c}"))
                    .unwrap_or_default(),
                age(item),
            ],
            Resource::GuardBinding(_) => vec![name, age(item)],
        };
        t.row(row);
    }
    t.render()
}

/// A binding's `spec.provider` and what it is: `gemini (provider type)`, `openai
/// (ModelProvider)`, or `nowhere (calls nothing)`.
fn calls(provider: &str, calls: Option<&BindingCalls>) -> String {
    match calls {
        Some(BindingCalls::ModelProvider { .. }) => format!("{provider} (ModelProvider)"),
        Some(BindingCalls::ProviderType { .. }) => format!("{provider} (provider type)"),
        Some(BindingCalls::Nothing { .. }) => format!("{provider} (calls nothing)"),
        None => provider.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(json: serde_json::Value) -> Item {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn model_providers_show_limits_last_use_and_age() {
        let now = 1_700_000_000_000;
        let items = [
            item(serde_json::json!({
                "kind": "ModelProvider", "apiVersion": "pai.io/v1",
                "metadata": {"name": "openai"},
                "spec": {"provider": "openai", "apiKeySecretRef": {"name": "k", "key": "api-key"},
                         "maxTokensPerDay": 1000000},
                "createdAt": now / 1000 - 5, "updatedAt": now / 1000, "generation": 1,
                "lastUsedMs": now - 180_000, "tokensToday": 12
            })),
            item(serde_json::json!({
                "kind": "ModelProvider", "apiVersion": "pai.io/v1",
                "metadata": {"name": "local"},
                "spec": {"provider": "vllm", "endpoint": "http://127.0.0.1:8000/v1/"},
                "createdAt": now / 1000 - 2 * 86_400, "updatedAt": now / 1000, "generation": 1
            })),
        ];
        assert_eq!(
            render(Kind::ModelProvider, &items, now),
            "NAME     PROVIDER   ENDPOINT                    MAX/DAY     LAST USED   AGE\n\
             openai   openai     https://api.openai.com/v1   1,000,000   3m ago      5s\n\
             local    vllm       http://127.0.0.1:8000/v1    -           never       2d\n"
        );
    }

    #[test]
    fn access_keys_show_restrictions_and_todays_tokens_never_a_key() {
        let now = 1_700_000_000_000;
        let items = [item(serde_json::json!({
            "kind": "AccessKey", "apiVersion": "pai.io/v1",
            "metadata": {"name": "alice"},
            "spec": {"modelProvider": "openai",
                     "restrictions": {"allowedModels": ["gpt-4o-mini", "gpt-4o"], "allowedCIDRs": ["10.0.0.0/8"]},
                     "limits": {"maxTokensPerDay": 50000}},
            "status": {"tokensToday": 1234},
            "createdAt": now / 1000 - 720, "updatedAt": now / 1000, "generation": 1,
            "tokensToday": 1234, "lastUsedMs": now - 65_000
        }))];
        assert_eq!(
            render(Kind::AccessKey, &items, now),
            "NAME    PROVIDER   MODELS               CIDRS        MAX/DAY   TOKENS TODAY   LAST USED   AGE\n\
             alice   openai     gpt-4o-mini,gpt-4o   10.0.0.0/8   50,000    1,234          1m ago      12m\n"
        );
    }

    #[test]
    fn secrets_show_key_names_only() {
        let items = [item(serde_json::json!({
            "kind": "Secret", "apiVersion": "pai.io/v1",
            "metadata": {"name": "openai-api-key"},
            "data": {"api-key": "***", "org": "***"},
            "createdAt": 0, "updatedAt": 0, "generation": 1
        }))];
        let text = render(Kind::Secret, &items, 3_600_000);
        assert_eq!(
            text,
            "NAME             KEYS          AGE\nopenai-api-key   api-key,org   1h\n"
        );
    }

    #[test]
    fn agents_show_their_cap_and_todays_cost() {
        let items = [item(serde_json::json!({
            "kind": "Agent", "apiVersion": "pai.io/v1",
            "metadata": {"name": "support-bot"},
            "spec": {"models": ["local-anthropic/claude-sonnet-4-6", "local-openai/gpt-4o-mini"],
                     "rateLimits": {"maxCostPerDayUSD": 5}},
            "createdAt": 0, "updatedAt": 0, "generation": 1,
            "tokensToday": 1234, "costTodayUsd": "0.012300"
        }))];
        assert_eq!(
            render(Kind::Agent, &items, 60_000),
            "NAME          MODELS                                                       BINDINGS   MAX COST/DAY   COST TODAY   AGE\n\
             support-bot   local-anthropic/claude-sonnet-4-6,local-openai/gpt-4o-mini   -          $5.00          $0.012300    1m\n"
        );
    }

    #[test]
    fn model_bindings_say_whether_they_call_a_provider_type_or_a_model_provider() {
        let binding = |name: &str, spec: serde_json::Value, calls: serde_json::Value| {
            item(serde_json::json!({
                "kind": "ModelBinding", "apiVersion": "pai.io/v1", "metadata": {"name": name},
                "spec": spec, "createdAt": 0, "updatedAt": 0, "generation": 1, "calls": calls
            }))
        };
        let items = [
            binding(
                "gemini-flash",
                serde_json::json!({"provider": "gemini", "model": "gemini-2.0-flash",
                    "maxTokensPerDay": 1000000, "maxTokensPerRequest": 32000,
                    "apiKeySecretRef": {"name": "gemini-key", "key": "api-key"}}),
                serde_json::json!({"via": "provider-type", "provider": "gemini"}),
            ),
            binding(
                "fast",
                serde_json::json!({"provider": "openai-prod"}),
                serde_json::json!({"via": "model-provider", "name": "openai-prod"}),
            ),
            binding(
                "lost",
                serde_json::json!({"provider": "gone"}),
                serde_json::json!({"via": "nothing", "reason": "…"}),
            ),
        ];
        assert_eq!(
            render(Kind::ModelBinding, &items, 60_000),
            "NAME           PROVIDER                      MODEL              MAX/DAY     MAX/REQUEST   AGE\n\
             gemini-flash   gemini (provider type)        gemini-2.0-flash   1,000,000   32,000        1m\n\
             fast           openai-prod (ModelProvider)   fast               -           -             1m\n\
             lost           gone (calls nothing)          lost               -           -             1m\n"
        );
    }

    #[test]
    fn a_dollar_cap_below_a_cent_shows_its_digits() {
        let items = [item(serde_json::json!({
            "kind": "Agent", "apiVersion": "pai.io/v1", "metadata": {"name": "tiny"},
            "spec": {"models": ["openai/gpt-4o-mini"], "rateLimits": {"maxCostPerDayUSD": 0.001}},
            "createdAt": 0, "updatedAt": 0, "generation": 1, "costTodayUsd": "0.000365"
        }))];
        assert_eq!(
            render(Kind::Agent, &items, 0),
            "NAME   MODELS               BINDINGS   MAX COST/DAY   COST TODAY   AGE\n\
             tiny   openai/gpt-4o-mini   -          $0.001         $0.000365    0s\n"
        );
    }

    #[test]
    fn odd_names_cannot_escape_their_path_segment() {
        assert_eq!(path_segment("openai"), "openai");
        assert_eq!(path_segment("../x y"), "..%2Fx%20y");
    }
}
