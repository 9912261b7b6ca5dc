//! Three `pai serve` processes sharing PostgreSQL (and Redis), as replicas behind a load
//! balancer: one key's daily cap holds across all of them under 1,000 concurrent requests, on
//! the Redis ledger and on the PostgreSQL ledger alone; a key revoked or a provider changed on
//! one replica is acted on by the others within a second (the delays are printed).
//!
//! Needs the `pai` binary (`scripts/test` builds it first; `PAI_BIN` overrides) and the servers
//! of `pai_store::test_servers`; without them each test prints a SKIP line and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "scale/replicas.rs"]
mod replicas;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use pai_mock::{MockConfig, MockUpstream};
use pai_store::test_servers::{PgSchema, RedisSpace};

use replicas::{pai_bin, resources, time_until, Http, Replica, SplitMix64, UPSTREAM_KEY};

/// The tests here run one at a time: each starts three debug-built gateways on a shared,
/// small machine, and several at once would measure the machine, not pai.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three replicas on one schema (and one Redis prefix), in front of one mock.
struct Cluster {
    replicas: Vec<Replica>,
    bin: PathBuf,
    _turn: tokio::sync::MutexGuard<'static, ()>,
    _data: tempfile::TempDir,
    _mock: MockUpstream,
    schema: Option<PgSchema>,
    redis: Option<RedisSpace>,
}

impl Cluster {
    /// `None` (after a SKIP line) when the binary or a server is missing.
    async fn start(test: &str, with_redis: bool) -> Option<Cluster> {
        let bin = pai_bin(test)?;
        let turn = ONE_AT_A_TIME.lock().await;
        let schema = PgSchema::create(test).await?;
        let redis = if with_redis {
            Some(RedisSpace::create(test).await?)
        } else {
            None
        };
        let mock = MockUpstream::start(MockConfig::default().with_openai_key(UPSTREAM_KEY))
            .await
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut args = vec!["--store".to_owned(), schema.url.clone()];
        if let Some(redis) = &redis {
            args.extend([
                "--ledger".to_owned(),
                redis.url.clone(),
                "--ledger-prefix".to_owned(),
                redis.prefix.clone(),
            ]);
        }
        // One data directory: the replicas share its master key (access-key hashing, secret
        // sealing) and admin token, as every replica of a deployment must. The first creates it.
        let log = |i: usize| data.path().join(format!("replica-{i}.log"));
        let first = Replica::start(&bin, data.path(), log(0), &args);
        first.cli(&bin, &["apply", "-f", "-"], Some(&resources(&mock.url())));
        let mut replicas = vec![first];
        for i in 1..3 {
            replicas.push(Replica::start(&bin, data.path(), log(i), &args));
        }
        Some(Cluster {
            replicas,
            bin,
            _turn: turn,
            _data: data,
            _mock: mock,
            schema: Some(schema),
            redis,
        })
    }

    /// Mint a key on replica 0 and wait until every replica accepts it.
    async fn mint(&self, http: &Http, name: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "access-key",
            "create",
            "--name",
            name,
            "--model-provider",
            "local-openai",
        ];
        args.extend_from_slice(extra);
        let out = self.replicas[0].cli(&self.bin, &args, None);
        let key = out.trim().lines().last().unwrap().trim().to_owned();
        assert!(key.starts_with("pak_"), "{out}");
        for r in &self.replicas {
            let accepted = time_until(Duration::from_secs(5), || async {
                http.models(&r.url, &key).await == StatusCode::OK
            })
            .await;
            assert!(
                accepted.is_some(),
                "replica {} never accepted the key; see {}",
                r.url,
                r.log.display()
            );
        }
        key
    }

    async fn stop(mut self) {
        self.replicas.clear();
        if let Some(schema) = self.schema.take() {
            schema.drop().await;
        }
        if let Some(redis) = self.redis.take() {
            redis.drop().await;
        }
    }
}

const REQUESTS: usize = 1_000;
const CAP: u64 = 40_000;
const MAX_TOKENS: u64 = 200;

