//! pai's layers around an application's own handler: no gateway, no upstream.
//!
//! An axum app has its own LLM endpoint, `POST /summarize`, which takes an OpenAI-shaped chat
//! request and answers it however it likes. It wants pai's policy in front of it: callers
//! authenticate with pai access keys, each key has its requests per minute and a daily token
//! budget, prompts are guarded, and every call is priced and recorded. So it stacks the layers
//! itself, outermost first:
//!
//! ```text
//! RescueLayer     any refusal, in the client's dialect
//! AuthLayer       access key → Principal
//! CallLogLayer    the record and its cost: the handler puts the Usage in its response
//! RateLimitLayer  the key's maxRequestsPerMinute
//! ParseLayer      the body, read once, as a chat completion
//! GuardLayer      the provider's guards
//! FallbackLayer   the candidate model (the handler reads it)
//! BudgetLayer     the key's maxTokensPerDay, reserved before, settled with the Usage after
//! handler
//! ```
//!
//! [`run`] serves the app on 127.0.0.1 and checks each layer's effect as a client sees it;
//! [`retry_around_a_handler`] shows the retry policy around a handler that fails once.
//!
//! ```sh
//! cargo run -p pai-examples --example layers_on_own_handler
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use pai_core::price::PriceBook;
use pai_core::resource::{GuardBinding, Resource};
use pai_core::{
    access_key, AccessKeyHasher, Call, Guard, GuardInput, Operation, Store, SystemClock, Usage,
    Verdict,
};
use pai_store::{MemoryLedger, MemoryStore};
use pai_tower::{
    AuthLayer, BudgetLayer, CallError, CallLogLayer, CallSink, Candidate, FallbackLayer,
    GuardKinds, GuardLayer, ParseLayer, RateLimitLayer, RescueLayer, RetryPolicy, SharedSnapshot,
    Snapshot,
};
use tower::{ServiceBuilder, ServiceExt};

/// The application's own handler: a "summary" of the last message, with the usage it had.
async fn summarize(
    Extension(call): Extension<Arc<Call>>,
    Extension(candidate): Extension<Candidate>,
) -> impl IntoResponse {
    let words = call
        .body
        .raw("messages")
        .map_or(0, |m| m.get().len() as u64 / 5);
    let usage = Usage {
        input: words,
        output: 7,
        ..Usage::default()
    };
    let answer = serde_json::json!({
        "id": "sum-1", "object": "chat.completion", "created": 0, "model": candidate.model,
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "A short summary."}}],
    });
    (Extension(usage), Json(answer))
}

/// Refuses prompts that mention `rm -rf`.
struct NoShell;

#[async_trait::async_trait]
impl Guard for NoShell {
    fn name(&self) -> &str {
        "no-shell"
    }

    async fn inspect(&self, input: &GuardInput) -> Verdict {
        match input.texts.iter().any(|(_, t)| t.contains("rm -rf")) {
            true => Verdict::Block {
                reason: "asks to run a destructive command".to_owned(),
                score: 0.9,
            },
            false => Verdict::Allow,
        }
    }
}

/// The app: `/summarize` behind pai's layers, `/health` open.
pub fn app(
    store: Arc<dyn Store>,
    snapshot: SharedSnapshot,
    hasher: AccessKeyHasher,
    ledger: Arc<MemoryLedger>,
) -> Router {
    let prices = Some(Arc::new(PriceBook::builtin()) as Arc<dyn pai_core::PriceTable>);
    let mut kinds = GuardKinds::new();
    kinds.register(
        "no-shell",
        Arc::new(|_: &GuardBinding| Ok(Arc::new(NoShell) as Arc<dyn Guard>)),
    );
    let handler = Router::new().route("/summarize", post(summarize));
    let protected = ServiceBuilder::new()
        .layer(RescueLayer::new())
        .layer(AuthLayer::new(snapshot.clone(), hasher))
        .layer(CallLogLayer::new(CallSink::spawn(store)).prices(prices.clone()))
        .layer(RateLimitLayer::new(snapshot.clone()))
        .layer(ParseLayer::new().operation(Operation::ChatCompletions))
        .layer(GuardLayer::new(snapshot.clone(), kinds))
        .layer(FallbackLayer::new(
            snapshot,
            pai_tower::Reliability::default(),
        ))
        .layer(BudgetLayer::new(Some(ledger), prices))
        .service(handler);
    Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route_service("/summarize", protected)
}

/// Call `/summarize` on `base` with `key` and a prompt; status, headers and JSON.
async fn summarize_call(
    base: &str,
    key: Option<&str>,
    prompt: &str,
) -> Result<(u16, http::HeaderMap, serde_json::Value), Box<dyn std::error::Error>> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let body = serde_json::json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": prompt}]});
    let mut req =
        http::Request::post(format!("{base}/summarize")).header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?)
        .await?;
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((parts.status.as_u16(), parts.headers, json))
}

fn check(ok: bool, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    if ok {
        Ok(())
    } else {
        Err(what.to_owned().into())
    }
}

