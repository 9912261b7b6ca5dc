//! The transport against real sockets on 127.0.0.1.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::*;

type ServerBody = BoxBody<Bytes, Infallible>;

/// Serve HTTP/1.1 on 127.0.0.1 with `handler`; returns the address.
async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(http::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<ServerBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = handler(req);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A body that yields what is sent on the returned channel, as it is sent.
fn channel_body() -> (mpsc::Sender<Bytes>, ServerBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    (tx, BodyExt::boxed(StreamBody::new(stream)))
}

fn transport(response_timeout: Duration) -> HttpTransport {
    HttpTransport::new(TransportOptions {
        connect_timeout: Duration::from_secs(2),
        response_timeout,
        pool_idle_timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn request(uri: String, body: &'static str) -> http::Request<Bytes> {
    http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap()
}

/// Take a value out of a slot shared by every call of a handler (the first call gets it).
fn take<T>(slot: &Arc<Mutex<Option<T>>>) -> Option<T> {
    slot.lock().unwrap().take()
}

#[tokio::test]
async fn chunks_arrive_before_the_stream_ends() {
    // The server sends one event, then holds the rest back until the test has received it: a
    // transport that buffered the body would never hand over the first chunk.
    let (seen_tx, seen_rx) = oneshot::channel::<()>();
    let (request_tx, request_rx) = oneshot::channel::<(http::HeaderMap, Bytes)>();
    let slots = Arc::new(Mutex::new(Some((seen_rx, request_tx))));
    let addr = serve(move |req: http::Request<Incoming>| {
        let slots = slots.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let (seen_rx, request_tx) = take(&slots).unwrap();
            let _ = request_tx.send((parts.headers, body));
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"data: one\n\n")).await;
                let _ = seen_rx.await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx.send(Bytes::from_static(b"data: two\n\n")).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
            });
            http::Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .unwrap()
        }
    })
    .await;

    let transport = transport(Duration::from_secs(5));
    let url = format!("http://{addr}/v1/chat/completions");
    let response = transport
        .send(request(url, r#"{"stream":true}"#))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    let (headers, sent) = request_rx.await.unwrap();
    assert_eq!(sent, Bytes::from_static(br#"{"stream":true}"#));
    assert_eq!(headers["content-type"], "application/json");

    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first chunk must arrive while the stream is still open")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, Bytes::from_static(b"data: one\n\n"));
    seen_tx.send(()).unwrap();

    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            rest.extend_from_slice(&data);
        }
    }
    assert_eq!(rest, b"data: two\n\ndata: [DONE]\n\n");
}

#[tokio::test]
async fn error_statuses_are_responses_not_transport_errors() {
    let addr = serve(|_req: http::Request<Incoming>| async {
        http::Response::builder()
            .status(429)
            .header("retry-after", "3")
            .body(BodyExt::boxed(http_body_util::Full::new(
                Bytes::from_static(br#"{"error":{"message":"slow down"}}"#),
            )))
            .unwrap()
    })
    .await;
    let response = transport(Duration::from_secs(5))
        .send(request(format!("http://{addr}/x"), "{}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body,
        Bytes::from_static(br#"{"error":{"message":"slow down"}}"#)
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_without_the_url() {
    // Bind and drop a listener to get a port nothing listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/v1/chat/completions?key=sk-secret");
    let e = transport(Duration::from_secs(5))
        .send(request(url, "{}"))
        .await
        .unwrap_err();
    let TransportError::Connect(message) = &e else {
        panic!("expected a connect error, got {e:?}");
    };
    assert!(message.contains("refused"), "{message}");
    assert!(!message.contains("sk-secret"));
    assert!(!message.contains("chat/completions"));
}

#[tokio::test]
async fn a_silent_upstream_times_out_at_the_response_head() {
    let (_hold_tx, hold_rx) = oneshot::channel::<()>();
    let hold = Arc::new(Mutex::new(Some(hold_rx)));
    let addr = serve(move |_req: http::Request<Incoming>| {
        let hold = hold.clone();
        async move {
            // Never answer while the test runs.
            if let Some(rx) = take(&hold) {
                let _ = rx.await;
            }
            http::Response::new(BodyExt::boxed(http_body_util::Empty::new()))
        }
    })
    .await;
    let e = transport(Duration::from_millis(200))
        .send(request(format!("http://{addr}/slow"), "{}"))
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout(_)), "{e:?}");
}

#[test]
fn building_needs_no_runtime_and_no_global_crypto_provider() {
    let t = HttpTransport::with_defaults().unwrap();
    assert_eq!(t.options(), TransportOptions::default());
}
