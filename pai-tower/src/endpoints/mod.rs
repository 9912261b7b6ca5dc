//! The gateway's own endpoints that call no model: Claude Code's probe (`/api/hello`), the
//! caller's models (`/v1/models`) and its own view (`/pai/v1/me`); and the 404 and 405 for
//! paths and methods the gateway does not serve. Everything else goes on to the call layers.

mod me;
mod models;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use pai_core::{BoxError, Clock, Error, Store, SystemClock};
use tower::{Layer, Service};

use crate::auth::Principal;
use crate::body::{full, ResponseBody};
use crate::error::CallError;
use crate::route::{dialect_of, not_found_message, Route};

/// Answers the gateway's endpoints that call no model. See the module docs.
#[derive(Clone)]
pub struct EndpointsLayer {
    store: Arc<dyn Store>,
    prefix: Arc<str>,
    /// Where `/pai/v1/me`'s day starts.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EndpointsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointsLayer")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EndpointsLayer {
    /// `/pai/v1/me` reads the caller's usage from `store`.
    pub fn new(store: Arc<dyn Store>) -> EndpointsLayer {
        EndpointsLayer {
            store,
            prefix: Arc::from(""),
            clock: Arc::new(SystemClock),
        }
    }

    /// Tell the day `/pai/v1/me` counts usage for by `clock` (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> EndpointsLayer {
        self.clock = clock;
        self
    }

    /// Where the gateway's routes sit ([`crate::GatewayBuilder::prefix`]).
    pub fn prefix(mut self, prefix: &str) -> EndpointsLayer {
        self.prefix = Arc::from(prefix);
        self
    }
}

impl<S> Layer<S> for EndpointsLayer {
    type Service = Endpoints<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Endpoints {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`EndpointsLayer`] produces.
#[derive(Clone, Debug)]
pub struct Endpoints<S> {
    inner: S,
    layer: Arc<EndpointsLayer>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> Service<Request<B>> for Endpoints<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = CallError;
    type Future = BoxFuture<Result<Response<ResponseBody>, CallError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        let route = Route::under(&self.layer.prefix, path);
        let refuse = |e: Error| -> Self::Future { Box::pin(async move { Err(e.into()) }) };
        let Some(route) = route else {
            return refuse(Error::NotFound(not_found_message(
                &self.layer.prefix,
                req.method(),
                path,
            )));
        };
        if !route.method_allowed(req.method()) {
            return refuse(Error::MethodNotAllowed);
        }
        let principal = req.extensions().get::<Principal>().cloned();
        match (route, principal) {
            (Route::Hello, _) => {
                let body = if req.method() == Method::GET {
                    full(Bytes::from_static(b"{\"ok\":true}"))
                } else {
                    full(Bytes::new())
                };
                Box::pin(async move { Ok(Response::new(body)) })
            }
            (_, None) => refuse(Error::MissingKey),
            (Route::Models, Some(principal)) => {
                let res = models::answer(&principal, dialect_of(Some(route), req.headers()));
                Box::pin(async move { Ok(res) })
            }
            (Route::Me, Some(principal)) => {
                let (store, clock) = (self.layer.store.clone(), self.layer.clock.clone());
                Box::pin(
                    async move { Ok(me::answer(&principal, store.as_ref(), clock.as_ref()).await) },
                )
            }
            _ => {
                let fut = self.inner.call(req);
                Box::pin(async move {
                    let res = fut.await.map_err(Into::into)?;
                    Ok(res.map(|b| b.map_err(Into::into).boxed_unsync()))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
