//! The record of one call, and the one place a call is finished.
//!
//! [`CallLogLayer`] opens a [`CallLog`] for every authenticated request, after taking room for
//! its record ([`CallSink::admit`]), and puts it in the request's extensions. The layers below
//! write what they learn into it (the parse layer the model, the fallback layer the candidate,
//! the budget layer its reservation, the provider limit its slot). Whoever ends the call takes
//! the log's [`LogEntry`] and finishes it, once:
//!
//! - the meter, when an upstream answer ends (body end, error, or the client dropping it);
//! - the call log layer, when the call fails (an error on its way out), or when an application's
//!   own handler answered (at the end of that body, with the [`Usage`] the handler put in the
//!   response's extensions, if any);
//! - the entry's `Drop`, when the request future is dropped before any of these (the client
//!   went away while the gateway waited): recorded as 499.
//!
//! [`LogEntry::finish`] settles the budget with what was used, prices the usage, releases the
//! slot towards the provider, counts the metrics and sends the record: cost is computed there
//! and nowhere else.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use http_body_util::{BodyExt, Full};
//! use pai_tower::{CallLogLayer, CallSink, RescueLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Arc::new(pai_store::MemoryStore::new());
//! let handler = tower::service_fn(|_req: http::Request<Full<bytes::Bytes>>| async {
//!     let mut res = http::Response::new(Full::new(bytes::Bytes::from_static(b"{}")));
//!     // The handler says what the call used; the log prices and records it.
//!     res.extensions_mut().insert(pai_core::Usage { input: 12, output: 3, ..Default::default() });
//!     Ok::<_, std::convert::Infallible>(res)
//! });
//! let service = ServiceBuilder::new()
//!     .layer(RescueLayer::new())
//!     .layer(CallLogLayer::new(CallSink::spawn(store.clone())))
//!     .service(handler);
//! let mut req = http::Request::post("/summarize").body(Full::new(bytes::Bytes::new())).unwrap();
//! // An authenticated caller, as AuthLayer would have found it.
//! let agent: pai_core::resource::Agent = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "app"}, "spec": {}
//! })).unwrap();
//! req.extensions_mut().insert(pai_tower::Principal {
//!     access_key: None,
//!     binding: pai_tower::Binding::Agent(Arc::new(agent)),
//!     client_ip: None,
//! });
//! let res = service.oneshot(req).await.unwrap();
//! assert_eq!(res.headers()["x-pai-input-tokens"], "12");
//! res.into_body().collect().await.unwrap();
//! # });
//! ```

mod body;
mod layer;

pub use body::LoggedBody;
pub use layer::{CallLogLayer, CallLogService};

use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::HeaderValue;
use pai_core::store::CallRecord;
use pai_core::{Cost, PriceTable, Usage};
use tokio::sync::OwnedSemaphorePermit;

use crate::budget::Hold;
use crate::meter::{CallSink, RecordSlot};
use crate::metrics::Metrics;
use crate::trace::CallTrace;

/// The log of one call in progress: a handle in the request's extensions that the layers write
/// into, until one of them takes the [`LogEntry`] to finish it. See the module docs.
#[derive(Clone, Debug)]
pub struct CallLog(Arc<Mutex<Option<LogEntry>>>);

impl CallLog {
    pub(crate) fn new(entry: LogEntry) -> CallLog {
        CallLog(Arc::new(Mutex::new(Some(entry))))
    }

    /// Change the record in progress (no-op once the call is finished).
    pub fn record(&self, f: impl FnOnce(&mut CallRecord)) {
        self.with(|e| {
            if let Some(r) = e.record.as_mut() {
                f(r);
            }
        });
    }

    /// Keep a budget reservation until the call finishes; the finish settles it.
    pub(crate) fn hold(&self, hold: Hold, estimated_input: u64) {
        self.with(|e| {
            e.hold = Some(hold);
            e.estimated_input = estimated_input;
        });
    }

    /// Keep a slot towards the provider until the call finishes.
    pub(crate) fn permit(&self, permit: OwnedSemaphorePermit) {
        self.with(|e| e.permit = Some(permit));
    }

    /// Give back what the current candidate held (its reservation, released unused, and its
    /// slot), so the next candidate starts clean: the reservation is released before this
    /// returns, or the next candidate's, on the same budgets, would count it too.
    pub(crate) async fn release_candidate(&self) {
        let (hold, permit) = {
            let Ok(mut guard) = self.0.lock() else {
                return;
            };
            match guard.as_mut() {
                Some(e) => (e.hold.take(), e.permit.take()),
                None => (None, None),
            }
        };
        drop(permit);
        if let Some(hold) = hold {
            hold.release().await;
        }
    }

    /// Take the entry to finish the call; `None` when someone already did.
    pub fn take(&self) -> Option<LogEntry> {
        self.0.lock().ok().and_then(|mut e| e.take())
    }

    fn with(&self, f: impl FnOnce(&mut LogEntry)) {
        if let Ok(mut guard) = self.0.lock() {
            if let Some(e) = guard.as_mut() {
                f(e);
            }
        }
    }
}

