//! The per-connection front of the gateway listener: answers `GET /healthz` itself, and hands
//! every other request to the gateway with the peer address attached.
//!
//! It is a hyper service (called by `&self`, one per connection) wrapping the tower service, so
//! the hot path adds one clone of the gateway handle and no allocation or boxing. Each request
//! also takes the connection off probation (see the listener): it has said something.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{self, Either, MapOk, Ready, TryFutureExt};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use pai_tower::PeerAddr;
use tower::util::Oneshot;
use tower::ServiceExt;

use super::listener::Ticket;

/// The response body of the gateway listener: the gateway's own, or the health check's.
pub type FrontBody<B> = http_body_util::Either<B, Full<Bytes>>;

/// One connection's view of the gateway.
#[derive(Clone, Debug)]
pub struct Front<S> {
    inner: S,
    peer: SocketAddr,
    ticket: Arc<Ticket>,
}

impl<S> Front<S> {
    /// Serve the connection from `peer`, on probation with `ticket`, with `inner`.
    pub fn new(inner: S, peer: SocketAddr, ticket: Arc<Ticket>) -> Front<S> {
        Front {
            inner,
            peer,
            ticket,
        }
    }
}

type ToFront<B> = fn(Response<B>) -> Response<FrontBody<B>>;

impl<S, ReqBody, B> hyper::service::Service<Request<ReqBody>> for Front<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<B>, Error = Infallible> + Clone,
{
    type Response = Response<FrontBody<B>>;
    type Error = Infallible;
    type Future = Either<
        Ready<Result<Self::Response, Infallible>>,
        MapOk<Oneshot<S, Request<ReqBody>>, ToFront<B>>,
    >;

    fn call(&self, mut request: Request<ReqBody>) -> Self::Future {
        self.ticket.prove();
        if request.uri().path() == "/healthz"
            && matches!(*request.method(), Method::GET | Method::HEAD)
        {
            return Either::Left(future::ready(Ok(healthz())));
        }
        request.extensions_mut().insert(PeerAddr(self.peer));
        let to_front: ToFront<B> = |r| r.map(http_body_util::Either::Left);
        Either::Right(self.inner.clone().oneshot(request).map_ok(to_front))
    }
}

fn healthz<B>() -> Response<FrontBody<B>> {
    let mut response = Response::new(http_body_util::Either::Right(Full::new(
        Bytes::from_static(b"ok"),
    )));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::service::Service as _;

    fn echo_peer() -> impl tower::Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        tower::service_fn(|req: Request<Full<Bytes>>| async move {
            let peer = req
                .extensions()
                .get::<PeerAddr>()
                .map(|p| p.0.to_string())
                .unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "{} from {peer}",
                req.uri().path()
            )))))
        })
    }

    async fn text<B: hyper::body::Body>(response: Response<B>) -> String
    where
        B::Error: std::fmt::Debug,
    {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn healthz_is_answered_without_the_gateway() {
        let front = Front::new(
            echo_peer(),
            "10.0.0.1:5000".parse().unwrap(),
            Arc::default(),
        );
        let req = Request::get("/healthz").body(Full::default()).unwrap();
        let response = front.call(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "ok");
    }

    #[tokio::test]
    async fn everything_else_reaches_the_gateway_with_the_peer_address() {
        let front = Front::new(
            echo_peer(),
            "10.0.0.1:5000".parse().unwrap(),
            Arc::default(),
        );
        let req = Request::post("/ext/v1/chat/completions")
            .body(Full::default())
            .unwrap();
        let response = front.call(req).await.unwrap();
        assert_eq!(
            text(response).await,
            "/ext/v1/chat/completions from 10.0.0.1:5000"
        );
        let req = Request::post("/healthz").body(Full::default()).unwrap();
        let response = front.call(req).await.unwrap();
        assert_eq!(text(response).await, "/healthz from 10.0.0.1:5000");
    }
}
