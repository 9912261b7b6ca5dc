//! OpenTelemetry traces of calls through the assembled gateway, exported over OTLP/HTTP to a
//! receiver in the test process (`pai_mock::OtlpReceiver`), in front of the mock upstream.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use pai_core::{Guard, GuardInput, Verdict};
use pai_mock::{OtlpReceiver, ReceivedSpan};
use pai_tower::Tracer;
use tower::ServiceExt;

use common::{collect, fast, harness_with, openai_request, Options};

const CLIENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

const SERVER: u64 = 2;
const CLIENT: u64 = 3;

fn traceparent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
}

/// A tracer that exports quickly to `receiver`.
fn tracer_to(receiver: &OtlpReceiver) -> Tracer {
    Tracer::otlp(&receiver.url())
        .batch(64, Duration::from_millis(20))
        .export_timeout(Duration::from_secs(2))
        .start()
        .unwrap()
}

fn with_tracer(tracer: Tracer, options: Options) -> Options {
    Options {
        customize: Some(Box::new(move |b| b.tracer(tracer))),
        ..options
    }
}

fn chat(prompt: &str) -> serde_json::Value {
    serde_json::json!({"model": "gpt-4o-mini", "max_tokens": 50,
        "messages": [{"role": "user", "content": prompt}]})
}

/// Wait until the call span (the SERVER span) is in, then a little for its children.
async fn call_spans(receiver: &OtlpReceiver, tracer: &Tracer) -> Vec<ReceivedSpan> {
    tracer.flush(Duration::from_secs(5)).await;
    receiver
        .wait_for(Duration::from_secs(5), |s| {
            s.iter().any(|s| s.kind == SERVER)
        })
        .await
}

fn one(spans: &[ReceivedSpan], what: impl Fn(&ReceivedSpan) -> bool) -> &ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| what(s)).collect();
    assert_eq!(found.len(), 1, "{spans:#?}");
    found[0]
}

