//! An OTLP/HTTP trace receiver on loopback: `POST /v1/traces` with an
//! `application/x-protobuf` `ExportTraceServiceRequest`, decoded into [`ReceivedSpan`]s for
//! tests to assert on. It can be made slow or failing to test exporters' patience.
//!
//! The decoder is written apart from any encoder it tests (from the field numbers of
//! opentelemetry-proto's `collector/trace/v1`, `trace/v1` and `common/v1`), so an encoder's
//! mistake is not mirrored here.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// An attribute value as received.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// `string_value`
    Str(String),
    /// `bool_value`
    Bool(bool),
    /// `int_value`
    Int(i64),
    /// `double_value`
    F64(f64),
    /// `array_value`
    Array(Vec<AttrValue>),
}

/// One span as the receiver decoded it; ids in lower-case hex.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The W3C `tracestate`.
    pub trace_state: String,
    /// The W3C trace flags (`Span.flags`, low 8 bits).
    pub flags: u32,
    /// The span's name.
    pub name: String,
    /// 1 internal, 2 server, 3 client.
    pub kind: u64,
    /// Unix nanoseconds.
    pub start_ns: u64,
    /// Unix nanoseconds.
    pub end_ns: u64,
    /// The span's attributes.
    pub attributes: BTreeMap<String, AttrValue>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: u64,
    /// The status message.
    pub status_message: String,
    /// The attributes of the resource the span came with.
    pub resource: BTreeMap<String, AttrValue>,
}