/// 1,000 concurrent requests of random sizes, spread over three replicas, against one key's
/// daily cap: what is admitted never exceeds it, the ledger agrees with the answers, and
/// requests keep being admitted until what is left is smaller than the next request.
async fn cap_holds_across_replicas(test: &str, with_redis: bool) {
    let Some(cluster) = Cluster::start(test, with_redis).await else {
        return;
    };
    let http = Http::new();
    let cap = CAP.to_string();
    let key = Arc::new(
        cluster
            .mint(&http, "capped", &["--max-tokens-day", &cap])
            .await,
    );
    let urls: Vec<String> = cluster.replicas.iter().map(|r| r.url.clone()).collect();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let (http, key, url) = (http.clone(), Arc::clone(&key), urls[i % urls.len()].clone());
        let mut rng = SplitMix64(i as u64 + 1);
        tasks.push(tokio::spawn(async move {
            let max_tokens = 20 + rng.next() % (MAX_TOKENS - 19);
            let words = 1 + rng.next() % max_tokens;
            let (status, body) = http.chat(&url, &key, max_tokens, words).await;
            (status, body)
        }));
    }
    let (mut admitted, mut used, mut refused) = (0u64, 0u64, 0u64);
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::OK => {
                admitted += 1;
                used += body["usage"]["total_tokens"].as_u64().expect("usage");
            }
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains("AccessKey \"capped\""),
                    "a refusal names the key's budget: {body}"
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{test}: {REQUESTS} requests over 3 replicas in {elapsed:?} ({:.0}/s): {admitted} admitted \
         ({used} tokens of {CAP}), {refused} refused",
        REQUESTS as f64 / elapsed.as_secs_f64()
    );
    assert!(used <= CAP, "admitted {used} tokens over the cap {CAP}");
    assert!(refused > 0, "the burst should exhaust the cap");

    // Now one at a time, the smallest request, round the replicas until refused with nothing
    // in flight: admission goes on until what is left is smaller than a request. (Settling
    // follows the answer by a moment, so a refusal counts once the ledger has settled every
    // answered call.)
    let settled = |used: u64| {
        let (http, replica) = (&http, &cluster.replicas[0]);
        async move {
            time_until(Duration::from_secs(10), || async {
                replica.spent(http, "access-key", "capped").await == Some(used)
            })
            .await
            .is_some()
        }
    };
    assert!(
        settled(used).await,
        "the burst's calls were never all settled"
    );
    let mut turn = 0;
    let last_refusal = loop {
        assert!(turn < 2_000, "never refused");
        let url = &urls[turn % urls.len()];
        turn += 1;
        let (status, body) = http.chat(url, &key, 20, 1).await;
        match status {
            StatusCode::OK => used += body["usage"]["total_tokens"].as_u64().expect("usage"),
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(settled(used).await, "calls were never all settled");
                let (status, body) = http.chat(url, &key, 20, 1).await;
                match status {
                    StatusCode::OK => {
                        used += body["usage"]["total_tokens"].as_u64().expect("usage")
                    }
                    StatusCode::TOO_MANY_REQUESTS => break body,
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            other => panic!("unexpected {other}: {body}"),
        }
    };
    assert!(used <= CAP, "admitted {used} tokens over the cap {CAP}");
    // The smallest request reserves its 20 output tokens plus its estimated input.
    assert!(
        CAP - used < 20 + 32,
        "refused with {} of {CAP} left: {last_refusal}",
        CAP - used
    );
    // Every replica's ledger view agrees with what the clients were answered.
    for r in &cluster.replicas {
        let agreed = time_until(Duration::from_secs(5), || async {
            r.spent(&http, "access-key", "capped").await == Some(used)
        })
        .await;
        assert!(
            agreed.is_some(),
            "replica {} says {:?} spent, the clients saw {used}",
            r.url,
            r.spent(&http, "access-key", "capped").await
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_cap_holds_across_three_replicas_on_redis() {
    cap_holds_across_replicas("three replicas, Redis ledger", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_cap_holds_across_three_replicas_on_postgres_alone() {
    cap_holds_across_replicas("three replicas, PostgreSQL ledger", false).await;
}

/// A key deleted through replica A is refused by B and C within a second; a key created on A
/// and a provider change on A reach them as fast. The delays are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_configuration_reach_every_replica_within_a_second() {
    let Some(cluster) = Cluster::start("propagation across replicas", false).await else {
        return;
    };
    let http = Http::new();
    let bin = cluster.bin.clone();
    let [a, b, c] = [0, 1, 2].map(|i| &cluster.replicas[i]);
    let mut revoked = Vec::new();
    for i in 0..5 {
        let name = format!("short-lived-{i}");
        let key = cluster.mint(&http, &name, &[]).await;
        a.cli(&bin, &["delete", "access-key", &name], None);
        let deleted = Instant::now();
        for other in [b, c] {
            let refused = time_until(Duration::from_secs(3), || async {
                http.models(&other.url, &key).await == StatusCode::UNAUTHORIZED
            })
            .await
            .unwrap_or_else(|| panic!("{} still accepts a key deleted 3 s ago", other.url));
            assert!(
                refused < Duration::from_secs(1),
                "refused after {refused:?}"
            );
        }
        revoked.push(deleted.elapsed());
    }
    revoked.sort();
    eprintln!(
        "revocation on A refused on B and C after: p50 {:?}, max {:?}",
        revoked[revoked.len() / 2],
        revoked[revoked.len() - 1]
    );
    assert!(revoked[revoked.len() - 1] < Duration::from_secs(1));

    // The CLI works against any replica's admin API: a key minted through A is listed by C.
    cluster.mint(&http, "listed", &[]).await;
    let listed = c.cli(&bin, &["get", "access-keys"], None);
    assert!(
        listed.contains("listed"),
        "C lists a key minted on A: {listed}"
    );

    // A provider change on A: the model is denied on C within a second.
    let key = cluster.mint(&http, "config", &[]).await;
    let (status, body) = http.chat(&c.url, &key, 20, 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let denied = resources(&cluster._mock.url()).replace(
        "allowedModels: [gpt-4o-mini]",
        "allowedModels: [gpt-4o-mini]\n  deniedModels: [gpt-4o-mini]",
    );
    a.cli(&bin, &["apply", "-f", "-"], Some(&denied));
    let applied = Instant::now();
    let refused = time_until(Duration::from_secs(3), || async {
        http.chat(&c.url, &key, 20, 1).await.0 == StatusCode::FORBIDDEN
    })
    .await
    .expect("C refuses a model denied on A");
    eprintln!(
        "a provider change on A acted on by C after {:?}",
        applied.elapsed()
    );
    assert!(refused < Duration::from_secs(1));
    cluster.stop().await;
}

/// Throughput of one replica against three on the same machine, 1,000 budgeted requests at
/// 64 in flight, on the Redis ledger. Run by hand (with `PAI_BIN` pointing at a release build
/// for figures that mean something):
/// `cargo test -p pai-tests --test scale -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run by hand with --nocapture"]
async fn throughput_of_one_and_of_three_replicas() {
    let Some(cluster) = Cluster::start("replica throughput", true).await else {
        return;
    };
    let http = Http::new();
    let key = Arc::new(
        cluster
            .mint(&http, "busy", &["--max-tokens-day", "1000000000"])
            .await,
    );
    let urls: Vec<String> = cluster.replicas.iter().map(|r| r.url.clone()).collect();
    for spread in [1, 3, 1, 3] {
        let gate = Arc::new(tokio::sync::Semaphore::new(64));
        let started = Instant::now();
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let (http, key, gate) = (http.clone(), Arc::clone(&key), Arc::clone(&gate));
                let url = urls[i % spread].clone();
                tokio::spawn(async move {
                    let _turn = gate.acquire().await.unwrap();
                    http.chat(&url, &key, 64, 16).await.0
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), StatusCode::OK);
        }
        let rate = REQUESTS as f64 / started.elapsed().as_secs_f64();
        eprintln!("{spread} replica(s): {REQUESTS} budgeted requests, 64 in flight: {rate:.0}/s");
    }
    cluster.stop().await;
}
