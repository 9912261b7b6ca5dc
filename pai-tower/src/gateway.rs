//! The assembled gateway: pai's layers, stacked once, in this order.
//!
//! # Layer order
//!
//! ```text
//! CallIdLayer         names and times every call, refusals included (x-pai-call-id)
//!                     and, given a Tracer, starts the call's span (ended where the call is finished)
//!  RescueLayer        renders any CallError once, in the client's dialect
//!   AuthLayer         access key → Principal; before any body is read, so an unknown
//!                     caller cannot make the gateway buffer one
//!    EndpointsLayer   /api/hello, /v1/models, /pai/v1/me; 404 and 405
//!     CallLogLayer    room for the record first (a recorder that falls behind slows callers
//!                     down), then the call's log, finished once however the call ends
//!      RateLimitLayer the caller's requests per minute, before its body is read
//!       ParseLayer    the body, read once within its limits, into a Call
//!        GuardLayer   the guards the configuration assigns to the call, providers' first; a blocked prompt
//!                     never reaches a model, nor costs a reservation
//!         FallbackLayer   for each candidate (the model asked for, then its fallbacks):
//!          BudgetLayer        reserve the worst case; the log's finish settles it
//!           ProviderLimitLayer  the provider's requests per minute and concurrency slot
//!            MeterLayer           usage and cost as the answer passes; finishes the call
//!             RetryLayer            tries again what is worth trying again (RetryPolicy)
//!              Upstream               adapter + transport, one try
//! ```
//!
//! Budget, provider limit and meter sit inside the fallback so that each candidate is
//! reserved, limited and metered on its own terms (its provider's budget, its model's
//! price); the meter sits outside the retry so that a retried call is metered once, on the
//! answer that reached the client.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pai_core::net::Cidr;
use pai_core::{
    AccessKeyHasher, BoxError, BudgetLedger, Clock, PriceTable, Provider, ProviderKind, Store,
    StoreError, SystemClock, Transport, TransportError,
};
use pai_providers::{Adapters, InvalidProviderName};
use tower::Service;

use http_body_util::BodyExt;
use pai_core::UpstreamBody;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

use crate::auth::AuthLayer;
use crate::body::ResponseBody;
use crate::budget::BudgetLayer;
use crate::call_id::CallIdLayer;
use crate::call_log::CallLogLayer;
use crate::endpoints::EndpointsLayer;
use crate::fallback::FallbackLayer;
use crate::guard::{GuardKind, GuardKinds, GuardLayer};
use crate::meter::{CallSink, MeterLayer};
use crate::metrics::Metrics;
use crate::parse::ParseLayer;
use crate::provider_limit::ProviderLimitLayer;
use crate::rate_limit::RateLimitLayer;
use crate::reliability::Reliability;
use crate::rescue::RescueLayer;
use crate::retry::RetryPolicy;
use crate::snapshot::{ProviderEndpoints, SharedSnapshot, Snapshot};
use crate::trace::Tracer;
use crate::upstream::Upstream;

