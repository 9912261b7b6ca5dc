use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pai_core::{Call, Error};
use serde_json::json;
use tower::{service_fn, Layer, Service, ServiceExt};

use super::{Candidate, Deadline, FallbackLayer};
use crate::error::{CallError, Next};
use crate::reliability::Reliability;
use crate::snapshot::SharedSnapshot;
use crate::testing::{call, key_principal, ok, provider, request, snapshot};

/// Provider `a` offers `m1` and falls back to `b/m2`, then `c/m3`.
async fn three_providers() -> SharedSnapshot {
    snapshot(&[
        provider(
            "a",
            json!({"allowedModels": ["m1"], "fallbacks": ["b/m2", "c/m3"]}),
        ),
        provider("b", json!({"allowedModels": ["m2"]})),
        provider("c", json!({"allowedModels": ["m3"]})),
    ])
    .await
}

/// What the inner service saw of one try.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    label: String,
    position: usize,
    fell_back_from: Option<String>,
    /// The model of the call handed down.
    call_model: String,
}

type Answer = Result<Response<Full<Bytes>>, CallError>;

/// The tries an inner service saw, in order.
type Tries = Arc<Mutex<Vec<Seen>>>;

/// A fallback around an inner service that answers each candidate with `answer(label)`, and
/// the tries it saw.
fn fallback(
    snapshot: &SharedSnapshot,
    reliability: Reliability,
    answer: fn(&str) -> Answer,
) -> (
    impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = CallError> + Clone,
    Tries,
) {
    let seen = Tries::default();
    let log = seen.clone();
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        let c = req.extensions().get::<Candidate>().unwrap().clone();
        let call = req.extensions().get::<Arc<Call>>().unwrap();
        assert!(req.extensions().get::<Deadline>().is_some());
        log.lock().unwrap().push(Seen {
            label: c.label.clone(),
            position: c.position,
            fell_back_from: c.fell_back_from.clone(),
            call_model: call.model.clone(),
        });
        let answer = answer(&c.label);
        async move { answer }
    });
    let service = FallbackLayer::new(snapshot.clone(), reliability).layer(inner);
    (service, seen)
}

fn a_request(snapshot: &SharedSnapshot) -> Request<Full<Bytes>> {
    let principal = key_principal(snapshot, "a", json!({}));
    request("/v1/chat/completions", Some(principal), Some(call("m1")))
}

fn down(label: &str) -> Error {
    Error::Unavailable(format!("{label} is down"))
}

fn labels(seen: &Mutex<Vec<Seen>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|s| s.label.clone())
        .collect()
}

#[tokio::test]
async fn a_failed_candidate_hands_the_call_to_the_next() {
    let snapshot = three_providers().await;
    let (service, seen) = fallback(&snapshot, Reliability::default(), |label| match label {
        "a/m1" => Err(CallError::next_candidate(down(label), true)),
        _ => Ok(ok()),
    });
    let res = service.oneshot(a_request(&snapshot)).await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![
            Seen {
                label: "a/m1".into(),
                position: 0,
                fell_back_from: None,
                call_model: "m1".into(),
            },
            Seen {
                label: "b/m2".into(),
                position: 1,
                fell_back_from: Some("a/m1".into()),
                call_model: "m2".into(),
            },
        ]
    );
}

#[tokio::test]
async fn a_final_failure_ends_the_walk() {
    let snapshot = three_providers().await;
    let (service, seen) = fallback(&snapshot, Reliability::default(), |_| {
        Err(CallError::refused(Error::invalid("messages is empty")))
    });
    let e = service.oneshot(a_request(&snapshot)).await.unwrap_err();
    assert_eq!(e.error.status(), 400);
    assert_eq!(e.next, Next::Final);
    assert_eq!(labels(&seen), ["a/m1"]);
}

#[tokio::test]
async fn when_every_candidate_fails_the_last_error_is_answered() {
    let snapshot = three_providers().await;
    let (service, seen) = fallback(&snapshot, Reliability::default(), |label| {
        Err(CallError::retry(down(label), None))
    });
    let e = service.oneshot(a_request(&snapshot)).await.unwrap_err();
    assert_eq!(e.error, down("c/m3"));
    assert_eq!(labels(&seen), ["a/m1", "b/m2", "c/m3"]);
}

#[tokio::test]
async fn a_candidate_that_keeps_failing_is_skipped_while_it_cools_down() {
    let snapshot = three_providers().await;
    let reliability = Reliability {
        cooldown_after: 2,
        cooldown: Duration::from_secs(60),
        ..Reliability::default()
    };
    let (service, seen) = fallback(&snapshot, reliability, |label| match label {
        "a/m1" => Err(CallError::next_candidate(down(label), true)),
        _ => Ok(ok()),
    });
    for _ in 0..2 {
        let res = service.clone().oneshot(a_request(&snapshot)).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(labels(&seen), ["a/m1", "b/m2", "a/m1", "b/m2"]);
    seen.lock().unwrap().clear();

    // Cooling down: the call goes straight to the fallback, still named a fallback.
    service.clone().oneshot(a_request(&snapshot)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].label, "b/m2");
    assert_eq!(seen[0].position, 1);
    assert_eq!(seen[0].fell_back_from.as_deref(), Some("a/m1"));
}

