//! Runs the guards the configuration assigns to a call: on the request before any model sees
//! it (`scan.prompts`), and on the model's answer (`scan.responses`, see [`AnswerGuards`]).
//!
//! Which guards: a ModelProvider's `spec.guards` first (the organisation's baseline), then an
//! Agent's `spec.guards`. For an access key those are its provider's; for an agent, the guards
//! of every provider its list can reach (any of them may end up answering), then its own. Each
//! names a GuardBinding, whose `spec.guard` names a [`GuardKind`] registered with the gateway
//! ([`crate::GatewayBuilder::guard_kind`]), and says whether a block is enforced (`enforce`:
//! the call is refused with 403, in the client's dialect, naming the binding and what was
//! found, never the text) or only recorded (`audit`). Guards are built once per configuration
//! snapshot and see every text of the request ([`pai_providers::guard_input`]); they run one
//! after the other, so a provider's block stops the call before an agent's guard runs.
//!
//! Every verdict is written into the call's record ([`pai_core::GuardVerdict`]), counted in
//! `pai_guard_verdicts_total{binding,verdict,enforcement}` and `pai_guard_scan_seconds`, and
//! told to the client in `x-pai-guard` on the answer. A call with no guard bound costs
//! nothing here: no copy of the request, no allocation.
//!
//! Answers are scanned by the [`MeterLayer`](crate::MeterLayer), which must sit inside this
//! layer (as in [`crate::Gateway`]): this layer hands it the answer's guards, and refuses an
//! answer no meter scanned.
//!
//! Fail closed: a guard that names a GuardBinding that does not exist, a kind the gateway does
//! not know or a configuration its kind refuses makes the call 503. A guard that does not
//! answer within its binding's `timeoutMs` (else the layer's timeout, 10 s by default) refuses
//! the call with 503 unless the binding says `onError: allow`; under `audit` it is recorded.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use pai_core::{Guard, GuardInput, Verdict};
//! use pai_tower::{GuardKinds, GuardLayer};
//!
//! struct NoSecrets;
//!
//! #[async_trait::async_trait]
//! impl Guard for NoSecrets {
//!     fn name(&self) -> &str { "no-secrets" }
//!     async fn inspect(&self, input: &GuardInput) -> Verdict {
//!         match input.texts.iter().any(|(_, t)| t.contains("password")) {
//!             true => Verdict::Block { reason: "asks for a password".into(), score: 1.0 },
//!             false => Verdict::Allow,
//!         }
//!     }
//! }
//!
//! # fn _f(snapshot: pai_tower::SharedSnapshot) {
//! let mut kinds = GuardKinds::new();
//! kinds.register("no-secrets", Arc::new(|_: &pai_core::resource::GuardBinding| {
//!     Ok(Arc::new(NoSecrets) as Arc<dyn Guard>)
//! }));
//! // After ParseLayer (it reads the Call), before the fallback.
//! let _layer = GuardLayer::new(snapshot, kinds);
//! # }
//! ```

mod answers;
mod external;
mod kinds;
pub(crate) mod verdicts;

pub(crate) use answers::{AnswerGuards, AnswerStream};
pub use external::HttpGuardKind;
pub use kinds::{GuardKind, GuardKinds};

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use pai_core::resource::{GuardRef, OnError};
use pai_core::{Call, Enforcement, Error, Guard, GuardInput, GuardStage, ModelRef};
use tower::{Layer, Service};

use crate::auth::{Binding, Principal};
use crate::call_log::CallLog;
use crate::error::CallError;
use crate::metrics::Metrics;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::trace::CallTrace;

/// How long an enforcing guard may take before the call is refused, unless its GuardBinding
/// sets `timeoutMs`.
pub const DEFAULT_GUARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A guard ready to run, as its GuardBinding configures it.
#[derive(Clone)]
struct Armed {
    guard: Arc<dyn Guard>,
    /// A block scored below this is an allow.
    threshold: Option<f32>,
    timeout: Option<Duration>,
    on_error: OnError,
}

/// One guard of one call: the binding, how it is enforced, and the guard.
#[derive(Clone)]
struct Assigned {
    name: String,
    enforcement: Enforcement,
    armed: Armed,
}

/// The guards built for one snapshot.
#[derive(Default)]
struct Built {
    revision: u64,
    guards: HashMap<String, Result<Armed, String>>,
}

/// Runs the guards assigned to each call. See the module docs.
#[derive(Clone)]
pub struct GuardLayer {
    snapshot: SharedSnapshot,
    kinds: Arc<GuardKinds>,
    built: Arc<Mutex<Built>>,
    timeout: Duration,
    metrics: Metrics,
}

