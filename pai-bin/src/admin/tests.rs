//! The admin API driven in-process against a memory store.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use pai_core::{AccessKeyHasher, CallRecord, Store, SystemClock, Usage};
use pai_store::{MemoryLedger, MemoryStore};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{router, AdminState};

pub(super) const TOKEN: &str = "pai_admin_test-token";

struct Harness {
    router: Router,
    store: Arc<dyn Store>,
    ledger: Arc<MemoryLedger>,
    hasher: AccessKeyHasher,
}

impl Harness {
    fn new() -> Harness {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let hasher = AccessKeyHasher::new(b"a test secret of thirty-two bytes");
        let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
        let router = router(AdminState::new(
            store.clone(),
            ledger.clone(),
            hasher.clone(),
            TOKEN,
        ));
        Harness {
            router,
            store,
            ledger,
            hasher,
        }
    }

    /// Send a request with the admin token; answer the status, the JSON body and its text.
    async fn call(&self, method: &str, path: &str, body: &str) -> (StatusCode, Value, String) {
        self.call_as(Some(TOKEN), method, path, body).await
    }

    async fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: &str,
    ) -> (StatusCode, Value, String) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Body::from(body.to_owned())).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, json, text)
    }

    async fn apply(&self, yaml: &str) -> Value {
        let (status, body, text) = self.call("POST", "/admin/v1/apply", yaml).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        body
    }
}

pub(super) const PROVIDER: &str = r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {name: openai-api-key}
data: {api-key: sk-real-provider-key}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {name: openai}
spec:
  provider: openai
  apiKeySecretRef: {name: openai-api-key}
  allowedModels: [gpt-4o-mini]
  maxTokensPerDay: 1000000
  externalAccess: {enabled: true}
"#;

#[tokio::test]
async fn every_route_needs_the_admin_token() {
    let h = Harness::new();
    for (method, path) in [
        ("GET", "/admin/v1/model-providers"),
        ("POST", "/admin/v1/apply"),
        ("POST", "/admin/v1/access-keys"),
        ("GET", "/admin/v1/usage"),
        ("GET", "/nowhere"),
    ] {
        let (status, body, _) = h.call_as(None, method, path, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("missing admin token"));
        let (status, body, _) = h.call_as(Some("pai_admin_wrong"), method, path, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(body["error"]["message"], "invalid admin token");
    }
    let (status, body, _) = h.call("GET", "/admin/v1/model-providers", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"items": []}));
}

#[tokio::test]
async fn apply_takes_many_documents_and_reports_each_with_warnings() {
    let h = Harness::new();
    let yaml = format!(
        "{PROVIDER}---\n{}",
        r#"
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {name: local}
spec: {provider: vllm, endpoint: "http://127.0.0.1:8000/v1"}
---
apiVersion: pai.io/v1
kind: AccessKey
metadata: {name: bob}
spec: {modelProvider: nowhere}
status: {keyHash: "forged"}
"#
    );
    let body = h.apply(&yaml).await;
    assert_eq!(
        body["results"],
        json!([
            {"kind": "Secret", "name": "openai-api-key", "result": "created"},
            {"kind": "ModelProvider", "name": "openai", "result": "created"},
            {"kind": "ModelProvider", "name": "local", "result": "created"},
            {"kind": "AccessKey", "name": "bob", "result": "created"},
        ])
    );
    let warnings: Vec<&str> = body["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("allowedModels is empty")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("AccessKey \"bob\" has no key yet")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("names ModelProvider \"nowhere\", which does not exist")),
        "{warnings:?}"
    );
    // A status in the file is ignored: the forged hash opens nothing.
    assert!(h
        .store
        .access_key_by_hash("forged")
        .await
        .unwrap()
        .is_none());

    let again = h.apply(PROVIDER).await;
    assert_eq!(again["results"][0]["result"], "unchanged");
    assert_eq!(again["results"][1]["result"], "unchanged");
    let changed = h.apply(&PROVIDER.replace("1000000", "5")).await;
    assert_eq!(changed["results"][1]["result"], "configured");
}