#[tokio::test]
async fn failures_that_do_not_say_the_candidate_is_unhealthy_do_not_cool_it() {
    let snapshot = three_providers().await;
    let reliability = Reliability {
        cooldown_after: 1,
        cooldown: Duration::from_secs(60),
        ..Reliability::default()
    };
    // A full budget or queue: the next candidate, but no cooldown.
    let (service, seen) = fallback(&snapshot, reliability, |label| match label {
        "a/m1" => Err(CallError::next_candidate(down(label), false)),
        _ => Ok(ok()),
    });
    for _ in 0..3 {
        service.clone().oneshot(a_request(&snapshot)).await.unwrap();
    }
    assert_eq!(
        labels(&seen),
        ["a/m1", "b/m2", "a/m1", "b/m2", "a/m1", "b/m2"]
    );
}

#[tokio::test]
async fn when_every_candidate_cools_down_they_are_still_tried() {
    let snapshot = snapshot(&[provider("a", json!({"allowedModels": ["m1"]}))]).await;
    let reliability = Reliability {
        cooldown_after: 1,
        cooldown: Duration::from_secs(60),
        ..Reliability::default()
    };
    let (service, seen) = fallback(&snapshot, reliability, |label| {
        Err(CallError::next_candidate(down(label), true))
    });
    for _ in 0..2 {
        let e = service
            .clone()
            .oneshot(a_request(&snapshot))
            .await
            .unwrap_err();
        assert_eq!(e.error, down("a/m1"));
    }
    assert_eq!(labels(&seen), ["a/m1", "a/m1"]);
}

#[tokio::test]
async fn a_request_without_a_caller_or_a_parsed_call_is_refused() {
    let snapshot = three_providers().await;
    let (service, seen) = fallback(&snapshot, Reliability::default(), |_| Ok(ok()));
    let e = service
        .clone()
        .oneshot(request("/v1/chat/completions", None, Some(call("m1"))))
        .await
        .unwrap_err();
    assert_eq!(e.error, Error::MissingKey);
    let principal = key_principal(&snapshot, "a", json!({}));
    let e = service
        .oneshot(request("/v1/chat/completions", Some(principal), None))
        .await
        .unwrap_err();
    assert_eq!(e.error.status(), 500);
    assert!(labels(&seen).is_empty());
}

#[tokio::test]
async fn a_model_the_key_may_not_use_is_refused_before_any_candidate() {
    let snapshot = three_providers().await;
    let (service, seen) = fallback(&snapshot, Reliability::default(), |_| Ok(ok()));
    let principal = key_principal(&snapshot, "a", json!({}));
    let req = request("/v1/chat/completions", Some(principal), Some(call("m2")));
    let e = service.oneshot(req).await.unwrap_err();
    assert_eq!(e.error.status(), 404);
    assert!(labels(&seen).is_empty());
}

#[tokio::test]
async fn an_agent_walks_its_own_list_from_the_model_it_asked_for() {
    let snapshot = three_providers().await;
    let (service, seen) = fallback(&snapshot, Reliability::default(), |label| match label {
        "b/m2" => Err(CallError::next_candidate(down(label), true)),
        _ => Ok(ok()),
    });
    let agent = crate::testing::agent_principal(json!({"models": ["a/m1", "b/m2", "c/m3"]}));
    // A bare model id that names one entry of the list.
    let req = request("/v1/chat/completions", Some(agent), Some(call("m2")));
    service.oneshot(req).await.unwrap();
    let seen: Vec<(String, Option<String>)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.label.clone(), s.fell_back_from.clone()))
        .collect();
    let expected: Vec<(String, Option<String>)> =
        vec![("b/m2".into(), None), ("a/m1".into(), Some("b/m2".into()))];
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_failed_candidates_reservation_does_not_crowd_out_the_next() {
    use crate::budget::BudgetLayer;
    use crate::call_log::CallLogLayer;
    use crate::meter::CallSink;

    // Room in the key's budget for one call's worst case, not two.
    let snapshot = three_providers().await;
    let ledger = Arc::new(pai_store::MemoryLedger::new(Arc::new(
        pai_core::SystemClock,
    )));
    let sink = CallSink::spawn(Arc::new(pai_store::MemoryStore::new()));
    let inner = service_fn(|req: Request<Full<Bytes>>| {
        let c = req.extensions().get::<Candidate>().unwrap().clone();
        async move {
            match c.position {
                0 => Err(CallError::next_candidate(down(&c.label), true)),
                _ => Ok::<_, CallError>(ok()),
            }
        }
    });
    let service = tower::ServiceBuilder::new()
        .layer(CallLogLayer::new(sink))
        .layer(FallbackLayer::new(snapshot.clone(), Reliability::default()))
        .layer(BudgetLayer::new(Some(ledger), None))
        .service(inner);
    let principal = key_principal(&snapshot, "a", json!({"limits": {"maxTokensPerDay": 6000}}));
    let req = request("/v1/chat/completions", Some(principal), Some(call("m1")));
    let res = service.oneshot(req).await;
    let status = res.map(|r| r.status()).map_err(|e| e.error);
    assert_eq!(status, Ok(http::StatusCode::OK));
}
