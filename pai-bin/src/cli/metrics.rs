//! `pai get metrics`: today's tokens and cost per provider and per access key.
//!
//! The figures are the call records since 00:00 UTC (`GET /admin/v1/usage`), so they survive a
//! restart of the server, unlike the in-process Prometheus counters at `/metrics`. INPUT is the
//! prompt not read from a cache (cache writes included), CACHED the prompt read from one; COST
//! counts the calls whose model has a price.

use std::collections::BTreeMap;

use pai_core::Usage;
use serde::Serialize;

use super::{CliError, Output};
use crate::api::{usd, UsageReport};
use crate::client::{AdminClient, ClientOpts};
use crate::table::{self, Table};

/// Totals of one provider or one access key.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// The provider's or the key's name.
    pub name: String,
    /// For an access key: the providers its calls went to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// Number of calls.
    pub requests: u64,
    /// Prompt tokens not read from a cache.
    pub input_tokens: u64,
    /// Prompt tokens read from a cache.
    pub cached_input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Cost in pico-USD (exact).
    pub cost_pico_usd: u128,
    /// Cost in USD, to the micro-dollar.
    pub cost_usd: String,
}

impl Line {
    fn add(&mut self, requests: u64, usage: &Usage, cost_pico_usd: u128) {
        self.requests = self.requests.saturating_add(requests);
        self.input_tokens = self
            .input_tokens
            .saturating_add(usage.input.saturating_add(usage.cache_write));
        self.cached_input_tokens = self.cached_input_tokens.saturating_add(usage.cached_input);
        self.output_tokens = self.output_tokens.saturating_add(usage.output);
        self.cost_pico_usd = self.cost_pico_usd.saturating_add(cost_pico_usd);
        self.cost_usd = usd(self.cost_pico_usd);
    }
}

/// Today's metrics, as `-o json` prints them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Unix milliseconds the figures start from (00:00 UTC).
    pub since_ms: u64,
    /// Per provider, by name.
    pub providers: Vec<Line>,
    /// Per access key, by name; calls made without a key count only under their provider.
    pub access_keys: Vec<Line>,
}

impl Metrics {
    /// Fold the per-provider-and-key totals into per-provider and per-key lines.
    pub fn from_report(report: &UsageReport) -> Metrics {
        let mut providers: BTreeMap<&str, Line> = BTreeMap::new();
        let mut keys: BTreeMap<&str, Line> = BTreeMap::new();
        for u in &report.items {
            let line = providers.entry(&u.provider).or_insert_with(|| Line {
                name: u.provider.clone(),
                ..Line::default()
            });
            line.add(u.requests, &u.usage, u.cost_pico_usd);
            if let Some(key) = &u.access_key {
                let line = keys.entry(key).or_insert_with(|| Line {
                    name: key.clone(),
                    ..Line::default()
                });
                line.add(u.requests, &u.usage, u.cost_pico_usd);
                if !u.provider.is_empty() && !line.providers.contains(&u.provider) {
                    line.providers.push(u.provider.clone());
                }
            }
        }
        Metrics {
            since_ms: report.since_ms,
            providers: providers.into_values().collect(),
            access_keys: keys.into_values().collect(),
        }
    }
}

/// Run `pai get metrics`.
pub async fn run(client: &ClientOpts, output: Output) -> Result<(), CliError> {
    let client = AdminClient::new(client)?;
    let report: UsageReport = client.get("/usage").await?;
    let metrics = Metrics::from_report(&report);
    match output {
        Output::Table if metrics.providers.is_empty() => {
            eprintln!("No calls since 00:00 UTC.");
        }
        Output::Table => print!("{}", render(&metrics)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&metrics).map_err(|e| CliError::msg(e.to_string()))?
        ),
        Output::Yaml => print!(
            "{}",
            serde_saphyr::to_string(&metrics).map_err(|e| CliError::msg(e.to_string()))?
        ),
    }
    Ok(())
}

/// Two tables, per provider and per access key, a blank line apart.
pub fn render(metrics: &Metrics) -> String {
    let cells = |l: &Line| {
        vec![
            table::thousands(l.requests),
            table::thousands(l.input_tokens),
            table::thousands(l.cached_input_tokens),
            table::thousands(l.output_tokens),
            table::usd(l.cost_pico_usd),
        ]
    };
    let mut providers = Table::new(&["PROVIDER", "REQUESTS", "INPUT", "CACHED", "OUTPUT", "COST"]);
    for l in &metrics.providers {
        let mut row = vec![l.name.clone()];
        row.extend(cells(l));
        providers.row(row);
    }
    let mut out = providers.render();
    if !metrics.access_keys.is_empty() {
        let mut keys = Table::new(&[
            "ACCESS KEY",
            "PROVIDERS",
            "REQUESTS",
            "INPUT",
            "CACHED",
            "OUTPUT",
            "COST",
        ]);
        for l in &metrics.access_keys {
            let mut row = vec![l.name.clone(), table::list(&l.providers, "-")];
            row.extend(cells(l));
            keys.row(row);
        }
        out.push('\n');
        out.push_str(&keys.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::UsageLine;

    fn line(provider: &str, key: Option<&str>, input: u64, cached: u64, output: u64) -> UsageLine {
        let usage = Usage {
            input,
            cached_input: cached,
            output,
            ..Usage::default()
        };
        // $3 / $0.30 / $15 per million.
        let cost = u128::from(input) * 3_000_000
            + u128::from(cached) * 300_000
            + u128::from(output) * 15_000_000;
        UsageLine {
            provider: provider.to_owned(),
            access_key: key.map(str::to_owned),
            requests: 2,
            usage,
            cost_pico_usd: cost,
            cost_usd: usd(cost),
            last_used_ms: 0,
        }
    }

    #[test]
    fn totals_fold_per_provider_and_per_key() {
        let report = UsageReport {
            since_ms: 0,
            items: vec![
                line("anthropic", None, 10, 0, 5),
                line("anthropic", Some("alice"), 1_000, 200, 300),
                line("openai", Some("alice"), 100, 0, 30),
                line("openai", Some("bob"), 7, 0, 3),
            ],
        };
        let m = Metrics::from_report(&report);
        assert_eq!(m.providers[0].name, "anthropic");
        assert_eq!(m.providers[0].requests, 4);
        assert_eq!(m.providers[0].input_tokens, 1_010);
        assert_eq!(m.access_keys[0].providers, ["anthropic", "openai"]);
        assert_eq!(
            render(&m),
            "PROVIDER    REQUESTS   INPUT   CACHED   OUTPUT   COST\n\
             anthropic   4          1,010   200      305      $0.007665\n\
             openai      4          107     0        33       $0.000816\n\
             \n\
             ACCESS KEY   PROVIDERS          REQUESTS   INPUT   CACHED   OUTPUT   COST\n\
             alice        anthropic,openai   4          1,100   200      330      $0.008310\n\
             bob          openai             2          7       0        3        $0.000066\n"
        );
    }
}
