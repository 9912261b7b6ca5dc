//! `pai status AGENT`: what an agent has used today, model by model, against its budgets.
//!
//! ```text
//! agent/support-bot — today since 00:00 UTC, resets in 5h 12m
//! openai/gpt-4o-mini — 1,234 tokens today
//! gemini-flash (gemini / gemini-2.0-flash) — 45,230 / 1,000,000 tokens today
//! cost — $0.012300 / $5.00 today
//! ```
//!
//! Where each figure comes from, and why:
//! - a ModelBinding with `maxTokensPerDay`: the `model-binding` budget of the gateway's ledger,
//!   the very counter the limit is enforced on;
//! - a binding without a limit: the call records whose workload is the agent and that went
//!   through that binding;
//! - a plain `provider/model` entry: the call records whose workload is the agent, on that
//!   provider and model, through no binding (a record names the binding it went through, so
//!   calls through a binding to the same provider and model are not counted twice). The
//!   provider's own budget would not do: it counts every caller of the provider. When the
//!   provider has a daily cap, its budget follows in brackets, since it is what can push the
//!   agent onto its next model;
//! - cost: with `rateLimits.maxCostPerDayUSD`, the `agent-cost` budget, which is what the cap is
//!   compared with; without one, the priced call records' sum.

use std::collections::HashMap;

use clap::Args;
use pai_core::{Kind, ModelRef, Resource};

use super::budgets::{amount, cap};
use super::get::path_segment;
use super::CliError;
use crate::api::{Budget, BudgetReport, Item, WorkloadUsage, WorkloadUsageReport};
use crate::client::{AdminClient, ClientError, ClientOpts};
use crate::table;

/// Options of `pai status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The Agent's name.
    agent: String,
    #[command(flatten)]
    client: ClientOpts,
}

/// What `pai status` reads from the server.
pub struct Status {
    /// The agent, as `GET /admin/v1/agents/NAME` shows it.
    pub agent: Item,
    /// Its ModelBindings by name, as far as they exist.
    pub bindings: HashMap<String, Item>,
    /// Every budget with a limit.
    pub budgets: Vec<Budget>,
    /// Today's totals of every workload.
    pub usage: Vec<WorkloadUsage>,
}

/// Run `pai status AGENT`.
pub async fn run(args: StatusArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.client)?;
    let agent: Item = client
        .get(&format!(
            "/{}/{}",
            Kind::Agent.plural(),
            path_segment(&args.agent)
        ))
        .await?;
    let Resource::Agent(a) = &agent.resource else {
        return Err(CliError::msg(format!("{:?} is not an Agent", args.agent)));
    };
    let mut bindings = HashMap::new();
    for name in &a.spec.model_bindings {
        let path = format!("/{}/{}", Kind::ModelBinding.plural(), path_segment(name));
        match client.get::<Item>(&path).await {
            Ok(item) => {
                bindings.insert(name.clone(), item);
            }
            Err(ClientError::Api { status, .. }) if status == http::StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e.into()),
        }
    }
    let budgets: BudgetReport = client.get("/budgets").await?;
    let usage: WorkloadUsageReport = client.get("/usage/workloads").await?;
    let status = Status {
        agent,
        bindings,
        budgets: budgets.items,
        usage: usage.items,
    };
    print!("{}", render(&status, now_resets_in()));
    Ok(())
}

/// Seconds until 00:00 UTC.
fn now_resets_in() -> u64 {
    86_400 - (super::now_ms() / 1_000) % 86_400
}

