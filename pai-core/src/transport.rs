//! The upstream transport: how the gateway reaches providers.
//!
//! The default (hyper-util client with rustls) lives in `pai-providers`; tests and embedders can
//! plug their own, for instance one that routes through a corporate proxy or an in-process mock.

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

/// A boxed error, as http bodies carry them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming response body from upstream.
pub type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why an upstream call produced no response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The connection could not be made or broke before a response.
    #[error("connection failed: {0}")]
    Connect(String),
    /// No response in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The request could not be sent as built.
    #[error("bad upstream request: {0}")]
    InvalidRequest(String),
}

/// Sends one request upstream and returns the response as soon as its head arrives.
///
/// Contract: the body of the response streams; the transport must not buffer it. Errors carry
/// no credentials.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Send `request`.
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<UpstreamBody>, TransportError>;
}
