//! `pai get budgets`: every daily budget with a limit, and what the gateway's ledger has
//! settled on it since 00:00 UTC.

use super::{CliError, Output};
use crate::api::{Budget, BudgetReport, BudgetUnit};
use crate::client::{AdminClient, ClientOpts};
use crate::table::{self, Table};

/// Run `pai get budgets`.
pub async fn run(client: &ClientOpts, output: Output) -> Result<(), CliError> {
    let client = AdminClient::new(client)?;
    let report: BudgetReport = client.get("/budgets").await?;
    match output {
        Output::Table if report.items.is_empty() => {
            eprintln!("No daily budgets are set.");
        }
        Output::Table => print!("{}", render(&report.items)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| CliError::msg(e.to_string()))?
        ),
        Output::Yaml => print!(
            "{}",
            serde_saphyr::to_string(&report).map_err(|e| CliError::msg(e.to_string()))?
        ),
    }
    Ok(())
}

/// An amount of a budget's unit: `45,230` tokens or `$0.012300`.
pub fn amount(unit: BudgetUnit, n: &serde_json::Number) -> String {
    match unit {
        BudgetUnit::Tokens => n.as_u64().map(table::thousands).unwrap_or_default(),
        BudgetUnit::Usd => format!("${:.6}", n.as_f64().unwrap_or(0.0)),
    }
}

/// A limit in dollars, as people write them: `$5.00`, `$0.001`.
pub fn cap(unit: BudgetUnit, n: &serde_json::Number) -> String {
    match unit {
        BudgetUnit::Tokens => amount(unit, n),
        BudgetUnit::Usd => table::dollar_cap(n.as_f64().unwrap_or(0.0)),
    }
}

/// The budgets table.
pub fn render(items: &[Budget]) -> String {
    let mut t = Table::new(&["BUDGET", "SPENT TODAY", "LIMIT", "USED", "RESETS IN"]);
    for b in items {
        let used = match (b.spent.as_f64(), b.limit.as_f64()) {
            (Some(spent), Some(limit)) if limit > 0.0 => format!("{:.0}%", 100.0 * spent / limit),
            _ => String::new(),
        };
        t.row(vec![
            b.budget.clone(),
            amount(b.unit, &b.spent),
            cap(b.unit, &b.limit),
            used,
            table::hours_minutes(b.resets_in_seconds),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_in_their_own_units() {
        let report: BudgetReport = serde_json::from_value(serde_json::json!({"items": [
            {"scope": "access-key", "name": "alice", "budget": "AccessKey \"alice\" limits.maxTokensPerDay",
             "unit": "tokens", "spent": 45230, "limit": 1000000, "resetsInSeconds": 18_720},
            {"scope": "agent-cost", "name": "bot", "budget": "Agent \"bot\" rateLimits.maxCostPerDayUSD",
             "unit": "usd", "spent": 0.0123, "limit": 5.0, "resetsInSeconds": 18_720},
            {"scope": "agent-cost", "name": "tiny", "budget": "Agent \"tiny\" rateLimits.maxCostPerDayUSD",
             "unit": "usd", "spent": 0.000365, "limit": 0.001, "resetsInSeconds": 18_720},
        ]}))
        .unwrap();
        assert_eq!(
            render(&report.items),
            "BUDGET                                     SPENT TODAY   LIMIT       USED   RESETS IN\n\
             AccessKey \"alice\" limits.maxTokensPerDay   45,230        1,000,000   5%     5h 12m\n\
             Agent \"bot\" rateLimits.maxCostPerDayUSD    $0.012300     $5.00       0%     5h 12m\n\
             Agent \"tiny\" rateLimits.maxCostPerDayUSD   $0.000365     $0.001      36%    5h 12m\n"
        );
    }
}
