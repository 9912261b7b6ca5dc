//! `examples/axum_mount.rs` as its users run it: the gateway nested under `/llm` in an axum app,
//! next to the app's own route, on a real socket, called the way the SDKs and Claude Code call.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

// The example's own `app`, so that what the example shows is what is tested.
#[allow(dead_code)]
#[path = "../../examples/axum_mount.rs"]
mod example;

use std::net::SocketAddr;

use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pai_core::AccessKeyHasher;

use common::{harness_with, Harness, Options, SECRET};

/// Serve `app` on a loopback port, with the connection info axum records.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

async fn mounted() -> (Harness, SocketAddr) {
    let h = harness_with(Options {
        prefix: Some(example::MOUNT),
        ..Options::default()
    })
    .await;
    let addr = serve(example::app(h.gateway.clone())).await;
    (h, addr)
}

/// Send one request; the status and the body as text.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let body = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let res = client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn both_dialects_and_the_probe_under_the_apps_prefix() {
    let (h, addr) = mounted().await;
    // The app's own route is untouched.
    let (status, body) = send(addr, Method::GET, "/health", &[], serde_json::Value::Null).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));

    // OpenAI SDK, base URL http://host/llm/v1.
    let auth = bearer(&h.openai_key);
    let (status, body) = send(
        addr,
        Method::POST,
        "/llm/v1/chat/completions",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        serde_json::json!({"model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi [mock:words=3]"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("chat.completion"), "{body}");
    let (status, body) = send(
        addr,
        Method::GET,
        "/llm/v1/models",
        &[("authorization", &auth)],
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("gpt-4o-mini"), "{body}");

    // Anthropic SDK (and Claude Code), base URL http://host/llm.
    let anthropic = [
        ("x-api-key", h.anthropic_key.as_str()),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ];
    let (status, body) = send(
        addr,
        Method::POST,
        "/llm/v1/messages?beta=true",
        &anthropic,
        serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi [mock:words=3]"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"type\":\"message\""), "{body}");
    let (status, body) = send(
        addr,
        Method::POST,
        "/llm/v1/messages/count_tokens?beta=true",
        &anthropic,
        serde_json::json!({"model": "claude-sonnet-4-6",
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("input_tokens"), "{body}");
    let (status, _) = send(
        addr,
        Method::HEAD,
        "/llm/api/hello",
        &[],
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // pai's own endpoint, for `pai login`.
    let (status, body) = send(
        addr,
        Method::GET,
        "/llm/pai/v1/me",
        &[("authorization", &auth)],
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("k-oai"), "{body}");
}

#[tokio::test]
async fn unknown_paths_name_the_endpoints_under_the_apps_prefix() {
    let (h, addr) = mounted().await;
    let auth = bearer(&h.openai_key);
    let (status, body) = send(
        addr,
        Method::POST,
        "/llm/v1/embeddings",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body.contains("no such endpoint: POST /llm/v1/embeddings; pai serves /llm/v1/chat/completions, /llm/v1/messages,"),
        "{body}"
    );
    assert!(!body.contains("/ext"), "{body}");
    // Without a key, an unknown path is refused before anything else (auth fails closed).
    let (status, _) = send(
        addr,
        Method::POST,
        "/llm/v1/embeddings",
        &[],
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A key usable from 127.0.0.0/8 only: let in when the app hands axum's `ConnectInfo` to pai,
/// refused when it does not (the gateway cannot tell the address, so it fails closed).
#[tokio::test]
async fn allowed_cidrs_work_through_the_peer_helper_and_fail_closed_without_it() {
    let (h, addr) = mounted().await;
    let raw = common::mint_spec(
        &h.store,
        &AccessKeyHasher::new(SECRET),
        "local-only",
        serde_json::json!({"modelProvider": "oai", "restrictions": {"allowedCIDRs": ["127.0.0.0/8"]}}),
    )
    .await;
    h.gateway.reload().await.unwrap();
    let auth = bearer(&raw);
    let headers = [("authorization", auth.as_str())];
    let me = |addr| {
        send(
            addr,
            Method::GET,
            "/llm/pai/v1/me",
            &headers,
            serde_json::Value::Null,
        )
    };

    let (status, body) = me(addr).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let bare = serve(Router::new().nest_service(example::MOUNT, h.gateway.clone())).await;
    let (status, body) = me(bare).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("client address unknown"), "{body}");

    // A key with no restriction needs no peer address.
    let auth = bearer(&h.openai_key);
    let (status, _) = send(
        bare,
        Method::GET,
        "/llm/v1/models",
        &[("authorization", &auth)],
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