#[tokio::test]
async fn a_call_is_one_server_span_that_continues_the_clients_trace() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let tracer = tracer_to(&receiver);
    let h = harness_with(with_tracer(
        tracer.clone(),
        Options {
            prices: true,
            ..Options::default()
        },
    ))
    .await;
    let mut req = openai_request(&h.openai_key, chat("a secret prompt [mock:words=4]"));
    req.headers_mut()
        .insert("traceparent", traceparent().parse().unwrap());
    req.headers_mut()
        .insert("tracestate", "vendor=1".parse().unwrap());
    let (status, headers, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    let spans = call_spans(&receiver, &tracer).await;

    let call = one(&spans, |s| s.kind == SERVER);
    assert_eq!(call.trace_id, CLIENT_TRACE);
    assert_eq!(call.parent_span_id.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(call.trace_state, "vendor=1");
    assert_eq!(call.name, "chat gpt-4o-mini");
    assert_eq!(call.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(call.str("gen_ai.provider.name"), Some("openai"));
    assert_eq!(call.str("gen_ai.system"), Some("openai"));
    assert_eq!(call.str("gen_ai.request.model"), Some("gpt-4o-mini"));
    assert_eq!(call.str("gen_ai.response.model"), Some("gpt-4o-mini"));
    assert_eq!(call.int("gen_ai.request.max_tokens"), Some(50));
    let input: i64 = headers["x-pai-input-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(call.int("gen_ai.usage.input_tokens"), Some(input));
    assert_eq!(call.int("gen_ai.usage.output_tokens"), Some(4));
    assert_eq!(call.str("pai.workload"), Some("ext:k-oai"));
    assert_eq!(call.str("pai.access_key"), Some("k-oai"));
    assert_eq!(call.str("pai.provider"), Some("oai"));
    assert_eq!(
        call.str("pai.call_id"),
        Some(headers["x-pai-call-id"].to_str().unwrap())
    );
    assert_eq!(call.int("http.response.status_code"), Some(200));
    let cost: f64 = headers["x-pai-cost-usd"].to_str().unwrap().parse().unwrap();
    match call.attributes.get("pai.cost_usd") {
        // The header rounds to the micro-dollar; the span keeps the exact figure.
        Some(pai_mock::otlp::AttrValue::F64(c)) => {
            assert!(*c > 0.0 && (c - cost).abs() <= 0.5e-6 + 1e-12, "{c} {cost}")
        }
        other => panic!("pai.cost_usd: {other:?}"),
    }
    assert_eq!(call.status_code, 0);
    assert!(call.end_ns >= call.start_ns);
    assert_eq!(
        call.resource.get("service.name"),
        Some(&pai_mock::otlp::AttrValue::Str("pai".to_owned()))
    );

    // The candidate under the call, the try under the candidate.
    let candidate = one(&spans, |s| s.name.starts_with("candidate "));
    assert_eq!(
        candidate.parent_span_id.as_deref(),
        Some(call.span_id.as_str())
    );
    assert_eq!(candidate.trace_id, CLIENT_TRACE);
    let attempt = one(&spans, |s| s.kind == CLIENT);
    assert_eq!(
        attempt.parent_span_id.as_deref(),
        Some(candidate.span_id.as_str())
    );
    assert_eq!(attempt.name, "chat gpt-4o-mini");
    assert_eq!(attempt.int("pai.attempt"), Some(1));
    assert_eq!(attempt.str("server.address"), Some("127.0.0.1"));
    assert_eq!(attempt.int("http.response.status_code"), Some(200));

    // Upstream got the try's span as its parent, in the client's trace, with its tracestate.
    let seen = h.mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("traceparent"),
        Some(format!("00-{CLIENT_TRACE}-{}-01", attempt.span_id).as_str())
    );
    assert_eq!(seen[0].header("tracestate"), Some("vendor=1"));

    // Never the prompt, nor any key.
    for s in &spans {
        let text = format!("{:?}", s.attributes) + &s.status_message;
        assert!(!text.contains("secret prompt"), "{text}");
        assert!(!text.contains(&h.openai_key), "{text}");
        assert!(!text.contains("sk-real-openai"), "{text}");
    }
}

#[tokio::test]
async fn an_invalid_traceparent_starts_a_new_trace_and_its_tracestate_is_dropped() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let tracer = tracer_to(&receiver);
    let h = harness_with(with_tracer(tracer.clone(), Options::default())).await;
    let mut req = openai_request(&h.openai_key, chat("hi"));
    let bad = format!("00-{}-{CLIENT_SPAN}-01", CLIENT_TRACE.to_uppercase());
    req.headers_mut()
        .insert("traceparent", bad.parse().unwrap());
    req.headers_mut()
        .insert("tracestate", "vendor=1".parse().unwrap());
    let (status, _, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    let spans = call_spans(&receiver, &tracer).await;
    let call = one(&spans, |s| s.kind == SERVER);
    assert_ne!(call.trace_id, CLIENT_TRACE.to_lowercase());
    assert_eq!(call.parent_span_id, None);
    assert_eq!(call.trace_state, "");
    let attempt = one(&spans, |s| s.kind == CLIENT);
    let seen = h.mock.requests();
    assert_eq!(
        seen[0].header("traceparent"),
        Some(format!("00-{}-{}-01", call.trace_id, attempt.span_id).as_str())
    );
    assert_eq!(seen[0].header("tracestate"), None);
}

#[tokio::test]
async fn a_retried_call_has_an_attempt_span_per_try() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let tracer = tracer_to(&receiver);
    let h = harness_with(with_tracer(
        tracer.clone(),
        Options {
            reliability: Some(fast()),
            ..Options::default()
        },
    ))
    .await;
    let req = openai_request(&h.openai_key, chat("hi [mock:status=503,times=1]"));
    let (status, headers, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-pai-retries"], "1");
    let spans = call_spans(&receiver, &tracer).await;
    let mut attempts: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind == CLIENT).collect();
    attempts.sort_by_key(|s| s.int("pai.attempt"));
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    assert_eq!(attempts[0].int("pai.attempt"), Some(1));
    assert_eq!(attempts[0].status_code, 2);
    assert_eq!(attempts[0].int("http.response.status_code"), Some(503));
    let why = attempts[0].str("error.type").unwrap();
    assert_eq!(attempts[1].int("pai.attempt"), Some(2));
    assert_eq!(attempts[1].str("pai.retry.reason"), Some(why));
    assert_eq!(attempts[1].status_code, 0);
    // Both tries under the one candidate; each went upstream with its own span id.
    assert_eq!(attempts[0].parent_span_id, attempts[1].parent_span_id);
    let seen: Vec<String> = h
        .mock
        .requests()
        .iter()
        .map(|r| r.header("traceparent").unwrap().to_owned())
        .collect();
    let trace = &one(&spans, |s| s.kind == SERVER).trace_id;
    assert_eq!(
        seen,
        [
            format!("00-{trace}-{}-01", attempts[0].span_id),
            format!("00-{trace}-{}-01", attempts[1].span_id)
        ]
    );
}

#[tokio::test]
async fn a_fallback_shows_both_candidates() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let tracer = tracer_to(&receiver);
    // A provider whose endpoint refuses connections, falling back to `oai`.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let h = harness_with(with_tracer(
        tracer.clone(),
        Options {
            reliability: Some(pai_tower::Reliability {
                max_attempts: 1,
                ..fast()
            }),
            extra_yaml: format!(
                r#"
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: flaky}}
spec:
  provider: openai
  endpoint: {dead}/v1
  apiKeySecretRef: {{name: keys, key: openai}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: true}}
  fallbacks: [oai/gpt-4o-mini]
