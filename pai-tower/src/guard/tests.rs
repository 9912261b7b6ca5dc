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
