//! The gateway listener: accepts TCP connections and serves each with hyper-util's automatic
//! HTTP/1.1 or HTTP/2 (prior knowledge, h2c) connection, straight to the gateway service.
//!
//! axum is not on this path: the gateway is already one service, and every layer between the
//! socket and it is latency on every call. On shutdown the listener stops accepting, asks open
//! connections to finish their in-flight requests, and waits for them up to a deadline.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use pai_core::BoxError;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::front::Front;

/// Serve `service` on `listener` until `shutdown` turns true, then drain for at most `grace`.
pub async fn run<S, B>(
    listener: TcpListener,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer arms hyper's header-read timeout (slow clients) and HTTP/2 keep-alive.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();

    let mut stopping = std::pin::pin!(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopping => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "gateway accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "could not set TCP_NODELAY");
        }
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), Front::new(service.clone(), peer))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Clients hanging up mid-request is ordinary; not worth more than debug.
                tracing::debug!(error = %e, %peer, "gateway connection ended with an error");
            }
        });
    }

    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(connections = open, "gateway draining open connections");
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "gateway connections still open after the shutdown deadline; closing them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A gateway stand-in that takes its time, so shutdown has something in flight.
    fn slow() -> impl tower::Service<
        Request<Incoming>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
           + Send {
        tower::service_fn(|_req: Request<Incoming>| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
        })
    }

    async fn send(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn shutdown_lets_in_flight_requests_finish_and_stops_accepting() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(run(listener, slow(), stopped, Duration::from_secs(5)));

        assert!(send(addr, "/healthz").await.ends_with("\r\n\r\nok"));
        let in_flight = tokio::spawn(send(addr, "/ext/v1/models"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(true).unwrap();
        let answer = in_flight.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        server.await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
