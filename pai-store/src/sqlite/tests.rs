use std::collections::BTreeMap;
use std::sync::Arc;

use pai_core::resource::{Agent, AgentSpec, Metadata, Secret, API_VERSION};
use pai_core::{Kind, Resource, Store, StoreError};

use super::SqliteStore;

const KEY: [u8; 32] = [42; 32];
const PLAINTEXT: &str = "sk-live-SUPERSECRET-123";

fn secret(name: &str, value: &str) -> Resource {
    Resource::Secret(Secret {
        api_version: API_VERSION.to_owned(),
        metadata: Metadata {
            name: name.to_owned(),
            ..Metadata::default()
        },
        data: BTreeMap::from([("api-key".to_owned(), value.to_owned())]),
    })
}

fn agent(name: &str) -> Resource {
    Resource::Agent(Agent {
        api_version: API_VERSION.to_owned(),
        metadata: Metadata {
            name: name.to_owned(),
            ..Metadata::default()
        },
        spec: AgentSpec {
            models: vec!["openai/gpt-4o".to_owned()],
            ..AgentSpec::default()
        },
    })
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("pai.db"), KEY)
        .await
        .unwrap()
}

/// The bytes of the database and every file SQLite keeps beside it (`-wal`, `-shm`).
fn bytes_on_disk(dir: &tempfile::TempDir) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    crate::contract::run_all(&open(&dir).await).await;
}

#[tokio::test]
async fn commits_are_durable_write_ahead_logged_and_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // Every pooled connection, not just the first, must carry the settings.
    let mut conns = Vec::new();
    for _ in 0..super::MAX_CONNECTIONS {
        conns.push(store.pool.acquire().await.unwrap());
    }
    for conn in &mut conns {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }
}

#[tokio::test]
async fn secret_values_never_reach_the_disk_in_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.apply(&secret("openai", PLAINTEXT)).await.unwrap();
    store.apply(&agent("marker-agent")).await.unwrap();

    // Before a checkpoint the rows live in the WAL; after close, in the main file.
    for phase in ["with the WAL", "after checkpoint"] {
        let files = bytes_on_disk(&dir);
        let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.clone()).collect();
        assert!(
            contains(&all, "marker-agent"),
            "{phase}: the scan must see what was written"
        );
        for (path, bytes) in &files {
            assert!(!contains(bytes, PLAINTEXT), "{phase}: plaintext in {path}");
            assert!(
                !contains(bytes, "SUPERSECRET"),
                "{phase}: plaintext in {path}"
            );
        }
        store.close().await;
    }

    let store = open(&dir).await;
    let got = store.get(Kind::Secret, "openai").await.unwrap().unwrap();
    assert_eq!(got.resource, secret("openai", PLAINTEXT));
}

#[tokio::test]
async fn everything_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.apply(&agent("bot")).await.unwrap();
    let mut changed = agent("bot");
    if let Resource::Agent(a) = &mut changed {
        a.spec.models.push("anthropic/claude-haiku-4-5".to_owned());
    }
    store.apply(&changed).await.unwrap();
    store.apply(&secret("openai", PLAINTEXT)).await.unwrap();
    let call = pai_core::CallRecord {
        call_id: "c-1".to_owned(),
        started_at_ms: 1_700_000_000_000,
        provider: "openai".to_owned(),
        cost_pico_usd: Some(u128::MAX),
        ..Default::default()
    };
    store.record_call(&call).await.unwrap();
    let before = store.get(Kind::Agent, "bot").await.unwrap().unwrap();
    // Dropped without `close`: what was committed must already be on disk.
    drop(store);

    let store = open(&dir).await;
    let after = store.get(Kind::Agent, "bot").await.unwrap().unwrap();
    assert_eq!(after, before, "resource, timestamps and generation survive");
    assert_eq!(after.generation, 2);
    assert_eq!(
        store
            .get(Kind::Secret, "openai")
            .await
            .unwrap()
            .unwrap()
            .resource,
        secret("openai", PLAINTEXT)
    );
    assert_eq!(store.recent_calls(10).await.unwrap(), [call]);
    assert_eq!(
        store.apply(&changed).await.unwrap(),
        pai_core::Applied::Unchanged
    );
}