/// The status lines, one per model, then the cost.
pub fn render(status: &Status, resets_in_secs: u64) -> String {
    let Resource::Agent(agent) = &status.agent.resource else {
        return String::new();
    };
    let name = &agent.metadata.name;
    let budget = |scope: &str, of: &str| {
        status
            .budgets
            .iter()
            .find(|b| b.scope == scope && b.name == of)
    };
    // The agent's records on one provider and model through no binding.
    let used = |provider: &str, model: &str| -> u64 {
        status
            .usage
            .iter()
            .filter(|u| {
                &u.workload == name
                    && u.provider == provider
                    && u.model == model
                    && u.binding.is_none()
            })
            .map(|u| u.usage.total_tokens())
            .sum()
    };
    // The agent's records through one binding.
    let used_through = |binding: &str| -> u64 {
        status
            .usage
            .iter()
            .filter(|u| &u.workload == name && u.binding.as_deref() == Some(binding))
            .map(|u| u.usage.total_tokens())
            .sum()
    };
    let provider_cap = |provider: &str| {
        budget("provider", provider)
            .map(|b| {
                format!(
                    " (ModelProvider {provider}: {} / {} tokens today)",
                    amount(b.unit, &b.spent),
                    cap(b.unit, &b.limit)
                )
            })
            .unwrap_or_default()
    };

    let mut out = format!(
        "agent/{name} — today since 00:00 UTC, resets in {}\n",
        table::hours_minutes(resets_in_secs)
    );
    for model in &agent.spec.models {
        match model.parse::<ModelRef>() {
            Ok(r) => out.push_str(&format!(
                "{model} — {} tokens today{}\n",
                table::thousands(used(&r.provider, &r.model)),
                provider_cap(&r.provider)
            )),
            Err(_) => out.push_str(&format!("{model} — not a provider/model reference\n")),
        }
    }
    for binding in &agent.spec.model_bindings {
        let Some(Resource::ModelBinding(b)) = status.bindings.get(binding).map(|i| &i.resource)
        else {
            out.push_str(&format!("{binding} — ModelBinding not found\n"));
            continue;
        };
        let model = b.model();
        let provider = &b.spec.provider;
        let tokens = match budget("model-binding", binding) {
            Some(bb) => format!(
                "{} / {}",
                amount(bb.unit, &bb.spent),
                cap(bb.unit, &bb.limit)
            ),
            None => table::thousands(used_through(binding)),
        };
        out.push_str(&format!(
            "{binding} ({provider} / {model}) — {tokens} tokens today{}\n",
            provider_cap(provider)
        ));
    }

    let mine: Vec<&WorkloadUsage> = status
        .usage
        .iter()
        .filter(|u| &u.workload == name)
        .collect();
    let unpriced: u64 = mine.iter().map(|u| u.unpriced_requests).sum();
    let cost = match budget("agent-cost", name) {
        Some(b) => format!(
            "cost — {} / {} today",
            amount(b.unit, &b.spent),
            cap(b.unit, &b.limit)
        ),
        None => format!(
            "cost — {} today (no daily cap)",
            table::usd(mine.iter().map(|u| u.cost_pico_usd).sum())
        ),
    };
    out.push_str(&cost);
    if unpriced > 0 {
        out.push_str(&format!(
            "; {unpriced} call(s) on models without a price are not in it"
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cost_cap_below_a_cent_shows_its_digits() {
        let agent: Item = serde_json::from_value(serde_json::json!({
            "kind": "Agent", "apiVersion": "pai.io/v1", "metadata": {"name": "tiny"},
            "spec": {"models": ["openai/gpt-4o-mini"], "rateLimits": {"maxCostPerDayUSD": 0.001}},
            "createdAt": 0, "updatedAt": 0, "generation": 1
        }))
        .unwrap();
        let budgets: BudgetReport = serde_json::from_value(serde_json::json!({"items": [
            {"scope": "agent-cost", "name": "tiny", "budget": "", "unit": "usd",
             "spent": 0.000365, "limit": 0.001, "resetsInSeconds": 60},
        ]}))
        .unwrap();
        let status = Status {
            agent,
            bindings: HashMap::new(),
            budgets: budgets.items,
            usage: Vec::new(),
        };
        assert!(
            render(&status, 60).ends_with("cost — $0.000365 / $0.001 today\n"),
            "{}",
            render(&status, 60)
        );
    }

    #[test]
    fn each_model_shows_its_figure_and_whence_it_comes() {
        let item = |v: serde_json::Value| -> Item { serde_json::from_value(v).unwrap() };
        let agent = item(serde_json::json!({
            "kind": "Agent", "apiVersion": "pai.io/v1", "metadata": {"name": "bot"},
            "spec": {"models": ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-6"],
                     "modelBindings": ["gemini-flash", "mini", "gone"],
                     "rateLimits": {"maxCostPerDayUSD": 5}},
            "createdAt": 0, "updatedAt": 0, "generation": 1
        }));
        let binding = item(serde_json::json!({
            "kind": "ModelBinding", "apiVersion": "pai.io/v1", "metadata": {"name": "gemini-flash"},
            "spec": {"provider": "gemini", "model": "gemini-2.0-flash", "maxTokensPerDay": 1000000},
            "createdAt": 0, "updatedAt": 0, "generation": 1
        }));
        let mini = item(serde_json::json!({
            "kind": "ModelBinding", "apiVersion": "pai.io/v1", "metadata": {"name": "mini"},
            "spec": {"provider": "openai", "model": "gpt-4o-mini"},
            "createdAt": 0, "updatedAt": 0, "generation": 1
        }));
        let budgets: BudgetReport = serde_json::from_value(serde_json::json!({"items": [
            {"scope": "provider", "name": "anthropic", "budget": "", "unit": "tokens",
             "spent": 1500, "limit": 1500, "resetsInSeconds": 60},
            {"scope": "model-binding", "name": "gemini-flash", "budget": "", "unit": "tokens",
             "spent": 45230, "limit": 1000000, "resetsInSeconds": 60},
            {"scope": "agent-cost", "name": "bot", "budget": "", "unit": "usd",
             "spent": 0.0123, "limit": 5.0, "resetsInSeconds": 60},
        ]}))
        .unwrap();
        let usage: WorkloadUsageReport = serde_json::from_value(serde_json::json!({"sinceMs": 0, "items": [
            {"workload": "bot", "provider": "openai", "model": "gpt-4o-mini", "requests": 3,
             "usage": {"input": 1000, "cached_input": 200, "cache_write": 0, "output": 34, "reasoning": 0},
             "costPicoUsd": 1, "costUsd": "0.000000", "unpricedRequests": 0, "lastUsedMs": 0},
            {"workload": "bot", "provider": "openai", "model": "gpt-4o-mini", "binding": "mini",
             "requests": 1,
             "usage": {"input": 900, "cached_input": 0, "cache_write": 0, "output": 9, "reasoning": 0},
             "costPicoUsd": 1, "costUsd": "0.000000", "unpricedRequests": 0, "lastUsedMs": 0},
            {"workload": "bot", "provider": "gemini", "model": "gemini-2.0-flash", "binding": "gemini-flash",
             "requests": 1,
             "usage": {"input": 7, "cached_input": 0, "cache_write": 0, "output": 0, "reasoning": 0},
             "costPicoUsd": 1, "costUsd": "0.000000", "unpricedRequests": 0, "lastUsedMs": 0},
            {"workload": "other", "provider": "openai", "model": "gpt-4o-mini", "requests": 1,
             "usage": {"input": 5, "cached_input": 0, "cache_write": 0, "output": 5, "reasoning": 0},
             "costPicoUsd": 1, "costUsd": "0.000000", "unpricedRequests": 0, "lastUsedMs": 0},
        ]}))
        .unwrap();
        let status = Status {
            agent,
            bindings: HashMap::from([
                ("gemini-flash".to_owned(), binding),
                ("mini".to_owned(), mini),
            ]),
            budgets: budgets.items,
            usage: usage.items,
        };
        assert_eq!(
            render(&status, 5 * 3_600 + 12 * 60),
            "agent/bot — today since 00:00 UTC, resets in 5h 12m\n\
             openai/gpt-4o-mini — 1,234 tokens today\n\
             anthropic/claude-sonnet-4-6 — 0 tokens today (ModelProvider anthropic: 1,500 / 1,500 tokens today)\n\
             gemini-flash (gemini / gemini-2.0-flash) — 45,230 / 1,000,000 tokens today\n\
             mini (openai / gpt-4o-mini) — 909 tokens today\n\
             gone — ModelBinding not found\n\
             cost — $0.012300 / $5.00 today\n"
        );
    }
}
