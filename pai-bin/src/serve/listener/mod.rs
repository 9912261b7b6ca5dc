//! The hardened listener of both the gateway and the admin API: accepts TCP connections and
//! serves each with hyper-util's automatic HTTP/1.1 or HTTP/2 (prior knowledge, h2c) connection,
//! straight to the service.
//!
//! axum is not on this path: the gateway is already one service, and every layer between the
//! socket and it is latency on every call. On shutdown the listener stops accepting, asks open
//! connections to finish their in-flight requests, and waits for them up to a deadline.
//!
//! # Misbehaving clients
//!
//! A socket costs the server a file descriptor whether or not its client ever speaks, and a
//! process out of descriptors can accept nothing, /healthz included. So:
//! - connections are capped ([`ConnectionLimits::max_connections`], by default well under the
//!   descriptor limit), so the process never runs out of descriptors;
//! - a connection must send a complete request head within the header timeout, or it is closed.
//!   hyper's header-read timeout only starts once hyper-util has read enough bytes to tell
//!   HTTP/1 from HTTP/2, so a socket that sends nothing (or a byte a minute) would never meet it;
//!   the listener enforces the first head itself, hyper the later ones;
//! - at the cap, the oldest connection that has not yet sent a request head is closed to make
//!   room ([`probation`]), so silent sockets cannot crowd out real clients;
//! - `accept` errors back off exponentially and are logged once per period ([`backoff`]).

mod backoff;
mod limits;
mod probation;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use pai_core::BoxError;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::front::Front;
use backoff::AcceptBackoff;
pub use limits::{default_max_connections, ConnectionLimits, ADMIN_MAX_CONNECTIONS};
pub use probation::Ticket;
use probation::{Eviction, Probation};

/// Connections evicted at once at the cap (at most, and at most an eighth of the cap): a flood
/// of newcomers then finds free places for the next ones instead of waiting, one by one, for
/// each evicted connection to wind down.
const EVICT_BATCH: usize = 16;

/// How often "at the connection cap" may be logged.
const CAP_LOG_EVERY: Duration = Duration::from_secs(5);

/// Serve `service` on `listener` (called `name` in the log) within `limits` until `shutdown`
/// turns true, then drain for at most `grace`.
pub async fn run<S, B>(
    name: &'static str,
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
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
    // The timer arms hyper's header-read timeout (slow clients, idle keep-alive) and the HTTP/2
    // keep-alive pings that find dead peers.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let probation = Arc::new(Probation::new(limits.max_connections));
    let mut backoff = AcceptBackoff::new(name);
    let mut cap_logged_at: Option<Instant> = None;
    let evict_batch = (limits.max_connections / 8).clamp(1, EVICT_BATCH);

    let mut stopping = std::pin::pin!(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopping => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(e) => {
                let wait = backoff.failed(&e);
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut stopping => break,
                }
            }
        };
        // The newcomer is accepted first, so eviction happens only for someone who is waiting;
        // while it waits for a permit the loop accepts nothing more, so the cap is exceeded by
        // at most this one descriptor.
        let permit = loop {
            if let Ok(permit) = permits.clone().try_acquire_owned() {
                break Some(permit);
            }
            // At the cap: make room by closing the oldest silent connections, if any; else
            // wait for a connection to end, leaving later newcomers in the kernel's backlog.
            match probation.evict_oldest(evict_batch) {
                Eviction::NotYet => {
                    // Connections accepted just now have not been read yet; let them run.
                    tokio::task::yield_now().await;
                    continue;
                }
                Eviction::Evicted(_) => {}
                Eviction::Nobody => {
                    if cap_logged_at.is_none_or(|at| at.elapsed() >= CAP_LOG_EVERY) {
                        tracing::warn!(
                            listener = name,
                            max_connections = limits.max_connections,
                            "at the connection cap; new connections wait"
                        );
                        cap_logged_at = Some(Instant::now());
                    }
                }
            }
            tokio::select! {
                permit = permits.clone().acquire_owned() => break permit.ok(),
                () = &mut stopping => break None,
            }
        };
        let Some(permit) = permit else {
            break;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "could not set TCP_NODELAY");
        }
        let ticket = probation.admit();
        let front = Front::new(service.clone(), peer, ticket.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), front)
            .into_owned();
        let connection = graceful.watch(connection);
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            // The first poll reads whatever the client has sent; a complete head proves it.
            let ended = match futures::poll!(&mut connection) {
                std::task::Poll::Ready(ended) => Some(ended),
                std::task::Poll::Pending => None,
            };
            ticket.looked_at();
            // Until its first request head, the connection is on probation.
            let ended = if let Some(ended) = ended {
                Some(ended)
            } else {
                tokio::select! {
                    ended = &mut connection => Some(ended),
                    () = tokio::time::sleep(header_timeout) => None,
                    () = ticket.evicted() => None,
                }
            };
            let ended = match ended {
                Some(ended) => ended,
                None if ticket.is_proven() => connection.await,
                None => {
                    tracing::debug!(listener = name, %peer, "closed a connection that sent no request head");
                    return;
                }
            };
            if let Err(e) = ended {
                // Clients hanging up mid-request is ordinary; not worth more than debug.
                tracing::debug!(listener = name, error = %e, %peer, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(
            listener = name,
            connections = open,
            "draining open connections"
        );
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            grace_secs = grace.as_secs(),
            "connections still open after the shutdown deadline; closing them"
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

    fn limits(max_connections: usize, header_timeout: Duration) -> ConnectionLimits {
        ConnectionLimits {
            max_connections,
            header_timeout,
        }
    }

    /// Whether the server closed `stream` within `within`.
    async fn closed(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(within, stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// The listener on a loopback port, with `max` connections and `header_timeout`, in front
    /// of the slow test service; it runs until the returned sender is dropped.
    async fn serve(
        max: usize,
        header_timeout: Duration,
    ) -> (std::net::SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let limits = limits(max, header_timeout);
        tokio::spawn(run(
            "test",
            listener,
            slow(),
            limits,
            stopped,
            Duration::ZERO,
        ));
        (addr, stop)
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_request_head_is_closed() {
        let (addr, _stop) = serve(16, Duration::from_millis(200)).await;

        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
        partial.write_all(b"GET / HT").await.unwrap();
        assert!(closed(&mut silent, Duration::from_secs(2)).await);
        assert!(closed(&mut partial, Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_silent_connection_makes_room() {
        let (addr, _stop) = serve(2, Duration::from_secs(30)).await;

        let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(2), send(addr, "/healthz"))
            .await
            .expect("/healthz waited behind silent connections");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
        assert!(closed(&mut first, Duration::from_secs(1)).await);
        assert!(!closed(&mut second, Duration::from_millis(100)).await);
    }

    #[tokio::test]
    async fn shutdown_lets_in_flight_requests_finish_and_stops_accepting() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(run(
            "test",
            listener,
            slow(),
            limits(16, Duration::from_secs(10)),
            stopped,
            Duration::from_secs(5),
        ));

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
