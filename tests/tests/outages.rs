//! What a gateway on shared PostgreSQL and Redis does when one of them goes away, each outage
//! made by a TCP proxy in the test that cuts every connection and refuses new ones:
//! - Redis down: calls that touch a budget are refused with 503 in the client's dialect (fail
//!   closed), calls that touch none go on, and admission comes back by itself;
//! - PostgreSQL down: the gateway keeps serving from its last snapshot, call records wait in a
//!   bounded backlog, and none is lost once it is back (a 30 s outage;
//!   `PAI_TEST_OUTAGE_SECS` shortens it);
//! - a replica killed with SIGKILL mid-stream: its reservation blocks what it holds until its
//!   TTL, then is charged in full, and the key admits again what is left.
//!
//! Skipped, with a SKIP line, without the servers or the `pai` binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "scale/proxy.rs"]
mod proxy;
#[path = "scale/replicas.rs"]
#[allow(dead_code)]
mod replicas;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pai_mock::{MockConfig, MockUpstream};
use pai_store::test_servers::{PgSchema, RedisSpace};

use proxy::Proxy;
use replicas::{pai_bin, resources, time_until, Http, Replica, UPSTREAM_KEY};

/// One at a time: each test runs gateways on a small shared machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `scheme://[user@]host:port/…` → (the address of host:port, `url` with it replaced by `to`).
fn through(url: &str, default_port: u16, to: SocketAddr) -> (SocketAddr, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    };
    let addr = host.to_socket_addrs().unwrap().next().unwrap();
    (addr, format!("{scheme}://{user}{to}{tail}"))
}

