//! Upstreams that misbehave on purpose: lines that never end, events that trickle in a byte at a
//! time, error bodies that quote the gateway's provider key back. Each test stands a small
//! scripted HTTP/1.1 server on loopback in front of the assembled gateway.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use common::{
    anthropic_request, collect, events, fast, harness_with, openai_request, records, Options,
};

/// What the scripted upstream read of one request.
#[derive(Clone, Debug)]
#[allow(dead_code)]
struct Seen {
    /// `x-api-key`, else the `Authorization: Bearer` token.
    key: String,
    body: String,
}

/// A loopback HTTP/1.1 server answering each request by running `script` on the raw socket;
/// returns its base URL. Every answer closes the connection.
async fn scripted<F, Fut>(script: F) -> String
where
    F: Fn(Seen, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let Some(seen) = read_request(&mut socket).await else {
                    return;
                };
                script(seen, socket).await;
            });
        }
    });
    url
}

async fn read_request(socket: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut key = String::new();
    let mut length = 0usize;
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "x-api-key" => key = value.to_owned(),
            "authorization" if key.is_empty() => {
                key = value.trim_start_matches("Bearer ").to_owned()
            }
            "content-length" => length = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    Some(Seen { key, body })
}

const STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

const FIRST_CHUNK: &[u8] = b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n";

fn providers(url: &str, key: &str) -> String {
    format!(
        r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: hostile}}
data: {{key: "{key}"}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: hostile-vllm}}
spec:
  provider: vllm
  endpoint: {url}/v1
  apiKeySecretRef: {{name: hostile, key: key}}
  allowedModels: [m]
  externalAccess: {{enabled: true}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: hostile-anthropic}}
spec:
  provider: anthropic
  endpoint: {url}
  apiKeySecretRef: {{name: hostile, key: key}}
  allowedModels: [claude-m]
  externalAccess: {{enabled: true}}
"#
    )
}

/// Access keys for the two hostile providers, from a harness with `options`.
async fn hostile(url: &str, key: &str, mut options: Options) -> (common::Harness, String, String) {
    options.extra_yaml = providers(url, key);
    options.keys_for = vec!["hostile-vllm".into(), "hostile-anthropic".into()];
    let h = harness_with(options).await;
    let (vllm, ant) = (h.extra_keys[0].clone(), h.extra_keys[1].clone());
    (h, vllm, ant)
}

fn chat(model: &str, stream: bool, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "stream": stream, "max_tokens": 50,
        "messages": [{"role": "user", "content": text}]})
}

// === An over-long line ===

/// One good event, then `data: ` and 64 MiB without a newline, in 64 KiB writes.
async fn endless_line(_seen: Seen, mut socket: TcpStream) {
    if socket.write_all(STREAM_HEAD).await.is_err() || socket.write_all(FIRST_CHUNK).await.is_err()
    {
        return;
    }
    let _ = socket.write_all(b"data: {\"x\":\"").await;
    let block = vec![b'a'; 64 << 10];
    for _ in 0..1024 {
        if socket.write_all(&block).await.is_err() {
            return;
        }
    }
    let _ = socket.write_all(b"\"}\n\ndata: [DONE]\n\n").await;
}

#[tokio::test]
async fn an_endless_line_ends_the_stream_with_an_in_band_error_and_is_recorded() {
    let url = scripted(endless_line).await;
    let (h, vllm, _) = hostile(
        &url,
        "sk-hostile-1",
        Options {
            reliability: Some(fast()),
            ..Options::default()
        },
    )
    .await;
    // The same upstream behind both client dialects: the OpenAI one directly, the Anthropic
    // one translated.
    let requests = [
        openai_request(&vllm, chat("m", true, "hi")),
        anthropic_request(&vllm, chat("m", true, "hi")),
    ];
    for (n, req) in requests.into_iter().enumerate() {
        let res = h.gateway.clone().oneshot(req).await.unwrap();
        let (status, _, frames) = collect(res).await;
        assert_eq!(status, 200);
        let total: usize = frames.iter().map(|f| f.len()).sum();
        assert!(total < 1 << 20, "the client got {total} bytes");
        let events = events(&frames);
        let last = events.last().cloned().unwrap_or_default();
        if n == 0 {
            assert!(last.starts_with("data: {\"error\""), "{last}");
        } else {
            assert!(last.starts_with("event: error"), "{last}");
        }
        assert!(last.contains("longer than"), "{last}");
        assert!(events.iter().any(|e| e.contains("Hello")), "{events:?}");

        let recorded = records(&h.store, n + 1).await;
        let rec = recorded
            .iter()
            .find(|r| r.provider == "hostile-vllm" && r.error.is_some())
            .unwrap_or_else(|| panic!("no record of the cut stream: {recorded:?}"));
        assert!(
            rec.error.as_deref().unwrap_or("").contains("longer than"),
            "{rec:?}"
        );
        // The content the client did get is charged.
        assert!(rec.usage.is_some_and(|u| u.output >= 1), "{rec:?}");
    }
}

// === An event that trickles in and never ends ===

/// One good event, then the start of another, one byte every 50 ms, never finished.
async fn trickle(_seen: Seen, mut socket: TcpStream) {
    if socket.write_all(STREAM_HEAD).await.is_err() || socket.write_all(FIRST_CHUNK).await.is_err()
    {
        return;
    }
    let _ = socket.write_all(b"data: {\"x\":\"").await;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if socket.write_all(b"a").await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn an_event_that_trickles_in_and_never_ends_hits_the_idle_timeout() {
    let url = scripted(trickle).await;
    let reliability = pai_tower::Reliability {
        idle_timeout: Duration::from_millis(600),
        ..fast()
    };
    let (h, vllm, _) = hostile(
        &url,
        "sk-hostile-2",
        Options {
            reliability: Some(reliability),
            ..Options::default()
        },
    )
    .await;
    let started = Instant::now();
    let req = openai_request(&vllm, chat("m", true, "hi"));
    let res = h.gateway.clone().oneshot(req).await.unwrap();
    let (status, _, frames) = tokio::time::timeout(Duration::from_secs(15), collect(res))
        .await
        .expect("the stream never ended");
    assert_eq!(status, 200);
    let last = events(&frames).pop().unwrap_or_default();
    assert!(last.starts_with("data: {\"error\""), "{last}");
    assert!(last.contains("timed out"), "{last}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let rec = &records(&h.store, 1).await[0];
    assert!(
        rec.error.as_deref().unwrap_or("").contains("timed out"),
        "{rec:?}"
    );
}
