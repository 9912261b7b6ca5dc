//! The PostgreSQL and Redis servers tests run against, each test in a space of its own.
//!
//! Tests find PostgreSQL at `PAI_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and Redis at `PAI_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`). When a server is not reachable the helpers print one
//! `SKIP: …` line and answer `None`, so the test returns without failing on a machine that has
//! no such server. Each PostgreSQL test gets a fresh schema (dropped by [`PgSchema::drop`], and
//! schemas an interrupted run left behind are dropped after an hour); each Redis test a fresh
//! key prefix (deleted by [`RedisSpace::drop`]). So tests run in parallel and repeatedly.

// Test support: a server that answers but misbehaves fails the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// How long a server has to answer before tests are skipped.
const REACH_TIMEOUT: Duration = Duration::from_secs(3);

/// A name no other test, process or run uses: `<unix secs>_<pid>_<n>`.
fn unique() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{secs}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The PostgreSQL server tests use.
#[cfg(feature = "postgres")]
pub fn postgres_url() -> String {
    std::env::var("PAI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The Redis server tests use.
#[cfg(feature = "redis")]
pub fn redis_url() -> String {
    std::env::var("PAI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A schema of one test's own in the test database.
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub struct PgSchema {
    /// The schema's name.
    pub name: String,
    /// A URL whose connections use only this schema (`options[search_path]=…`).
    pub url: String,
    admin: sqlx::PgPool,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    /// A fresh, empty schema, or `None` (with a `SKIP:` line naming `test`) when PostgreSQL is
    /// not reachable.
    pub async fn create(test: &str) -> Option<PgSchema> {
        use sqlx::postgres::PgPoolOptions;
        let base = postgres_url();
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(REACH_TIMEOUT)
            .connect(&base)
            .await;
        let admin = match admin {
            Ok(admin) => admin,
            Err(e) => {
                eprintln!("SKIP: {test}: PostgreSQL not reachable at {base} ({e}); set PAI_TEST_POSTGRES_URL");
                return None;
            }
        };
        drop_stale_schemas(&admin).await;
        let name = format!("pai_test_{}", unique());
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&admin)
            .await
            .expect("create a test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={name}");
        Some(PgSchema { name, url, admin })
    }

    /// Connection options for this schema.
    pub fn options(&self) -> sqlx::postgres::PgConnectOptions {
        self.url.parse().expect("the schema's URL parses")
    }

    /// Drop the schema and everything in it.
    pub async fn drop(self) {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .execute(&self.admin)
            .await
            .expect("drop the test schema");
        self.admin.close().await;
    }
}

/// Drop the schemas of test runs that ended more than an hour ago without cleaning up.
#[cfg(feature = "postgres")]
async fn drop_stale_schemas(admin: &sqlx::PgPool) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::TEXT FROM pg_namespace WHERE nspname LIKE 'pai\\_test\\_%'",
    )
    .fetch_all(admin)
    .await
    .unwrap_or_default();
    for name in names {
        let secs = name
            .trim_start_matches("pai_test_")
            .split('_')
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        if secs.is_some_and(|secs| secs + 3_600 < now) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(admin)
                .await;
        }
    }
}

/// A key prefix of one test's own on the test Redis server.
#[cfg(feature = "redis")]
#[derive(Debug)]
pub struct RedisSpace {
    /// Every key the test makes starts with it.
    pub prefix: String,
    /// The server's URL.
    pub url: String,
}

#[cfg(feature = "redis")]
impl RedisSpace {
    /// A fresh prefix, or `None` (with a `SKIP:` line naming `test`) when Redis is not
    /// reachable.
    pub async fn create(test: &str) -> Option<RedisSpace> {
        let url = redis_url();
        let reached = async {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(REACH_TIMEOUT, reached).await {
            Ok(Ok(_)) => Some(RedisSpace {
                prefix: format!("pai-test:{}", unique()),
                url,
            }),
            Ok(Err(e)) => {
                eprintln!(
                    "SKIP: {test}: Redis not reachable at {url} ({e}); set PAI_TEST_REDIS_URL"
                );
                None
            }
            Err(_) => {
                eprintln!("SKIP: {test}: Redis not reachable at {url} (no answer); set PAI_TEST_REDIS_URL");
                None
            }
        }
    }

    /// Delete every key under the prefix.
    pub async fn drop(self) {
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        let pattern = format!("{{{}}}*", self.prefix);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .expect("list the test's keys");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("delete the test's keys");
        }
    }
}
