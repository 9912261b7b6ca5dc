use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use pai_core::Error;
use serde_json::json;
use tower::{service_fn, Layer, Service, ServiceExt};

use super::EndpointsLayer;
use crate::body::ResponseBody;
use crate::error::CallError;
use crate::testing::{agent_principal, json_body, ok, Calls};

/// The endpoints around a handler that counts its calls.
fn endpoints(
    calls: &Calls,
) -> impl Service<Request<Full<Bytes>>, Response = Response<ResponseBody>, Error = CallError> {
    let calls = calls.clone();
    let store = Arc::new(pai_store::MemoryStore::new());
    EndpointsLayer::new(store).layer(service_fn(move |_req: Request<Full<Bytes>>| {
        calls.add();
        async { Ok::<_, Infallible>(ok()) }
    }))
}

fn req(method: Method, path: &str, principal: bool) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::default())
        .unwrap();
    if principal {
        req.extensions_mut()
            .insert(agent_principal(json!({"models": ["p/m"]})));
    }
    req
}

#[tokio::test]
async fn an_unknown_path_is_404_naming_what_is_served() {
    let calls = Calls::default();
    let e = endpoints(&calls)
        .oneshot(req(Method::POST, "/v1/embeddings", true))
        .await
        .unwrap_err();
    assert_eq!(e.error.status(), 404);
    let message = e.error.to_string();
    assert!(message.contains("POST /v1/embeddings"), "{message}");
    assert!(message.contains("/v1/chat/completions"), "{message}");
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn a_wrong_method_is_405() {
    let calls = Calls::default();
    for (method, path) in [
        (Method::GET, "/v1/chat/completions"),
        (Method::POST, "/v1/models"),
        (Method::DELETE, "/v1/messages"),
    ] {
        let e = endpoints(&calls)
            .oneshot(req(method, path, true))
            .await
            .unwrap_err();
        assert_eq!(e.error, Error::MethodNotAllowed, "{path}");
    }
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn the_probe_is_answered_without_a_caller() {
    let calls = Calls::default();
    let res = endpoints(&calls)
        .oneshot(req(Method::HEAD, "/api/hello", false))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());
    let res = endpoints(&calls)
        .oneshot(req(Method::GET, "/ext/api/hello", false))
        .await
        .unwrap();
    assert_eq!(json_body(res).await, json!({"ok": true}));
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn models_need_a_caller_and_list_what_it_may_use() {
    let calls = Calls::default();
    let e = endpoints(&calls)
        .oneshot(req(Method::GET, "/v1/models", false))
        .await
        .unwrap_err();
    assert_eq!(e.error, Error::MissingKey);

    let res = endpoints(&calls)
        .oneshot(req(Method::GET, "/v1/models", true))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v = json_body(res).await;
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "p/m");

    // The Anthropic SDK hears its own shape.
    let mut anthropic = req(Method::GET, "/v1/models", true);
    anthropic
        .headers_mut()
        .insert("anthropic-version", "2023-06-01".parse().unwrap());
    let v = json_body(endpoints(&calls).oneshot(anthropic).await.unwrap()).await;
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["has_more"], false);
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn me_needs_a_caller() {
    let calls = Calls::default();
    let e = endpoints(&calls)
        .oneshot(req(Method::GET, "/pai/v1/me", false))
        .await
        .unwrap_err();
    assert_eq!(e.error, Error::MissingKey);
    let res = endpoints(&calls)
        .oneshot(req(Method::GET, "/pai/v1/me", true))
        .await
        .unwrap();
    let v = json_body(res).await;
    assert_eq!(v["agent"], "app");
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn calls_go_on_to_the_layers_below() {
    let calls = Calls::default();
    let res = endpoints(&calls)
        .oneshot(req(Method::POST, "/v1/chat/completions", true))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.get(), 1);
    // Without a caller, nothing goes below.
    let e = endpoints(&calls)
        .oneshot(req(Method::POST, "/v1/messages", false))
        .await
        .unwrap_err();
    assert_eq!(e.error, Error::MissingKey);
    assert_eq!(calls.get(), 1);
}
