//! The innermost service: read the body once, apply policy, walk the candidates, meter.
//!
//! Only what policy needs is parsed (`model`, `stream`, `stream_options`, the shape of
//! `messages`, the output bound); the body stays raw JSON otherwise ([`pai_core::JsonObject`]).
//! The caller's requests-per-minute limits are checked once the call is parsed
//! ([`crate::rate_limit`]). For each candidate (the model asked for, then its fallbacks; see
//! [`crate::reliability`]) the proxy bounds the output to `maxTokensPerRequest`, reserves the
//! worst case on every budget ([`crate::budget`]), checks the provider's requests per minute,
//! takes a slot towards the provider, and tries the upstream with retries.
//! Buffered answers get `x-pai-input-tokens`, `x-pai-output-tokens`, `x-pai-cached-input-tokens`
//! and `x-pai-cost-usd`; streams pass through event by event under a
//! [`crate::meter::MeterBody`]. Every call that got past authentication is recorded, answered or
//! not.

mod admit;
mod attempt;
mod candidates;

pub(crate) use attempt::too_long_error;
pub(crate) use candidates::Candidate;
mod me;
mod models;
mod parse;
pub(crate) mod policy;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use pai_core::store::CallRecord;
use pai_core::{
    BoxError, BudgetLedger, Clock, Error, Operation, PriceTable, Store, Transport, UpstreamBody,
    Usage,
};
use pai_providers::headers::client_response_headers;
use tower::Service;

use self::admit::{admit, Admission, Refused};
use self::attempt::{Answer, Failure};
use self::parse::{parse_call, read_limited, ReadError};
use crate::auth::Principal;
use crate::body::{error_response, full, ResponseBody};
use crate::budget::scopes_for;
use crate::call_id::CallId;
use crate::meter::{CallSink, MeterBody, MeterParts, RecordSlot};
use crate::metrics::Metrics;
use crate::rate_limit::{Owner, RateLimits};
use crate::reliability::{Cooldowns, Reliability, Slots};
use crate::route::{dialect_of, not_found_message, Route};
use crate::snapshot::SharedSnapshot;

/// Calls providers for authenticated requests. See the module docs.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

/// Everything a [`Proxy`] works with.
pub(crate) struct Inner {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) sink: CallSink,
    pub(crate) snapshot: SharedSnapshot,
    pub(crate) max_body_bytes: usize,
    pub(crate) reliability: Reliability,
    pub(crate) ledger: Option<Arc<dyn BudgetLedger>>,
    pub(crate) prices: Option<Arc<dyn PriceTable>>,
    pub(crate) cooldowns: Cooldowns,
    pub(crate) slots: Slots,
    /// Requests-per-minute limiters; they outlive every snapshot.
    pub(crate) rate_limits: RateLimits,
    /// Where clients reach the gateway ([`crate::GatewayBuilder::prefix`]).
    pub(crate) prefix: Arc<str>,
    /// Where finished calls are counted.
    pub(crate) metrics: Metrics,
    /// Wall-clock time ([`crate::GatewayBuilder::clock`]).
    pub(crate) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .field("reliability", &self.inner.reliability)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    pub(crate) fn from_inner(inner: Inner) -> Proxy {
        Proxy {
            inner: Arc::new(inner),
        }
    }
}

impl<B> Service<Request<B>> for Proxy
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        // Erase the body type here, outside the future, so the async code is not generic.
        let req = req.map(|body| body.map_err(Into::into).boxed_unsync());
        Box::pin(async move { Ok(inner.handle(req).await) })
    }
}

fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::ChatCompletions => "chat.completions",
        Operation::Messages => "messages",
        Operation::CountTokens => "messages.count_tokens",
        Operation::ListModels => "models",
    }
}

/// Retries and fallbacks of one call, for its headers.
#[derive(Debug, Default)]
pub(crate) struct Journey {
    pub retries: u32,
    pub fell_back_from: Option<String>,
}

