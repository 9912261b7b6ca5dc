//! The innermost service: read the body once, apply policy, call the provider, meter the answer.
//!
//! Only what policy needs is parsed (`model`, `stream`, `stream_options`, the shape of
//! `messages`, `max_tokens`); the body stays raw JSON otherwise ([`pai_core::JsonObject`]).
//! Buffered answers get `x-pai-input-tokens` / `x-pai-output-tokens`; streams pass through event
//! by event under a [`crate::meter::MeterBody`]. Every call that got past authentication is
//! recorded, answered or not.

mod me;
mod models;
pub(crate) mod policy;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use bytes::BytesMut;
use http::{HeaderValue, Method, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use pai_core::store::CallRecord;
use pai_core::{
    BoxError, Call, Dialect, Error, JsonObject, Operation, Store, Transport, TransportError,
    UpstreamBody, Usage,
};
use pai_providers::headers::{client_response_headers, forwardable_request_headers};
use tower::Service;

use crate::auth::Principal;
use crate::body::{error_response, full, ResponseBody};
use crate::call_id::CallId;
use crate::meter::{CallSink, MeterBody};
use crate::route::{dialect_of, Route};

/// Largest upstream error body read, and largest buffered answer accepted.
const MAX_UPSTREAM_ERROR_BYTES: usize = 1 << 20;
const MAX_UPSTREAM_BODY_BYTES: usize = 256 << 20;

/// Calls providers for authenticated requests. See the module docs.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<dyn Transport>,
    store: Arc<dyn Store>,
    sink: CallSink,
    max_body_bytes: usize,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy sending upstream through `transport` and recording calls to `sink`; `store`
    /// answers a key's questions about itself (`GET /ext/pai/v1/me`).
    pub fn new(
        transport: Arc<dyn Transport>,
        store: Arc<dyn Store>,
        sink: CallSink,
        max_body_bytes: usize,
    ) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                transport,
                store,
                sink,
                max_body_bytes,
            }),
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

