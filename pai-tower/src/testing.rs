//! What the layers' unit tests share: configuration loaded through a store the way the gateway
//! loads it, callers as the auth layer finds them, parsed calls, and answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use pai_core::resource::{AccessKey, Agent, Resource};
use pai_core::{BoxError, Call, Dialect, JsonObject, Operation, Store};
use serde_json::{json, Value};

use crate::auth::{Binding, Principal};
use crate::fallback::Candidate;
use crate::snapshot::{SharedSnapshot, Snapshot};

/// A snapshot of `resources` (JSON with a `kind`), applied to a `MemoryStore` and loaded.
pub(crate) async fn snapshot(resources: &[Value]) -> SharedSnapshot {
    let store = pai_store::MemoryStore::new();
    for r in resources {
        let resource: Resource = serde_json::from_value(r.clone()).unwrap();
        store.apply(&resource).await.unwrap();
    }
    let revision = *store.watch().borrow();
    SharedSnapshot::new(Snapshot::load(&store, revision).await.unwrap())
}

/// An OpenAI ModelProvider open to access keys, with `spec` laid over that.
pub(crate) fn provider(name: &str, spec: Value) -> Value {
    let base = json!({
        "provider": "openai",
        "endpoint": "http://127.0.0.1:9/v1",
        "externalAccess": {"enabled": true},
    });
    json!({"kind": "ModelProvider", "metadata": {"name": name}, "spec": merged(base, spec)})
}

/// A GuardBinding with `spec`.
pub(crate) fn guard_binding(name: &str, spec: Value) -> Value {
    json!({"kind": "GuardBinding", "metadata": {"name": name}, "spec": spec})
}

fn merged(mut base: Value, over: Value) -> Value {
    if let (Some(base), Value::Object(over)) = (base.as_object_mut(), over) {
        base.extend(over);
    }
    base
}

/// The caller of access key `k`, bound to `provider` of `snapshot`, with `spec` laid over the
/// key's.
pub(crate) fn key_principal(snapshot: &SharedSnapshot, provider: &str, spec: Value) -> Principal {
    let spec = merged(json!({"modelProvider": provider}), spec);
    let key: AccessKey =
        serde_json::from_value(json!({"metadata": {"name": "k"}, "spec": spec})).unwrap();
    let entry = snapshot.current().provider(provider).unwrap().clone();
    Principal {
        access_key: Some(Arc::new(key)),
        binding: Binding::Provider(entry),
        client_ip: None,
    }
}

/// Agent `app` with `spec`.
pub(crate) fn agent_principal(spec: Value) -> Principal {
    let agent: Agent =
        serde_json::from_value(json!({"metadata": {"name": "app"}, "spec": spec})).unwrap();
    Principal {
        access_key: None,
        binding: Binding::Agent(Arc::new(agent)),
        client_ip: None,
    }
}

/// A chat completion for `model` with one short user message, as the parse layer leaves it.
pub(crate) fn call(model: &str) -> Arc<Call> {
    call_with(json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}))
}

/// A chat completion with `body` (which names its model), as the parse layer leaves it.
pub(crate) fn call_with(body: Value) -> Arc<Call> {
    Arc::new(Call {
        operation: Operation::ChatCompletions,
        client: Dialect::OpenAi,
        model: body["model"].as_str().unwrap().to_owned(),
        stream: false,
        client_wants_usage: false,
        body: JsonObject::from_slice(body.to_string().as_bytes()).unwrap(),
        headers: http::HeaderMap::new(),
        query: None,
    })
}

/// `POST path` with an empty body, carrying `principal` and `call` when given.
pub(crate) fn request(
    path: &str,
    principal: Option<Principal>,
    call: Option<Arc<Call>>,
) -> Request<Full<Bytes>> {
    let mut req = Request::post(path).body(Full::default()).unwrap();
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    if let Some(c) = call {
        req.extensions_mut().insert(c);
    }
    req
}

/// A 200 with a small JSON body.
pub(crate) fn ok() -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")))
}

/// The whole body, as JSON.
pub(crate) async fn json_body<B>(res: Response<B>) -> Value
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(Into::into)
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// How many times an inner service was called.
#[derive(Clone, Debug, Default)]
pub(crate) struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub(crate) fn add(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The candidate `provider/model` of `snapshot`, at the head of the list.
pub(crate) fn candidate(snapshot: &SharedSnapshot, provider: &str, model: &str) -> Candidate {
    let provider = snapshot.current().provider(provider).unwrap().clone();
    Candidate {
        label: format!("{}/{model}", provider.resource.metadata.name),
        provider,
        model: model.to_owned(),
        binding: None,
        position: 0,
        fell_back_from: None,
    }
}

/// The refusal a call ended in (for answers whose body has no `Debug`, unlike `unwrap_err`).
pub(crate) fn refused<T>(result: Result<T, crate::error::CallError>) -> crate::error::CallError {
    match result {
        Ok(_) => panic!("the call was answered; a refusal was expected"),
        Err(e) => e,
    }
}