impl Inner {
    async fn handle(&self, req: Request<UpstreamBody>) -> Response<ResponseBody> {
        let route = Route::under(&self.prefix, req.uri().path());
        let dialect = dialect_of(route, req.headers());
        let Some(route) = route else {
            let e = Error::NotFound(not_found_message(
                &self.prefix,
                req.method(),
                req.uri().path(),
            ));
            return error_response(&e, dialect);
        };
        if !route.method_allowed(req.method()) {
            return error_response(&Error::MethodNotAllowed, dialect);
        }
        if route == Route::Hello {
            let mut res = Response::new(full(Bytes::new()));
            if req.method() == Method::GET {
                *res.body_mut() = full(Bytes::from_static(b"{\"ok\":true}"));
            }
            return res;
        }
        let Some(principal) = req.extensions().get::<Principal>().cloned() else {
            return error_response(&Error::MissingKey, dialect);
        };
        if route == Route::Models {
            return models::answer(&principal, dialect);
        }
        if route == Route::Me {
            return me::answer(&principal, self.store.as_ref(), self.clock.as_ref()).await;
        }
        // Room for this call's record first: a recorder that falls behind slows callers down.
        let mut record_slot = match self.sink.admit().await {
            Ok(slot) => Some(slot),
            Err(e) => return error_response(&e, dialect),
        };
        let call_id = req
            .extensions()
            .get::<CallId>()
            .cloned()
            .unwrap_or_default();
        let mut record = CallRecord {
            call_id: call_id.id.clone(),
            started_at_ms: call_id.started_at_ms,
            workload: principal.workload(),
            provider: match &principal.binding {
                crate::auth::Binding::Provider(p) => p.resource.metadata.name.clone(),
                crate::auth::Binding::Agent(_) => String::new(),
            },
            access_key: principal.key_name().map(str::to_owned),
            operation: operation_name(route.operation()).to_owned(),
            client_ip: principal.client_ip.map(|ip| ip.to_string()),
            ..CallRecord::default()
        };
        let mut journey = Journey::default();
        match self
            .forward(
                route,
                req,
                &principal,
                &call_id,
                &mut record,
                &mut journey,
                &mut record_slot,
            )
            .await
        {
            Ok(res) => res,
            Err(error) => {
                record.status = error.status().as_u16();
                record.error = Some(error.to_string());
                record.duration_ms = call_id.started.elapsed().as_millis() as u64;
                self.metrics
                    .call_finished(&record, None, self.prices.as_deref());
                // Still here unless an answer took it, and an answer sends its own record.
                if let Some(slot) = record_slot {
                    slot.send(record);
                }
                let mut res = error_response(&error, dialect);
                journey_headers(res.headers_mut(), &journey);
                res
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        route: Route,
        req: Request<UpstreamBody>,
        principal: &Principal,
        call_id: &CallId,
        record: &mut CallRecord,
        journey: &mut Journey,
        record_slot: &mut Option<RecordSlot>,
    ) -> Result<Response<ResponseBody>, Error> {
        let dialect = route.operation().client_dialect();
        let (parts, body) = req.into_parts();
        let bytes = match read_limited(
            body,
            self.max_body_bytes,
            self.reliability.body_idle_timeout,
            self.reliability.body_timeout,
        )
        .await
        {
            Ok(bytes) => bytes,
            Err(ReadError::TooLarge) => {
                return Err(Error::PayloadTooLarge {
                    limit: self.max_body_bytes,
                })
            }
            Err(ReadError::TimedOut) => {
                return Err(Error::RequestTimeout(format!(
                "the request body did not arrive in time: nothing for {} s, or not all within {} s",
                self.reliability.body_idle_timeout.as_secs(),
                self.reliability.body_timeout.as_secs()
            )))
            }
            Err(ReadError::Body(e)) => {
                return Err(Error::invalid(format!(
                    "could not read the request body: {e}"
                )))
            }
        };
        // Parsing scans the whole body: a big one is parsed off the runtime.
        let parsed = if bytes.len() <= admit::INLINE_BYTES {
            parse_call(route, dialect, bytes, &parts)
        } else {
            tokio::task::spawn_blocking(move || parse_call(route, dialect, bytes, &parts))
                .await
                .map_err(|e| Error::Internal(format!("parsing the request failed: {e}")))?
        };
        let call = match parsed {
            Ok(call) => call,
            Err(refused) => {
                // The record keeps what the client named, cut to a model name's length.
                record.model = refused.model.unwrap_or_default();
                return Err(refused.error);
            }
        };
        record.model = call.model.clone();
        record.stream = call.stream;

        let snapshot = self.snapshot.current();
        self.check_principal_rate(principal, &snapshot)?;
        let candidates = candidates::for_principal(principal, &call.model, &snapshot)?;
        let mut base = Some(call);
        let deadline = Instant::now() + self.reliability.total_timeout;
        let every_one_cooling = candidates.iter().all(|c| self.cooldowns.cooling(&c.label));
        let primary = candidates.first().map(|c| c.label.clone());
        let mut last_error: Option<Error> = None;

        for (i, candidate) in candidates.iter().enumerate() {
            if !every_one_cooling && self.cooldowns.cooling(&candidate.label) {
                tracing::debug!(candidate = %candidate.label, "skipped: cooling down");
                last_error.get_or_insert_with(|| {
                    Error::Unavailable(format!(
                        "{} is cooling down after repeated failures",
                        candidate.label
                    ))
                });
                continue;
            }
            let provider = &candidate.provider.resource;
            // Each candidate may rewrite the body (model, output bound); the last one takes the
            // parsed call itself, so the common single-candidate call never copies the body.
            let mut call = if i + 1 == candidates.len() {
                match base.take() {
                    Some(call) => call,
                    None => break,
                }
            } else {
                match &base {
                    Some(call) => call.clone(),
                    None => break,
                }
            };
            call.model = candidate.model.clone();

            let limit = candidate.max_tokens_per_request();
            let bounded = limit.is_some();
            let scopes = if call.operation == Operation::CountTokens {
                Vec::new()
            } else {
                scopes_for(principal, candidate)
            };
            let Admission {
                input: estimated_input,
                bound,
                hold,
            } = match admit(self, &mut call, provider.spec.provider, scopes, limit).await {
                Ok(admission) => admission,
                Err(Refused::Limit(e)) if i == 0 => return Err(e),
                Err(Refused::Limit(e)) => {
                    last_error = Some(e);
                    continue;
                }
                Err(Refused::Budget(e)) => {
                    tracing::info!(candidate = %candidate.label, error = %e, "budget exhausted; trying the next candidate");
                    last_error = Some(e);
                    continue;
                }
                Err(Refused::Final(e)) => return Err(e),
            };
            // Like an exhausted budget, a provider at its rate sends the call to the next
            // candidate; the reservation just made is released as the hold drops.
            if let Some(n) = provider.spec.max_requests_per_minute {
                if let Err(e) = self.rate_limits.check(
                    Owner::ModelProvider,
                    &provider.metadata.name,
                    n,
                    &snapshot,
                ) {
                    tracing::info!(candidate = %candidate.label, error = %e, "provider rate limit reached; trying the next candidate");
                    drop(hold);
                    last_error = Some(e);
                    continue;
                }
            }
            let permit = match self
                .slots
                .acquire(&provider.metadata.name, &self.reliability)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            if i > 0 {
                journey.fell_back_from = primary.clone();
            }
            record.provider = provider.metadata.name.clone();
            record.model = call.model.clone();
            record.binding = candidate
                .binding
                .as_ref()
                .map(|b| b.resource.metadata.name.clone());
            match attempt::run(self, candidate, &call, deadline, journey).await {
                Ok(answer) => {
                    self.cooldowns.success(&candidate.label);
                    let parts = MeterParts {
                        hold,
                        permit: Some(permit),
                        prices: self.prices.clone(),
                        metrics: self.metrics.clone(),
                        sink: self.sink.clone(),
                        record_slot: None,
                        started: call_id.started,
                        deadline,
                        estimated_input,
                    };
                    return self.respond(
                        answer,
                        &call,
                        bound,
                        bounded,
                        record,
                        journey,
                        parts,
                        record_slot,
                    );
                }
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Exhausted(e)) => {
                    if self.cooldowns.failure(&candidate.label, &self.reliability) {
                        tracing::warn!(candidate = %candidate.label, cooldown_s = self.reliability.cooldown.as_secs(), "candidate keeps failing; cooling down");
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| Error::Unavailable("no model could take the call".to_owned())))
    }

    /// The caller's own limits: its access key's, then its agent's.
    fn check_principal_rate(
        &self,
        principal: &Principal,
        snapshot: &crate::snapshot::Snapshot,
    ) -> Result<(), Error> {
        if let Some(key) = &principal.access_key {
            if let Some(n) = key.spec.limits.max_requests_per_minute {
                self.rate_limits
                    .check(Owner::AccessKey, &key.metadata.name, n, snapshot)?;
            }
        }
        if let crate::auth::Binding::Agent(agent) = &principal.binding {
            if let Some(n) = agent.spec.rate_limits.max_requests_per_minute {
                self.rate_limits
                    .check(Owner::Agent, &agent.metadata.name, n, snapshot)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        answer: Answer,
        call: &pai_core::Call,
        bound: Option<u64>,
        bounded: bool,
        record: &mut CallRecord,
        journey: &Journey,
        mut parts: MeterParts,
        record_slot: &mut Option<RecordSlot>,
    ) -> Result<Response<ResponseBody>, Error> {
        match answer {
            Answer::Stream {
                head,
                body,
                parser,
                first,
                adapter,
            } => {
                let mut headers = client_response_headers(&head.headers);
                set_model_headers(&mut headers, call, bound.filter(|_| bounded));
                journey_headers(&mut headers, journey);
                headers.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
                record.status = head.status.as_u16();
                parts.record_slot = record_slot.take();
                let observer = adapter.stream_observer(call);
                let body = MeterBody::new(
                    body,
                    parser,
                    first,
                    observer,
                    call.client,
                    record.clone(),
                    parts,
                    &self.reliability,
                );
                let mut res = Response::new(body.boxed_unsync());
                *res.status_mut() = head.status;
                *res.headers_mut() = headers;
                Ok(res)
            }
            Answer::Json {
                head,
                body,
                adapter,
            } => {
                let usage = adapter.usage(call, &body);
                let body = adapter.response_body(call, body)?;
                let mut headers = client_response_headers(&head.headers);
                set_model_headers(&mut headers, call, bound.filter(|_| bounded));
                journey_headers(&mut headers, journey);
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                let cost = usage.and_then(|u| {
                    parts
                        .prices
                        .as_ref()
                        .and_then(|p| p.price(&call.model))
                        .map(|price| price.cost(&u))
                });
                if let Some(u) = usage {
                    set_usage_headers(&mut headers, &u, cost.map(|c| c.pico_usd));
                }
                record.status = head.status.as_u16();
                record.usage = usage;
                record.cost_pico_usd = cost.map(|c| c.pico_usd);
                record.duration_ms = parts.started.elapsed().as_millis() as u64;
                parts
                    .metrics
                    .call_finished(record, usage.as_ref(), parts.prices.as_deref());
                if let Some(hold) = parts.hold {
                    hold.settle(usage.as_ref(), cost.map(|c| c.pico_usd), &parts.sink);
                }
                if let Some(slot) = record_slot.take() {
                    slot.send(record.clone());
                }
                let mut res = Response::new(full(body));
                *res.status_mut() = head.status;
                *res.headers_mut() = headers;
                Ok(res)
            }
        }
    }
}

fn set_model_headers(headers: &mut http::HeaderMap, call: &pai_core::Call, bound: Option<u64>) {
    if let Ok(v) = HeaderValue::from_str(&call.model) {
        headers.insert("x-pai-model-id", v);
    }
    if let Some(bound) = bound {
        headers.insert("x-pai-max-output-tokens", HeaderValue::from(bound));
    }
}

fn journey_headers(headers: &mut http::HeaderMap, journey: &Journey) {
    headers.insert("x-pai-retries", HeaderValue::from(journey.retries));
    if let Some(from) = journey
        .fell_back_from
        .as_deref()
        .and_then(|f| HeaderValue::from_str(f).ok())
    {
        headers.insert("x-pai-fell-back-from", from);
    }
}

fn set_usage_headers(headers: &mut http::HeaderMap, u: &Usage, cost_pico: Option<u128>) {
    headers.insert("x-pai-input-tokens", HeaderValue::from(u.prompt_tokens()));
    headers.insert("x-pai-output-tokens", HeaderValue::from(u.output));
    headers.insert(
        "x-pai-cached-input-tokens",
        HeaderValue::from(u.cached_input),
    );
    if let Some(pico) = cost_pico {
        let cost = pai_core::Cost { pico_usd: pico };
        if let Ok(v) = HeaderValue::from_str(&cost.to_string()) {
            headers.insert("x-pai-cost-usd", v);
        }
    }
}
