//! [`CallLogLayer`]: opens the call's log, and finishes it when nobody below did.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pai_core::store::CallRecord;
use pai_core::{PriceTable, Usage};
use tower::{Layer, Service};

use super::{set_usage_headers, CallLog, LogEntry, LoggedBody};
use crate::auth::{Binding, Principal};
use crate::call_id::CallId;
use crate::error::CallError;
use crate::meter::{CallSink, RecordSlot};
use crate::metrics::Metrics;
use crate::rescue::Journey;
use crate::route::Route;
use crate::trace::CallTrace;

/// Opens a [`CallLog`] for each request that carries a [`Principal`]. See the module docs.
#[derive(Clone)]
pub struct CallLogLayer {
    sink: CallSink,
    prices: Option<Arc<dyn PriceTable>>,
    metrics: Metrics,
    prefix: Arc<str>,
}

impl std::fmt::Debug for CallLogLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLogLayer").finish_non_exhaustive()
    }
}

impl CallLogLayer {
    /// Records go to `sink`.
    pub fn new(sink: CallSink) -> CallLogLayer {
        CallLogLayer {
            sink,
            prices: None,
            metrics: Metrics::new(),
            prefix: Arc::from(""),
        }
    }

    /// Count finished calls into `metrics` (default: metrics of this layer's own).
    pub fn metrics(mut self, metrics: Metrics) -> CallLogLayer {
        self.metrics = metrics;
        self
    }

    /// Price calls with `prices` (records, `x-pai-cost-usd`, metrics, dollar budgets).
    pub fn prices(mut self, prices: Option<Arc<dyn PriceTable>>) -> CallLogLayer {
        self.prices = prices;
        self
    }

    /// Where the gateway's routes sit ([`crate::GatewayBuilder::prefix`]), to name a call's
    /// operation.
    pub fn prefix(mut self, prefix: &str) -> CallLogLayer {
        self.prefix = Arc::from(prefix);
        self
    }
}

impl<S> Layer<S> for CallLogLayer {
    type Service = CallLogService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLogService {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`CallLogLayer`] produces.
#[derive(Clone, Debug)]
pub struct CallLogService<S> {
    inner: S,
    layer: Arc<CallLogLayer>,
}

/// The operation a record names: the gateway's own name for its routes, else the path (cut
/// short: it is the client's text).
fn operation(prefix: &str, path: &str) -> String {
    match Route::under(prefix, path) {
        Some(route) => crate::route::operation_name(route.operation()).to_owned(),
        None => path.chars().take(128).collect(),
    }
}

impl<S, B, RB> Service<Request<B>> for CallLogService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: http_body::Body,
{
    type Response = Response<LoggedBody<RB>>;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, CallError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(principal) = req.extensions().get::<Principal>().cloned() else {
            // Nobody to charge: a public route.
            let fut = self.inner.call(req);
            return Box::pin(async move {
                let res = fut.await.map_err(Into::into)?;
                Ok(res.map(|b| LoggedBody::new(b, None)))
            });
        };
        // Room for this call's record first: a recorder that falls behind slows callers down.
        // Usually there is room at once, and the call goes on without waiting (or a copy of
        // the services below).
        if let Some(slot) = self.layer.sink.try_admit() {
            let log = self.layer.open(&principal, slot, &mut req);
            let fut = self.inner.call(req);
            return Box::pin(async move { close(log, fut.await.map_err(Into::into)) });
        }
        let mut inner = crate::service::take_ready(&mut self.inner);
        let layer = self.layer.clone();
        Box::pin(async move {
            let slot = layer.sink.admit().await?;
            let log = layer.open(&principal, slot, &mut req);
            close(log, inner.call(req).await.map_err(Into::into))
        })
    }
}

impl CallLogLayer {
    /// Open the log of `principal`'s call `req`, in its extensions.
    fn open<B>(&self, principal: &Principal, slot: RecordSlot, req: &mut Request<B>) -> CallLog {
        let call_id = req
            .extensions()
            .get::<CallId>()
            .cloned()
            .unwrap_or_default();
        let record = CallRecord {
            call_id: call_id.id.clone(),
            started_at_ms: call_id.started_at_ms,
            workload: principal.workload(),
            provider: match &principal.binding {
                Binding::Provider(p) => p.resource.metadata.name.clone(),
                Binding::Agent(_) => String::new(),
            },
            access_key: principal.key_name().map(str::to_owned),
            operation: operation(&self.prefix, req.uri().path()),
            client_ip: principal.client_ip.map(|ip| ip.to_string()),
            ..CallRecord::default()
        };
        let mut entry = LogEntry::new(
            record,
            slot,
            call_id.started,
            self.prices.clone(),
            self.metrics.clone(),
            self.sink.clone(),
        );
        if let Some(trace) = req.extensions().get::<CallTrace>() {
            entry.trace(trace.clone());
        }
        let log = CallLog::new(entry);
        req.extensions_mut().insert(log.clone());
        if let Some(journey) = req.extensions().get::<Journey>() {
            journey.engage();
        }
        log
    }
}

/// Finish the call if the layers below did not: with its error, or at the end of the body an
/// application's own handler answered with.
fn close<RB: http_body::Body>(
    log: CallLog,
    result: Result<Response<RB>, CallError>,
) -> Result<Response<LoggedBody<RB>>, CallError> {
    match result {
        Err(e) => {
            if let Some(mut entry) = log.take() {
                entry.fail(&e.error);
            }
            Err(e)
        }
        Ok(mut res) => {
            // Unclaimed: an application's own handler answered; its body ends the call.
            let entry = log.take().map(|mut entry| {
                entry.set_status(res.status().as_u16());
                let usage = res.extensions().get::<Usage>().copied();
                if let Some(u) = &usage {
                    let cost = entry.cost(u);
                    set_usage_headers(res.headers_mut(), u, cost);
                }
                (entry, usage)
            });
            Ok(res.map(|b| LoggedBody::new(b, entry)))
        }
    }
}
