//! `GET /readyz`: whether this replica should be sent traffic. Outside the admin token, like
//! `/metrics` and the listener's own `/healthz` (process alive), because probes and load
//! balancers carry no token.
//!
//! Ready means all three of:
//! - **store**: the store answers a real query (one resource looked up by name);
//! - **ledger**: the budget ledger answers a real read (one scope's spend today);
//! - **configuration**: the gateway has loaded its configuration snapshot and has caught up
//!   with the store's last revision (reloading it if its watch lags).
//!
//! Each check is bounded by [`CHECK_TIMEOUT`], and the three run at once, so an answer takes at
//! most that long. Not ready is 503 with a small JSON body naming the checks that failed;
//! the body never holds an error's text (a driver's message may repeat a host or a URL), which
//! goes to the log instead. A result is reused for [`REUSE`], so a flood of probes on this
//! unauthenticated route costs the store at most one query per check per interval.
//!
//! A replica whose PostgreSQL store is down keeps answering calls from its last snapshot, but
//! is reported not ready: with every replica sharing the store, an orchestrator then sees the
//! outage; the chart's readiness probe tolerates a few failures before it acts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pai_core::{Kind, ScopeKey};
use serde::Serialize;

use super::AdminState;

/// How long one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an answer is reused before the checks run again.
const REUSE: Duration = Duration::from_secs(1);

/// The name looked up in the store and the ledger: a real query, whatever it finds.
const PROBE_NAME: &str = "pai-readiness-probe";

/// The `/readyz` answer.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Whether every check passed.
    pub ready: bool,
    /// The checks that failed, by name (`store`, `ledger`, `configuration`).
    pub not_ready: Vec<&'static str>,
    /// Every check and its outcome: `ok`, `error` or `no answer within 2s`.
    pub checks: BTreeMap<&'static str, String>,
}

/// What `/readyz` needs: the admin state (store, ledger, gateway) and the last answer.
#[derive(Clone)]
pub struct Probes {
    state: AdminState,
    last: Arc<Mutex<Option<(Instant, Readiness)>>>,
}

impl Probes {
    /// Probes of the store, ledger and gateway `state` holds.
    pub fn new(state: AdminState) -> Probes {
        Probes {
            state,
            last: Arc::default(),
        }
    }

    /// Run the checks, or reuse an answer younger than [`REUSE`].
    pub async fn readiness(&self) -> Readiness {
        if let Ok(last) = self.last.lock() {
            if let Some((at, answer)) = last.as_ref() {
                if at.elapsed() < REUSE {
                    return answer.clone();
                }
            }
        }
        let answer = self.check().await;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), answer.clone()));
        }
        answer
    }

    async fn check(&self) -> Readiness {
        let state = &self.state;
        let store = bounded("store", async {
            state
                .store
                .get(Kind::ModelProvider, PROBE_NAME)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        });
        let ledger = bounded("ledger", async {
            let key = ScopeKey {
                kind: "provider",
                name: PROBE_NAME.to_owned(),
            };
            state
                .ledger
                .spent_today(&key)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        });
        let configuration = bounded("configuration", async {
            match &state.gateway {
                Some(gateway) => gateway.caught_up().await.map_err(|e| e.to_string()),
                // An admin API without a gateway in this process has no snapshot to load.
                None => Ok(()),
            }
        });
        let results = tokio::join!(store, ledger, configuration);
        let mut checks = BTreeMap::new();
        let mut not_ready = Vec::new();
        for (name, outcome) in [results.0, results.1, results.2] {
            if outcome != "ok" {
                not_ready.push(name);
            }
            checks.insert(name, outcome);
        }
        Readiness {
            ready: not_ready.is_empty(),
            not_ready,
            checks,
        }
    }
}

/// Run one check within [`CHECK_TIMEOUT`]: `ok`, `error` (logged with its cause) or
/// `no answer within 2s`.
async fn bounded(
    name: &'static str,
    check: impl std::future::Future<Output = Result<(), String>>,
) -> (&'static str, String) {
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(check = name, error = %e, "readiness check failed");
            "error".to_owned()
        }
        Err(_) => {
            tracing::warn!(
                check = name,
                "readiness check got no answer in {}s",
                CHECK_TIMEOUT.as_secs()
            );
            format!("no answer within {}s", CHECK_TIMEOUT.as_secs())
        }
    };
    (name, outcome)
}

/// `GET /readyz`: 200 with the checks when ready, 503 naming what is not.
pub async fn readyz(State(probes): State<Probes>) -> Response {
    let readiness = probes.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

#[cfg(test)]
#[path = "probes_tests.rs"]
mod tests;
