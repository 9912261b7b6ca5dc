use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use pai_core::store::CallRecord;
use pai_core::{Error, Store, Usage};
use pai_store::MemoryStore;
use serde_json::json;
use tower::{service_fn, Layer, ServiceExt};

use super::{CallLog, CallLogLayer};
use crate::error::CallError;
use crate::meter::CallSink;
use crate::testing::{agent_principal, ok, refused, request, Calls};

fn app() -> crate::auth::Principal {
    agent_principal(json!({}))
}

/// The records written once the sink has drained.
async fn written(sink: &CallSink, store: &MemoryStore) -> Vec<CallRecord> {
    assert!(sink.drain(Duration::from_secs(2)).await, "the sink drains");
    store.recent_calls(100).await.unwrap()
}

#[tokio::test]
async fn a_request_without_a_principal_passes_unrecorded() {
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let calls = Calls::default();
    let counted = calls.clone();
    let handler = service_fn(move |req: Request<Full<Bytes>>| {
        counted.add();
        assert!(req.extensions().get::<CallLog>().is_none());
        async { Ok::<_, Infallible>(ok()) }
    });
    let service = CallLogLayer::new(sink.clone()).layer(handler);
    let res = service
        .oneshot(request("/api/hello", None, None))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.into_body().collect().await.unwrap();
    assert_eq!(calls.get(), 1);
    assert!(written(&sink, &store).await.is_empty());
    assert_eq!(sink.backlog(), 0);
}

#[tokio::test]
async fn a_call_is_recorded_once_with_the_usage_and_cost_its_handler_reported() {
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let handler = service_fn(|req: Request<Full<Bytes>>| async move {
        // What the parse layer writes: the model names the price.
        let log = req.extensions().get::<CallLog>().unwrap();
        log.record(|r| r.model = "gpt-4o-mini".to_owned());
        let mut res = ok();
        res.extensions_mut().insert(Usage {
            input: 1000,
            output: 1000,
            ..Usage::default()
        });
        Ok::<_, Infallible>(res)
    });
    let prices: Arc<dyn pai_core::PriceTable> = Arc::new(pai_core::price::PriceBook::builtin());
    let service = CallLogLayer::new(sink.clone())
        .prices(Some(prices))
        .layer(handler);
    let req = request("/v1/chat/completions", Some(app()), None);
    let res = service.oneshot(req).await.unwrap();
    assert_eq!(res.headers()["x-pai-input-tokens"], "1000");
    assert_eq!(res.headers()["x-pai-output-tokens"], "1000");
    // $0.15 and $0.60 per million tokens.
    assert_eq!(res.headers()["x-pai-cost-usd"], "0.000750");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"{\"ok\":true}");

    let records = written(&sink, &store).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.workload, "app");
    assert_eq!(r.operation, "chat.completions");
    assert_eq!(r.model, "gpt-4o-mini");
    assert_eq!(r.status, 200);
    assert_eq!(r.usage.map(|u| u.total_tokens()), Some(2000));
    assert_eq!(r.cost_pico_usd, Some(750_000_000));
    assert_eq!(r.error, None);
    // Nothing more comes later.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(written(&sink, &store).await.len(), 1);
}

#[tokio::test]
async fn without_prices_tokens_are_recorded_and_no_cost() {
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let handler = service_fn(|_req: Request<Full<Bytes>>| async move {
        let mut res = ok();
        res.extensions_mut().insert(Usage {
            input: 12,
            output: 3,
            ..Usage::default()
        });
        Ok::<_, Infallible>(res)
    });
    let service = CallLogLayer::new(sink.clone()).layer(handler);
    let res = service
        .oneshot(request("/summarize", Some(app()), None))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-pai-input-tokens"], "12");
    assert!(!res.headers().contains_key("x-pai-cost-usd"));
    res.into_body().collect().await.unwrap();
    let records = written(&sink, &store).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].operation, "/summarize");
    assert_eq!(records[0].usage.map(|u| u.output), Some(3));
    assert_eq!(records[0].cost_pico_usd, None);
}

