//! Upstreams that misbehave on purpose: lines that never end, events that trickle in a byte at a
//! time, error bodies that quote the gateway's provider key back. Each test stands a small
//! scripted HTTP/1.1 server on loopback in front of the assembled gateway.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use common::{
    anthropic_request, collect, events, fast, harness_with, openai_request, records, Options,
};

/// What the scripted upstream read of one request.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
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
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
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
    Some(Seen { path, key, body })
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

/// `data: ` and 64 MiB without a newline, before any event.
async fn endless_first_line(_seen: Seen, mut socket: TcpStream) {
    if socket.write_all(STREAM_HEAD).await.is_err() {
        return;
    }
    let _ = socket.write_all(b"data: {\"x\":\"").await;
    let block = vec![b'a'; 64 << 10];
    for _ in 0..1024 {
        if socket.write_all(&block).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn an_endless_first_line_is_a_502_before_the_stream_starts() {
    let url = scripted(endless_first_line).await;
    let reliability = pai_tower::Reliability {
        max_event_bytes: 1 << 20,
        ..fast()
    };
    let (h, vllm, _) = hostile(
        &url,
        "sk-hostile-3",
        Options {
            reliability: Some(reliability),
            ..Options::default()
        },
    )
    .await;
    let res = h
        .gateway
        .clone()
        .oneshot(openai_request(&vllm, chat("m", true, "hi")))
        .await
        .unwrap();
    let (status, _, frames) = collect(res).await;
    assert_eq!(status, 502);
    let body = String::from_utf8_lossy(&frames.concat()).to_string();
    assert!(body.contains("longer than 1048576 bytes"), "{body}");
    let rec = &records(&h.store, 1).await[0];
    assert_eq!(rec.status, 502, "{rec:?}");
    assert!(
        rec.error.as_deref().unwrap_or("").contains("longer than"),
        "{rec:?}"
    );
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

// === Provider keys quoted back ===

/// A provider key of no known shape, as vLLM deployments use.
const KEY: &str = "vllm.Prod.Token.7f3a9b2c";

/// Pieces of [`KEY`] that must never reach a client, a record or a log: the key, and what its
/// masked forms leave visible.
const KEY_PIECES: &[&str] = &[KEY, "7f3a9b2c", "9b2c", "vllm.P", "vllm*", "Token.7f"];

/// Log lines written while the tests in this file run.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        struct Sink;
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                logs().lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| Sink)
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        Mutex::new(Vec::new())
    })
}

/// What upstreams say when they refuse a key: the key itself, and masked the ways providers
/// mask it.
fn quoting(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let head = |n: usize| chars[..n].iter().collect::<String>();
    let tail = |n: usize| chars[chars.len() - n..].iter().collect::<String>();
    format!(
        "Incorrect API key provided: {key}. Also known as {}***{}, {}...{}, ****{} and {}…",
        head(4),
        tail(2),
        head(9),
        tail(4),
        tail(8),
        head(7)
    )
}

/// Echoes the key it was given: `[echo:S]` in the prompt answers status S, `[echo:stream]` a
/// stream whose second event is an error; both in the dialect of the path asked.
async fn echo_key(seen: Seen, mut socket: TcpStream) {
    let anthropic = seen.path.contains("/messages");
    let message = quoting(&seen.key);
    let error = if anthropic {
        serde_json::json!({"type": "error",
            "error": {"type": "authentication_error", "message": message}})
    } else {
        serde_json::json!({"error": {"message": message, "type": "invalid_request_error",
            "code": "invalid_api_key", "param": null}})
    };
    let response = if seen.body.contains("[echo:stream]") {
        let first: &[u8] = if anthropic {
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-m\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n"
        } else {
            FIRST_CHUNK
        };
        let event = if anthropic {
            format!("event: error\ndata: {error}\n\n")
        } else {
            format!("data: {error}\n\n")
        };
        [STREAM_HEAD, first, event.as_bytes()].concat()
    } else {
        let status: u16 = ["400", "401", "403", "503"]
            .into_iter()
            .find(|s| seen.body.contains(&format!("[echo:{s}]")))
            .and_then(|s| s.parse().ok())
            .unwrap_or(400);
        let body = error.to_string();
        format!(
            "HTTP/1.1 {status} Oops\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let _ = socket.write_all(&response).await;
    let _ = socket.shutdown().await;
}

fn pieces_in(text: &str) -> Vec<&'static str> {
    KEY_PIECES
        .iter()
        .copied()
        .filter(|p| text.contains(p))
        .collect()
}

#[tokio::test]
async fn the_provider_key_quoted_back_reaches_no_client_record_or_log() {
    logs();
    let url = scripted(echo_key).await;
    let (h, vllm, ant) = hostile(
        &url,
        KEY,
        Options {
            reliability: Some(fast()),
            ..Options::default()
        },
    )
    .await;
    let mut leaks = Vec::new();
    let mut calls = 0;
    for (access_key, model) in [(&vllm, "m"), (&ant, "claude-m")] {
        for script in ["400", "401", "403", "503", "stream"] {
            for stream in [false, true] {
                if script == "stream" && !stream {
                    continue;
                }
                let prompt = format!("hi [echo:{script}]");
                let requests = [
                    (
                        "openai",
                        openai_request(access_key, chat(model, stream, &prompt)),
                    ),
                    (
                        "anthropic",
                        anthropic_request(access_key, chat(model, stream, &prompt)),
                    ),
                ];
                for (dialect, req) in requests {
                    calls += 1;
                    let res = h.gateway.clone().oneshot(req).await.unwrap();
                    let (status, headers, frames) = collect(res).await;
                    let text = format!("{headers:?} {}", String::from_utf8_lossy(&frames.concat()));
                    // The client still learns that upstream refused a key.
                    if !text.contains("[redacted]") {
                        leaks.push(format!(
                            "response, {model} via {dialect}, {script}, stream={stream}: \
                             no [redacted] in {status} {text}"
                        ));
                    }
                    let found = pieces_in(&text);
                    if !found.is_empty() {
                        leaks.push(format!(
                            "response, {model} via {dialect}, {script}, stream={stream}: {found:?} in {text}"
                        ));
                    }
                }
            }
        }
    }
    let recorded = records(&h.store, calls).await;
    assert_eq!(recorded.len(), calls);
    for rec in &recorded {
        let text = serde_json::to_string(rec).unwrap();
        let found = pieces_in(&text);
        if !found.is_empty() {
            leaks.push(format!("record: {found:?} in {text}"));
        }
    }
    let logged = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    assert!(
        logged.contains("retrying"),
        "the 503s were not logged: {logged}"
    );
    for line in logged.lines() {
        let found = pieces_in(line);
        if !found.is_empty() {
            leaks.push(format!("log: {found:?} in {line}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
