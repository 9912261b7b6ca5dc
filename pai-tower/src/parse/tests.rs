use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use pai_core::{Call, Dialect, Error, Operation};
use tower::{service_fn, Layer, Service, ServiceExt};

use super::ParseLayer;
use crate::error::CallError;
use crate::testing::{ok, refused, Calls};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

/// The call and the body an inner service was handed.
type Kept = Option<(Arc<Call>, Bytes)>;

/// What the inner service was handed.
#[derive(Clone, Default)]
struct Handed(Arc<Mutex<Kept>>);

impl Handed {
    fn get(&self) -> Kept {
        self.0.lock().unwrap().clone()
    }
}

/// An inner service that keeps the call and the whole body it is handed.
fn keeper(
    handed: Handed,
    calls: Calls,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |req: Request<Full<Bytes>>| {
        calls.add();
        let handed = handed.clone();
        async move {
            let call = req.extensions().get::<Arc<Call>>().cloned().unwrap();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            *handed.0.lock().unwrap() = Some((call, body));
            Ok(ok())
        }
    })
}

fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(path).body(Full::new(body.into())).unwrap()
}

/// The refusal of `req` by `layer`, and whether the inner service was called.
async fn refusal(layer: ParseLayer, req: Request<Full<Bytes>>) -> (CallError, usize) {
    let calls = Calls::default();
    let service = layer.layer(keeper(Handed::default(), calls.clone()));
    let e = service.oneshot(req).await.unwrap_err();
    (e, calls.get())
}

#[tokio::test]
async fn the_inner_service_gets_the_call_and_the_whole_body() {
    let handed = Handed::default();
    let calls = Calls::default();
    let service = ParseLayer::new().layer(keeper(handed.clone(), calls.clone()));
    let res = service
        .oneshot(post("/v1/chat/completions?beta=true", CHAT))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (call, body) = handed.get().unwrap();
    assert_eq!(call.operation, Operation::ChatCompletions);
    assert_eq!(call.client, Dialect::OpenAi);
    assert_eq!(call.model, "gpt-4o-mini");
    assert!(!call.stream);
    assert_eq!(body, CHAT);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn the_route_names_the_dialect() {
    let handed = Handed::default();
    let service = ParseLayer::new().layer(keeper(handed.clone(), Calls::default()));
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[]}"#;
    service
        .oneshot(post("/ext/v1/messages", body))
        .await
        .unwrap();
    let (call, _) = handed.get().unwrap();
    assert_eq!(call.operation, Operation::Messages);
    assert_eq!(call.client, Dialect::Anthropic);
    assert!(call.stream);
}

#[tokio::test]
async fn a_body_past_the_limit_is_413() {
    let layer = ParseLayer::new().max_body_bytes(CHAT.len() - 1);
    let (e, calls) = refusal(layer, post("/v1/chat/completions", CHAT)).await;
    assert_eq!(
        e.error,
        Error::PayloadTooLarge {
            limit: CHAT.len() - 1
        }
    );
    assert_eq!(e.error.status(), 413);
    assert_eq!(calls, 0);
    // At the limit exactly, it is read.
    let service = ParseLayer::new()
        .max_body_bytes(CHAT.len())
        .layer(keeper(Handed::default(), Calls::default()));
    let res = service.oneshot(post("/v1/chat/completions", CHAT)).await;
    assert_eq!(res.unwrap().status(), 200);
}

#[tokio::test]
async fn a_body_that_is_no_json_object_is_400() {
    for body in ["{", "[]", "not json", r#"{"messages":[]}"#] {
        let (e, calls) = refusal(ParseLayer::new(), post("/v1/chat/completions", body)).await;
        assert_eq!(e.error.status(), 400, "{body}");
        assert_eq!(calls, 0);
    }
}

#[tokio::test]
async fn a_stalled_body_is_408() {
    let stalled = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"{")))])
        .chain(stream::pending());
    let req = Request::post("/v1/chat/completions")
        .body(StreamBody::new(stalled))
        .unwrap();
    let calls = Calls::default();
    let service = ParseLayer::new()
        .timeouts(Duration::from_millis(20), Duration::from_secs(1))
        .layer(keeper(Handed::default(), calls.clone()));
    let e = service.oneshot(req).await.unwrap_err();
    assert_eq!(e.error.status(), 408);
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn a_path_that_is_no_route_is_404_unless_an_operation_is_given() {
    let (e, calls) = refusal(ParseLayer::new(), post("/summarize", CHAT)).await;
    assert_eq!(e.error.status(), 404);
    assert!(e.error.to_string().contains("/summarize"), "{e}");
    assert_eq!(calls, 0);

    let handed = Handed::default();
    let service = ParseLayer::new()
        .operation(Operation::ChatCompletions)
        .layer(keeper(handed.clone(), Calls::default()));
    let res = service.oneshot(post("/summarize", CHAT)).await.unwrap();
    assert_eq!(res.status(), 200);
    let (call, body) = handed.get().unwrap();
    assert_eq!(call.operation, Operation::ChatCompletions);
    assert_eq!(call.model, "gpt-4o-mini");
    assert_eq!(body, CHAT);
}

#[tokio::test]
async fn routes_sit_under_the_prefix() {
    let service = ParseLayer::new()
        .prefix("/llm")
        .layer(keeper(Handed::default(), Calls::default()));
    let res = service
        .oneshot(post("/llm/v1/chat/completions", CHAT))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_call_log_learns_the_model_even_of_a_refused_call() {
    use crate::call_log::CallLogLayer;
    use crate::meter::CallSink;
    use pai_core::Store;

    let store = Arc::new(pai_store::MemoryStore::new());
    let sink = CallSink::spawn(store.clone());
    let service = tower::ServiceBuilder::new()
        .layer(CallLogLayer::new(sink.clone()))
        .layer(ParseLayer::new())
        .service(keeper(Handed::default(), Calls::default()));
    let principal = crate::testing::agent_principal(serde_json::json!({}));
    let mut req = post(
        "/v1/chat/completions",
        r#"{"model":"gpt-4o","messages":"hi"}"#,
    );
    req.extensions_mut().insert(principal);
    let e = refused(service.oneshot(req).await);
    assert_eq!(e.error.status(), 400);
    assert!(sink.drain(Duration::from_secs(2)).await);
    let records = store.recent_calls(10).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].model, "gpt-4o");
    assert_eq!(records[0].status, 400);
}