/// Serve the app on loopback and check every layer's effect.
pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryStore::new());
    let resource = |v: serde_json::Value| serde_json::from_value::<Resource>(v);
    for r in [
        serde_json::json!({"kind": "GuardBinding", "metadata": {"name": "shell"},
            "spec": {"guard": "no-shell"}}),
        serde_json::json!({"kind": "ModelProvider", "metadata": {"name": "summarizer"},
            "spec": {"provider": "openai", "endpoint": "http://127.0.0.1:9/v1",
                     "allowedModels": ["gpt-4o-mini"], "externalAccess": {"enabled": true},
                     "guards": ["shell"]}}),
    ] {
        store.apply(&resource(r)?).await?;
    }
    let hasher = AccessKeyHasher::new(b"example secret, 32 bytes or more");
    let raw = access_key::generate().map_err(|_| "no randomness")?;
    let mut key: pai_core::resource::AccessKey = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app-user"},
        "spec": {"modelProvider": "summarizer",
                 "limits": {"maxRequestsPerMinute": 3, "maxTokensPerDay": 5000}},
    }))?;
    key.status.key_hash = Some(hasher.hash(&raw).0);
    store.apply(&Resource::AccessKey(key)).await?;

    let revision = *store.watch().borrow();
    let snapshot = SharedSnapshot::new(Snapshot::load(store.as_ref(), revision).await?);
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let app = app(store.clone(), snapshot, hasher, ledger);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Auth: no key, no summary; the app's own open route stays open.
    let (status, _, v) = summarize_call(&base, None, "hello").await?;
    check(
        status == 401 && v["error"]["code"] == "missing_api_key",
        &format!("no key must be 401: {status} {v}"),
    )?;

    // A valid key: answered, priced from the Usage the handler reported.
    let (status, headers, v) = summarize_call(&base, Some(&raw), "a long text").await?;
    check(
        status == 200,
        &format!("a valid key must pass: {status} {v}"),
    )?;
    check(headers.contains_key("x-pai-cost-usd"), "the call is priced")?;
    check(
        headers.get("x-pai-output-tokens").is_some_and(|v| v == "7"),
        "the usage comes from the handler",
    )?;

    // Guard: the provider's guard refuses before the handler runs.
    let (status, _, v) = summarize_call(&base, Some(&raw), "then rm -rf /").await?;
    check(
        status == 403
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("shell")),
        &format!("the guard must refuse: {status} {v}"),
    )?;

    // Budget: a prompt whose worst case does not fit in 5,000 tokens a day is refused.
    let (status, headers, v) = summarize_call(&base, Some(&raw), &"word ".repeat(6000)).await?;
    check(
        status == 429 && headers.contains_key("retry-after"),
        &format!("the budget must refuse: {status} {v}"),
    )?;

    // Rate limit: three requests a minute, and three were made.
    let (status, _, v) = summarize_call(&base, Some(&raw), "again").await?;
    check(
        status == 429 && v["error"]["code"] == "rate_limit_exceeded",
        &format!("the fourth call must be rate limited: {status} {v}"),
    )?;
    // Every call past auth is recorded once its answer has gone: the answered one with the
    // handler's usage and its cost, the refused ones with why.
    let mut records = Vec::new();
    for _ in 0..200 {
        records = store.recent_calls(10).await?;
        if records.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let answered: Vec<_> = records.iter().filter(|r| r.status == 200).collect();
    check(
        records.len() == 4 && answered.len() == 1,
        &format!("4 calls recorded, 1 answered: {records:?}"),
    )?;
    check(
        answered[0].error.is_none()
            && answered[0].usage.is_some_and(|u| u.output == 7)
            && answered[0].cost_pico_usd.is_some(),
        &format!("the answered call is recorded whole: {:?}", answered[0]),
    )?;
    println!("layers on an own handler: auth, cost, guard, budget and rate limit all held");
    Ok(())
}

/// The retry policy around a handler that fails once with a retryable error: the client gets
/// the second try's answer.
pub async fn retry_around_a_handler() -> Result<u32, Box<dyn std::error::Error>> {
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    let flaky = tower::service_fn(move |_req: http::Request<Full<Bytes>>| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                let e = pai_core::Error::UpstreamUnreachable("connection reset".to_owned());
                return Err(CallError::retry(e, None));
            }
            Ok(http::Response::new(Full::new(Bytes::from_static(b"{}"))))
        }
    });
    let reliability = pai_tower::Reliability {
        backoff_base: std::time::Duration::from_millis(1),
        ..pai_tower::Reliability::default()
    };
    let service = ServiceBuilder::new()
        .layer(RescueLayer::new())
        .layer(tower::retry::RetryLayer::new(RetryPolicy::new(reliability)))
        .service(flaky);
    let res = service
        .oneshot(http::Request::post("/work").body(Full::default())?)
        .await?;
    check(res.status() == 200, "the second try answers")?;
    Ok(tries.load(Ordering::SeqCst) as u32)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await?;
    let tries = retry_around_a_handler().await?;
    println!("retry: answered after {tries} tries");
    Ok(())
}