"#
            ),
            keys_for: vec!["flaky".to_owned()],
            ..Options::default()
        },
    ))
    .await;
    let req = openai_request(&h.extra_keys[0], chat("hi"));
    let (status, headers, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-pai-fell-back-from"], "flaky/gpt-4o-mini");
    let spans = call_spans(&receiver, &tracer).await;
    let call = one(&spans, |s| s.kind == SERVER);
    assert_eq!(call.str("pai.provider"), Some("oai"));
    let first = one(&spans, |s| s.name == "candidate flaky/gpt-4o-mini");
    let second = one(&spans, |s| s.name == "candidate oai/gpt-4o-mini");
    for c in [first, second] {
        assert_eq!(c.parent_span_id.as_deref(), Some(call.span_id.as_str()));
    }
    assert_eq!(first.int("pai.candidate.position"), Some(0));
    assert_eq!(first.status_code, 2);
    assert_eq!(first.str("error.type"), Some("upstream_unreachable"));
    assert_eq!(second.int("pai.candidate.position"), Some(1));
    assert_eq!(second.str("pai.fallback.from"), Some("flaky/gpt-4o-mini"));
    assert_eq!(second.status_code, 0);
    // One try under each.
    let under = |c: &ReceivedSpan| {
        spans
            .iter()
            .filter(|s| s.kind == CLIENT && s.parent_span_id.as_deref() == Some(&c.span_id))
            .count()
    };
    assert_eq!((under(first), under(second)), (1, 1));
}

struct NoPasswords;

#[async_trait::async_trait]
impl Guard for NoPasswords {
    fn name(&self) -> &str {
        "no-passwords"
    }
    async fn inspect(&self, input: &GuardInput) -> Verdict {
        match input.texts.iter().any(|(_, t)| t.contains("password")) {
            true => Verdict::Block {
                reason: "asks for a password".into(),
                score: 0.9,
            },
            false => Verdict::Allow,
        }
    }
}

