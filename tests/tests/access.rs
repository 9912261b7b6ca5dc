//! Access control through the assembled gateway: `allowedCIDRs` behind a trusted proxy.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use http::Request;
use http_body_util::Full;
use pai_core::resource::{AccessKey, Resource};
use pai_core::{access_key, AccessKeyHasher, Store};
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
    let raw = access_key::generate().unwrap();
    let mut key: AccessKey = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "local-only"},
        "spec": {"modelProvider": "oai", "restrictions": {"allowedCIDRs": ["127.0.0.0/8"]}},
    }))
    .unwrap();
    key.status.key_hash = Some(AccessKeyHasher::new(SECRET).hash(&raw).0);
    h.store.apply(&Resource::AccessKey(key)).await.unwrap();
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