/// The default limit on request bodies: 32 MiB, as Anthropic's API allows.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Something required was not given.
    #[error("the gateway needs {0}")]
    Missing(&'static str),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The default transport could not be built.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An adapter was registered under a name no ModelProvider could give.
    #[error(transparent)]
    ProviderName(#[from] InvalidProviderName),
}

/// Builds a [`Gateway`].
#[derive(Default)]
pub struct GatewayBuilder {
    store: Option<Arc<dyn Store>>,
    transport: Option<Arc<dyn Transport>>,
    hasher: Option<AccessKeyHasher>,
    trusted_proxies: Vec<Cidr>,
    max_body_bytes: Option<usize>,
    reliability: Reliability,
    ledger: Option<Arc<dyn BudgetLedger>>,
    prices: Option<Arc<dyn PriceTable>>,
    endpoints: ProviderEndpoints,
    adapters: Adapters,
    invalid_provider: Option<InvalidProviderName>,
    record_backlog: Option<u64>,
    prefix: String,
    metrics: Option<Metrics>,
    clock: Option<Arc<dyn Clock>>,
    guard_kinds: GuardKinds,
    tracer: Option<Tracer>,
}

impl GatewayBuilder {
    /// Where configuration comes from and calls are recorded. Required.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// How upstreams are reached. Default: `pai_providers::HttpTransport`.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// How presented access keys are hashed; must match the hasher that minted them. Required.
    pub fn key_hasher(mut self, hasher: AccessKeyHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// Peers whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(mut self, proxies: Vec<Cidr>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The largest request body accepted (413 above it). Default 32 MiB.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = Some(limit);
        self
    }

    /// Retries, timeouts, cooldowns and overload limits. Default: [`Reliability::default`].
    pub fn reliability(mut self, reliability: Reliability) -> Self {
        self.reliability = reliability;
        self
    }

    /// Where daily budgets are counted. Without one, a call that touches a budget is refused
    /// with 503 rather than let through uncounted.
    pub fn ledger(mut self, ledger: Arc<dyn BudgetLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Prices for costs (`x-pai-cost-usd`, records, metrics). Without one, tokens still flow and
    /// are recorded; only the dollar figures are omitted.
    pub fn prices(mut self, prices: Arc<dyn PriceTable>) -> Self {
        self.prices = Some(prices);
        self
    }

    /// Count calls into `metrics` (default: metrics of this gateway's own). Hand the same
    /// [`Metrics`] to several gateways, or to a [`crate::PriceFileWatcher`], to render them
    /// as one; gateways built with metrics of their own never see each other's calls.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Where wall-clock time comes from: when calls arrive (records, `/me`'s day) and whether
    /// a rotated-out key's grace has ended. Default: the system clock. Timeouts and backoff run
    /// on tokio's timer, not this clock; a budget ledger has its own, so hand it the same one.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// At most this many call records wait to be written (default
    /// [`crate::DEFAULT_RECORD_BACKLOG`]). At the limit, new calls wait for the recorder
    /// and are refused with 503 if it does not catch up within a few seconds; no record is
    /// dropped.
    pub fn record_backlog(mut self, limit: u64) -> Self {
        self.record_backlog = Some(limit);
        self
    }

    /// The path prefix clients reach the gateway under, e.g. `/llm` (default: none).
    ///
    /// The gateway's routes sit at the root of the path it is handed or under `/ext` (where
    /// `pai serve` serves them), so mounted with axum's `nest_service("/llm", gateway)`, which
    /// strips `/llm`, it routes without this. Set it so that messages name the paths clients
    /// really use (a 404 lists the endpoints under `/llm`), and when the server hands over
    /// the whole path (`fallback_service`, a bare hyper server) with the prefix still on it.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// Call ModelBindings that name provider type `kind` directly at `endpoint` instead of
    /// the type's public endpoint (a mock upstream in tests, an egress proxy).
    pub fn provider_endpoint(mut self, kind: ProviderKind, endpoint: &str) -> Self {
        self.endpoints.set(kind, endpoint);
        self
    }

    /// Let GuardBindings of `spec.guard: <name>` run as `kind` builds them (see
    /// [`crate::GuardLayer`]). A guard of a kind the gateway does not know refuses the calls it
    /// guards. `http` ([`crate::HttpGuardKind`]) is built in.
    pub fn guard_kind(mut self, name: &str, kind: Arc<dyn GuardKind>) -> Self {
        self.guard_kinds.register(name, kind);
        self
    }

    /// Trace every call to `tracer` (OpenTelemetry over OTLP/HTTP; see [`crate::trace`]).
    /// Default: no tracing, and nothing of it on the request path.
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Call ModelProviders whose `spec.provider` is `name` through `adapter`, besides pai's
    /// own adapters (an adapter of a built-in name replaces pai's). A ModelProvider naming a
    /// provider no adapter is registered for is never called: requests to it are refused
    /// (501). `build` fails if `name` is not one a ModelProvider could give (lower-case
    /// letters, digits, `-`, `_`, `.`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use pai_core::ProviderKind;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// // An OpenAI-compatible service under a name of its own; see examples/custom_provider.rs
    /// // for an adapter written from scratch.
    /// let gateway = pai_tower::Gateway::builder()
    ///     .store(Arc::new(pai_store::MemoryStore::new()))
    ///     .key_hasher(pai_core::AccessKeyHasher::new(b"32 bytes of operator-held secret"))
    ///     .provider("acme", Arc::new(pai_providers::OpenAiAdapter::new(ProviderKind::Vllm)))
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// assert!(gateway.adapters().get("acme").is_some());
    /// # });
    /// ```
    pub fn provider(mut self, name: &str, adapter: Arc<dyn Provider>) -> Self {
        if let Err(e) = self.adapters.register(name, adapter) {
            self.invalid_provider.get_or_insert(e);
        }
        self
    }

    /// Call providers through exactly these adapters (default: pai's own,
    /// [`Adapters::builtin`]). Adapters registered with [`Self::provider`] before are dropped.
    pub fn adapters(mut self, adapters: Adapters) -> Self {
        self.adapters = adapters;
        self
    }

    /// Load the configuration from the store and start following its changes. Must be called
    /// inside a tokio runtime.
    pub async fn build(self) -> Result<Gateway, BuildError> {
        if let Some(e) = self.invalid_provider {
            return Err(e.into());
        }
        let store = self.store.ok_or(BuildError::Missing("a store"))?;
        let hasher = self.hasher.ok_or(BuildError::Missing("a key hasher"))?;
        let transport: Arc<dyn Transport> = match self.transport {
            Some(t) => t,
            None => Arc::new(pai_providers::HttpTransport::new(
                pai_providers::TransportOptions {
                    connect_timeout: self.reliability.connect_timeout,
                    response_timeout: self.reliability.first_byte_timeout,
                    ..Default::default()
                },
            )?),
        };
        let metrics = self.metrics.unwrap_or_default();
        // `guard: http` is built in; a kind of that name registered by the embedder wins.
        let mut guard_kinds = self.guard_kinds;
        if guard_kinds.get(pai_core::resource::HTTP_GUARD).is_none() {
            guard_kinds.register(
                pai_core::resource::HTTP_GUARD,
                Arc::new(crate::guard::HttpGuardKind::new().metrics(metrics.clone())),
            );
        }
        let clock: Arc<dyn Clock> = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let revision = *store.watch().borrow();
        let snapshot = SharedSnapshot::new(
            Snapshot::load_with(store.as_ref(), revision, &self.endpoints, &self.adapters).await?,
        )
        .with_endpoints(self.endpoints)
        .with_adapters(self.adapters)
        .with_metrics(metrics.clone());
        let follower = snapshot.follow(store.clone());
        let sink = CallSink::with_backlog(
            store.clone(),
            self.record_backlog
                .unwrap_or(crate::meter::DEFAULT_RECORD_BACKLOG),
        );
        let prefix = self.prefix.as_str();
        let reliability = self.reliability;
        let stack = ServiceBuilder::new()
            .layer(CallIdLayer::with_clock(clock.clone()).tracer(self.tracer.clone()))
            .layer(RescueLayer::new().prefix(prefix))
            .layer(
                AuthLayer::new(snapshot.clone(), hasher)
                    .trusted_proxies(self.trusted_proxies)
                    .prefix(prefix)
                    .clock(clock.clone()),
            )
            .layer(
                EndpointsLayer::new(store.clone())
                    .prefix(prefix)
                    .clock(clock),
            )
            .layer(
                CallLogLayer::new(sink.clone())
                    .prices(self.prices.clone())
                    .metrics(metrics.clone())
                    .prefix(prefix),
            )
            .layer(RateLimitLayer::new(snapshot.clone()))
            .layer(
                ParseLayer::new()
                    .max_body_bytes(self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES))
                    .timeouts(reliability.body_idle_timeout, reliability.body_timeout)
                    .prefix(prefix)
                    .call_only(),
            )
            .layer(GuardLayer::new(snapshot.clone(), guard_kinds).metrics(metrics.clone()))
            .layer(FallbackLayer::new(snapshot.clone(), reliability.clone()))
            .layer(BudgetLayer::new(self.ledger, self.prices.clone()))
            .layer(ProviderLimitLayer::new(
                snapshot.clone(),
                reliability.clone(),
            ))
            .layer(MeterLayer::new(self.prices, reliability.clone()))
            .layer(tower::retry::RetryLayer::new(RetryPolicy::new(
                reliability.clone(),
            )))
            .service(Upstream::new(transport, reliability));
        let stack = BoxCloneSyncService::new(stack);
        Ok(Gateway {
            stack,
            snapshot,
            store,
            sink,
            metrics,
            tracer: self.tracer,
            _follower: Arc::new(AbortOnDrop(follower)),
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The whole gateway as one tower service. See the module docs for the layer order.
#[derive(Clone)]
pub struct Gateway {
    stack: BoxCloneSyncService<Request<UpstreamBody>, Response<ResponseBody>, Infallible>,
    snapshot: SharedSnapshot,
    store: Arc<dyn Store>,
    sink: CallSink,
    metrics: Metrics,
    tracer: Option<Tracer>,
    _follower: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// Start building a gateway.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// Return once the gateway acts on every change written to its store before this call:
    /// read your writes, for an admin API in the same process. The snapshot follower normally
    /// gets there within milliseconds; if it has not within a second, the snapshot is loaded
    /// here.
    pub async fn caught_up(&self) -> Result<(), StoreError> {
        let written = *self.store.watch().borrow();
        if self
            .snapshot
            .caught_up(written, std::time::Duration::from_secs(1))
            .await
        {
            return Ok(());
        }
        self.reload().await
    }

    /// Rebuild the configuration snapshot from the store now, without waiting for its watch.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let revision = *self.store.watch().borrow();
        let snapshot = self.snapshot.load(self.store.as_ref(), revision).await?;
        self.snapshot.replace(snapshot);
        Ok(())
    }

    /// Wait until every finished call is recorded, up to `timeout`; whether everything was.
    /// Call it at shutdown, after the server has stopped and in-flight streams have ended.
    pub async fn drain(&self, timeout: std::time::Duration) -> bool {
        self.sink.drain(timeout).await
    }

    /// Wait, up to `timeout`, until every call that finished before now is recorded and its
    /// budget settled; whether it was. The admin views call it so that a call is in
    /// what they show as soon as its client has the answer.
    pub async fn finished(&self, timeout: std::time::Duration) -> bool {
        self.sink.finished(timeout).await
    }

    /// The metrics this gateway counts its calls into; [`Metrics::render`] is the text a
    /// `/metrics` endpoint serves.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The tracer calls are traced to, if any ([`GatewayBuilder::tracer`]): flush it at
    /// shutdown, after [`Gateway::drain`].
    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// The configuration requests are checked against now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.current()
    }

    /// The adapters providers are called through: check a ModelProvider against them before
    /// storing it ([`Adapters::check`]) to refuse one this gateway could not call.
    pub fn adapters(&self) -> &Adapters {
        self.snapshot.adapters()
    }
}

impl<B> Service<Request<B>> for Gateway
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.stack.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Erase the body type here, so the stack is built once for every body.
        let req = req.map(|body| body.map_err(Into::into).boxed_unsync());
        self.stack.call(req)
    }
}
