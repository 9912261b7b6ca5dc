use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pai_core::resource::GuardBinding;
use pai_core::{Error, Guard, GuardInput, Verdict};
use serde_json::{json, Value};
use tower::{service_fn, Layer, Service, ServiceExt};

use super::{GuardKinds, GuardLayer};
use crate::error::CallError;
use crate::snapshot::SharedSnapshot;
use crate::testing::{
    agent_principal, call, guard_binding, key_principal, ok, provider, request, snapshot, Calls,
};

/// The GuardBindings that ran, in order.
type Ran = Arc<Mutex<Vec<String>>>;

/// A guard that notes it ran and answers as its GuardBinding's `spec.verdict` says (`allow`,
/// `block`, or `slow`: no answer for a long while).
struct Scripted {
    name: String,
    verdict: String,
    ran: Ran,
}

#[async_trait::async_trait]
impl Guard for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    async fn inspect(&self, input: &GuardInput) -> Verdict {
        assert!(input.texts.iter().any(|(_, t)| t == "hello"), "{input:?}");
        self.ran.lock().unwrap().push(self.name.clone());
        match self.verdict.as_str() {
            "block" => Verdict::Block {
                reason: "not today".to_owned(),
                score: 0.9,
            },
            "slow" => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Verdict::Allow
            }
            _ => Verdict::Allow,
        }
    }
}

/// The kind `scripted`, whose guards note in `ran`.
fn kinds(ran: &Ran) -> GuardKinds {
    let ran = ran.clone();
    let mut kinds = GuardKinds::new();
    kinds.register(
        "scripted",
        Arc::new(move |b: &GuardBinding| {
            let verdict = b
                .spec
                .config
                .as_ref()
                .and_then(|c| c.get("verdict"))
                .and_then(Value::as_str)
                .unwrap_or("allow");
            Ok(Arc::new(Scripted {
                name: b.metadata.name.clone(),
                verdict: verdict.to_owned(),
                ran: ran.clone(),
            }) as Arc<dyn Guard>)
        }),
    );
    kinds
}

/// Provider `p`, guarded by `guards` (names or `{binding, enforcement}`), with the
/// GuardBindings in `bindings`.
async fn guarded(guards: Value, bindings: &[Value]) -> SharedSnapshot {
    let mut resources = vec![provider(
        "p",
        json!({"allowedModels": ["m"], "guards": guards}),
    )];
    resources.extend_from_slice(bindings);
    snapshot(&resources).await
}

fn scripted(name: &str, verdict: &str) -> Value {
    guard_binding(
        name,
        json!({"guard": "scripted", "config": {"verdict": verdict}}),
    )
}