impl ReceivedSpan {
    /// A string attribute.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key)? {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer attribute.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key)? {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// How the receiver answers.
#[derive(Clone, Debug)]
struct Behaviour {
    delay: Duration,
    /// Statuses to answer with, one per request, before answering 200 again.
    statuses: Vec<u16>,
}

struct Shared {
    spans: Mutex<Vec<ReceivedSpan>>,
    behaviour: Mutex<Behaviour>,
    requests: AtomicU64,
    content_types: Mutex<Vec<String>>,
}

/// An OTLP/HTTP receiver serving on loopback until dropped. See the module docs.
pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl OtlpReceiver {
    /// Bind `127.0.0.1` on a free port and start serving.
    pub async fn start() -> io::Result<OtlpReceiver> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            spans: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Behaviour {
                delay: Duration::ZERO,
                statuses: Vec::new(),
            }),
            requests: AtomicU64::new(0),
            content_types: Mutex::new(Vec::new()),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(OtlpReceiver {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, the base URL an exporter adds `/v1/traces` to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Wait this long before answering each request.
    pub fn set_delay(&self, delay: Duration) {
        if let Ok(mut b) = self.shared.behaviour.lock() {
            b.delay = delay;
        }
    }

    /// Answer the next requests with these statuses, in order, then 200 again.
    pub fn fail_next(&self, statuses: &[u16]) {
        if let Ok(mut b) = self.shared.behaviour.lock() {
            b.statuses = statuses.to_vec();
        }
    }

    /// Every span received and accepted so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared
            .spans
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The requests received (accepted or not).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// The `content-type` of each request received.
    pub fn content_types(&self) -> Vec<String> {
        self.shared
            .content_types
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Wait until `pred` holds for the spans received, up to `timeout`; the spans then.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if pred(&spans) || tokio::time::Instant::now() >= until {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(
    shared: &Shared,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let answer = |status: u16, body: &'static [u8]| {
        let mut res = http::Response::new(Full::new(Bytes::from_static(body)));
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
        res
    };
    if req.method() != http::Method::POST || req.uri().path() != "/v1/traces" {
        return answer(404, b"");
    }
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if let Ok(mut c) = shared.content_types.lock() {
        c.push(content_type.clone());
    }
    let (delay, status) = match shared.behaviour.lock() {
        Ok(mut b) => {
            let status = (!b.statuses.is_empty()).then(|| b.statuses.remove(0));
            (b.delay, status)
        }
        Err(_) => (Duration::ZERO, None),
    };
    let Ok(body) = req.into_body().collect().await else {
        return answer(400, b"");
    };
    let body = body.to_bytes();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = status {
        return answer(status, b"");
    }
    if content_type != "application/x-protobuf" {
        return answer(415, b"");
    }
    match decode_request(&body) {
        Some(spans) => {
            if let Ok(mut all) = shared.spans.lock() {
                all.extend(spans);
            }
            // An empty ExportTraceServiceResponse: full success.
            let mut res = answer(200, b"");
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-protobuf"),
            );
            res
        }
        None => answer(400, b""),
    }
}

// === decoding ===

/// One field of a message: its number and value.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of one message, in order; `None` if it is not valid protobuf.
fn fields(mut buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = read_varint(&mut buf)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(read_varint(&mut buf)?),
            1 => {
                let (head, rest) = buf.split_at_checked(8)?;
                buf = rest;
                Field::Fixed64(u64::from_le_bytes(head.try_into().ok()?))
            }
            2 => {
                let len = usize::try_from(read_varint(&mut buf)?).ok()?;
                let (head, rest) = buf.split_at_checked(len)?;
                buf = rest;
                Field::Bytes(head)
            }
            5 => {
                let (head, rest) = buf.split_at_checked(4)?;
                buf = rest;
                Field::Fixed32(u32::from_le_bytes(head.try_into().ok()?))
            }
            _ => return None,
        };
        out.push((number, field));
    }
    Some(out)
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn text(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decode an `ExportTraceServiceRequest` into its spans.
pub fn decode_request(body: &[u8]) -> Option<Vec<ReceivedSpan>> {
    let mut spans = Vec::new();
    for (n, f) in fields(body)? {
        if let (1, Field::Bytes(resource_spans)) = (n, f) {
            let mut resource = BTreeMap::new();
            let mut scopes = Vec::new();
            for (n, f) in fields(resource_spans)? {
                match (n, f) {
                    (1, Field::Bytes(r)) => {
                        for (n, f) in fields(r)? {
                            if let (1, Field::Bytes(kv)) = (n, f) {
                                let (k, v) = key_value(kv)?;
                                resource.insert(k, v);
                            }
                        }
                    }
                    (2, Field::Bytes(s)) => scopes.push(s),
                    _ => {}
                }
            }
            for scope in scopes {
                for (n, f) in fields(scope)? {
                    if let (2, Field::Bytes(s)) = (n, f) {
                        spans.push(span(s, &resource)?);
                    }
                }
            }
        }
    }
    Some(spans)
}

fn span(buf: &[u8], resource: &BTreeMap<String, AttrValue>) -> Option<ReceivedSpan> {
    let mut s = ReceivedSpan {
        trace_id: String::new(),
        span_id: String::new(),
        parent_span_id: None,
        trace_state: String::new(),
        flags: 0,
        name: String::new(),
        kind: 0,
        start_ns: 0,
        end_ns: 0,
        attributes: BTreeMap::new(),
        status_code: 0,
        status_message: String::new(),
        resource: resource.clone(),
    };
    for (n, f) in fields(buf)? {
        match (n, f) {
            (1, Field::Bytes(b)) => s.trace_id = hex(b),
            (2, Field::Bytes(b)) => s.span_id = hex(b),
            (3, Field::Bytes(b)) => s.trace_state = text(b)?,
            (4, Field::Bytes(b)) if !b.is_empty() => s.parent_span_id = Some(hex(b)),
            (5, Field::Bytes(b)) => s.name = text(b)?,
            (6, Field::Varint(k)) => s.kind = k,
            (7, Field::Fixed64(t)) => s.start_ns = t,
            (8, Field::Fixed64(t)) => s.end_ns = t,
            (9, Field::Bytes(kv)) => {
                let (k, v) = key_value(kv)?;
                s.attributes.insert(k, v);
            }
            (15, Field::Bytes(status)) => {
                for (n, f) in fields(status)? {
                    match (n, f) {
                        (2, Field::Bytes(m)) => s.status_message = text(m)?,
                        (3, Field::Varint(c)) => s.status_code = c,
                        _ => {}
                    }
                }
            }
            (16, Field::Fixed32(flags)) => s.flags = flags & 0xff,
            _ => {}
        }
    }
    Some(s)
}

fn key_value(buf: &[u8]) -> Option<(String, AttrValue)> {
    let mut key = None;
    let mut value = None;
    for (n, f) in fields(buf)? {
        match (n, f) {
            (1, Field::Bytes(k)) => key = Some(text(k)?),
            (2, Field::Bytes(v)) => value = Some(any_value(v)?),
            _ => {}
        }
    }
    Some((key?, value?))
}

fn any_value(buf: &[u8]) -> Option<AttrValue> {
    let mut out = None;
    for (n, f) in fields(buf)? {
        out = Some(match (n, f) {
            (1, Field::Bytes(s)) => AttrValue::Str(text(s)?),
            (2, Field::Varint(b)) => AttrValue::Bool(b != 0),
            (3, Field::Varint(i)) => AttrValue::Int(i as i64),
            (4, Field::Fixed64(d)) => AttrValue::F64(f64::from_bits(d)),
            (5, Field::Bytes(array)) => {
                let mut items = Vec::new();
                for (n, f) in fields(array)? {
                    if let (1, Field::Bytes(v)) = (n, f) {
                        items.push(any_value(v)?);
                    }
                }
                AttrValue::Array(items)
            }
            _ => continue,
        });
    }
    out
}