impl std::fmt::Debug for GuardLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardLayer")
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl GuardLayer {
    /// Guards as `snapshot` assigns them, of the kinds in `kinds`.
    pub fn new(snapshot: SharedSnapshot, kinds: GuardKinds) -> GuardLayer {
        GuardLayer {
            snapshot,
            kinds: Arc::new(kinds),
            built: Arc::new(Mutex::new(Built::default())),
            timeout: DEFAULT_GUARD_TIMEOUT,
            metrics: Metrics::new(),
        }
    }

    /// How long a guard may take when its binding does not say (default
    /// [`DEFAULT_GUARD_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> GuardLayer {
        self.timeout = timeout;
        self
    }

    /// Count verdicts and scan times into `metrics`.
    pub fn metrics(mut self, metrics: Metrics) -> GuardLayer {
        self.metrics = metrics;
        self
    }

    /// The guard GuardBinding `name` configures, built once per snapshot.
    fn guard(&self, name: &str, snapshot: &Snapshot) -> Result<Armed, String> {
        if let Ok(built) = self.built.lock() {
            if built.revision == snapshot.revision {
                if let Some(found) = built.guards.get(name) {
                    return found.clone();
                }
            }
        }
        let made = self.build(name, snapshot);
        if let Ok(mut built) = self.built.lock() {
            if built.revision != snapshot.revision {
                *built = Built {
                    revision: snapshot.revision,
                    guards: HashMap::new(),
                };
            }
            built.guards.insert(name.to_owned(), made.clone());
        }
        made
    }

    fn build(&self, name: &str, snapshot: &Snapshot) -> Result<Armed, String> {
        let binding = snapshot
            .guard_binding(name)
            .ok_or_else(|| "does not exist".to_owned())?;
        let kind_name = binding.spec.guard.as_str();
        if kind_name.is_empty() {
            return Err("has no spec.guard".to_owned());
        }
        let kind = self.kinds.get(kind_name).ok_or_else(|| {
            format!(
                "has guard {kind_name:?}, which this gateway does not know (it knows: {})",
                self.kinds.names().join(", ")
            )
        })?;
        let key = match snapshot.guard_key(name) {
            None => None,
            Some(Ok(key)) => Some(key),
            Some(Err(why)) => return Err(why.clone()),
        };
        let guard = kind
            .build_with_key(binding, key)
            .map_err(|why| format!("is not a valid {kind_name:?} guard: {why}"))?;
        Ok(Armed {
            guard,
            threshold: binding.spec.threshold.map(|t| t as f32),
            timeout: binding.spec.timeout_ms.map(Duration::from_millis),
            on_error: binding.spec.on_error,
        })
    }
}

/// Who names a guard: `ModelProvider "openai"` or `Agent "ci"`, written out only for an error.
#[derive(Clone, Copy)]
struct Namer<'a>(&'static str, &'a str);

impl std::fmt::Display for Namer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.0, self.1)
    }
}

/// Every guard reference that applies to the call, in order, each with who names it:
/// providers' first, then the agent's.
fn bound<'a>(principal: &'a Principal, snapshot: &'a Snapshot) -> Vec<(Namer<'a>, &'a GuardRef)> {
    let mut out = Vec::new();
    let mut add = |who: Namer<'a>, refs: &'a [GuardRef]| {
        out.extend(refs.iter().map(|r| (who, r)));
    };
    match &principal.binding {
        Binding::Provider(p) => {
            let r = &p.resource;
            add(Namer("ModelProvider", &r.metadata.name), &r.spec.guards);
        }
        Binding::Agent(agent) => {
            let via_models = agent
                .spec
                .models
                .iter()
                .filter_map(|m| m.parse::<ModelRef>().ok().map(|r| r.provider));
            let via_bindings = agent.spec.model_bindings.iter().filter_map(|b| {
                match &snapshot.binding(b)?.target {
                    pai_core::resource::BindingTarget::ModelProvider(p) => Some(p.clone()),
                    _ => None,
                }
            });
            for provider in via_models.chain(via_bindings) {
                if let Some(p) = snapshot.provider(&provider) {
                    let r = &p.resource;
                    add(Namer("ModelProvider", &r.metadata.name), &r.spec.guards);
                }
            }
            add(Namer("Agent", &agent.metadata.name), &agent.spec.guards);
        }
    }
    out
}

/// Of `bound`, the guards that read `stage`, in order. A binding named twice runs once,
/// enforced if either names it so.
fn for_stage<'a>(
    bound: &[(Namer<'a>, &'a GuardRef)],
    stage: GuardStage,
) -> Vec<(Namer<'a>, &'a GuardRef)> {
    let mut out: Vec<(Namer<'a>, &'a GuardRef)> = Vec::new();
    let reads = |r: &GuardRef| match stage {
        GuardStage::Prompt => r.scan.prompts,
        GuardStage::Answer => r.scan.responses,
    };
    for &(who, r) in bound.iter().filter(|(_, r)| reads(r)) {
        match out.iter_mut().find(|(_, seen)| seen.binding == r.binding) {
            Some(seen) if r.enforcement == Enforcement::Enforce => seen.1 = r,
            Some(_) => {}
            None => out.push((who, r)),
        }
    }
    out
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`GuardLayer`] produces.
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    inner: S,
    layer: Arc<GuardLayer>,
}

