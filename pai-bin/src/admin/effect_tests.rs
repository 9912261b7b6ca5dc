//! Read your writes: when an admin call returns, the gateway in the same process already acts
//! on it. Driven against a real SQLite file and the assembled gateway, on a multi-threaded
//! runtime, where the gateway's reload races the admin call's answer.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use pai_core::{AccessKeyHasher, Store, SystemClock};
use pai_store::{MemoryLedger, SqliteStore};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::tests::{PROVIDER, TOKEN};
use super::{router, AdminState};

async fn admin(router: &Router, method: &str, path: &str, body: String) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The status `GET /ext/pai/v1/me` answers for `key`: 200 when the gateway knows it.
async fn me(gateway: &pai_tower::Gateway, key: &str) -> StatusCode {
    let request = Request::get("/ext/pai/v1/me")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    gateway.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_take_effect_before_the_call_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("pai.db"), [7; 32])
            .await
            .unwrap(),
    );
    let hasher = AccessKeyHasher::new(b"a test secret of thirty-two bytes");
    let gateway = pai_tower::Gateway::builder()
        .store(store.clone())
        .key_hasher(hasher.clone())
        .build()
        .await
        .unwrap();
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let admin_api = router(
        AdminState::new(store.clone(), ledger, hasher, TOKEN).follow_gateway(gateway.clone()),
    );
    let (status, _) = admin(&admin_api, "POST", "/admin/v1/apply", PROVIDER.to_owned()).await;
    assert_eq!(status, StatusCode::OK);

    let mut misses = Vec::new();
    for i in 0..20 {
        let name = format!("k{i}");
        let (status, minted) = admin(
            &admin_api,
            "POST",
            "/admin/v1/access-keys",
            json!({"name": name, "modelProvider": "openai"}).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{minted}");
        let first = minted["key"].as_str().unwrap().to_owned();
        if me(&gateway, &first).await != StatusCode::OK {
            misses.push(format!("{name}: a minted key was refused"));
        }

        let (status, rotated) = admin(
            &admin_api,
            "POST",
            &format!("/admin/v1/access-keys/{name}/rotate"),
            r#"{"graceSeconds": 0}"#.to_owned(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let second = rotated["key"].as_str().unwrap().to_owned();
        if me(&gateway, &first).await != StatusCode::UNAUTHORIZED {
            misses.push(format!("{name}: a key rotated without grace still worked"));
        }
        if me(&gateway, &second).await != StatusCode::OK {
            misses.push(format!("{name}: the rotated-in key was refused"));
        }

        let (status, _) = admin(
            &admin_api,
            "DELETE",
            &format!("/admin/v1/access-keys/{name}"),
            String::new(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        if me(&gateway, &second).await != StatusCode::UNAUTHORIZED {
            misses.push(format!("{name}: a deleted key still worked"));
        }
    }
    assert!(
        misses.is_empty(),
        "{} of 80 checks missed: {misses:#?}",
        misses.len()
    );
}

/// A library user's gateway with an adapter of their own: the admin API that follows it
/// accepts ModelProviders naming that adapter, and still refuses names it does not know.
#[tokio::test]
async fn the_admin_api_knows_the_adapters_of_the_gateway_it_follows() {
    let store: Arc<dyn Store> = Arc::new(pai_store::MemoryStore::new());
    let hasher = AccessKeyHasher::new(b"a test secret of thirty-two bytes");
    let acme = Arc::new(pai_providers::OpenAiAdapter::new(
        pai_core::ProviderKind::Vllm,
    ));
    let gateway = pai_tower::Gateway::builder()
        .store(store.clone())
        .key_hasher(hasher.clone())
        .provider("acme", acme)
        .build()
        .await
        .unwrap();
    let ledger = Arc::new(MemoryLedger::new(Arc::new(SystemClock)));
    let admin_api = router(
        AdminState::new(store.clone(), ledger, hasher, TOKEN).follow_gateway(gateway.clone()),
    );
    let provider = |kind: &str| {
        format!("apiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {{name: p-{kind}}}\nspec: {{provider: {kind}, endpoint: 'http://127.0.0.1:9/v1', allowedModels: [m]}}\n")
    };
    let (status, body) = admin(&admin_api, "POST", "/admin/v1/apply", provider("acme")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(gateway
        .snapshot()
        .provider("p-acme")
        .unwrap()
        .adapter
        .is_some());
    let (status, body) = admin(&admin_api, "POST", "/admin/v1/apply", provider("other")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("acme, anthropic, azure-openai"),
        "{message}"
    );
}
