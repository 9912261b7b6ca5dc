//! `GET /metrics`: the gateway's series ([`pai_tower::metrics`]) and, read at scrape time, a
//! gauge pair per daily budget:
//!
//! ```text
//! pai_budget_spent{scope="access-key",name="alice",unit="tokens"} 1234
//! pai_budget_limit{scope="access-key",name="alice",unit="tokens"} 100000
//! ```
//!
//! `scope` is the ledger scope (`provider`, `provider-external`, `access-key`,
//! `model-binding`, `agent-cost`), `name` the resource's, `unit` `tokens` or `usd`; the values
//! are what `GET /admin/v1/budgets` shows. The series follow the configuration (one per
//! budget with a limit, at most [`MAX_BUDGET_SERIES`]), never the requests. The read is
//! bounded by [`BUDGET_READ_TIMEOUT`]; when the store or ledger cannot answer in time, the
//! budget gauges are left out of that scrape (and the failure logged), the rest is served.
//!
//! Outside the admin token: Prometheus scrapers carry none, and no series holds key material
//! (workloads and budgets are named by resource names).

use std::fmt::Write;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::{budgets, AdminState};
use crate::api::BudgetUnit;

/// The most budgets shown as series; past it, the first ones in the order of
/// `GET /admin/v1/budgets`.
pub const MAX_BUDGET_SERIES: usize = 1_000;

/// How long a scrape waits for the budgets.
pub const BUDGET_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/metrics` reads: the admin state (budgets) and the gateway's metrics.
#[derive(Clone)]
pub struct Scrape {
    state: AdminState,
    metrics: pai_tower::metrics::Metrics,
}

impl Scrape {
    /// Serve `metrics`, with the budgets of `state`.
    pub fn new(state: AdminState, metrics: pai_tower::metrics::Metrics) -> Scrape {
        Scrape { state, metrics }
    }
}

/// `GET /metrics`, Prometheus text format.
pub async fn handler(State(scrape): State<Scrape>) -> impl IntoResponse {
    let mut text = scrape.metrics.render();
    let read = budgets::collect(&scrape.state, MAX_BUDGET_SERIES);
    match tokio::time::timeout(BUDGET_READ_TIMEOUT, read).await {
        Ok(Ok(items)) if !items.is_empty() => {
            for (metric, pick) in [("pai_budget_spent", true), ("pai_budget_limit", false)] {
                let _ = writeln!(text, "# TYPE {metric} gauge");
                for b in &items {
                    let unit = match b.unit {
                        BudgetUnit::Tokens => "tokens",
                        BudgetUnit::Usd => "usd",
                    };
                    let value = if pick { &b.spent } else { &b.limit };
                    let _ = writeln!(
                        text,
                        "{metric}{{scope=\"{}\",name=\"{}\",unit=\"{unit}\"}} {value}",
                        escape(&b.scope),
                        escape(&b.name),
                    );
                }
            }
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = ?e, "/metrics: budgets left out: cannot read them"),
        Err(_) => tracing::warn!(
            "/metrics: budgets left out: no answer within {}s",
            BUDGET_READ_TIMEOUT.as_secs()
        ),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// A label value in the exposition format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn label_values_cannot_break_a_line() {
        assert_eq!(escape("a\"b\\c\nd\re"), "a\\\"b\\\\c\\nd\\re");
    }
}
