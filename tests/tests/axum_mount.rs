//! `examples/axum_mount.rs` as its users run it: the gateway nested under `/llm` in an axum app,
//! next to the app's own route, on a real socket, called the way the SDKs and Claude Code call;
//! and under `/assistant`, where the app signs its own users in and they call as an Agent.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

// The example's own `app`, so that what the example shows is what is tested.
#[allow(dead_code)]
#[path = "../../examples/axum_mount.rs"]
mod example;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pai_core::{AccessKeyHasher, Store};

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

/// The app's sessions: alice calls as the Agent `support-bot`; ghost's Agent does not exist.
fn sessions() -> example::Sessions {
    Arc::new(HashMap::from([
        ("s-alice".to_owned(), "support-bot".to_owned()),
        ("s-ghost".to_owned(), "ghost".to_owned()),
    ]))
}

async fn mounted() -> (Harness, SocketAddr) {
    let h = harness_with(Options {
        prefix: Some(example::MOUNT),
        extra_yaml: "apiVersion: pai.io/v1\nkind: Agent\nmetadata: {name: support-bot}\n\
                     spec: {models: [oai/gpt-4o-mini]}\n"
            .to_owned(),
        ..Options::default()
    })
    .await;
    let addr = serve(example::app(h.gateway.clone(), sessions())).await;
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

/// A chat completion under the app's own mount, sent as an app user (`authorization` carries
/// the app's session, not a pai key) and naming the Agent's model as `provider/model`.
async fn ask_as_app_user(addr: SocketAddr, authorization: &str) -> (StatusCode, String) {
    let path = format!("{}/v1/chat/completions", example::AGENT_MOUNT);
    send(
        addr,
        Method::POST,
        &path,
        &[
            ("authorization", authorization),
            ("content-type", "application/json"),
        ],
        serde_json::json!({"model": "oai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi [mock:words=3]"}]}),
    )
    .await
}

/// Under `/assistant` the app authenticates its own users and attaches the Agent each calls
/// as: no pai key is involved, the upstream sees only the provider's key, and the call is
/// recorded as the Agent's. Without a session the app refuses before pai sees anything.
#[tokio::test]
async fn the_apps_own_users_call_as_the_agent_the_app_attaches() {
    let (h, addr) = mounted().await;

    // Not signed in to the app, or presenting a pai key instead: the app's own refusal.
    for refused in ["", "Bearer s-nobody", &bearer(&h.openai_key)] {
        let (status, body) = ask_as_app_user(addr, refused).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused:?}: {body}");
        assert_eq!(body, "sign in to the app first");
    }
    assert!(h.mock.requests().is_empty(), "nothing reached the upstream");

    // Signed in: answered as the Agent.
    let (status, body) = ask_as_app_user(addr, "Bearer s-alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("mock reply: alpha"), "{body}");
    let sent = h.mock.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].header("authorization"),
        Some("Bearer sk-real-openai")
    );
    assert!(
        !sent[0].headers.iter().any(|(_, v)| v.contains("s-alice")),
        "the app's session never goes upstream: {:?}",
        sent[0].headers
    );

    assert!(h.gateway.finished(Duration::from_secs(2)).await);
    let calls = h.store.recent_calls(10).await.unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.workload, "support-bot", "recorded as the Agent");
    assert_eq!(
        (call.access_key.as_deref(), call.provider.as_str()),
        (None, "oai")
    );
    assert_eq!((call.status, call.model.as_str()), (200, "gpt-4o-mini"));

    // A session whose Agent does not exist: pai refuses, failing closed.
    let (status, body) = ask_as_app_user(addr, "Bearer s-ghost").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains(r#"Agent \"ghost\" does not exist"#), "{body}");

    // The app's session means nothing on pai's own mount: there, only pai keys.
    let (status, _) = send(
        addr,
        Method::POST,
        "/llm/v1/chat/completions",
        &[
            ("authorization", "Bearer s-alice"),
            ("content-type", "application/json"),
        ],
        serde_json::json!({"model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.mock.requests().len(), 1, "still only the one call");
}