#[tokio::test]
async fn invalid_documents_are_refused_with_every_problem() {
    let h = Harness::new();
    let yaml = "apiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {name: v}\nspec: {provider: vllm, endpont: x}\n---\napiVersion: pai.io/v1\nkind: Secret\nmetadata: {name: Bad Name}\ndata: {a: b}\n";
    let (status, body, _) = h.call("POST", "/admin/v1/apply", yaml).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let problems = body["error"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0]
        .as_str()
        .unwrap()
        .contains("unknown field spec.endpont; did you mean endpoint?"));
    assert!(problems[1].as_str().unwrap().contains("metadata.name"));
    assert!(h
        .store
        .list(pai_core::Kind::ModelProvider)
        .await
        .unwrap()
        .is_empty());

    // The placeholder of a listing must not overwrite a real secret.
    let (status, body, _) = h
        .call(
            "POST",
            "/admin/v1/apply",
            "apiVersion: pai.io/v1\nkind: Secret\nmetadata: {name: s}\ndata: {api-key: '***'}\n",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("placeholder"));
}

#[tokio::test]
async fn secrets_are_redacted_in_listings() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    for path in ["/admin/v1/secrets", "/admin/v1/secrets/openai-api-key"] {
        let (status, body, text) = h.call("GET", path, "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(!text.contains("sk-real-provider-key"), "{text}");
        let secret = if body.get("items").is_some() {
            body["items"][0].clone()
        } else {
            body
        };
        assert_eq!(secret["data"], json!({"api-key": "***"}));
        assert!(secret["createdAt"].as_u64().is_some());
        assert!(secret["updatedAt"].as_u64().is_some());
    }
}

async fn create_key(h: &Harness, body: Value) -> (StatusCode, Value) {
    let (status, body, _) = h
        .call("POST", "/admin/v1/access-keys", &body.to_string())
        .await;
    (status, body)
}