struct Setup {
    bin: PathBuf,
    data: tempfile::TempDir,
    mock: MockUpstream,
    schema: PgSchema,
    redis: RedisSpace,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Setup {
    async fn new(test: &str) -> Option<Setup> {
        let bin = pai_bin(test)?;
        let turn = ONE_AT_A_TIME.lock().await;
        let schema = PgSchema::create(test).await?;
        let redis = RedisSpace::create(test).await?;
        let mock = MockUpstream::start(MockConfig::default().with_openai_key(UPSTREAM_KEY))
            .await
            .unwrap();
        Some(Setup {
            bin,
            data: tempfile::tempdir().unwrap(),
            mock,
            schema,
            redis,
            _turn: turn,
        })
    }

    fn replica(&self, name: &str, store: &str, ledger: &str, extra: &[&str]) -> Replica {
        let mut args: Vec<String> = [
            "--store",
            store,
            "--ledger",
            ledger,
            "--ledger-prefix",
            &self.redis.prefix,
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Replica::start(
            &self.bin,
            self.data.path(),
            self.data.path().join(format!("{name}.log")),
            &args,
        )
    }

    fn mint(&self, on: &Replica, name: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "access-key",
            "create",
            "--name",
            name,
            "--model-provider",
            "local-openai",
        ];
        args.extend_from_slice(extra);
        let out = on.cli(&self.bin, &args, None);
        out.trim().lines().last().unwrap().trim().to_owned()
    }

    async fn finish(self) {
        self.schema.drop().await;
        self.redis.drop().await;
    }
}

/// An Anthropic-dialect call.
async fn messages(http: &Http, url: &str, key: &str) -> (StatusCode, serde_json::Value) {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "Hi [mock:words=2]"}],
    });
    let req = Request::post(format!("{url}/ext/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    http.send(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_refuses_budgeted_calls_with_503_lets_others_through_and_recovers() {
    let Some(setup) = Setup::new("Redis outage").await else {
        return;
    };
    let (redis_addr, _) = through(&setup.redis.url, 6379, "127.0.0.1:1".parse().unwrap());
    let redis_proxy = Proxy::start(redis_addr).await;
    let (_, ledger) = through(&setup.redis.url, 6379, redis_proxy.addr);
    let gw = setup.replica("redis-outage", &setup.schema.url, &ledger, &[]);
    gw.cli(
        &setup.bin,
        &["apply", "-f", "-"],
        Some(&resources(&setup.mock.url())),
    );
    let capped = setup.mint(&gw, "capped", &["--max-tokens-day", "100000"]);
    let free = setup.mint(&gw, "free", &[]);
    let http = Http::new();
    assert_eq!(http.chat(&gw.url, &capped, 20, 2).await.0, StatusCode::OK);

    redis_proxy.cut();
    let started = Instant::now();
    let (status, body) = http.chat(&gw.url, &capped, 20, 2).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget ledger"),
        "OpenAI's error shape, naming the ledger: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "refused within the ledger's command timeout, took {:?}",
        started.elapsed()
    );
    let (status, body) = messages(&http, &gw.url, &capped).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["type"], "error", "Anthropic's error shape: {body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    // A call that touches no budget does not need the ledger.
    let (status, body) = http.chat(&gw.url, &free, 20, 2).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    redis_proxy.restore();
    let back = time_until(Duration::from_secs(15), || async {
        http.chat(&gw.url, &capped, 20, 2).await.0 == StatusCode::OK
    })
    .await
    .expect("budgeted calls are admitted again once Redis is back");
    eprintln!("Redis back: budgeted calls admitted again after {back:?}");
    drop(gw);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_keeps_serving_and_loses_no_call_record() {
    let Some(setup) = Setup::new("PostgreSQL outage").await else {
        return;
    };
    let outage = Duration::from_secs(
        std::env::var("PAI_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let (pg_addr, _) = through(&setup.schema.url, 5432, "127.0.0.1:1".parse().unwrap());
    let pg_proxy = Proxy::start(pg_addr).await;
    let (_, store) = through(&setup.schema.url, 5432, pg_proxy.addr);
    let gw = setup.replica("postgres-outage", &store, &setup.redis.url, &[]);
    gw.cli(
        &setup.bin,
        &["apply", "-f", "-"],
        Some(&resources(&setup.mock.url())),
    );
    let capped = setup.mint(&gw, "capped", &["--max-tokens-day", "1000000"]);
    let http = Http::new();
    let mut served = 0u64;
    for _ in 0..5 {
        assert_eq!(http.chat(&gw.url, &capped, 20, 2).await.0, StatusCode::OK);
        served += 1;
    }

    pg_proxy.cut();
    let started = Instant::now();
    while started.elapsed() < outage {
        let (status, body) = http.chat(&gw.url, &capped, 20, 2).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "served from the snapshot during the outage: {body}"
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("PostgreSQL down for {outage:?}: {served} calls served, all 200");
    pg_proxy.restore();

    // Every call is recorded once the database is back, none twice.
    let db = sqlx::PgPool::connect(&setup.schema.url).await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM calls WHERE access_key = 'capped'")
            .fetch_one(&db)
            .await
            .unwrap()
    };
    let all = time_until(Duration::from_secs(30), || async {
        count().await >= served as i64
    })
    .await;
    let recorded = count().await;
    assert!(
        all.is_some() && recorded == served as i64,
        "{recorded} of {served} calls recorded after the outage; see {}",
        gw.log.display()
    );
    eprintln!("PostgreSQL back: all {served} records written after {all:?}");
    db.close().await;
    drop(gw);
    setup.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_stream_has_its_reservation_charged_in_full_after_the_ttl() {
    let Some(setup) = Setup::new("replica killed mid-stream").await else {
        return;
    };
    let ttl = ["--reservation-ttl", "3"];
    let mut a = setup.replica("doomed", &setup.schema.url, &setup.redis.url, &ttl);
    a.cli(
        &setup.bin,
        &["apply", "-f", "-"],
        Some(&resources(&setup.mock.url())),
    );
    let b = setup.replica("survivor", &setup.schema.url, &setup.redis.url, &ttl);
    let key = setup.mint(&a, "streamer", &["--max-tokens-day", "1000"]);
    let http = Http::new();
    time_until(Duration::from_secs(5), || async {
        http.models(&b.url, &key).await == StatusCode::OK
    })
    .await
    .expect("B accepts the key");

    // A stream of ten seconds on A, holding 600 and more of the key's 1,000.
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "max_tokens": 600,
        "stream": true,
        "messages": [{"role": "user", "content": "Go [mock:words=50,delay_ms=200]"}],
    });
    let req = Request::post(format!("{}/ext/v1/chat/completions", a.url))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.into_body();
    let first = stream.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    a.child.kill().unwrap(); // SIGKILL: nothing settles
    a.child.wait().unwrap();
    let killed = Instant::now();

    // Held, not released: B cannot admit another 600.
    let (status, body) = http.chat(&b.url, &key, 600, 2).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // After the TTL, charged in full, and what is left is admitted again.
    let charged = time_until(Duration::from_secs(10), || async {
        b.spent(&http, "access-key", "streamer")
            .await
            .is_some_and(|s| s >= 600)
    })
    .await
    .expect("the dead replica's reservation is charged after its TTL");
    let spent = b.spent(&http, "access-key", "streamer").await.unwrap();
    eprintln!(
        "killed replica's reservation charged in full ({spent} tokens) {:?} after the kill",
        killed.elapsed().min(charged + Duration::from_secs(1))
    );
    assert!(
        killed.elapsed() >= Duration::from_secs(2),
        "not before the TTL"
    );
    let (status, body) = http.chat(&b.url, &key, 200, 2).await;
    assert_eq!(status, StatusCode::OK, "no scope stays blocked: {body}");
    drop(b);
    setup.finish().await;
}
