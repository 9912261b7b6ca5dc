//! Finished spans and their OTLP/HTTP protobuf encoding (`ExportTraceServiceRequest`).
//!
//! The message set pai sends is small, so it is written by hand instead of pulling in a
//! protobuf code generator: `ExportTraceServiceRequest { resource_spans = 1 }` →
//! `ResourceSpans { resource = 1, scope_spans = 2 }` → `ScopeSpans { scope = 1, spans = 2 }` →
//! `Span { trace_id = 1, span_id = 2, trace_state = 3, parent_span_id = 4, name = 5,
//! kind = 6, start_time_unix_nano = 7 (fixed64), end_time_unix_nano = 8 (fixed64),
//! attributes = 9, status = 15, flags = 16 (fixed32) }`; `Status { message = 2, code = 3 }`;
//! `KeyValue { key = 1, value = 2 }`; `AnyValue { string = 1, bool = 2, int = 3, double = 4,
//! array = 5 }` (field numbers from opentelemetry-proto's `trace/v1/trace.proto` and
//! `common/v1/common.proto`).

use std::sync::Arc;

/// What a span is to the gateway (OTLP's `SpanKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
    Strs(Vec<String>),
}

/// A span's outcome (OTLP's `Status`): unset, or an error with a message that never holds
/// key material or prompt text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Status {
    Unset,
    Error(String),
}

/// One finished span.
#[derive(Clone, Debug)]
pub(crate) struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub trace_state: Option<Arc<str>>,
    pub flags: u8,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: Vec<(&'static str, Value)>,
    pub status: Status,
}

impl SpanData {
    pub fn set(&mut self, key: &'static str, value: Value) {
        match self.attrs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.attrs.push((key, value)),
        }
    }

    pub fn str(&mut self, key: &'static str, value: impl Into<String>) {
        self.set(key, Value::Str(value.into()));
    }

    pub fn int(&mut self, key: &'static str, value: i64) {
        self.set(key, Value::Int(value));
    }
}

/// The resource every span of one tracer belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Resource {
    pub service_name: String,
    pub service_version: String,
}

/// Encode `spans` as one `ExportTraceServiceRequest`.
pub(crate) fn encode(resource: &Resource, spans: &[SpanData]) -> Vec<u8> {
    let mut res = Vec::new();
    key_value(
        &mut res,
        1,
        "service.name",
        &Value::Str(resource.service_name.clone()),
    );
    key_value(
        &mut res,
        1,
        "service.version",
        &Value::Str(resource.service_version.clone()),
    );
    key_value(
        &mut res,
        1,
        "telemetry.sdk.name",
        &Value::Str("pai".to_owned()),
    );
    key_value(
        &mut res,
        1,
        "telemetry.sdk.language",
        &Value::Str("rust".to_owned()),
    );

    let mut scope = Vec::new();
    string(&mut scope, 1, "pai-tower");
    string(&mut scope, 2, env!("CARGO_PKG_VERSION"));

    let mut scope_spans = Vec::new();
    message(&mut scope_spans, 1, &scope);
    let mut one = Vec::with_capacity(256);
    for span in spans {
        one.clear();
        encode_span(&mut one, span);
        message(&mut scope_spans, 2, &one);
    }

    let mut resource_spans = Vec::with_capacity(scope_spans.len() + res.len() + 16);
    message(&mut resource_spans, 1, &res);
    message(&mut resource_spans, 2, &scope_spans);

    let mut out = Vec::with_capacity(resource_spans.len() + 8);
    message(&mut out, 1, &resource_spans);
    out
}

fn encode_span(out: &mut Vec<u8>, s: &SpanData) {
    bytes(out, 1, &s.trace_id);
    bytes(out, 2, &s.span_id);
    if let Some(ts) = &s.trace_state {
        string(out, 3, ts);
    }
    if let Some(parent) = &s.parent {
        bytes(out, 4, parent);
    }
    string(out, 5, &s.name);
    varint_field(out, 6, s.kind as u64);
    fixed64(out, 7, s.start_ns);
    fixed64(out, 8, s.end_ns.max(s.start_ns));
    for (k, v) in &s.attrs {
        key_value(out, 9, k, v);
    }
    if let Status::Error(message_text) = &s.status {
        let mut status = Vec::new();
        string(&mut status, 2, message_text);
        varint_field(&mut status, 3, 2);
        message(out, 15, &status);
    }
    // Field 16, wire type 5 (fixed32): the W3C trace flags.
    tag(out, 16, 5);
    out.extend_from_slice(&u32::from(s.flags).to_le_bytes());
}

fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    let mut kv = Vec::with_capacity(key.len() + 16);
    string(&mut kv, 1, key);
    let mut any = Vec::new();
    any_value(&mut any, value);
    message(&mut kv, 2, &any);
    message(out, field, &kv);
}

fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Str(s) => string(out, 1, s),
        Value::Bool(b) => varint_field(out, 2, u64::from(*b)),
        Value::Int(i) => varint_field(out, 3, *i as u64),
        Value::F64(f) => {
            tag(out, 4, 1);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Strs(items) => {
            let mut array = Vec::new();
            for item in items {
                let mut any = Vec::new();
                string(&mut any, 1, item);
                message(&mut array, 1, &any);
            }
            message(out, 5, &array);
        }
    }
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 0);
    varint(out, v);
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

fn message(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    bytes(out, field, body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_tags_follow_the_protobuf_wire_format() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        varint_field(&mut out, 6, 2);
        assert_eq!(out, [0x30, 0x02]);
        let mut out = Vec::new();
        tag(&mut out, 16, 5);
        assert_eq!(out, [0x85, 0x01]);
        // A negative int64 is ten bytes of two's complement.
        let mut out = Vec::new();
        any_value(&mut out, &Value::Int(-1));
        assert_eq!(out.len(), 11);
    }

    #[test]
    fn a_request_nests_resource_scope_and_span() {
        let span = SpanData {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent: None,
            trace_state: None,
            flags: 1,
            name: "chat m".to_owned(),
            kind: Kind::Server,
            start_ns: 5,
            end_ns: 9,
            attrs: vec![("a", Value::Int(1))],
            status: Status::Unset,
        };
        let resource = Resource {
            service_name: "pai".to_owned(),
            service_version: "0".to_owned(),
        };
        let out = encode(&resource, &[span]);
        // ExportTraceServiceRequest.resource_spans, length-delimited.
        assert_eq!(out[0], 0x0a);
        let needle = b"chat m";
        assert!(out.windows(needle.len()).any(|w| w == needle));
    }
}
