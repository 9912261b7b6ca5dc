//! A small HTTP client for driving the mock in tests: one connection per request, every body
//! frame kept as it arrived.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// A mock with the default config.
pub async fn mock() -> pai_mock::MockUpstream {
    pai_mock::MockUpstream::start(pai_mock::MockConfig::default())
        .await
        .expect("start the mock")
}

/// A mock with `config`.
pub async fn mock_with(config: pai_mock::MockConfig) -> pai_mock::MockUpstream {
    pai_mock::MockUpstream::start(config)
        .await
        .expect("start the mock")
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// Every data frame, in arrival order.
    pub frames: Vec<Bytes>,
    /// When each frame arrived, measured from sending the request.
    pub arrivals: Vec<Duration>,
    /// When the response head arrived.
    pub head_after: Duration,
    /// Whether the body ended in an error instead of cleanly.
    pub broken: bool,
}

impl Answer {
    pub fn body(&self) -> Vec<u8> {
        self.frames.concat()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body()).expect("utf-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body()).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as server-sent events.
    pub fn events(&self) -> Vec<Sse> {
        parse_sse(&self.text())
    }
}

/// One server-sent event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sse {
    pub event: Option<String>,
    pub data: String,
}

impl Sse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("JSON event data")
    }
}

pub fn parse_sse(text: &str) -> Vec<Sse> {
    let normalized = text.replace("\r\n", "\n");
    assert!(
        normalized.is_empty() || normalized.ends_with("\n\n"),
        "unterminated event in {text:?}"
    );
    normalized
        .split("\n\n")
        .filter(|block| !block.is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push(value);
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            Sse {
                event,
                data: data.join("\n"),
            }
        })
        .collect()
}

pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "mock");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).expect("request");
    let started = Instant::now();
    let response = sender.send_request(request).await.expect("response");
    let head_after = started.elapsed();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    let mut arrivals = Vec::new();
    let mut broken = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    frames.push(data);
                    arrivals.push(started.elapsed());
                }
            }
            Err(_) => {
                broken = true;
                break;
            }
        }
    }
    Answer {
        status,
        headers,
        frames,
        arrivals,
        head_after,
        broken,
    }
}

pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(addr, Method::POST, path, &all, body.to_string()).await
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(addr, Method::GET, path, headers, Bytes::new()).await
}

/// An OpenAI request with one user message; `extra` fields are merged in.
pub fn openai_request(prompt: &str, extra: Value) -> Value {
    merge(
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}),
        extra,
    )
}

/// An Anthropic request with one user message; `extra` fields are merged in.
pub fn anthropic_request(prompt: &str, extra: Value) -> Value {
    merge(
        json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": prompt}]}),
        extra,
    )
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// The OpenAI content deltas of a stream, concatenated.
pub fn openai_text(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The Anthropic text deltas of a stream, concatenated.
pub fn anthropic_text(events: &[Sse]) -> String {
    events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .filter_map(|e| e.json()["delta"]["text"].as_str().map(str::to_owned))
        .collect()
}
