//! [`CallTrace`]: the spans of one call, in its request's extensions while it runs.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use pai_core::store::CallRecord;
use pai_core::{Call, Cost, GuardDecision, GuardVerdict, Operation, ProviderKind};
use pai_core::{Error, Usage};

use super::context::{self, Incoming};
use super::exporter::Tracer;
use super::otlp::{Kind, SpanData, Status, Value};
use crate::fallback::Candidate;

/// Unix nanoseconds now.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The spans of one call: the call's SERVER span, and its guard, candidate and attempt
/// children. Clones share them. The layers below find it in the request's extensions; whoever
/// finishes the call ends its span ([`crate::LogEntry::finish`]).
#[derive(Clone)]
pub struct CallTrace(Arc<Shared>);

struct Shared {
    tracer: Tracer,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    trace_state: Option<HeaderValue>,
    /// The trace state as spans carry it.
    trace_state_text: Option<Arc<str>>,
    flags: u8,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The call span, until it ends.
    call: Option<SpanData>,
    /// A call log owns the end of the call span.
    claimed: bool,
    operation: &'static str,
    request_model: Option<String>,
    system: Option<String>,
    candidate: Option<SpanData>,
    attempt: Option<SpanData>,
    /// Tries of the current candidate so far.
    tries: u32,
    /// Why the previous try of the current candidate failed (an error code).
    previous_failure: Option<&'static str>,
}

impl std::fmt::Debug for CallTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallTrace")
            .field("trace_id", &context::hex(&self.0.trace_id))
            .field("span_id", &context::hex(&self.0.span_id))
            .finish_non_exhaustive()
    }
}

/// `gen_ai.provider.name` (and the older `gen_ai.system`) of a provider kind.
fn system(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::AzureOpenAi => "azure.ai.openai",
        ProviderKind::OpenRouter => "openrouter",
        ProviderKind::Vllm => "vllm",
    }
}

impl CallTrace {
    /// Start the call's span: a child of the client's `traceparent` when it is valid (its
    /// `tracestate` kept), else the root of a new trace.
    pub(crate) fn start(
        tracer: &Tracer,
        headers: &HeaderMap,
        method: &http::Method,
        call_id: Option<&str>,
    ) -> CallTrace {
        let incoming: Option<Incoming> = headers
            .get("traceparent")
            .and_then(|v| context::parse_traceparent(v.as_bytes()));
        let ids = &tracer.shared.ids;
        let (trace_id, parent, flags, trace_state) = match incoming {
            Some(i) => (
                i.trace_id,
                Some(i.parent_id),
                i.flags & 0x01,
                context::tracestate(headers),
            ),
            None => (ids.trace_id(), None, 0x01, None),
        };
        let span_id = ids.span_id();
        let trace_state_text: Option<Arc<str>> = trace_state
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(Arc::from);
        let mut call = SpanData {
            trace_id,
            span_id,
            parent,
            trace_state: trace_state_text.clone(),
            flags,
            name: method.as_str().to_owned(),
            kind: Kind::Server,
            start_ns: now_ns(),
            end_ns: 0,
            attrs: Vec::with_capacity(20),
            status: Status::Unset,
        };
        call.str("http.request.method", method.as_str());
        if let Some(id) = call_id {
            call.str("pai.call_id", id);
        }
        CallTrace(Arc::new(Shared {
            tracer: tracer.clone(),
            trace_id,
            span_id,
            parent,
            trace_state,
            trace_state_text,
            flags,
            state: Mutex::new(State {
                call: Some(call),
                ..State::default()
            }),
        }))
    }

