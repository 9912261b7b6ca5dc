//! Admitting one candidate: the per-request token limit and the budgets, decided with as
//! little counting as the decision needs.
//!
//! Counting a prompt exactly with a BPE is superlinear in the length of a word, and a body may
//! hold a word of megabytes; no request may hold a runtime thread for that. So the decision
//! is taken in steps, cheapest first:
//!
//! 1. Sound bounds on the input ([`estimate::input_bounds`]: each BPE token covers between one
//!    and 128 bytes), from a walk over the body — on the blocking pool when the body is big.
//! 2. `maxTokensPerRequest`: a lower bound at or over the limit is refused; an upper bound that
//!    leaves room for the requested output needs nothing more.
//! 3. Budgets: the upper bound is reserved; when that is refused, the lower bound is tried, and
//!    a refusal there (a spent budget, say) is final without counting.
//! 4. Only when the bounds straddle a decision is the exact count taken, on the blocking pool.

use std::sync::Arc;

use pai_core::{BudgetLedger, Call, Dialect, Error, JsonObject, PriceTable, ScopeLimit};
use pai_providers::estimate::{self, InputBounds, Upstream};

use super::{size, Hold, DEFAULT_OUTPUT_RESERVE};
use crate::fallback::Candidate;
use crate::parse::{bound_output, choices, output_bound};

/// Bodies up to this size are counted on the runtime thread. Lower than the parse layer's:
/// a BPE count costs far more per byte than parsing.
const INLINE_COUNT_BYTES: usize = 16 << 10;

/// What admitting a candidate settled.
pub(crate) struct Admission {
    /// The input the reservation was sized with: the exact count or a sound upper bound.
    pub input: u64,
    /// The output bound per answer, when one applies.
    pub bound: Option<u64>,
    pub hold: Option<Hold>,
}

/// Why a candidate was not admitted.
pub(crate) enum Refused {
    /// Over `maxTokensPerRequest`.
    Limit(Error),
    /// A budget is exhausted, or a dollar cap cannot be sized: the next candidate may do.
    Budget(Error),
    /// Anything else (the ledger cannot be reached).
    Final(Error),
}

/// A call and what is known of its input so far.
struct Sizing {
    upstream: Upstream,
    bounds: InputBounds,
    exact: Option<u64>,
}

impl Sizing {
    /// The exact count, taken once, off the runtime when the body is big.
    async fn exact(&mut self, call: &mut Call) -> Result<u64, Error> {
        if let Some(n) = self.exact {
            return Ok(n);
        }
        let n = if self.bounds.is_exact() {
            self.bounds.upper
        } else {
            let upstream = self.upstream;
            off_runtime(call, move |client, model, body| {
                estimate::input_tokens_for(upstream, client, model, body)
            })
            .await?
        };
        self.exact = Some(n);
        Ok(n)
    }

    /// The best figure known without counting any further.
    fn known(&self) -> u64 {
        self.exact.unwrap_or(self.bounds.upper)
    }
}

/// Whose tokens `call` is sized as for `candidate`: what its adapter says of itself. A
/// provider without an adapter is refused before it is called; until then it is sized by the
/// client's dialect.
pub(crate) fn upstream_of(candidate: &Candidate, call: &Call) -> Upstream {
    match candidate.provider.adapter.as_deref() {
        Some(adapter) => Upstream::of(adapter),
        None => Upstream::Dialect(call.client),
    }
}

/// Size `call` for `upstream`, bound its output to `limit`, and reserve its worst case on
/// `scopes`.
pub(crate) async fn admit(
    ledger: Option<&Arc<dyn BudgetLedger>>,
    prices: Option<&Arc<dyn PriceTable>>,
    call: &mut Call,
    upstream: Upstream,
    mut scopes: Vec<ScopeLimit>,
    limit: Option<(u64, String)>,
) -> Result<Admission, Refused> {
    if limit.is_none() && scopes.is_empty() {
        return Ok(Admission {
            input: 0,
            bound: output_bound(call),
            hold: None,
        });
    }
    let bounds = off_runtime(call, move |client, model, body| {
        estimate::input_bounds(upstream, client, model, body)
    })
    .await
    .map_err(Refused::Final)?;
    let mut sizing = Sizing {
        upstream,
        bounds,
        exact: None,
    };
    let n = choices(call);
    let bound = match &limit {
        Some((limit, name)) => {
            let asked = output_bound(call);
            let fits = |input: u64| {
                asked.is_some_and(|a| input.saturating_add(a.saturating_mul(n)) <= *limit)
            };
            let input = if bounds.lower >= *limit {
                bounds.lower
            } else if fits(bounds.upper) {
                // Room for the asked output even at the upper bound: the request stays as it is.
                bounds.upper
            } else {
                sizing.exact(call).await.map_err(Refused::Final)?
            };
            Some(bound_output(call, input, *limit, name).map_err(Refused::Limit)?)
        }
        None => output_bound(call),
    };
    let output = bound.unwrap_or(DEFAULT_OUTPUT_RESERVE).saturating_mul(n);
    let reserve = |input: u64, scopes: &mut Vec<ScopeLimit>| -> Result<(), Refused> {
        size(scopes, input, output, &call.model, prices).map_err(Refused::Budget)
    };
    reserve(sizing.known(), &mut scopes)?;
    let first = Hold::reserve(ledger, scopes.clone()).await;
    let hold = match first {
        Ok(hold) => hold,
        Err(e @ Error::BudgetExceeded { .. }) if sizing.exact.is_none() && !bounds.is_exact() => {
            // The upper bound did not fit; if even the lower bound does not, counting cannot
            // change the answer.
            reserve(bounds.lower, &mut scopes)?;
            match Hold::reserve(ledger, scopes.clone()).await {
                // Given back before the exact reservation, which it would otherwise crowd out.
                Ok(Some(probe)) => probe.release().await,
                Ok(None) => {}
                Err(Error::BudgetExceeded { .. }) => return Err(Refused::Budget(e)),
                Err(e) => return Err(Refused::Final(e)),
            }
            let exact = sizing.exact(call).await.map_err(Refused::Final)?;
            size(&mut scopes, exact, output, &call.model, prices).map_err(Refused::Budget)?;
            Hold::reserve(ledger, scopes)
                .await
                .map_err(budget_or_final)?
        }
        Err(e) => return Err(budget_or_final(e)),
    };
    Ok(Admission {
        input: sizing.known(),
        bound,
        hold,
    })
}

fn budget_or_final(e: Error) -> Refused {
    match e {
        Error::BudgetExceeded { .. } => Refused::Budget(e),
        e => Refused::Final(e),
    }
}

/// Run `f` on the call's body: inline when the body is small, on the blocking pool otherwise.
async fn off_runtime<T: Send + 'static>(
    call: &mut Call,
    f: impl FnOnce(Dialect, &str, &JsonObject) -> T + Send + 'static,
) -> Result<T, Error> {
    let bytes: usize = call
        .body
        .keys()
        .filter_map(|k| call.body.raw(k))
        .map(|v| v.get().len())
        .sum();
    if bytes <= INLINE_COUNT_BYTES {
        return Ok(f(call.client, &call.model, &call.body));
    }
    // Lend the body to the blocking pool rather than copy it.
    let body = std::mem::take(&mut call.body);
    let (client, model) = (call.client, call.model.clone());
    let (body, out) = tokio::task::spawn_blocking(move || {
        let out = f(client, &model, &body);
        (body, out)
    })
    .await
    .map_err(|e| Error::Internal(format!("estimating the input failed: {e}")))?;
    call.body = body;
    Ok(out)
}
