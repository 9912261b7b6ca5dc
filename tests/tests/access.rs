//! Access control through the assembled gateway: `allowedCIDRs` behind a trusted proxy.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use http::Request;
use http_body_util::Full;
use pai_core::resource::Resource;
use pai_core::{AccessKeyHasher, Store};
use pai_tower::PeerAddr;
use tower::ServiceExt;

use common::{collect, harness_with, Options, SECRET};

/// A key that may only be used from 127.0.0.0/8, behind a proxy at 127.0.0.2 whose
/// X-Forwarded-For is believed: whatever the client writes into the header, a client the proxy
/// saw at 203.0.113.5 is refused.
#[tokio::test]
async fn forwarded_for_cannot_talk_around_allowed_cidrs() {
    let h = harness_with(Options {
        trusted_proxies: vec!["127.0.0.2".parse().unwrap()],
        ..Options::default()
    })
    .await;
    let raw = common::mint_spec(
        &h.store,
        &AccessKeyHasher::new(SECRET),
        "local-only",
        serde_json::json!({"modelProvider": "oai", "restrictions": {"allowedCIDRs": ["127.0.0.0/8"]}}),
    )
    .await;
    h.gateway.reload().await.unwrap();

    let send = |lines: Vec<&'static [u8]>| {
        let gateway = h.gateway.clone();
        let raw = raw.clone();
        async move {
            let mut req = Request::get("/ext/pai/v1/me")
                .header("authorization", format!("Bearer {raw}"))
                .body(Full::new(bytes::Bytes::new()))
                .unwrap();
            for line in lines {
                req.headers_mut().append(
                    "x-forwarded-for",
                    http::HeaderValue::from_bytes(line).unwrap(),
                );
            }
            req.extensions_mut()
                .insert(PeerAddr("127.0.0.2:50000".parse().unwrap()));
            let (status, _, body) = collect(gateway.oneshot(req).await.unwrap()).await;
            (status, String::from_utf8_lossy(&body.concat()).into_owned())
        }
    };

    // The proxy itself, and a local client behind it, are let in.
    assert_eq!(send(vec![]).await.0, 200);
    assert_eq!(send(vec![b"127.0.0.9"]).await.0, 200);
    // The proxy saw 203.0.113.5 and appended it; nothing the client wrote to its left matters.
    let refused: Vec<Vec<&'static [u8]>> = vec![
        vec![b"203.0.113.5"],
        vec![b"\x80, 203.0.113.5"],
        vec![b"127.0.0.1", b"203.0.113.5"],
        vec![b"203.0.113.5:4444"],
        vec![b"[2001:db8::5]:4444"],
        vec![b"203.0.113.5, garbage"],
        vec![b"203.0.113.5,"],
        vec![b"127.0.0.1, \x80"],
        vec![b"unknown"],
    ];
    for lines in refused {
        let shown: Vec<String> = lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let (status, body) = send(lines).await;
        assert_eq!(status, 403, "X-Forwarded-For {shown:?}: {body}");
        assert!(body.contains("allowedCIDRs"), "{body}");
    }
}

