use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pai_core::resource::{Agent, AgentSpec, Metadata, Secret, API_VERSION};
use pai_core::{Kind, Resource, Store};

use super::PostgresStore;
use crate::contract;
use crate::test_servers::PgSchema;

const KEY: [u8; 32] = [42; 32];
const PLAINTEXT: &str = "sk-live-SUPERSECRET-123";

fn agent(name: &str, model: &str) -> Resource {
    Resource::Agent(Agent {
        api_version: API_VERSION.to_owned(),
        metadata: Metadata {
            name: name.to_owned(),
            ..Metadata::default()
        },
        spec: AgentSpec {
            models: vec![model.to_owned()],
            ..AgentSpec::default()
        },
    })
}

#[tokio::test]
async fn keeps_the_store_contract() {
    let Some(schema) = PgSchema::create("postgres store contract").await else {
        return;
    };
    let store = PostgresStore::connect(&schema.url, KEY).await.unwrap();
    contract::run_all(&store).await;
    store.close().await;
    schema.drop().await;
}

#[tokio::test]
async fn secrets_are_sealed_in_the_database() {
    let Some(schema) = PgSchema::create("postgres sealed secrets").await else {
        return;
    };
    let store = PostgresStore::connect(&schema.url, KEY).await.unwrap();
    let secret = Resource::Secret(Secret {
        api_version: API_VERSION.to_owned(),
        metadata: Metadata {
            name: "openai".to_owned(),
            ..Metadata::default()
        },
        data: BTreeMap::from([("api-key".to_owned(), PLAINTEXT.to_owned())]),
    });
    store.apply(&secret).await.unwrap();
    // Every column of every row, as text: the plaintext is nowhere.
    let rows: Vec<String> = sqlx::query_scalar("SELECT r::TEXT FROM resources r")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        assert!(!row.contains(PLAINTEXT), "plaintext in a row: {row}");
        assert!(
            !row.contains(&hex(PLAINTEXT.as_bytes())),
            "plaintext bytes in a row"
        );
    }
    let back = store.get(Kind::Secret, "openai").await.unwrap().unwrap();
    assert_eq!(back.resource, secret);
    // Another key cannot read it, and the error does not leak it.
    let other = PostgresStore::connect(&schema.url, [7; 32]).await.unwrap();
    let err = other.get(Kind::Secret, "openai").await.unwrap_err();
    assert!(!err.to_string().contains(PLAINTEXT));
    store.close().await;
    other.close().await;
    schema.drop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A write through one store reaches another on the same database (another replica) by
/// NOTIFY, well within the resync interval; and an unchanged apply wakes no one.
#[tokio::test]
async fn changes_reach_other_replicas() {
    let Some(schema) = PgSchema::create("postgres change propagation").await else {
        return;
    };
    let a = PostgresStore::connect(&schema.url, KEY).await.unwrap();
    let b = PostgresStore::connect(&schema.url, KEY).await.unwrap();
    let mut rx = b.watch();
    rx.borrow_and_update();
    // Let b's listener connect.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut delays = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        a.apply(&agent("bot", &format!("openai/model-{i}")))
            .await
            .unwrap();
        let written = *a.watch().borrow();
        tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|r| *r >= written))
            .await
            .expect("the change reaches the other replica within 2 s")
            .unwrap();
        delays.push(started.elapsed());
        let seen = b.get(Kind::Agent, "bot").await.unwrap().unwrap();
        assert_eq!(seen.resource, agent("bot", &format!("openai/model-{i}")));
    }
    delays.sort();
    eprintln!(
        "postgres change propagation: p50 {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    assert!(
        delays[delays.len() / 2] < super::RESYNC_INTERVAL,
        "notifications, not the resync, carry changes: {delays:?}"
    );
    a.apply(&agent("bot", "openai/model-19")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !rx.has_changed().unwrap(),
        "an unchanged apply wakes no one"
    );
    a.close().await;
    b.close().await;
    schema.drop().await;
}

/// Two replicas applying the same new resource at once: one creates it, the other configures
/// or finds it unchanged; never two creations.
#[tokio::test]
async fn concurrent_applies_across_replicas_are_exact() {
    let Some(schema) = PgSchema::create("postgres concurrent applies").await else {
        return;
    };
    let a = PostgresStore::connect(&schema.url, KEY).await.unwrap();
    let b = PostgresStore::connect(&schema.url, KEY).await.unwrap();
    for i in 0..10 {
        let name = format!("bot-{i}");
        let resource = agent(&name, "openai/a");
        let (x, y) = tokio::join!(a.apply(&resource), b.apply(&resource));
        let mut outcomes = [x.unwrap(), y.unwrap()];
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(
            outcomes,
            [pai_core::Applied::Created, pai_core::Applied::Unchanged]
        );
    }
    a.close().await;
    b.close().await;
    schema.drop().await;
}

#[tokio::test]
async fn keeps_the_audit_chain_contract() {
    let Some(schema) = PgSchema::create("postgres audit chain").await else {
        return;
    };
    let store = PostgresStore::connect(&schema.url, KEY).await.unwrap();
    contract::audit_chain(&store, &pai_core::AuditKey::derive(&KEY)).await;
    store.close().await;
    schema.drop().await;
}

#[tokio::test]
async fn audit_tampering_is_named() {
    let key = pai_core::AuditKey::derive(&KEY);
    for case in crate::audit_tamper::CASES {
        let Some(schema) = PgSchema::create("postgres audit tampering").await else {
            return;
        };
        let store = PostgresStore::connect(&schema.url, KEY).await.unwrap();
        let pool = store.pool().clone();
        crate::audit_tamper::check(&store, &key, case, |sql| {
            let pool = pool.clone();
            async move {
                sqlx::query(&sql).execute(&pool).await.unwrap();
            }
        })
        .await;
        store.close().await;
        schema.drop().await;
    }
}

/// Three stores on one database (three replicas) append at once: one chain, no fork.
#[tokio::test]
async fn replicas_append_to_one_chain() {
    let Some(schema) = PgSchema::create("postgres audit replicas").await else {
        return;
    };
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(std::sync::Arc::new(
            PostgresStore::connect(&schema.url, KEY).await.unwrap(),
        ));
    }
    let mut tasks = Vec::new();
    for (r, store) in replicas.iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..40 {
                let calls: Vec<pai_core::CallRecord> = (0..5)
                    .map(|i| pai_core::CallRecord {
                        call_id: format!("r{r}-{n}-{i}"),
                        workload: format!("ext:replica-{r}"),
                        status: 200,
                        ..pai_core::CallRecord::default()
                    })
                    .collect();
                store.record_calls(&calls).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let verified = pai_core::audit::verify(replicas[0].as_ref(), &pai_core::AuditKey::derive(&KEY))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        verified.entries,
        3 * 40 * 5,
        "every call of every replica, in one chain"
    );
    for store in replicas {
        store.close().await;
    }
    schema.drop().await;
}
