//! `pai usage`: tokens, requests and cost per provider and access key.

use clap::Args;

use super::{now_ms, CliError, Output};
use crate::api::UsageReport;
use crate::client::{AdminClient, ClientOpts};
use crate::table::{self, Table};

/// Options of `pai usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Count calls started at or after this Unix time in milliseconds (default: 00:00 UTC).
    #[arg(long, value_name = "MS")]
    since_ms: Option<u64>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(flatten)]
    client: ClientOpts,
}

/// Run `pai usage`.
pub async fn run(args: UsageArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.client)?;
    let path = match args.since_ms {
        Some(ms) => format!("/usage?since_ms={ms}"),
        None => "/usage".to_owned(),
    };
    let report: UsageReport = client.get(&path).await?;
    match args.output {
        Output::Table if report.items.is_empty() => {
            eprintln!("{}", nothing_since(report.since_ms, now_ms()));
        }
        Output::Table => print!("{}", render(&report, now_ms())),
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

/// What to say when no call was recorded in the period.
fn nothing_since(since_ms: u64, now_ms: u64) -> String {
    if since_ms == 0 {
        "No calls recorded.".to_owned()
    } else if since_ms == now_ms - now_ms % 86_400_000 {
        "No calls since 00:00 UTC.".to_owned()
    } else {
        format!(
            "No calls in the last {}.",
            table::age(now_ms.saturating_sub(since_ms) / 1_000)
        )
    }
}

/// The usage table, with last use measured from `now_ms`.
pub fn render(report: &UsageReport, now_ms: u64) -> String {
    let mut t = Table::new(&[
        "PROVIDER",
        "ACCESS KEY",
        "REQUESTS",
        "INPUT",
        "CACHED",
        "OUTPUT",
        "TOTAL",
        "COST",
        "LAST USED",
    ]);
    for u in &report.items {
        t.row(vec![
            u.provider.clone(),
            u.access_key.clone().unwrap_or_default(),
            table::thousands(u.requests),
            table::thousands(u.usage.input.saturating_add(u.usage.cache_write)),
            table::thousands(u.usage.cached_input),
            table::thousands(u.usage.output),
            table::thousands(u.usage.total_tokens()),
            table::dollars(u.cost_pico_usd),
            table::ago(Some(u.last_used_ms), now_ms),
        ]);
    }
    t.render()
}