/// Resources naming guards the gateway cannot run (here: a GuardBinding that does not exist,
/// written past the loader, which refuses guards in `pai serve`) make their calls fail closed,
/// and nothing reaches the upstream.
#[tokio::test]
async fn resources_naming_guards_are_never_called_unguarded() {
    let h = harness_with(Options {
        extra_yaml: "apiVersion: pai.io/v1\nkind: Agent\nmetadata: {name: bot}\nspec: {models: [ant/claude-sonnet-4-6]}\n".to_owned(),
        ..Options::default()
    })
    .await;
    // The loader refuses guards now, so write them past it.
    let Some(stored) = h
        .store
        .get(pai_core::Kind::ModelProvider, "oai")
        .await
        .unwrap()
    else {
        panic!("provider stored")
    };
    let Resource::ModelProvider(mut oai) = stored.resource else {
        panic!("a provider")
    };
    oai.spec.guards = vec![pai_core::resource::GuardRef::named("prompt-guard-default")];
    h.store.apply(&Resource::ModelProvider(oai)).await.unwrap();
    let Some(stored) = h.store.get(pai_core::Kind::Agent, "bot").await.unwrap() else {
        panic!("agent stored")
    };
    let Resource::Agent(mut bot) = stored.resource else {
        panic!("an agent")
    };
    bot.spec.guards = vec![pai_core::resource::GuardRef::named("prompt-guard-default")];
    h.store.apply(&Resource::Agent(bot)).await.unwrap();
    h.gateway.reload().await.unwrap();

    let res = h
        .gateway
        .clone()
        .oneshot(common::openai_request(
            &h.openai_key,
            serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await
        .unwrap();
    let (status, _, body) = collect(res).await;
    let body = String::from_utf8_lossy(&body.concat()).into_owned();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("which does not exist"), "{body}");

    let mut req = common::anthropic_request(
        "",
        serde_json::json!({"model": "ant/claude-sonnet-4-6", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.extensions_mut()
        .insert(pai_tower::AgentIdentity("bot".to_owned()));
    let (status, _, body) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    let body = String::from_utf8_lossy(&body.concat()).into_owned();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"type\":\"error\""),
        "Anthropic-shaped: {body}"
    );
    assert!(body.contains("which does not exist"), "{body}");
    assert!(h.mock.requests().is_empty(), "nothing reached the upstream");
}

/// A client that sends its head and then trickles its body holds a connection slot; it gets
/// 408 in its dialect once its body stalls past the body idle timeout.
#[tokio::test]
async fn a_body_that_stalls_is_cut_off_with_408() {
    let h = harness_with(Options {
        reliability: Some(pai_tower::Reliability {
            body_idle_timeout: std::time::Duration::from_millis(300),
            ..common::fast()
        }),
        ..Options::default()
    })
    .await;
    let (mut tx, body) = futures::channel::mpsc::channel::<
        Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
    >(1);
    let req = Request::post("/ext/v1/messages")
        .header("x-api-key", &h.anthropic_key)
        .header("anthropic-version", "2023-06-01")
        .body(http_body_util::StreamBody::new(body))
        .unwrap();
    let started = std::time::Instant::now();
    let call = tokio::spawn(h.gateway.clone().oneshot(req));
    use futures::SinkExt;
    tx.send(Ok(http_body::Frame::data(bytes::Bytes::from_static(
        b"{\"model\": \"claude",
    ))))
    .await
    .unwrap();
    // ... and nothing more, while holding the body open.
    let res = tokio::time::timeout(std::time::Duration::from_secs(10), call)
        .await
        .expect("the gateway gave up on the stalled body")
        .unwrap()
        .unwrap();
    let (status, _, body) = collect(res).await;
    let body = String::from_utf8_lossy(&body.concat()).into_owned();
    assert_eq!(status, 408, "{body}");
    assert!(
        body.contains("\"type\":\"error\""),
        "Anthropic-shaped: {body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(tx);
}

/// Auth fails closed: wrapped around an embedder's own handler, or in front of paths the
/// gateway does not serve, it lets through only a valid key, or Claude Code's public probe.
#[tokio::test]
async fn auth_refuses_every_path_without_a_valid_key_but_the_public_probe() {
    use http_body_util::BodyExt;

    let h = harness_with(Options::default()).await;
    let snapshot = pai_tower::SharedSnapshot::new(
        pai_tower::Snapshot::load(h.store.as_ref(), 0)
            .await
            .unwrap(),
    );
    let handler = tower::service_fn(|_req: Request<Full<bytes::Bytes>>| async {
        let body: pai_tower::ResponseBody = Full::new(bytes::Bytes::from_static(b"summary"))
            .map_err(|never| match never {})
            .boxed_unsync();
        Ok::<_, std::convert::Infallible>(http::Response::new(body))
    });
    let own = tower::ServiceBuilder::new()
        .layer(pai_tower::RescueLayer::new())
        .layer(pai_tower::AuthLayer::new(
            snapshot,
            AccessKeyHasher::new(SECRET),
        ))
        .service(handler);
    let send = |path: &str, key: Option<&str>| {
        let mut req = Request::post(path);
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        req.body(Full::new(bytes::Bytes::new())).unwrap()
    };
    let status = |res: http::Response<pai_tower::ResponseBody>| res.status();
    // The embedder's own route: no key and a bogus key are refused; a valid key passes.
    assert_eq!(
        status(own.clone().oneshot(send("/summarize", None)).await.unwrap()),
        401
    );
    assert_eq!(
        status(
            own.clone()
                .oneshot(send("/summarize", Some("pak_bogus")))
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(
        status(
            own.clone()
                .oneshot(send("/summarize", Some(&h.openai_key)))
                .await
                .unwrap()
        ),
        200
    );
    // The gateway: paths it does not serve need a key too, then answer 404.
    let gw = |path: &str, key: Option<&str>| h.gateway.clone().oneshot(send(path, key));
    assert_eq!(status(gw("/ext/v1/embeddings", None).await.unwrap()), 401);
    assert_eq!(status(gw("/admin", None).await.unwrap()), 401);
    assert_eq!(
        status(gw("/ext/v1/embeddings", Some(&h.openai_key)).await.unwrap()),
        404
    );
    // Claude Code's connectivity probe stays public.
    let probe = Request::head("/ext/api/hello")
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(status(h.gateway.clone().oneshot(probe).await.unwrap()), 200);
}