#[tokio::test]
async fn the_wrong_secret_key_reads_as_corrupt_not_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.apply(&secret("openai", PLAINTEXT)).await.unwrap();
    store.apply(&agent("bot")).await.unwrap();
    store.close().await;

    let path = dir.path().join("pai.db");
    let store = SqliteStore::open(&path, [7; 32]).await.unwrap();
    let err = store.get(Kind::Secret, "openai").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains(PLAINTEXT));
    assert!(matches!(
        store.list(Kind::Secret).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(
        store.get(Kind::Agent, "bot").await.unwrap().is_some(),
        "other kinds still read"
    );

    // Applying again under the new key is how an operator re-keys a secret.
    let rekeyed = secret("openai", "sk-live-NEW");
    assert_eq!(
        store.apply(&rekeyed).await.unwrap(),
        pai_core::Applied::Configured
    );
    assert_eq!(
        store
            .get(Kind::Secret, "openai")
            .await
            .unwrap()
            .unwrap()
            .resource,
        rekeyed
    );
}

#[tokio::test]
async fn altered_or_moved_ciphertexts_read_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.apply(&secret("openai", PLAINTEXT)).await.unwrap();
    store.apply(&secret("other", "sk-other")).await.unwrap();
    store.apply(&secret("flipped", "sk-flipped")).await.unwrap();

    // A ciphertext copied onto another secret's row does not open there.
    sqlx::query(
        "UPDATE resources SET sealed = (SELECT sealed FROM resources WHERE name = 'openai') \
         WHERE name = 'other'",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    let err = store.get(Kind::Secret, "other").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains(PLAINTEXT));

    // One flipped bit fails authentication.
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM resources WHERE name = 'flipped'")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    let mut flipped = sealed.clone();
    flipped[20] ^= 0x01;
    sqlx::query("UPDATE resources SET sealed = ? WHERE name = 'flipped'")
        .bind(flipped)
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(matches!(
        store.get(Kind::Secret, "flipped").await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(
        store
            .get(Kind::Secret, "openai")
            .await
            .unwrap()
            .unwrap()
            .resource,
        secret("openai", PLAINTEXT),
        "untouched rows still read"
    );
}

#[tokio::test]
async fn unreadable_rows_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.apply(&agent("bot")).await.unwrap();
    store.apply(&agent("imposter")).await.unwrap();
    sqlx::query("UPDATE resources SET json = '{not json' WHERE name = 'bot'")
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(matches!(
        store.get(Kind::Agent, "bot").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.list(Kind::Agent).await,
        Err(StoreError::Corrupt(_))
    ));
    // A row whose JSON names another resource is not that resource.
    let json = serde_json::to_string(&agent("someone-else")).unwrap();
    sqlx::query("UPDATE resources SET json = ? WHERE name = 'imposter'")
        .bind(json)
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(matches!(
        store.get(Kind::Agent, "imposter").await,
        Err(StoreError::Corrupt(_))
    ));
    sqlx::query("INSERT INTO calls (call_id, started_at_ms, workload, provider, model, operation, stream, status, cost_pico_usd, duration_ms) VALUES ('x', 1, 'w', 'p', 'm', 'o', 0, 200, 'lots', 1)")
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(matches!(
        store.recent_calls(1).await,
        Err(StoreError::Corrupt(_))
    ));
    // Applying over a broken row repairs it.
    store.apply(&agent("bot")).await.unwrap();
    assert!(store.get(Kind::Agent, "bot").await.unwrap().is_some());
}

#[cfg(unix)]
#[tokio::test]
async fn creates_missing_directories_and_an_owner_only_file() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/pai/pai.db");
    let store = SqliteStore::open(&path, KEY).await.unwrap();
    store.apply(&secret("openai", PLAINTEXT)).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("state/pai/pai.db-wal")), 0o600);
    assert_eq!(mode(&dir.path().join("state/pai")), 0o700);
    assert_eq!(store.path(), path);
    store.close().await;

    // An existing file that others could read is tightened on open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _store = SqliteStore::open(&path, KEY).await.unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn a_store_that_cannot_be_reached_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let err = SqliteStore::open(&blocker.join("pai.db"), KEY)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = SqliteStore::open(dir.path(), KEY).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_)),
        "a directory: {err:?}"
    );

    let store = open(&dir).await;
    store.close().await;
    for result in [
        store.get(Kind::Agent, "bot").await.map(|_| ()),
        store.apply(&agent("bot")).await.map(|_| ()),
        store.recent_calls(1).await.map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pai.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(&path, KEY).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&dir).await);
    let rx = store.watch();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store.apply(&agent(&format!("bot-{i:02}"))).await.unwrap();
                store
                    .apply(&secret(&format!("s-{i:02}"), "v"))
                    .await
                    .unwrap();
                let call = pai_core::CallRecord {
                    call_id: format!("c-{i}"),
                    provider: "openai".to_owned(),
                    ..Default::default()
                };
                store.record_call(&call).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.list(Kind::Agent).await.unwrap().len(), 16);
    assert_eq!(store.list(Kind::Secret).await.unwrap().len(), 16);
    assert_eq!(store.usage_since(0).await.unwrap()[0].requests, 16);
    assert_eq!(*rx.borrow(), 32, "one revision per change");
}

#[tokio::test]
async fn keeps_the_audit_chain_contract() {
    let dir = tempfile::tempdir().unwrap();
    let key = pai_core::AuditKey::derive(&KEY);
    crate::contract::audit_chain(&open(&dir).await, &key).await;
}

#[tokio::test]
async fn audit_tampering_is_named() {
    let key = pai_core::AuditKey::derive(&KEY);
    for case in crate::audit_tamper::CASES {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let pool = store.pool().clone();
        crate::audit_tamper::check(&store, &key, case, |sql| {
            let pool = pool.clone();
            async move {
                sqlx::query(&sql).execute(&pool).await.unwrap();
            }
        })
        .await;
    }
}
