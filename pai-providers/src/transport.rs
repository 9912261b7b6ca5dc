//! The default upstream transport: a pooled hyper client over rustls.
//!
//! [`HttpTransport`] speaks HTTP/1.1 and HTTP/2 (chosen by ALPN) over TLS with the Mozilla root
//! certificates, and plain HTTP for endpoints such as a vLLM server on the local network. The
//! TLS configuration names its crypto provider (ring) explicitly, so no process-wide provider has
//! to be installed first and embedding applications that install another are not disturbed.
//!
//! The response is returned as soon as its head arrives and its body streams: nothing is
//! buffered, so the first token reaches the client as soon as the upstream sends it.
//! [`TransportOptions::response_timeout`] bounds the wait for the head only; a stream may then
//! run as long as the upstream keeps it going.
//!
//! Errors say what failed (connection refused, DNS, TLS, timeout) but never the URL, whose query
//! could hold a key, nor any header.

use std::error::Error as StdError;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pai_core::{BoxError, Transport, TransportError, UpstreamBody};

/// How [`HttpTransport`] waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportOptions {
    /// How long a TCP connection may take to open.
    pub connect_timeout: Duration,
    /// How long to wait for the response head, connecting included. A non-streamed completion
    /// sends its head only when the whole answer is ready, so this must cover the slowest one.
    pub response_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
}

impl Default for TransportOptions {
    /// 10 s to connect, 10 minutes to the response head (the official SDKs' own default),
    /// 90 s of idle pooling.
    fn default() -> TransportOptions {
        TransportOptions {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(600),
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}

/// The default [`Transport`]. See the module docs.
///
/// Cloning is cheap and clones share the connection pool.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    options: TransportOptions,
}

impl HttpTransport {
    /// A transport with these options. Building needs no runtime; sending runs on Tokio.
    pub fn new(options: TransportOptions) -> Result<HttpTransport, TransportError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| TransportError::Connect(format!("TLS setup failed: {e}")))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(HttpTransport { client, options })
    }

    /// A transport with [`TransportOptions::default`].
    pub fn with_defaults() -> Result<HttpTransport, TransportError> {
        HttpTransport::new(TransportOptions::default())
    }

    /// The options it was built with.
    pub fn options(&self) -> TransportOptions {
        self.options
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<UpstreamBody>, TransportError> {
        let request = request.map(Full::new);
        let wait = self.options.response_timeout;
        let response = match tokio::time::timeout(wait, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(describe(&e, self.options.connect_timeout)),
            Err(_) => {
                return Err(TransportError::Timeout(format!(
                    "no response from the upstream within {} s",
                    wait.as_secs_f64()
                )))
            }
        };
        Ok(response.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
    }
}

/// A transport error from a client error: the chain of causes, without the client's own
/// "client error (Connect)" wrapper. hyper and rustls never put the URL in these.
fn describe(
    error: &hyper_util::client::legacy::Error,
    connect_timeout: Duration,
) -> TransportError {
    let mut causes: Vec<String> = Vec::new();
    let mut timed_out = false;
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        let text = cause.to_string();
        // Wrappers often repeat their source's text; say it once.
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        source = cause.source();
    }
    if causes.is_empty() {
        causes.push(error.to_string());
    }
    let what = causes.join(": ");
    if timed_out && error.is_connect() {
        TransportError::Timeout(format!(
            "connecting to the upstream took longer than {} s ({what})",
            connect_timeout.as_secs_f64()
        ))
    } else if error.is_connect() {
        TransportError::Connect(format!("cannot connect to the upstream: {what}"))
    } else {
        TransportError::Connect(format!(
            "the upstream connection failed before a response: {what}"
        ))
    }
}

#[cfg(test)]
mod tests;
