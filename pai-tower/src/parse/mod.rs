//! Reads the request body once, within its limits, into a [`Call`]: what policy needs (model,
//! stream, output bound, the messages' shape) parsed, the rest kept as raw JSON.
//!
//! The route fixes the client's dialect (`/chat/completions` is OpenAI's, `/messages`
//! Anthropic's); around an application's own handler, [`ParseLayer::operation`] says which
//! request shape to expect. The body is refused with 413 past its size limit and 408 when it
//! stalls; a big body is parsed on the blocking pool. The layers below find the call as an
//! `Arc<Call>` in the request's extensions, and the body itself, whole, as a `Full<Bytes>`
//! (neither body nor headers after [`ParseLayer::call_only`]).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use http_body_util::Full;
//! use pai_tower::{ParseLayer, RescueLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let handler = tower::service_fn(|req: http::Request<Full<bytes::Bytes>>| async move {
//!     let call = req.extensions().get::<Arc<pai_core::Call>>().cloned();
//!     let model = call.map(|c| c.model.clone()).unwrap_or_default();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(bytes::Bytes::from(model))))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(RescueLayer::new())
//!     .layer(ParseLayer::new().operation(pai_core::Operation::ChatCompletions))
//!     .service(handler);
//! let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
//! let req = http::Request::post("/summarize").body(Full::new(bytes::Bytes::from(body))).unwrap();
//! assert_eq!(service.clone().oneshot(req).await.unwrap().status(), 200);
//! let req = http::Request::post("/summarize").body(Full::new(bytes::Bytes::from("{"))).unwrap();
//! assert_eq!(service.oneshot(req).await.unwrap().status(), 400);
//! # });
//! ```

mod read;

pub(crate) use read::{bound_output, choices, output_bound, read_limited, ReadError};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use pai_core::{BoxError, Error, Operation};
use tower::{Layer, Service};

use self::read::parse_call;
use crate::call_log::CallLog;
use crate::error::CallError;
use crate::gateway::DEFAULT_MAX_BODY_BYTES;
use crate::route::Route;

/// Bodies up to this size are parsed on the runtime thread (under about 100 µs); bigger ones
/// on the blocking pool, whose hand-off costs more than parsing a smaller body does (a 16 KB
/// body cost 60 µs more CPU parsed there than inline).
pub(crate) const INLINE_BYTES: usize = 64 << 10;

/// Reads and parses the request body once. See the module docs.
#[derive(Clone, Debug)]
pub struct ParseLayer {
    max_body_bytes: usize,
    idle: Duration,
    total: Duration,
    prefix: Arc<str>,
    operation: Option<Operation>,
    keep_body: bool,
}

impl Default for ParseLayer {
    fn default() -> Self {
        let reliability = crate::Reliability::default();
        ParseLayer {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            idle: reliability.body_idle_timeout,
            total: reliability.body_timeout,
            prefix: Arc::from(""),
            operation: None,
            keep_body: true,
        }
    }
}

impl ParseLayer {
    /// Bodies up to 32 MiB, the routes' operations, the default body timeouts.
    pub fn new() -> ParseLayer {
        ParseLayer::default()
    }

    /// The largest body accepted (413 above it).
    pub fn max_body_bytes(mut self, limit: usize) -> ParseLayer {
        self.max_body_bytes = limit;
        self
    }

    /// 408 when no data comes for `idle`, or the body is not all there within `total`.
    pub fn timeouts(mut self, idle: Duration, total: Duration) -> ParseLayer {
        self.idle = idle;
        self.total = total;
        self
    }

    /// Where the gateway's routes sit ([`crate::GatewayBuilder::prefix`]).
    pub fn prefix(mut self, prefix: &str) -> ParseLayer {
        self.prefix = Arc::from(prefix);
        self
    }

    /// Read every request as this operation, whatever its path (for an application's own
    /// route). Without it, a path that is no gateway route is refused with 404.
    pub fn operation(mut self, operation: Operation) -> ParseLayer {
        self.operation = Some(operation);
        self
    }
}

impl ParseLayer {
    /// Hand the layers below the [`Call`](pai_core::Call) and the request's extensions only:
    /// an empty body and no headers (the call keeps the headers an upstream may see). The
    /// bytes are then not held twice for the whole call, and a retry or a fallback copies
    /// less. The gateway does this; its layers below parse read nothing else.
    pub fn call_only(mut self) -> ParseLayer {
        self.keep_body = false;
        self
    }
}

impl<S> Layer<S> for ParseLayer {
    type Service = Parse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Parse {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`ParseLayer`] produces.
#[derive(Clone, Debug)]
pub struct Parse<S> {
    inner: S,
    layer: Arc<ParseLayer>,
}

fn route_for(op: Operation) -> Route {
    match op {
        Operation::ChatCompletions => Route::ChatCompletions,
        Operation::Messages => Route::Messages,
        Operation::CountTokens => Route::CountTokens,
        Operation::ListModels => Route::Models,
    }
}

impl<S, B, RB> Service<Request<B>> for Parse<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, CallError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut inner = crate::service::take_ready(&mut self.inner);
        let layer = self.layer.clone();
        Box::pin(async move {
            let route = match layer.operation {
                Some(op) => route_for(op),
                None => Route::under(&layer.prefix, req.uri().path()).ok_or_else(|| {
                    Error::NotFound(crate::route::not_found_message(
                        &layer.prefix,
                        req.method(),
                        req.uri().path(),
                    ))
                })?,
            };
            let dialect = route.operation().client_dialect();
            let (mut parts, body) = req.into_parts();
            let body = body.map_err(Into::into).boxed_unsync();
            let bytes = read_limited(body, layer.max_body_bytes, layer.idle, layer.total)
                .await
                .map_err(|e| match e {
                    ReadError::TooLarge => Error::PayloadTooLarge {
                        limit: layer.max_body_bytes,
                    },
                    ReadError::TimedOut => Error::RequestTimeout(format!(
                        "the request body did not arrive in time: nothing for {} s, or not all within {} s",
                        layer.idle.as_secs(),
                        layer.total.as_secs()
                    )),
                    ReadError::Body(e) => {
                        Error::invalid(format!("could not read the request body: {e}"))
                    }
                })?;
            let log = parts.extensions.get::<CallLog>().cloned();
            // Parsing scans the whole body: a big one is parsed off the runtime.
            let kept = if layer.keep_body {
                bytes.clone()
            } else {
                Bytes::new()
            };
            let parsed = if bytes.len() <= INLINE_BYTES {
                parse_call(route, dialect, bytes, &parts.headers, &parts.uri)
            } else {
                let (headers, uri) = (parts.headers.clone(), parts.uri.clone());
                tokio::task::spawn_blocking(move || {
                    parse_call(route, dialect, bytes, &headers, &uri)
                })
                .await
                .map_err(|e| Error::Internal(format!("parsing the request failed: {e}")))?
            };
            let call = match parsed {
                Ok(call) => call,
                Err(refused) => {
                    // The record keeps what the client named, cut to a model name's length.
                    if let Some(log) = &log {
                        log.record(|r| r.model = refused.model.unwrap_or_default());
                    }
                    return Err(refused.error.into());
                }
            };
            if let Some(log) = &log {
                log.record(|r| {
                    r.model = call.model.clone();
                    r.stream = call.stream;
                });
            }
            parts.extensions.insert(Arc::new(call));
            if !layer.keep_body {
                parts.headers = http::HeaderMap::new();
            }
            let req = Request::from_parts(parts, Full::new(kept));
            inner.call(req).await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests;