impl Inner {
    async fn handle(&self, req: Request<UpstreamBody>) -> Response<ResponseBody> {
        let route = Route::from_path(req.uri().path());
        let dialect = dialect_of(route, req.headers());
        let Some(route) = route else {
            let e = Error::NotFound(format!(
                "no such endpoint: {} {}; pai serves /ext/v1/chat/completions, /ext/v1/messages, /ext/v1/messages/count_tokens and /ext/v1/models",
                req.method(),
                req.uri().path()
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
            return me::answer(&principal, self.store.as_ref()).await;
        }
        let call_id = req
            .extensions()
            .get::<CallId>()
            .cloned()
            .unwrap_or_default();
        let mut record = CallRecord {
            call_id: call_id.id.clone(),
            started_at_ms: call_id.started_at_ms,
            workload: principal.workload(),
            provider: principal.provider.resource.metadata.name.clone(),
            access_key: Some(principal.access_key.metadata.name.clone()),
            operation: operation_name(route.operation()).to_owned(),
            client_ip: principal.client_ip.map(|ip| ip.to_string()),
            ..CallRecord::default()
        };
        match self
            .forward(route, req, &principal, &call_id, &mut record)
            .await
        {
            Ok(res) => res,
            Err(error) => {
                record.status = error.status().as_u16();
                record.error = Some(error.to_string());
                record.duration_ms = call_id.started.elapsed().as_millis() as u64;
                self.sink.send(record);
                error_response(&error, dialect)
            }
        }
    }

    async fn forward(
        &self,
        route: Route,
        req: Request<UpstreamBody>,
        principal: &Principal,
        call_id: &CallId,
        record: &mut CallRecord,
    ) -> Result<Response<ResponseBody>, Error> {
        let dialect = route.operation().client_dialect();
        let (parts, body) = req.into_parts();
        let bytes = match read_limited(body, self.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(ReadError::TooLarge) => {
                return Err(Error::PayloadTooLarge {
                    limit: self.max_body_bytes,
                })
            }
            Err(ReadError::Body(e)) => {
                return Err(Error::invalid(format!(
                    "could not read the request body: {e}"
                )))
            }
        };
        let call = parse_call(route, dialect, bytes, &parts)?;
        record.model = call.model.clone();
        record.stream = call.stream;

        let provider = &principal.provider;
        policy::check_model(&provider.resource, &principal.access_key, &call.model)?;
        let adapter = provider.adapter.clone().ok_or_else(|| {
            Error::NotImplemented(format!(
                "ModelProvider {:?} is of kind {}, which this gateway cannot call yet",
                provider.resource.metadata.name, provider.resource.spec.provider
            ))
        })?;
        let credentials = provider.credentials.as_ref().map_err(|why| {
            Error::Unavailable(format!("the gateway cannot call this provider: {why}"))
        })?;
        let upstream_req = adapter.build_request(&call, credentials)?;

        let upstream = match self.transport.send(upstream_req).await {
            Ok(res) => res,
            Err(TransportError::Timeout(why)) => return Err(Error::UpstreamTimeout(why)),
            Err(e) => return Err(Error::UpstreamUnreachable(e.to_string())),
        };
        let status = upstream.status();
        let (up_parts, up_body) = upstream.into_parts();

        if !status.is_success() {
            let body = read_limited(up_body, MAX_UPSTREAM_ERROR_BYTES)
                .await
                .unwrap_or_default();
            let error = adapter.upstream_error(&call, status, &up_parts.headers, &body);
            tracing::info!(call_id = %call_id.id, upstream_status = status.as_u16(), status = error.status().as_u16(), "upstream refused the call");
            return Err(error);
        }

        let mut headers = client_response_headers(&up_parts.headers);
        if let Ok(v) = HeaderValue::from_str(&call.model) {
            headers.insert("x-pai-model-id", v);
        }
        let is_sse = up_parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));

        if is_sse {
            record.status = status.as_u16();
            let observer = adapter.stream_observer(&call);
            let body = MeterBody::new(
                up_body,
                observer,
                dialect,
                record.clone(),
                self.sink.clone(),
                call_id.started,
            );
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            let mut res = Response::new(body.boxed_unsync());
            *res.status_mut() = status;
            *res.headers_mut() = headers;
            return Ok(res);
        }

        let body = read_limited(up_body, MAX_UPSTREAM_BODY_BYTES)
            .await
            .map_err(|e| {
                Error::UpstreamUnreachable(format!("the upstream response broke off: {e}"))
            })?;
        let usage = adapter.usage(&call, &body);
        let body = adapter.response_body(&call, body)?;
        if let Some(u) = usage {
            set_usage_headers(&mut headers, &u);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        record.status = status.as_u16();
        record.usage = usage;
        record.duration_ms = call_id.started.elapsed().as_millis() as u64;
        self.sink.send(record.clone());
        let mut res = Response::new(full(body));
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        Ok(res)
    }
}

fn set_usage_headers(headers: &mut http::HeaderMap, u: &Usage) {
    headers.insert("x-pai-input-tokens", HeaderValue::from(u.prompt_tokens()));
    headers.insert("x-pai-output-tokens", HeaderValue::from(u.output));
    headers.insert(
        "x-pai-cached-input-tokens",
        HeaderValue::from(u.cached_input),
    );
}

/// Parse what policy needs from the body, once.
fn parse_call(
    route: Route,
    dialect: Dialect,
    bytes: Bytes,
    parts: &http::request::Parts,
) -> Result<Call, Error> {
    let body = JsonObject::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("the request body is not a valid JSON object: {e}")))?;
    let model = match body.get::<String>("model") {
        Some(Ok(m)) if !m.trim().is_empty() => m,
        Some(Ok(_)) | None => return Err(Error::invalid_param("model", "model is required")),
        Some(Err(_)) => return Err(Error::invalid_param("model", "model must be a string")),
    };
    let stream = match body.get::<bool>("stream") {
        None => false,
        Some(Ok(b)) => b,
        Some(Err(_)) => {
            return Err(Error::invalid_param(
                "stream",
                "stream must be true or false",
            ))
        }
    };
    match body.raw("messages") {
        Some(raw) if raw.get().trim_start().starts_with('[') => {}
        _ => {
            return Err(Error::invalid_param(
                "messages",
                "messages is required and must be an array",
            ))
        }
    }
    if route == Route::Messages {
        match body.get::<u64>("max_tokens") {
            Some(Ok(n)) if n >= 1 => {}
            Some(_) => {
                return Err(Error::invalid_param(
                    "max_tokens",
                    "max_tokens must be a positive integer",
                ))
            }
            None => {
                return Err(Error::invalid_param(
                    "max_tokens",
                    "max_tokens: Field required",
                ))
            }
        }
    }
    let client_wants_usage = route == Route::ChatCompletions
        && stream
        && body
            .get::<serde_json::Value>("stream_options")
            .and_then(Result::ok)
            .and_then(|v| v.get("include_usage").and_then(serde_json::Value::as_bool))
            == Some(true);
    Ok(Call {
        operation: route.operation(),
        client: dialect,
        model,
        stream: stream && route != Route::CountTokens,
        client_wants_usage,
        body,
        headers: forwardable_request_headers(&parts.headers),
        query: parts.uri.query().map(str::to_owned),
    })
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("body exceeds the limit")]
    TooLarge,
    #[error("{0}")]
    Body(BoxError),
}

/// Read a body whole, refusing it as soon as it passes `limit` bytes.
async fn read_limited(mut body: UpstreamBody, limit: usize) -> Result<Bytes, ReadError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Body)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ReadError::TooLarge);
            }
            if buf.is_empty() && body.is_end_stream() {
                return Ok(data);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