impl<S, B, RB> Service<Request<B>> for GuardService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<RB>;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, CallError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let snapshot = self.layer.snapshot.current();
        let bound = match req.extensions().get::<Principal>() {
            Some(principal) => bound(principal, &snapshot),
            None => Vec::new(),
        };
        if bound.is_empty() {
            // Nothing to run: no copy, no wait.
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        }
        let arm = |stage| -> Result<Vec<Assigned>, Error> {
            for_stage(&bound, stage)
                .into_iter()
                .map(|(who, r)| {
                    let name = &r.binding;
                    self.layer
                        .guard(name, &snapshot)
                        .map(|armed| Assigned {
                            name: name.clone(),
                            enforcement: r.enforcement,
                            armed,
                        })
                        .map_err(|why| {
                            Error::Unavailable(format!(
                                "{who} names GuardBinding {name:?}, which {why}; the call is refused rather than sent unguarded"
                            ))
                        })
                })
                .collect()
        };
        let guards = arm(GuardStage::Prompt);
        let answers = arm(GuardStage::Answer).map(|on_answer| {
            (!on_answer.is_empty()).then(|| {
                Arc::new(AnswerGuards::new(
                    on_answer,
                    self.layer.timeout,
                    self.layer.metrics.clone(),
                ))
            })
        });
        drop(bound);
        if let Ok(Some(answers)) = &answers {
            req.extensions_mut().insert(answers.clone());
        }
        let call = req.extensions().get::<Arc<Call>>().cloned();
        let log = req.extensions().get::<CallLog>().cloned();
        let trace = req.extensions().get::<CallTrace>().cloned();
        let mut inner = crate::service::take_ready(&mut self.inner);
        let timeout = self.layer.timeout;
        let metrics = self.layer.metrics.clone();
        Box::pin(async move {
            let (guards, answers) = (guards?, answers?);
            let Some(call) = call else {
                return Err(Error::Internal(
                    "GuardLayer needs the parsed call: put ParseLayer outside it".to_owned(),
                )
                .into());
            };
            let mut found = Vec::with_capacity(guards.len());
            if !guards.is_empty() {
                let input = input_of(call).await?;
                for g in &guards {
                    let started = trace.as_ref().map(|_| crate::trace::now_ns());
                    let (verdict, refusal) =
                        verdicts::inspect(g, &input, GuardStage::Prompt, timeout, &metrics).await;
                    if let (Some(trace), Some(started)) = (&trace, started) {
                        trace.guard(&verdict, started);
                    }
                    found.push(verdict);
                    if let Some(refusal) = refusal {
                        verdicts::append(log.as_ref(), found);
                        return Err(refusal.into());
                    }
                }
            }
            let header = verdicts::header(&found);
            verdicts::append(log.as_ref(), found);
            let mut res = inner.call(req).await.map_err(Into::into)?;
            if answers.is_some_and(|a| !a.ran()) {
                return Err(Error::Internal(
                    "GuardLayer has guards with scan.responses but no MeterLayer inside it took the answer to scan; the answer is refused rather than returned unscanned".to_owned(),
                )
                .into());
            }
            if let Some(prompt) = header {
                // The meter put the answer's verdicts there, if any: the request's come first.
                let value = match res.headers().get(crate::headers::GUARD) {
                    Some(answer) => {
                        let mut joined = prompt.as_bytes().to_vec();
                        joined.extend_from_slice(b", ");
                        joined.extend_from_slice(answer.as_bytes());
                        HeaderValue::from_bytes(&joined).unwrap_or(prompt)
                    }
                    None => prompt,
                };
                res.headers_mut().insert(crate::headers::GUARD, value);
            }
            Ok(res)
        })
    }
}

/// The text guards read, taken off the runtime when the body is big.
async fn input_of(call: Arc<Call>) -> Result<GuardInput, Error> {
    let size: usize = call
        .body
        .keys()
        .filter_map(|k| call.body.raw(k))
        .map(|v| v.get().len())
        .sum();
    if size <= crate::parse::INLINE_BYTES {
        return Ok(pai_providers::guard_input::guard_input(&call));
    }
    tokio::task::spawn_blocking(move || pai_providers::guard_input::guard_input(&call))
        .await
        .map_err(|e| Error::Internal(format!("reading the request for guards failed: {e}")))
}

#[cfg(test)]
mod tests;
