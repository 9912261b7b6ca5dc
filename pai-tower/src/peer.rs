//! Sets [`PeerAddr`] from whatever the server records about the connection.
//!
//! Auth judges `allowedCIDRs` by the [`PeerAddr`] request extension and refuses restricted keys
//! without it (fail closed). `pai serve` inserts it itself; a server that records the peer in a
//! type of its own — axum's `ConnectInfo<SocketAddr>` — gets it copied over by this layer,
//! without pai depending on that server.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::net::SocketAddr;
//! use http::{Request, Response};
//! use pai_tower::{PeerAddr, PeerAddrLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! // What a server records about the connection (axum: `ConnectInfo<SocketAddr>`).
//! #[derive(Clone)]
//! struct ConnectInfo(SocketAddr);
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let svc = ServiceBuilder::new()
//!     .layer(PeerAddrLayer::from_extension(|ConnectInfo(addr): &ConnectInfo| *addr))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.to_string());
//!         Ok::<_, Infallible>(Response::new(peer.unwrap_or_default()))
//!     }));
//!
//! let mut req = Request::new(());
//! req.extensions_mut().insert(ConnectInfo("127.0.0.1:4000".parse().unwrap()));
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.body(), "127.0.0.1:4000");
//! # });
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, Request};
use tower::{Layer, Service};

use crate::auth::PeerAddr;

type Extract = dyn Fn(&Extensions) -> Option<SocketAddr> + Send + Sync;

/// Inserts [`PeerAddr`] from another request extension. See the module docs.
#[derive(Clone)]
pub struct PeerAddrLayer {
    extract: Arc<Extract>,
}

impl PeerAddrLayer {
    /// Read the peer from the extension of type `T`, with `f`. Requests without a `T` are
    /// passed on without a [`PeerAddr`], and one already present is kept.
    pub fn from_extension<T, F>(f: F) -> PeerAddrLayer
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> SocketAddr + Send + Sync + 'static,
    {
        PeerAddrLayer {
            extract: Arc::new(move |ext: &Extensions| ext.get::<T>().map(&f)),
        }
    }
}

impl fmt::Debug for PeerAddrLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerAddrLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for PeerAddrLayer {
    type Service = SetPeerAddr<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetPeerAddr {
            inner,
            extract: self.extract.clone(),
        }
    }
}

/// The service [`PeerAddrLayer`] produces.
#[derive(Clone)]
pub struct SetPeerAddr<S> {
    inner: S,
    extract: Arc<Extract>,
}

impl<S: fmt::Debug> fmt::Debug for SetPeerAddr<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetPeerAddr")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for SetPeerAddr<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if req.extensions().get::<PeerAddr>().is_none() {
            if let Some(addr) = (self.extract)(req.extensions()) {
                req.extensions_mut().insert(PeerAddr(addr));
            }
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{service_fn, ServiceExt};

    #[derive(Clone)]
    struct Info(SocketAddr);

    async fn peer_seen(req: Request<()>) -> Option<SocketAddr> {
        let svc = PeerAddrLayer::from_extension(|Info(a): &Info| *a).layer(service_fn(
            |req: Request<()>| async move {
                Ok::<_, Infallible>(req.extensions().get::<PeerAddr>().map(|p| p.0))
            },
        ));
        svc.oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn copies_the_servers_peer_keeps_one_already_set_and_invents_none() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:2".parse().unwrap();
        let mut req = Request::new(());
        req.extensions_mut().insert(Info(a));
        assert_eq!(peer_seen(req).await, Some(a));

        let mut req = Request::new(());
        req.extensions_mut().insert(Info(a));
        req.extensions_mut().insert(PeerAddr(b));
        assert_eq!(peer_seen(req).await, Some(b));

        assert_eq!(peer_seen(Request::new(())).await, None);
    }
}
