//! Runs the guards the configuration assigns to a call before any model sees it.
//!
//! Which guards: a ModelProvider's `spec.guards` first, then an Agent's `spec.guards`. For an
//! access key those are its provider's; for an agent, the guards of every provider its list
//! can reach (any of them may end up answering), then its own. Each name is a GuardBinding,
//! whose `spec.kind` names a [`GuardKind`] registered with the gateway
//! ([`crate::GatewayBuilder::guard_kind`]) and whose `spec.enforcement` is `enforce` (the
//! default: a block refuses the call with 403) or `audit` (a block is only logged). Guards are
//! built once per configuration snapshot and see every text of the request
//! ([`pai_providers::guard_input`]).
//!
//! Fail closed: a guard that names a GuardBinding that does not exist, a kind the gateway does
//! not know or a configuration its kind refuses makes the call 503, and so does an enforcing
//! guard that does not answer within the layer's timeout (10 s by default).
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

mod kinds;

pub use kinds::{GuardKind, GuardKinds};

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use pai_core::resource::GuardBinding;
use pai_core::{Call, Enforcement, Error, Guard, GuardInput, ModelRef, Verdict};
use tower::{Layer, Service};

use crate::auth::{Binding, Principal};
use crate::error::CallError;
use crate::snapshot::{SharedSnapshot, Snapshot};

/// How long an enforcing guard may take before the call is refused.
pub const DEFAULT_GUARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A guard ready to run, as its GuardBinding configures it.
#[derive(Clone)]
struct Assigned {
    name: String,
    guard: Arc<dyn Guard>,
    enforcement: Enforcement,
}

/// The guards built for one snapshot.
#[derive(Default)]
struct Built {
    revision: u64,
    guards: HashMap<String, Result<Assigned, String>>,
}

/// Runs the guards assigned to each call. See the module docs.
#[derive(Clone)]
pub struct GuardLayer {
    snapshot: SharedSnapshot,
    kinds: Arc<GuardKinds>,
    built: Arc<Mutex<Built>>,
    timeout: Duration,
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
        }
    }

    /// How long an enforcing guard may take (default [`DEFAULT_GUARD_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> GuardLayer {
        self.timeout = timeout;
        self
    }

    /// The guard GuardBinding `name` configures, built once per snapshot.
    fn guard(&self, name: &str, snapshot: &Snapshot) -> Result<Assigned, String> {
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

    fn build(&self, name: &str, snapshot: &Snapshot) -> Result<Assigned, String> {
        let binding = snapshot
            .guard_binding(name)
            .ok_or_else(|| "does not exist".to_owned())?;
        let kind_name = binding
            .spec
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| "has no spec.kind".to_owned())?;
        let enforcement = enforcement(binding)?;
        let kind = self.kinds.get(kind_name).ok_or_else(|| {
            format!(
                "has kind {kind_name:?}, which this gateway does not know (it knows: {})",
                self.kinds.names().join(", ")
            )
        })?;
        let guard = kind
            .build(binding)
            .map_err(|why| format!("is not a valid {kind_name:?} guard: {why}"))?;
        Ok(Assigned {
            name: name.to_owned(),
            guard,
            enforcement,
        })
    }
}

fn enforcement(binding: &GuardBinding) -> Result<Enforcement, String> {
    match binding
        .spec
        .get("enforcement")
        .and_then(serde_json::Value::as_str)
    {
        None | Some("enforce") => Ok(Enforcement::Enforce),
        Some("audit") => Ok(Enforcement::Audit),
        Some(other) => Err(format!(
            "has spec.enforcement {other:?}; it is \"enforce\" or \"audit\""
        )),
    }
}

/// The GuardBindings the call runs, in order, each with who names it: providers' first, then
/// the agent's.
fn assigned(principal: &Principal, snapshot: &Snapshot) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |who: String, names: &[String]| {
        for n in names {
            if !out.iter().any(|(_, seen)| seen == n) {
                out.push((who.clone(), n.clone()));
            }
        }
    };
    match &principal.binding {
        Binding::Provider(p) => {
            let r = &p.resource;
            add(
                format!("ModelProvider {:?}", r.metadata.name),
                &r.spec.guards,
            );
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
                    add(
                        format!("ModelProvider {:?}", r.metadata.name),
                        &r.spec.guards,
                    );
                }
            }
            add(
                format!("Agent {:?}", agent.metadata.name),
                &agent.spec.guards,
            );
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let snapshot = self.layer.snapshot.current();
        let names = match req.extensions().get::<Principal>() {
            Some(principal) => assigned(principal, &snapshot),
            None => Vec::new(),
        };
        if names.is_empty() {
            // Nothing to run: no copy, no wait.
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        }
        let guards: Result<Vec<Assigned>, Error> = names
            .iter()
            .map(|(who, name)| {
                self.layer.guard(name, &snapshot).map_err(|why| {
                    Error::Unavailable(format!(
                        "{who} names GuardBinding {name:?}, which {why}; the call is refused rather than sent unguarded"
                    ))
                })
            })
            .collect();
        let call = req.extensions().get::<Arc<Call>>().cloned();
        let mut inner = crate::service::take_ready(&mut self.inner);
        let timeout = self.layer.timeout;
        Box::pin(async move {
            let guards = guards?;
            let Some(call) = call else {
                return Err(Error::Internal(
                    "GuardLayer needs the parsed call: put ParseLayer outside it".to_owned(),
                )
                .into());
            };
            let input = input_of(call).await?;
            for g in &guards {
                inspect(g, &input, timeout).await?;
            }
            inner.call(req).await.map_err(Into::into)
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

/// Run one guard; a block under `enforce` (or no answer in time) refuses the call.
async fn inspect(g: &Assigned, input: &GuardInput, timeout: Duration) -> Result<(), Error> {
    let enforce = g.enforcement == Enforcement::Enforce;
    match tokio::time::timeout(timeout, g.guard.inspect(input)).await {
        Ok(Verdict::Allow) => Ok(()),
        Ok(Verdict::Block { reason, score }) if enforce => {
            tracing::info!(guard = %g.name, %reason, score, "guard blocked the request");
            Err(Error::PermissionDenied(format!(
                "GuardBinding {:?} blocked the request: {reason} (score {score:.2})",
                g.name
            )))
        }
        Ok(Verdict::Block { reason, score }) => {
            tracing::warn!(guard = %g.name, %reason, score, "guard flagged the request (audit only)");
            Ok(())
        }
        Err(_) if enforce => Err(Error::Unavailable(format!(
            "GuardBinding {:?} did not answer within {} s; the call is refused rather than sent unguarded",
            g.name,
            timeout.as_secs_f64()
        ))),
        Err(_) => {
            tracing::warn!(guard = %g.name, "guard did not answer in time (audit only)");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