#[tokio::test]
async fn a_created_key_is_returned_once_and_never_listed() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    let (status, issued) = create_key(
        &h,
        json!({"name": "alice", "modelProvider": "openai", "allowedModels": ["gpt-4o-mini"],
               "allowedCIDRs": ["10.0.0.0/8"], "maxTokensPerDay": 50000}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let raw = issued["key"].as_str().unwrap().to_owned();
    assert!(raw.starts_with("pak_"));
    assert_eq!(issued["wrapped"], pai_core::access_key::wrap(&raw));
    let hash = h.hasher.hash(&raw).0;
    let stored = h.store.access_key_by_hash(&hash).await.unwrap().unwrap();
    assert_eq!(stored.resource.name(), "alice");

    for path in ["/admin/v1/access-keys", "/admin/v1/access-keys/alice"] {
        let (status, _, text) = h.call("GET", path, "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(!text.contains(&raw), "{text}");
        assert!(!text.contains(&raw["pak_".len()..]), "{text}");
        assert!(!text.contains(&hash), "{text}");
        assert!(!text.contains("keyHash"), "{text}");
        assert!(text.contains("10.0.0.0/8"), "{text}");
    }

    // Applying the key from a file keeps its server-owned hash.
    h.apply("apiVersion: pai.io/v1\nkind: AccessKey\nmetadata: {name: alice}\nspec: {modelProvider: openai}\n")
        .await;
    assert!(h.store.access_key_by_hash(&hash).await.unwrap().is_some());
}

#[tokio::test]
async fn a_key_may_be_created_with_a_rate_limit_of_at_least_one() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    let (status, body) = create_key(
        &h,
        json!({"name": "k", "modelProvider": "openai", "maxRequestsPerMinute": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["problems"][0]
        .as_str()
        .unwrap()
        .contains("spec.limits.maxRequestsPerMinute must be at least 1"));
    let (status, issued) = create_key(
        &h,
        json!({"name": "k", "modelProvider": "openai", "maxRequestsPerMinute": 60}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let (_, _, text) = h.call("GET", "/admin/v1/access-keys/k", "").await;
    assert!(text.contains(r#""maxRequestsPerMinute":60"#), "{text}");
}

#[tokio::test]
async fn creating_a_key_checks_its_provider_name_and_cidrs() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    let (status, body) = create_key(&h, json!({"name": "k", "modelProvider": "nope"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ModelProvider \"nope\" does not exist"));
    let (status, body) = create_key(
        &h,
        json!({"name": "k", "modelProvider": "openai", "allowedCIDRs": ["10.0.0.0/40"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["problems"][0]
        .as_str()
        .unwrap()
        .contains("allowedCIDRs[0]"));
    let (status, _) = create_key(&h, json!({"name": "k", "modelProvider": "openai"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = create_key(&h, json!({"name": "k", "modelProvider": "openai"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    let (status, _) = create_key(
        &h,
        json!({"name": "k2", "modelProvider": "openai", "models": []}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn rotation_invalidates_the_old_key_unless_given_grace() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    let (_, first) = create_key(&h, json!({"name": "alice", "modelProvider": "openai"})).await;
    let first = h.hasher.hash(first["key"].as_str().unwrap()).0;

    let (status, second, _) = h
        .call(
            "POST",
            "/admin/v1/access-keys/alice/rotate",
            r#"{"graceSeconds": 3600}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert!(second["previousKeyExpiresAt"].as_u64().is_some());
    let second = h.hasher.hash(second["key"].as_str().unwrap()).0;
    assert_ne!(first, second);
    assert!(h.store.access_key_by_hash(&second).await.unwrap().is_some());
    assert!(h.store.access_key_by_hash(&first).await.unwrap().is_some());

    let (status, third, _) = h
        .call("POST", "/admin/v1/access-keys/alice/rotate", "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let third = h.hasher.hash(third["key"].as_str().unwrap()).0;
    assert!(h.store.access_key_by_hash(&third).await.unwrap().is_some());
    assert!(h.store.access_key_by_hash(&second).await.unwrap().is_none());
    assert!(h.store.access_key_by_hash(&first).await.unwrap().is_none());

    let (_, _, text) = h.call("GET", "/admin/v1/access-keys/alice", "").await;
    assert!(
        !text.contains("previousKeyHash") && !text.contains(&third),
        "{text}"
    );

    let (status, _, _) = h
        .call("POST", "/admin/v1/access-keys/nobody/rotate", "{}")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn get_and_delete_answer_404_for_what_is_not_there() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    let (status, body, _) = h.call("GET", "/admin/v1/model-providers/openai", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["spec"]["provider"], "openai");
    assert_eq!(body["kind"], "ModelProvider");
    let (status, body, _) = h
        .call("DELETE", "/admin/v1/model-providers/openai", "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"kind": "ModelProvider", "name": "openai", "result": "deleted"})
    );
    for method in ["GET", "DELETE"] {
        let (status, body, _) = h.call(method, "/admin/v1/model-providers/openai", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body["error"]["message"],
            "ModelProvider \"openai\" not found"
        );
    }
    let (status, body, _) = h.call("GET", "/admin/v1/gizmos", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("model-providers"));
}

#[tokio::test]
async fn listings_carry_todays_tokens_and_the_last_call() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    create_key(&h, json!({"name": "alice", "modelProvider": "openai"})).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (key, input, output) in [(Some("alice"), 100, 20), (None, 7, 3)] {
        h.store
            .record_call(&CallRecord {
                call_id: format!("c-{input}"),
                started_at_ms: now_ms,
                workload: "test".to_owned(),
                provider: "openai".to_owned(),
                access_key: key.map(str::to_owned),
                model: "gpt-4o-mini".to_owned(),
                operation: "chat.completions".to_owned(),
                status: 200,
                usage: Some(Usage {
                    input,
                    output,
                    ..Usage::default()
                }),
                ..CallRecord::default()
            })
            .await
            .unwrap();
    }
    let (_, providers, _) = h.call("GET", "/admin/v1/model-providers", "").await;
    assert_eq!(providers["items"][0]["tokensToday"], 130);
    assert!(providers["items"][0]["lastUsedMs"].as_u64().unwrap() >= now_ms);
    let (_, keys, _) = h.call("GET", "/admin/v1/access-keys", "").await;
    assert_eq!(keys["items"][0]["status"]["tokensToday"], 120);
    assert_eq!(keys["items"][0]["tokensToday"], 120);
    let (status, usage, _) = h.call("GET", "/admin/v1/usage?since_ms=0", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["items"].as_array().unwrap().len(), 2);
    let (status, _, _) = h.call("GET", "/admin/v1/usage?since_ms=soon", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A call record of `workload` on `provider`/`model`, started now.
fn call(
    workload: &str,
    provider: &str,
    model: &str,
    usage: Usage,
    cost: Option<u128>,
) -> CallRecord {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    CallRecord {
        call_id: format!("{workload}-{model}-{}", usage.input),
        started_at_ms: now_ms,
        workload: workload.to_owned(),
        provider: provider.to_owned(),
        access_key: Some("bot-key".to_owned()),
        model: model.to_owned(),
        operation: "messages".to_owned(),
        status: 200,
        usage: Some(usage),
        cost_pico_usd: cost,
        ..CallRecord::default()
    }
}

const AGENT: &str = r#"
apiVersion: pai.io/v1
kind: ModelBinding
metadata: {name: fast}
spec: {provider: openai, model: gpt-4o-mini, maxTokensPerDay: 1000}
---
apiVersion: pai.io/v1
kind: Agent
metadata: {name: support-bot}
spec:
  models: [openai/gpt-4o-mini]
  modelBindings: [fast]
  rateLimits: {maxCostPerDayUSD: 5}
---
apiVersion: pai.io/v1
kind: Agent
metadata: {name: idle-bot}
spec: {models: [openai/gpt-4o-mini]}
"#;

#[tokio::test]
async fn budgets_list_every_limit_with_the_ledgers_spend_today() {
    use pai_core::ledger::Unit;
    use pai_core::{BudgetLedger, ScopeKey, ScopeLimit};

    let h = Harness::new();
    h.apply(PROVIDER).await;
    h.apply(AGENT).await;
    create_key(
        &h,
        json!({"name": "alice", "modelProvider": "openai", "maxTokensPerDay": 500}),
    )
    .await;
    create_key(&h, json!({"name": "bob", "modelProvider": "openai"})).await;
    let scope = |kind: &'static str, name: &str, unit, limit, amount| ScopeLimit {
        key: ScopeKey {
            kind,
            name: name.to_owned(),
        },
        unit,
        limit,
        amount,
    };
    let reservation = h
        .ledger
        .reserve(&[
            scope("provider", "openai", Unit::Tokens, 1_000_000, 100),
            scope("access-key", "alice", Unit::Tokens, 500, 100),
            scope(
                "agent-cost",
                "support-bot",
                Unit::PicoUsd,
                5_000_000_000_000,
                10,
            ),
        ])
        .await
        .unwrap();
    h.ledger
        .settle(reservation, &[42, 42, 12_300_000_000])
        .await
        .unwrap();

    let (status, body, _) = h.call("GET", "/admin/v1/budgets", "").await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|b| {
            (
                b["scope"].as_str().unwrap(),
                b["name"].as_str().unwrap(),
                b["unit"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("provider", "openai", "tokens"),
            ("access-key", "alice", "tokens"),
            ("model-binding", "fast", "tokens"),
            ("agent-cost", "support-bot", "usd"),
        ]
    );
    assert_eq!(items[0]["spent"], 42);
    assert_eq!(items[0]["limit"], 1_000_000);
    assert_eq!(
        items[1]["budget"],
        "AccessKey \"alice\" limits.maxTokensPerDay"
    );
    assert_eq!(items[1]["spent"], 42);
    assert_eq!(items[2]["spent"], 0);
    assert_eq!(items[3]["spent"], 0.0123);
    assert_eq!(items[3]["limit"], 5.0);
    let resets = items[0]["resetsInSeconds"].as_u64().unwrap();
    assert!((1..=86_400).contains(&resets), "{resets}");
}

#[tokio::test]
async fn usage_has_dollars_and_agents_their_cost_today() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    h.apply(AGENT).await;
    let tokens = |input, output| Usage {
        input,
        output,
        ..Usage::default()
    };
    for record in [
        call(
            "support-bot",
            "openai",
            "gpt-4o-mini",
            tokens(100, 20),
            Some(27_000_000),
        ),
        call(
            "support-bot",
            "openai",
            "gpt-4o-mini",
            tokens(10, 2),
            Some(2_700_000),
        ),
        call("support-bot", "local", "llama", tokens(5, 5), None),
        call(
            "ext:alice",
            "openai",
            "gpt-4o-mini",
            tokens(1, 1),
            Some(750_000),
        ),
    ] {
        h.store.record_call(&record).await.unwrap();
    }

    let (status, usage, _) = h.call("GET", "/admin/v1/usage", "").await;
    assert_eq!(status, StatusCode::OK);
    let openai = usage["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["provider"] == "openai")
        .unwrap();
    assert_eq!(openai["cost_pico_usd"], 30_450_000);
    assert_eq!(openai["costUsd"], "0.000030");

    let (status, workloads, _) = h.call("GET", "/admin/v1/usage/workloads", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        workloads["items"],
        json!([
            {"workload": "ext:alice", "provider": "openai", "model": "gpt-4o-mini", "requests": 1,
             "usage": {"input": 1, "cached_input": 0, "cache_write": 0, "output": 1, "reasoning": 0},
             "costPicoUsd": 750_000, "costUsd": "0.000001", "unpricedRequests": 0,
             "lastUsedMs": workloads["items"][0]["lastUsedMs"]},
            {"workload": "support-bot", "provider": "local", "model": "llama", "requests": 1,
             "usage": {"input": 5, "cached_input": 0, "cache_write": 0, "output": 5, "reasoning": 0},
             "costPicoUsd": 0, "costUsd": "0.000000", "unpricedRequests": 1,
             "lastUsedMs": workloads["items"][1]["lastUsedMs"]},
            {"workload": "support-bot", "provider": "openai", "model": "gpt-4o-mini", "requests": 2,
             "usage": {"input": 110, "cached_input": 0, "cache_write": 0, "output": 22, "reasoning": 0},
             "costPicoUsd": 29_700_000, "costUsd": "0.000030", "unpricedRequests": 0,
             "lastUsedMs": workloads["items"][2]["lastUsedMs"]},
        ])
    );

    let (_, agents, _) = h.call("GET", "/admin/v1/agents", "").await;
    let agents = agents["items"].as_array().unwrap();
    assert_eq!(agents[0]["metadata"]["name"], "idle-bot");
    assert_eq!(agents[0]["costTodayUsd"], "0.000000");
    assert_eq!(agents[0]["tokensToday"], 0);
    assert_eq!(agents[1]["costTodayUsd"], "0.000030");
    assert_eq!(agents[1]["tokensToday"], 142);
}

#[tokio::test]
async fn rotation_grace_is_at_most_a_week() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    create_key(&h, json!({"name": "alice", "modelProvider": "openai"})).await;
    for grace in [u64::MAX, 604_801, 10_000_000_000] {
        let (status, body, text) = h
            .call(
                "POST",
                "/admin/v1/access-keys/alice/rotate",
                &json!({ "graceSeconds": grace }).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{grace}: {text}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("604800") && message.contains("week"),
            "{message}"
        );
    }
    // Nothing was rotated by the refused calls: one week is still fine, and the old key's end
    // is a week from now.
    let (status, body, _) = h
        .call(
            "POST",
            "/admin/v1/access-keys/alice/rotate",
            r#"{"graceSeconds": 604800}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let until = body["previousKeyExpiresAt"].as_u64().unwrap();
    assert!(until.abs_diff(now + 604_800) <= 5, "{until} vs {now}");
}

#[tokio::test]
async fn guards_that_could_never_run_are_refused_at_apply() {
    let h = Harness::new();
    let guarded = PROVIDER.replace(
        "externalAccess: {enabled: true}",
        "externalAccess: {enabled: true}\n  guards: [{binding: prompt-guard-default, enforcement: audit}]",
    );
    let (status, body, text) = h.call("POST", "/admin/v1/apply", &guarded).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.guards[0].binding names GuardBinding \"prompt-guard-default\", which does not exist"),
        "{message}"
    );
    // Nothing of the file was stored, not even its Secret.
    assert!(h
        .store
        .list(pai_core::Kind::Secret)
        .await
        .unwrap()
        .is_empty());
    // A kind the binary does not have.
    let odd = "apiVersion: pai.io/v1\nkind: GuardBinding\nmetadata: {name: g}\nspec: {guard: prompt-gaurd}\n";
    let (status, body, text) = h.call("POST", "/admin/v1/apply", odd).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.guard: this gateway has no guard kind \"prompt-gaurd\"; did you mean \"prompt-guard\"?"),
        "{message}"
    );
    // An external guard whose key Secret is missing, or lacks the key, would fail every call.
    let remote = "apiVersion: pai.io/v1\nkind: GuardBinding\nmetadata: {name: shield}\nspec: {guard: http, format: lakera, endpoint: \"http://127.0.0.1:9\", apiKeySecretRef: {name: lakera}}\n";
    let (status, body, text) = h.call("POST", "/admin/v1/apply", remote).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("GuardBinding \"shield\"")
            && message
                .contains("spec.apiKeySecretRef names Secret \"lakera\", which does not exist"),
        "{message}"
    );
    let wrong_key = format!(
        "apiVersion: pai.io/v1\nkind: Secret\nmetadata: {{name: lakera}}\ndata: {{token: abc}}\n---\n{remote}"
    );
    let (status, body, text) = h.call("POST", "/admin/v1/apply", &wrong_key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "names key \"api-key\" of Secret \"lakera\", which has no such key (it has token)"
        ) && message.contains("apiKeySecretRef: {name: lakera, key: token}"),
        "{message}"
    );
    let right = wrong_key.replace("token: abc", "api-key: abc");
    let (status, _, text) = h.call("POST", "/admin/v1/apply", &right).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    // The binding in the same file: both are applied.
    let both = format!(
        "apiVersion: pai.io/v1\nkind: GuardBinding\nmetadata: {{name: prompt-guard-default}}\nspec: {{guard: prompt-guard, threshold: 0.8}}\n---\n{guarded}"
    );
    let (status, _, text) = h.call("POST", "/admin/v1/apply", &both).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let Some(stored) = h
        .store
        .get(pai_core::Kind::ModelProvider, "openai")
        .await
        .unwrap()
    else {
        panic!("stored")
    };
    let pai_core::Resource::ModelProvider(p) = stored.resource else {
        panic!("a provider")
    };
    assert_eq!(p.spec.guards[0].binding, "prompt-guard-default");
    assert_eq!(p.spec.guards[0].enforcement, pai_core::Enforcement::Audit);
}

#[tokio::test]
async fn a_model_provider_naming_a_provider_pai_has_no_adapter_for_is_refused() {
    let h = Harness::new();
    let acme = PROVIDER.replace(
        "provider: openai",
        "provider: acme
  endpoint: http://127.0.0.1:9/v1",
    );
    let (status, body, text) = h.call("POST", "/admin/v1/apply", &acme).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ModelProvider \"openai\": spec.provider: this gateway has no adapter for provider \"acme\""),
        "{message}"
    );
    assert!(
        message.contains("anthropic, azure-openai, gemini, openai, openrouter, vllm"),
        "{message}"
    );
    // Nothing of the file was stored, not even its Secret.
    assert!(h
        .store
        .list(pai_core::Kind::Secret)
        .await
        .unwrap()
        .is_empty());

    // A typo of a built-in name gets a suggestion.
    let typo = PROVIDER.replace(
        "provider: openai",
        "provider: opneai
  endpoint: http://127.0.0.1:9/v1",
    );
    let (status, body, _) = h.call("POST", "/admin/v1/apply", &typo).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("did you mean \"openai\"?"), "{message}");

    // A name no provider could have is refused by the loader.
    let bad = PROVIDER.replace("provider: openai", "provider: Acme Corp");
    let (status, body, _) = h.call("POST", "/admin/v1/apply", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("is not a provider name"), "{message}");
}

#[tokio::test]
async fn a_model_binding_that_could_never_be_called_is_refused_saying_what_is_missing() {
    let h = Harness::new();
    h.apply(PROVIDER).await;
    let binding = |spec: &str| {
        format!("apiVersion: pai.io/v1\nkind: ModelBinding\nmetadata: {{name: gemini-flash}}\nspec: {spec}\n")
    };
    let h = &h;
    let refused = |yaml: String| async move {
        let (status, body, text) = h.call("POST", "/admin/v1/apply", &yaml).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        body["error"]["message"].as_str().unwrap().to_owned()
    };
    // A provider type called directly needs the binding's own key.
    let why = refused(binding("{provider: gemini, model: gemini-2.0-flash}")).await;
    assert!(why.contains("needs its own key"), "{why}");
    // The Secret must exist…
    let why = refused(binding(
        "{provider: gemini, model: gemini-2.0-flash, apiKeySecretRef: {name: gemini-key}}",
    ))
    .await;
    assert!(
        why.contains("Secret \"gemini-key\", which does not exist"),
        "{why}"
    );
    // …with the key named (default `token`).
    let why = refused(binding(
        "{provider: openai, model: gpt-4o-mini, apiKeySecretRef: {name: openai-api-key}}",
    ))
    .await;
    assert!(
        why.contains("key \"token\"") && why.contains("(it has api-key)"),
        "{why}"
    );
    // Neither a ModelProvider nor a provider type.
    let why = refused(binding("{provider: gemni}")).await;
    assert!(
        why.contains("neither an existing ModelProvider nor a provider type"),
        "{why}"
    );
    // A type with no public endpoint cannot be called directly.
    let why = refused(binding(
        "{provider: vllm, apiKeySecretRef: {name: openai-api-key, key: api-key}}",
    ))
    .await;
    assert!(why.contains("no public endpoint"), "{why}");
    let (_, listed, _) = h.call("GET", "/admin/v1/models", "").await;
    assert_eq!(listed["items"], json!([]), "nothing refused was stored");

    // The Secret in the same apply is enough, whatever the order; an unknown model only warns.
    let body = h
        .apply(&format!(
            "{}---\napiVersion: pai.io/v1\nkind: Secret\nmetadata: {{name: gemini-key}}\ndata: {{api-key: AIza-x}}\n",
            binding("{provider: gemini, apiKeySecretRef: {name: gemini-key, key: api-key}}")
        ))
        .await;
    let warnings = body["warnings"].to_string();
    assert!(
        warnings.contains("not in pai's gemini catalogue"),
        "{warnings}"
    );
    let (_, item, _) = h.call("GET", "/admin/v1/models/gemini-flash", "").await;
    assert_eq!(
        item["calls"],
        json!({"via": "provider-type", "provider": "gemini"})
    );
    // `openai` names the ModelProvider of that name, which wins over the type.
    h.apply(&binding("{provider: openai, model: gpt-4o-mini}"))
        .await;
    let (_, item, _) = h.call("GET", "/admin/v1/models/gemini-flash", "").await;
    assert_eq!(
        item["calls"],
        json!({"via": "model-provider", "name": "openai"})
    );
}