#[tokio::test]
async fn a_bound_guard_has_a_span_with_its_verdict() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let tracer = tracer_to(&receiver);
    let t = tracer.clone();
    let h = harness_with(Options {
        oai_spec: "  guards: [{binding: no-pw}]".to_owned(),
        extra_yaml: "apiVersion: pai.io/v1\nkind: GuardBinding\nmetadata: {name: no-pw}\nspec: {guard: no-passwords}\n".to_owned(),
        customize: Some(Box::new(move |b| {
            b.tracer(t).guard_kind(
                "no-passwords",
                Arc::new(|_: &pai_core::resource::GuardBinding| {
                    Ok(Arc::new(NoPasswords) as Arc<dyn Guard>)
                }),
            )
        })),
        ..Options::default()
    })
    .await;
    h.gateway.reload().await.unwrap();

    let req = openai_request(&h.openai_key, chat("what is my password"));
    let (status, _, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 403);
    let spans = call_spans(&receiver, &tracer).await;
    let call = one(&spans, |s| s.kind == SERVER);
    let guard = one(&spans, |s| s.name == "guard no-pw");
    assert_eq!(guard.parent_span_id.as_deref(), Some(call.span_id.as_str()));
    assert_eq!(guard.str("pai.guard.binding"), Some("no-pw"));
    assert_eq!(guard.str("pai.guard.verdict"), Some("block"));
    assert_eq!(guard.str("pai.guard.enforcement"), Some("enforce"));
    match guard.attributes.get("pai.guard.score") {
        Some(pai_mock::otlp::AttrValue::F64(s)) => assert!((s - 0.9).abs() < 1e-6),
        other => panic!("score: {other:?}"),
    }
    // The refused call: an error, and no upstream try.
    assert_eq!(call.status_code, 2);
    assert_eq!(call.int("http.response.status_code"), Some(403));
    assert!(spans.iter().all(|s| s.kind != CLIENT));
    assert!(!format!("{spans:?}").contains("password"));
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn a_streamed_call_span_ends_after_the_stream() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let tracer = tracer_to(&receiver);
    let h = harness_with(with_tracer(tracer.clone(), Options::default())).await;
    let mut body = chat("hi [mock:words=5]");
    body["stream"] = serde_json::json!(true);
    let res = h
        .gateway
        .clone()
        .oneshot(openai_request(&h.openai_key, body))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let head_at = unix_ns();
    // The client reads the stream slowly: the call goes on until it has.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tracer.flush(Duration::from_secs(2)).await;
    assert!(
        receiver.spans().iter().all(|s| s.kind != SERVER),
        "the call span ended before the stream did"
    );
    res.into_body().collect().await.unwrap();
    let spans = call_spans(&receiver, &tracer).await;
    let call = one(&spans, |s| s.kind == SERVER);
    assert!(call.end_ns >= head_at + 300_000_000, "{call:#?}");
    assert_eq!(call.int("gen_ai.usage.output_tokens"), Some(5));
    let attempt = one(&spans, |s| s.kind == CLIENT);
    assert!(attempt.end_ns >= head_at + 300_000_000);
}