    /// The call's trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.0.trace_id
    }

    /// The call span's id.
    pub fn span_id(&self) -> [u8; 8] {
        self.0.span_id
    }

    /// The span id of the client's span this call continues, if it sent a valid
    /// `traceparent`.
    pub fn parent_id(&self) -> Option<[u8; 8]> {
        self.0.parent
    }

    fn sampled(&self) -> bool {
        self.0.flags & 0x01 == 0x01
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        self.0.state.lock().ok().map(|mut s| f(&mut s))
    }

    fn child(&self, name: String, kind: Kind, parent: [u8; 8]) -> SpanData {
        SpanData {
            trace_id: self.0.trace_id,
            span_id: self.0.tracer.shared.ids.span_id(),
            parent: Some(parent),
            trace_state: self.0.trace_state_text.clone(),
            flags: self.0.flags,
            name,
            kind,
            start_ns: now_ns(),
            end_ns: 0,
            attrs: Vec::with_capacity(10),
            status: Status::Unset,
        }
    }

    fn export(&self, mut span: SpanData, end_ns: u64) {
        span.end_ns = end_ns;
        if self.sampled() {
            self.0.tracer.submit(span);
        }
    }

    /// A call log ends this call's span when it finishes the call.
    pub(crate) fn claim(&self) {
        self.with(|s| s.claimed = true);
    }

    pub(crate) fn claimed(&self) -> bool {
        self.with(|s| s.claimed).unwrap_or(false)
    }

    /// What the client asked for, before any candidate: the operation, model, token bound.
    pub(crate) fn request(&self, call: &Call) {
        let operation = match call.operation {
            Operation::ChatCompletions | Operation::Messages => "chat",
            Operation::CountTokens => "count_tokens",
            Operation::ListModels => "list_models",
        };
        let max_tokens = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
            .iter()
            .find_map(|k| call.body.get::<u64>(k).and_then(Result::ok));
        self.with(|s| {
            s.operation = operation;
            s.request_model = Some(call.model.clone());
            if let Some(span) = s.call.as_mut() {
                span.name = format!("{operation} {}", call.model);
                span.str("gen_ai.operation.name", operation);
                span.str("gen_ai.request.model", call.model.as_str());
                span.set("pai.stream", Value::Bool(call.stream));
                if let Some(n) = max_tokens {
                    span.int("gen_ai.request.max_tokens", n as i64);
                }
            }
        });
    }

    /// A guard ran from `start_ns` until now and said `verdict`.
    pub(crate) fn guard(&self, verdict: &GuardVerdict, start_ns: u64) {
        let mut span = self.child(
            format!("guard {}", verdict.binding),
            Kind::Internal,
            self.0.span_id,
        );
        span.start_ns = start_ns;
        span.str("pai.guard.binding", verdict.binding.as_str());
        span.str("pai.guard.verdict", verdict.verdict.as_str());
        span.str("pai.guard.enforcement", verdict.enforcement.as_str());
        if let Some(score) = verdict.score {
            span.set("pai.guard.score", Value::F64(f64::from(score)));
        }
        if verdict.verdict == GuardDecision::Error {
            span.str("error.type", "guard_timeout");
            span.status = Status::Error("the guard did not answer in time".to_owned());
        }
        self.export(span, now_ns());
    }

    /// The fallback walk tries `candidate` next.
    pub(crate) fn candidate(&self, candidate: &Candidate) {
        let provider_type = &candidate.provider.resource.spec.provider;
        let system_name = match provider_type.kind() {
            Some(kind) => system(kind).to_owned(),
            None => provider_type.as_str().to_owned(),
        };
        let mut span = self.child(
            format!("candidate {}", candidate.label),
            Kind::Internal,
            self.0.span_id,
        );
        span.str(
            "pai.provider",
            candidate.provider.resource.metadata.name.as_str(),
        );
        span.str("gen_ai.request.model", candidate.model.as_str());
        span.int("pai.candidate.position", candidate.position as i64);
        if let Some(from) = &candidate.fell_back_from {
            span.str("pai.fallback.from", from.as_str());
        }
        let old = self.with(|s| {
            s.system = Some(system_name);
            s.tries = 0;
            s.previous_failure = None;
            s.candidate.replace(span)
        });
        if let Some(Some(old)) = old {
            self.export(old, now_ns());
        }
    }

    /// The current candidate failed with `error`; the walk may go on.
    pub(crate) fn candidate_failed(&self, error: &Error) {
        let span = self.with(|s| s.candidate.take()).flatten();
        if let Some(mut span) = span {
            fail(&mut span, error);
            self.export(span, now_ns());
        }
    }

    /// A try of the current candidate begins with `request`: its CLIENT span starts, and the
    /// request carries it upstream in `traceparent` (with the client's `tracestate`).
    pub(crate) fn attempt<B>(&self, candidate: &Candidate, request: &mut http::Request<B>) {
        let started = self.with(|s| {
            s.tries += 1;
            let parent = s.candidate.as_ref().map_or(self.0.span_id, |c| c.span_id);
            let operation = if s.operation.is_empty() {
                "chat"
            } else {
                s.operation
            };
            let mut span = self.child(
                format!("{operation} {}", candidate.model),
                Kind::Client,
                parent,
            );
            span.str("gen_ai.operation.name", operation);
            if let Some(system) = &s.system {
                span.str("gen_ai.provider.name", system.as_str());
                span.str("gen_ai.system", system.as_str());
            }
            span.str("gen_ai.request.model", candidate.model.as_str());
            span.str(
                "pai.provider",
                candidate.provider.resource.metadata.name.as_str(),
            );
            span.int("pai.attempt", i64::from(s.tries));
            if let Some(why) = s.previous_failure {
                span.str("pai.retry.reason", why);
            }
            if let Some(host) = request.uri().host() {
                span.str("server.address", host);
            }
            if let Some(port) = request.uri().port_u16() {
                span.int("server.port", i64::from(port));
            }
            let id = span.span_id;
            (s.attempt.replace(span), id)
        });
        let Some((old, id)) = started else {
            return;
        };
        if let Some(old) = old {
            self.export(old, now_ns());
        }
        let headers = request.headers_mut();
        headers.insert(
            "traceparent",
            context::traceparent(&self.0.trace_id, &id, self.0.flags),
        );
        match &self.0.trace_state {
            Some(ts) => headers.insert("tracestate", ts.clone()),
            None => headers.remove("tracestate"),
        };
    }

    /// The current try failed with `error` (it may be retried).
    pub(crate) fn attempt_failed(&self, error: &Error) {
        let span = self.with(|s| {
            s.previous_failure = Some(error.code());
            s.attempt.take()
        });
        if let Some(Some(mut span)) = span {
            fail(&mut span, error);
            self.export(span, now_ns());
        }
    }

    /// The current try answered with `status`; its span lasts until the call ends.
    pub(crate) fn attempt_answered(&self, status: u16) {
        self.with(|s| {
            if let Some(span) = s.attempt.as_mut() {
                span.int("http.response.status_code", i64::from(status));
            }
        });
    }

    /// The call ends as `record` says: its span, and the candidate and try that answered it.
    pub(crate) fn finish(&self, record: &CallRecord, usage: Option<&Usage>, cost: Option<Cost>) {
        let end = now_ns();
        let taken = self.with(|s| {
            let system = s.system.take();
            (s.call.take(), s.candidate.take(), s.attempt.take(), system)
        });
        let Some((Some(mut call), candidate, attempt, system)) = taken else {
            return;
        };
        let failed = record.status >= 400 || record.error.is_some();
        for (span, is_attempt) in [(attempt, true), (candidate, false)] {
            let Some(mut span) = span else { continue };
            if is_attempt {
                if let Some(u) = usage {
                    usage_attrs(&mut span, u);
                }
                if !record.model.is_empty() {
                    span.str("gen_ai.response.model", record.model.as_str());
                }
            }
            if failed {
                span.str("error.type", error_type(record));
                span.status = Status::Error(status_message(record));
            }
            self.export(span, end);
        }
        if let Some(system) = system {
            call.str("gen_ai.provider.name", system.as_str());
            call.str("gen_ai.system", system);
        }
        if !record.model.is_empty() {
            call.str("gen_ai.response.model", record.model.as_str());
        }
        call.str("pai.workload", record.workload.as_str());
        if let Some(key) = &record.access_key {
            call.str("pai.access_key", key.as_str());
        }
        if !record.provider.is_empty() {
            call.str("pai.provider", record.provider.as_str());
        }
        if let Some(binding) = &record.binding {
            call.str("pai.model_binding", binding.as_str());
        }
        call.str("pai.call_id", record.call_id.as_str());
        call.int("http.response.status_code", i64::from(record.status));
        if let Some(u) = usage {
            usage_attrs(&mut call, u);
        }
        if let Some(c) = cost {
            call.set("pai.cost_usd", Value::F64(c.pico_usd as f64 / 1e12));
        }
        if !record.guards.is_empty() {
            let verdicts = record
                .guards
                .iter()
                .map(|g| format!("{}={}", g.binding, g.verdict.as_str()))
                .collect();
            call.set("pai.guard.verdicts", Value::Strs(verdicts));
        }
        if failed {
            call.str("error.type", error_type(record));
            call.status = Status::Error(status_message(record));
        }
        self.export(call, end);
    }

    /// End the span of a call no call log took (a refusal before one opened, a public route).
    pub(crate) fn finish_unlogged(&self, status: u16) {
        let Some(Some(mut call)) = self.with(|s| s.call.take()) else {
            return;
        };
        call.int("http.response.status_code", i64::from(status));
        if status >= 400 {
            call.str("error.type", status.to_string());
            call.status = Status::Error(format!("answered {status}"));
        }
        self.export(call, now_ns());
    }
}

fn usage_attrs(span: &mut SpanData, u: &Usage) {
    span.int("gen_ai.usage.input_tokens", u.prompt_tokens() as i64);
    span.int("gen_ai.usage.output_tokens", u.output as i64);
}

/// Mark `span` failed with `error`: its code as `error.type` and in the status, never its
/// text (an upstream's message may quote the prompt).
fn fail(span: &mut SpanData, error: &Error) {
    let status = error.status().as_u16();
    span.str("error.type", error.code());
    span.int("http.response.status_code", i64::from(status));
    span.status = Status::Error(format!("{} ({status})", error.code()));
}

/// `error.type` of a finished call: the status it answered with, or `client_disconnected`.
fn error_type(record: &CallRecord) -> String {
    match record.status {
        499 => "client_disconnected".to_owned(),
        s if s >= 400 => s.to_string(),
        _ => "stream_error".to_owned(),
    }
}

fn status_message(record: &CallRecord) -> String {
    match record.status {
        499 => "the client went away before the call was answered".to_owned(),
        s if s >= 400 => format!("answered {s}"),
        _ => "the answer broke off".to_owned(),
    }
}