/// A call's record and everything held for it, finished exactly once ([`LogEntry::finish`]).
pub struct LogEntry {
    record: Option<CallRecord>,
    slot: Option<RecordSlot>,
    hold: Option<Hold>,
    permit: Option<OwnedSemaphorePermit>,
    estimated_input: u64,
    started: Instant,
    prices: Option<Arc<dyn PriceTable>>,
    metrics: Metrics,
    sink: CallSink,
    trace: Option<CallTrace>,
}

impl std::fmt::Debug for LogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogEntry")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl LogEntry {
    pub(crate) fn new(
        record: CallRecord,
        slot: RecordSlot,
        started: Instant,
        prices: Option<Arc<dyn PriceTable>>,
        metrics: Metrics,
        sink: CallSink,
    ) -> LogEntry {
        LogEntry {
            record: Some(record),
            slot: Some(slot),
            hold: None,
            permit: None,
            estimated_input: 0,
            started,
            prices,
            metrics,
            sink,
            trace: None,
        }
    }

    /// End `trace`'s call span when the call is finished.
    pub(crate) fn trace(&mut self, trace: CallTrace) {
        trace.claim();
        self.trace = Some(trace);
    }

    /// The model the call is for, as recorded.
    pub fn model(&self) -> &str {
        self.record.as_ref().map_or("", |r| r.model.as_str())
    }

    /// The input estimated before the call (0 when nothing needed it): what a stream cut before
    /// upstream reported its usage is charged.
    pub fn estimated_input(&self) -> u64 {
        self.estimated_input
    }

    /// What `usage` costs at this call's model's price, if it has one.
    pub fn cost(&self, usage: &Usage) -> Option<Cost> {
        cost(self.prices.as_ref(), self.model(), usage)
    }

    /// Add what guards said of the answer to the record, after the request's verdicts.
    pub(crate) fn add_guards(&mut self, mut found: Vec<pai_core::GuardVerdict>) {
        if let Some(r) = self.record.as_mut() {
            r.guards.append(&mut found);
        }
    }

    /// Set the status the client received.
    pub fn set_status(&mut self, status: u16) {
        if let Some(r) = self.record.as_mut() {
            r.status = status;
        }
    }

    /// Finish the call: settle its budget with `usage`, price it, release its slot, count it
    /// and send its record. Only the first call does anything.
    pub fn finish(&mut self, usage: Option<Usage>, error: Option<String>) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        let cost = usage
            .as_ref()
            .and_then(|u| cost(self.prices.as_ref(), &record.model, u));
        record.usage = usage;
        record.cost_pico_usd = cost.map(|c| c.pico_usd);
        if error.is_some() {
            record.error = error;
        }
        record.duration_ms = self.started.elapsed().as_millis() as u64;
        if let Some(hold) = self.hold.take() {
            hold.settle(usage.as_ref(), cost.map(|c| c.pico_usd), &self.sink);
        }
        self.permit.take();
        self.metrics
            .call_finished(&record, usage.as_ref(), self.prices.as_deref());
        if let Some(trace) = self.trace.take() {
            trace.finish(&record, usage.as_ref(), cost);
        }
        if let Some(slot) = self.slot.take() {
            slot.send(record);
        }
    }

    /// Finish a call that failed with `error`.
    pub fn fail(&mut self, error: &pai_core::Error) {
        self.set_status(error.status().as_u16());
        self.finish(None, Some(error.to_string()));
    }
}

impl Drop for LogEntry {
    fn drop(&mut self) {
        if self.record.is_some() {
            // 499: the client closed the request before it was answered (nginx's code).
            self.set_status(499);
            self.finish(
                None,
                Some("client disconnected before the call was answered".to_owned()),
            );
        }
    }
}

/// What `usage` of `model` costs, when the model has a price: the one place usage becomes
/// dollars.
pub(crate) fn cost(
    prices: Option<&Arc<dyn PriceTable>>,
    model: &str,
    usage: &Usage,
) -> Option<Cost> {
    Some(prices?.price(model)?.cost(usage))
}

/// `x-pai-input-tokens`, `x-pai-output-tokens`, `x-pai-cached-input-tokens` and, when the
/// model has a price, `x-pai-cost-usd`.
pub(crate) fn set_usage_headers(headers: &mut http::HeaderMap, u: &Usage, cost: Option<Cost>) {
    use crate::headers::{CACHED_INPUT_TOKENS, COST_USD, INPUT_TOKENS, OUTPUT_TOKENS};
    headers.insert(INPUT_TOKENS, HeaderValue::from(u.prompt_tokens()));
    headers.insert(OUTPUT_TOKENS, HeaderValue::from(u.output));
    headers.insert(CACHED_INPUT_TOKENS, HeaderValue::from(u.cached_input));
    if let Some(v) = cost.and_then(|c| HeaderValue::from_str(&c.to_string()).ok()) {
        headers.insert(COST_USD, v);
    }
}

#[cfg(test)]
mod tests;