#[tokio::test]
async fn a_slow_or_absent_collector_never_delays_calls_and_drops_are_counted() {
    let receiver = OtlpReceiver::start().await.unwrap();
    receiver.set_delay(Duration::from_secs(3));
    let metrics = pai_tower::metrics::Metrics::new();
    let tracer = Tracer::otlp(&receiver.url())
        .batch(1, Duration::from_millis(1))
        .max_queue(2)
        .export_timeout(Duration::from_secs(5))
        .metrics(metrics.clone())
        .start()
        .unwrap();
    let h = harness_with(with_tracer(
        tracer.clone(),
        Options {
            metrics: Some(metrics.clone()),
            ..Options::default()
        },
    ))
    .await;
    for _ in 0..10 {
        let started = Instant::now();
        let (status, _, _) = collect(
            h.gateway
                .clone()
                .oneshot(openai_request(&h.openai_key, chat("hi")))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    assert!(tracer.dropped() > 0);
    assert!(
        metrics
            .render()
            .contains("pai_trace_spans_dropped_total{reason=\"queue_full\"}"),
        "{}",
        metrics.render()
    );

    // Nobody listening at all: calls go on just the same.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let tracer = Tracer::otlp(&nobody).start().unwrap();
    let h = harness_with(with_tracer(tracer.clone(), Options::default())).await;
    let started = Instant::now();
    let (status, _, _) = collect(
        h.gateway
            .clone()
            .oneshot(openai_request(&h.openai_key, chat("hi")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_retryable_collector_answer_is_retried_once() {
    let receiver = OtlpReceiver::start().await.unwrap();
    receiver.fail_next(&[503]);
    let tracer = tracer_to(&receiver);
    let h = harness_with(with_tracer(tracer.clone(), Options::default())).await;
    let (status, _, _) = collect(
        h.gateway
            .clone()
            .oneshot(openai_request(&h.openai_key, chat("hi")))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(tracer.flush(Duration::from_secs(5)).await);
    let spans = receiver
        .wait_for(Duration::from_secs(5), |s| {
            s.iter().any(|s| s.kind == SERVER)
        })
        .await;
    assert!(spans.iter().any(|s| s.kind == SERVER));
    assert_eq!(receiver.requests(), 2);
    assert!(receiver
        .content_types()
        .iter()
        .all(|c| c == "application/x-protobuf"));
    assert_eq!(tracer.failed(), 0);
}

#[tokio::test]
async fn a_refusal_before_any_call_log_still_has_its_span() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let tracer = tracer_to(&receiver);
    let h = harness_with(with_tracer(tracer.clone(), Options::default())).await;
    let mut req = openai_request("pak_not_a_key", chat("hi"));
    req.headers_mut()
        .insert("traceparent", traceparent().parse().unwrap());
    let (status, _, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 401);
    let spans = call_spans(&receiver, &tracer).await;
    let call = one(&spans, |s| s.kind == SERVER);
    assert_eq!(call.trace_id, CLIENT_TRACE);
    assert_eq!(call.int("http.response.status_code"), Some(401));
    assert_eq!(call.status_code, 2);
    assert!(!format!("{spans:?}").contains("pak_not_a_key"));
}

#[allow(dead_code)]
#[path = "scale/replicas.rs"]
mod replicas;

#[tokio::test]
async fn pai_serve_exports_call_spans_to_its_otlp_endpoint() {
    let Some(bin) = replicas::pai_bin("pai_serve_exports_call_spans_to_its_otlp_endpoint") else {
        return;
    };
    let receiver = OtlpReceiver::start().await.unwrap();
    let mock = pai_mock::MockUpstream::start(
        pai_mock::MockConfig::default().with_openai_key(replicas::UPSTREAM_KEY),
    )
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = replicas::Replica::start(
        &bin,
        data.path(),
        data.path().join("pai.log"),
        &["--otlp-endpoint".to_owned(), receiver.url()],
    );
    server.cli(
        &bin,
        &["apply", "-f", "-"],
        Some(&replicas::resources(&mock.url())),
    );
    let out = server.cli(
        &bin,
        &[
            "access-key",
            "create",
            "--name",
            "traced",
            "--model-provider",
            "local-openai",
        ],
        None,
    );
    let key = out.trim().lines().last().unwrap().trim().to_owned();
    let body = serde_json::json!({"model": "gpt-4o-mini", "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi [mock:words=3]"}]});
    let req = http::Request::post(format!("{}/ext/v1/chat/completions", server.url))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("traceparent", traceparent())
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    let (status, _) = replicas::Http::new().send(req).await;
    assert_eq!(status, 200);

    // The default batch interval is a second.
    let spans = receiver
        .wait_for(Duration::from_secs(10), |s| {
            s.iter().any(|s| s.kind == SERVER) && s.iter().any(|s| s.kind == CLIENT)
        })
        .await;
    let call = one(&spans, |s| s.kind == SERVER);
    assert_eq!(call.trace_id, CLIENT_TRACE);
    assert_eq!(call.parent_span_id.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(call.str("pai.access_key"), Some("traced"));
    assert_eq!(call.str("gen_ai.provider.name"), Some("openai"));
    assert_eq!(call.int("gen_ai.usage.output_tokens"), Some(3));
    let attempt = one(&spans, |s| s.kind == CLIENT);
    let seen = mock.requests();
    assert_eq!(
        seen.last().unwrap().header("traceparent"),
        Some(format!("00-{CLIENT_TRACE}-{}-01", attempt.span_id).as_str())
    );
}