/// `layer` around a handler, counting the handler's calls.
fn guard(
    layer: GuardLayer,
    calls: &Calls,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = CallError> {
    let calls = calls.clone();
    layer.layer(service_fn(move |_req: Request<Full<Bytes>>| {
        calls.add();
        async { Ok::<_, Infallible>(ok()) }
    }))
}

/// A call by key `k` of provider `p`.
fn by_key(snapshot: &SharedSnapshot) -> Request<Full<Bytes>> {
    let principal = key_principal(snapshot, "p", json!({}));
    request("/v1/chat/completions", Some(principal), Some(call("m")))
}

#[tokio::test]
async fn an_enforcing_guard_that_blocks_refuses_the_call() {
    let snapshot = guarded(json!(["no"]), &[scripted("no", "block")]).await;
    let ran = Ran::default();
    let calls = Calls::default();
    let service = guard(GuardLayer::new(snapshot.clone(), kinds(&ran)), &calls);
    let e = service.oneshot(by_key(&snapshot)).await.unwrap_err();
    assert_eq!(e.error.status(), 403);
    assert!(
        matches!(&e.error, Error::PermissionDenied(m) if m.contains("\"no\"") && m.contains("not today")),
        "{e}"
    );
    assert_eq!(calls.get(), 0, "the model never sees a blocked prompt");
    assert_eq!(*ran.lock().unwrap(), ["no"]);
}

#[tokio::test]
async fn an_auditing_guard_that_blocks_lets_the_call_through() {
    let snapshot = guarded(
        json!([{"binding": "watch", "enforcement": "audit"}]),
        &[scripted("watch", "block")],
    )
    .await;
    let ran = Ran::default();
    let calls = Calls::default();
    let service = guard(GuardLayer::new(snapshot.clone(), kinds(&ran)), &calls);
    let res = service.oneshot(by_key(&snapshot)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-pai-guard"],
        "binding=watch; verdict=block; enforcement=audit; score=0.90"
    );
    assert_eq!(calls.get(), 1);
    assert_eq!(*ran.lock().unwrap(), ["watch"]);
}

#[tokio::test]
async fn a_block_below_the_binding_threshold_is_an_allow() {
    let strict = guard_binding(
        "strict",
        json!({"guard": "scripted", "threshold": 0.95, "config": {"verdict": "block"}}),
    );
    let snapshot = guarded(json!(["strict"]), &[strict]).await;
    let calls = Calls::default();
    let metrics = crate::metrics::Metrics::new();
    let layer = GuardLayer::new(snapshot.clone(), kinds(&Ran::default())).metrics(metrics.clone());
    let res = guard(layer, &calls)
        .oneshot(by_key(&snapshot))
        .await
        .unwrap();
    assert_eq!(
        res.headers()["x-pai-guard"],
        "binding=strict; verdict=allow"
    );
    assert_eq!(calls.get(), 1);
    let text = metrics.render();
    assert!(
        text.contains(
            "pai_guard_verdicts_total{binding=\"strict\",verdict=\"allow\",enforcement=\"enforce\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("pai_guard_scan_seconds_count{binding=\"strict\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_guard_the_gateway_cannot_run_refuses_the_call_with_503() {
    let unknown = guard_binding("odd", json!({"guard": "no-such-kind"}));
    let no_kind = guard_binding("lax", json!({}));
    for (name, bindings) in [
        ("odd", vec![unknown]),
        ("ghost", vec![]),
        ("lax", vec![no_kind]),
    ] {
        let snapshot = guarded(json!([name]), &bindings).await;
        let calls = Calls::default();
        let service = guard(
            GuardLayer::new(snapshot.clone(), kinds(&Ran::default())),
            &calls,
        );
        let e = service.oneshot(by_key(&snapshot)).await.unwrap_err();
        assert_eq!(e.error.status(), 503, "{name}");
        assert!(e.error.to_string().contains(&format!("{name:?}")), "{e}");
        assert_eq!(calls.get(), 0, "{name}");
    }
}

#[tokio::test]
async fn an_enforcing_guard_that_does_not_answer_in_time_refuses_the_call() {
    let snapshot = guarded(json!(["slow"]), &[scripted("slow", "slow")]).await;
    let calls = Calls::default();
    let layer = GuardLayer::new(snapshot.clone(), kinds(&Ran::default()))
        .timeout(Duration::from_millis(20));
    let started = std::time::Instant::now();
    let e = guard(layer, &calls)
        .oneshot(by_key(&snapshot))
        .await
        .unwrap_err();
    assert_eq!(e.error.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(calls.get(), 0);

    // Auditing, the same silence lets the call through.
    let snapshot = guarded(
        json!([{"binding": "slow", "enforcement": "audit"}]),
        &[scripted("slow", "slow")],
    )
    .await;
    let layer = GuardLayer::new(snapshot.clone(), kinds(&Ran::default()))
        .timeout(Duration::from_millis(20));
    let res = guard(layer, &calls).oneshot(by_key(&snapshot)).await;
    assert_eq!(res.unwrap().status(), 200);
}

#[tokio::test]
async fn the_binding_timeout_and_on_error_decide_a_silent_guard() {
    let calls = Calls::default();
    for (on_error, status) in [("block", 503), ("allow", 200)] {
        let slow = guard_binding(
            "slow",
            json!({"guard": "scripted", "timeoutMs": 20, "onError": on_error,
                   "config": {"verdict": "slow"}}),
        );
        let snapshot = guarded(json!(["slow"]), &[slow]).await;
        // The layer's own timeout is long: the binding's 20 ms decides.
        let layer = GuardLayer::new(snapshot.clone(), kinds(&Ran::default()));
        let started = std::time::Instant::now();
        let got = match guard(layer, &calls).oneshot(by_key(&snapshot)).await {
            Ok(res) => {
                assert_eq!(res.headers()["x-pai-guard"], "binding=slow; verdict=error");
                res.status().as_u16()
            }
            Err(e) => e.error.status().as_u16(),
        };
        assert_eq!(got, status, "onError: {on_error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(calls.get(), 1, "only onError: allow lets the call through");
}

#[tokio::test]
async fn an_agent_runs_its_providers_guards_then_its_own() {
    let snapshot = snapshot(&[
        provider(
            "p1",
            json!({"allowedModels": ["m"], "guards": [{"binding": "g-p1"}]}),
        ),
        provider(
            "p2",
            json!({"allowedModels": ["m"], "guards": ["g-p2", "g-shared"]}),
        ),
        scripted("g-p1", "allow"),
        scripted("g-p2", "allow"),
        scripted("g-shared", "allow"),
        scripted("g-agent", "allow"),
    ])
    .await;
    let agent = agent_principal(json!({
        "models": ["p1/m", "p2/m"],
        "guards": ["g-agent", "g-shared"],
    }));
    let ran = Ran::default();
    let calls = Calls::default();
    let service = guard(GuardLayer::new(snapshot.clone(), kinds(&ran)), &calls);
    let req = request("/v1/chat/completions", Some(agent), Some(call("p1/m")));
    service.oneshot(req).await.unwrap();
    // Each guard once, providers' first.
    assert_eq!(
        *ran.lock().unwrap(),
        ["g-p1", "g-p2", "g-shared", "g-agent"]
    );
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn a_call_without_guards_passes_untouched() {
    let snapshot = guarded(json!([]), &[]).await;
    let calls = Calls::default();
    let service = guard(GuardLayer::new(snapshot.clone(), GuardKinds::new()), &calls);
    // No parsed call needed when there is nothing to run.
    let principal = key_principal(&snapshot, "p", json!({}));
    let req = request("/v1/chat/completions", Some(principal), None);
    assert_eq!(service.oneshot(req).await.unwrap().status(), 200);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn answer_guards_with_no_meter_inside_refuse_the_answer() {
    let snapshot = guarded(
        json!([{"binding": "out", "scan": {"prompts": false, "responses": true}}]),
        &[scripted("out", "allow")],
    )
    .await;
    let ran = Ran::default();
    let calls = Calls::default();
    let service = guard(GuardLayer::new(snapshot.clone(), kinds(&ran)), &calls);
    let e = service.oneshot(by_key(&snapshot)).await.unwrap_err();
    assert_eq!(e.error.status(), 500);
    assert!(e.error.to_string().contains("no MeterLayer"), "{e}");
    assert!(ran.lock().unwrap().is_empty(), "the prompt is not scanned");
}

/// Blocks a text containing `NEEDLE`, and notes the length of every text it read.
struct Needle(Arc<Mutex<Vec<usize>>>);

#[async_trait::async_trait]
impl Guard for Needle {
    fn name(&self) -> &str {
        "needle"
    }

    async fn inspect(&self, input: &GuardInput) -> Verdict {
        let mut seen = self.0.lock().unwrap();
        seen.extend(input.texts.iter().map(|(_, t)| t.len()));
        match input.texts.iter().any(|(_, t)| t.contains("NEEDLE")) {
            true => Verdict::Block {
                reason: "a needle".to_owned(),
                score: 0.99,
            },
            false => Verdict::Allow,
        }
    }
}

/// Stream `events` OpenAI chunks of 64 KiB of text through an [`AnswerStream`] of a `needle`
/// guard; `text(i)` is the content of the `i`th. What it recorded, and the lengths read.
async fn stream_answer(
    events: usize,
    text: impl Fn(usize) -> String,
) -> (Vec<pai_core::GuardVerdict>, Vec<usize>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let assigned = super::Assigned {
        name: "needle".to_owned(),
        enforcement: pai_core::Enforcement::Enforce,
        armed: super::Armed {
            guard: Arc::new(Needle(seen.clone())),
            threshold: None,
            timeout: None,
            on_error: pai_core::resource::OnError::Block,
        },
    };
    let guards = Arc::new(super::AnswerGuards::new(
        vec![assigned],
        Duration::from_secs(5),
        crate::metrics::Metrics::new(),
    ));
    let mut stream = guards.stream(pai_core::Dialect::OpenAi, "m");
    for i in 0..events {
        let chunk = json!({"choices": [{"index": 0, "delta": {"content": text(i)}}]});
        stream.passed(format!("data: {chunk}\n\n").as_bytes());
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    stream.finish(move |found| {
        let _ = tx.send(found);
    });
    let found = rx.await.unwrap();
    let lengths = seen.lock().unwrap().clone();
    (found, lengths)
}

#[tokio::test]
async fn a_long_streamed_answer_is_scanned_whole_in_bounded_parts() {
    const EVENT: usize = 64 << 10;
    let plain = |_: usize| "a".repeat(EVENT);
    // 2.5 MiB of text: three parts, none much longer than a part.
    let (found, lengths) = stream_answer(40, plain).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].verdict, pai_core::GuardDecision::Allow);
    assert_eq!(found[0].enforcement, pai_core::Enforcement::Audit);
    assert_eq!(lengths.len(), 3, "{lengths:?}");
    assert!(
        lengths
            .iter()
            .all(|&l| l <= super::answers::PART_BYTES + EVENT),
        "{lengths:?}"
    );
    assert!(
        lengths.iter().sum::<usize>() >= 40 * EVENT,
        "every byte was read"
    );

    // A needle in the first part only, and one cut across the first part's end: both found.
    let early = |i: usize| match i {
        0 => format!("NEEDLE{}", "a".repeat(EVENT - 6)),
        _ => "a".repeat(EVENT),
    };
    let (found, _) = stream_answer(40, early).await;
    assert_eq!(found[0].verdict, pai_core::GuardDecision::Block);
    assert_eq!(found[0].score, Some(0.99));
    let parts = super::answers::PART_BYTES / EVENT;
    let straddling = move |i: usize| match i {
        i if i + 1 == parts => format!("{}NEE", "a".repeat(EVENT - 3)),
        i if i == parts => format!("DLE{}", "a".repeat(EVENT - 3)),
        _ => "a".repeat(EVENT),
    };
    let (found, lengths) = stream_answer(40, straddling).await;
    assert!(lengths.len() >= 2, "{lengths:?}");
    assert_eq!(found[0].verdict, pai_core::GuardDecision::Block);
}