#[tokio::test]
async fn a_failed_call_is_recorded_with_its_status_and_message() {
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let handler = service_fn(|_req: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>(CallError::refused(Error::PermissionDenied(
            "blocked by policy".to_owned(),
        )))
    });
    let service = CallLogLayer::new(sink.clone()).layer(handler);
    let e = refused(
        service
            .oneshot(request("/v1/messages", Some(app()), None))
            .await,
    );
    assert_eq!(e.error.status(), 403);
    let records = written(&sink, &store).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 403);
    assert_eq!(records[0].operation, "messages");
    assert_eq!(records[0].error.as_deref(), Some("blocked by policy"));
}

#[tokio::test]
async fn a_body_dropped_before_its_end_is_recorded_as_a_disconnect() {
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let handler = service_fn(|_req: Request<Full<Bytes>>| async {
        let frames = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(
            b"data: {}\n\n",
        )))])
        .chain(stream::pending());
        Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
    });
    let service = CallLogLayer::new(sink.clone()).layer(handler);
    let res = service
        .oneshot(request("/v1/chat/completions", Some(app()), None))
        .await
        .unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "data: {}\n\n");
    // Not recorded while the body is still being read.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.recent_calls(100).await.unwrap().is_empty());
    drop(body);
    let records = written(&sink, &store).await;
    assert_eq!(records.len(), 1);
    let error = records[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("client disconnected"), "{error}");
}

#[tokio::test]
async fn a_body_that_breaks_off_is_recorded_with_the_break() {
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let handler = service_fn(|_req: Request<Full<Bytes>>| async {
        let frames = stream::iter([
            Ok(Frame::data(Bytes::from_static(b"data: {}\n\n"))),
            Err(std::io::Error::other("upstream reset")),
        ]);
        Ok::<_, Infallible>(Response::new(StreamBody::new(frames)))
    });
    let service = CallLogLayer::new(sink.clone()).layer(handler);
    let res = service
        .oneshot(request("/v1/chat/completions", Some(app()), None))
        .await
        .unwrap();
    assert!(res.into_body().collect().await.is_err());
    let records = written(&sink, &store).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].error.as_deref(),
        Some("the response body broke off")
    );
}

#[tokio::test]
async fn a_call_dropped_before_its_answer_is_recorded_as_499() {
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let handler = service_fn(|_req: Request<Full<Bytes>>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(ok())
    });
    let service = CallLogLayer::new(sink.clone()).layer(handler);
    let call = service.oneshot(request("/v1/chat/completions", Some(app()), None));
    let gave_up = tokio::time::timeout(Duration::from_millis(20), call).await;
    assert!(gave_up.is_err(), "the handler never answers");
    let records = written(&sink, &store).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 499);
    let error = records[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("client disconnected"), "{error}");
}

#[tokio::test]
async fn an_empty_body_finishes_the_call_at_once() {
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let handler = service_fn(|_req: Request<Full<Bytes>>| async {
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = http::StatusCode::NO_CONTENT;
        Ok::<_, Infallible>(res)
    });
    let service = CallLogLayer::new(sink.clone()).layer(handler);
    let res = service
        .oneshot(request("/summarize", Some(app()), None))
        .await
        .unwrap();
    // Recorded while the response is still held, unread.
    let records = written(&sink, &store).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 204);
    assert_eq!(records[0].error, None);
    drop(res);
    assert_eq!(written(&sink, &store).await.len(), 1);
}

#[tokio::test]
async fn the_journey_is_engaged_once_the_call_has_a_log() {
    let store = Arc::new(MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let handler = service_fn(|_req: Request<Full<Bytes>>| async { Ok::<_, Infallible>(ok()) });
    let service = tower::ServiceBuilder::new()
        .layer(crate::rescue::RescueLayer::new())
        .layer(CallLogLayer::new(sink.clone()))
        .service(handler);
    let res = service
        .clone()
        .oneshot(request("/v1/chat/completions", Some(app()), None))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-pai-retries"], "0");
    let res = service
        .oneshot(request("/api/hello", None, None))
        .await
        .unwrap();
    assert!(!res.headers().contains_key("x-pai-retries"));
}
