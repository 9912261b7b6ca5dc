//! The running mock: a loopback listener, one task per connection, HTTP/1.1 and h2c.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::MockConfig;
use crate::record::RecordedRequest;
use crate::router;
use crate::state::Shared;

/// A mock LLM upstream serving on loopback until it is shut down or dropped.
///
/// Must be started inside a tokio runtime; it serves from tasks on that runtime.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl MockUpstream {
    /// Binds `127.0.0.1` on a free port and starts serving.
    pub async fn start(config: MockConfig) -> io::Result<Self> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Binds `addr` and starts serving.
    pub async fn start_on(addr: SocketAddr, config: MockConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received since the start or the last [`clear`](Self::clear), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Forgets the recorded requests and the `times=N` failure counts, like `POST /_mock/reset`.
    pub fn clear(&self) {
        self.shared.reset();
    }

    /// How many recorded requests had exactly this path (without the query).
    pub fn calls(&self, path: &str) -> usize {
        self.shared
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// How many connections the mock has accepted since it started (not reset by
    /// [`clear`](Self::clear)): a client that reuses its connections opens few.
    pub fn connections(&self) -> u64 {
        self.shared.connections()
    }

    /// Every text the guard services were asked about since the start or the last
    /// [`clear`](Self::clear), in order: TEI inputs, Prompt Shields' `userPrompt` (when not
    /// empty) and documents, Lakera message contents.
    pub fn guard_texts(&self) -> Vec<String> {
        self.shared
            .requests()
            .iter()
            .flat_map(crate::guard::texts_of)
            .collect()
    }

    /// Stops accepting and drops every open connection, streams included. Dropping the mock
    /// does the same.
    pub fn shutdown(&self) {
        self.server.abort();
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accepts connections until aborted; aborting drops the connection tasks with it.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: wait for a connection to close.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small writes (one SSE event, a split piece) must leave at once, not wait for an ACK.
        let _ = stream.set_nodelay(true);
        shared.connected();
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(router::handle(&shared, request).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}
