//! Instruction-count driver: one process that callgrind can count, so that a change to the
//! gateway's CPU per call shows as a repeatable number even on a busy machine.
//!
//! # What runs
//!
//! `calls` mode (the default): the gateway as `pai serve` assembles it, every feature on: the
//! embedded SQLite store in a temporary file (call records and their audit entries written to
//! it), the SQLite budget ledger with a daily token budget on the provider and on the key,
//! cost metering at the built-in price of `gpt-4o-mini`, and metrics. It is served over
//! loopback by hyper-util's `auto` server (as in `load.rs`), in front of the in-process mock.
//! The client sends `PAI_CG_WARMUP` unmeasured calls, then `PAI_CG_REQUESTS` buffered
//! `openai-chat` calls one after another (c=1), then waits until every call is recorded and
//! its budget settled, so the deferred work is in the count. `PAI_CG_TARGET=direct` sends
//! the same calls straight to the mock instead: the client's and the mock's share.
//!
//! `records` mode: `record_calls` on a fresh SQLite store, `PAI_CG_REQUESTS` records in
//! batches of `PAI_CG_BATCH` (default 1, what a call at c=1 costs the record writer), each
//! with its audit entry; then as many `append_audit` calls of one call event each (the audit
//! entry alone, in a transaction of its own). Wall time per record is printed for both.
//!
//! # Instructions per call
//!
//! Setup (schema migration, the price book, connections) is counted too, so run twice and
//! subtract: `(Ir(N) − Ir(0)) / N` is the whole process's instructions per call, deferred work
//! included; the same for `PAI_CG_TARGET=direct`, subtracted, is what the gateway adds.
//! `benches/callgrind.sh` does exactly that and prints the top functions.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pai_core::resource::{load, AccessKey, Resource};
use pai_core::{access_key, AccessKeyHasher, CallRecord, Clock, Store, SystemClock, Usage};
use pai_store::{SqliteLedger, SqliteStore};
use pai_tower::Gateway;

use common::{client, drain, serve, BoxError, Call, HttpClient};

/// The store's encryption key: any 32 bytes will do for a benchmark.
const STORE_KEY: [u8; 32] = *b"callgrind bench store key 32 b..";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callgrind driver failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn number(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name) {
        Ok(v) => Ok(v.trim().parse().map_err(|e| format!("{name}={v}: {e}"))?),
        Err(_) => Ok(default),
    }
}

fn run() -> Result<(), BoxError> {
    // Without `--bench` (`cargo test --benches`), a smoke test of a few calls.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let requests = number("PAI_CG_REQUESTS", if smoke { 20 } else { 2_000 })?;
    let warmup = number("PAI_CG_WARMUP", if smoke { 5 } else { 200 })?;
    match std::env::var("PAI_CG_MODE").as_deref() {
        Ok("records") => records(requests, number("PAI_CG_BATCH", 1)?.max(1)),
        Ok("calls") | Err(_) => calls(requests, warmup),
        Ok(other) => Err(format!("PAI_CG_MODE={other}: give calls or records").into()),
    }
}

// === calls ===

fn calls(requests: usize, warmup: usize) -> Result<(), BoxError> {
    let direct = match std::env::var("PAI_CG_TARGET").as_deref() {
        Ok("direct") => true,
        Ok("gateway") | Err(_) => false,
        Ok(other) => return Err(format!("PAI_CG_TARGET={other}: give gateway or direct").into()),
    };
    // As in load.rs: client, gateway and mock on runtimes of their own, as if three processes.
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name(name)
            .enable_all()
            .build()
    };
    let mock_rt = runtime("mock")?;
    let gateway_rt = runtime("gateway")?;
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let mock = mock_rt.block_on(common::start_mock())?;
    let url = mock.url();
    let fx = gateway_rt.block_on(Served::start(&dir.path().join("pai.db"), &url))?;
    let call = if direct {
        fx.direct.clone()
    } else {
        fx.gateway.clone()
    };
    let client = client();
    let settled = || {
        // The deferred work: every record written, every budget settled.
        gateway_rt.block_on(async {
            fx.served.finished(Duration::from_secs(60)).await
                && fx.served.drain(Duration::from_secs(60)).await
        })
    };
    client_rt.block_on(async {
        for _ in 0..warmup {
            send(&client, &call).await?;
        }
        Ok::<(), BoxError>(())
    })?;
    let (started, cpu) = (Instant::now(), cpu_time());
    client_rt.block_on(async {
        for _ in 0..requests {
            send(&client, &call).await?;
        }
        Ok::<(), BoxError>(())
    })?;
    let sent = started.elapsed();
    if !settled() {
        return Err("the gateway did not record every call within 60 s".into());
    }
    // Process CPU (all threads, the kernel's share included: the store's fsyncs) from the
    // first measured call until its deferred work is done. Not instructions: it moves with
    // the machine's load, but it sees what callgrind cannot, the system calls' cost.
    let cpu = cpu_time().saturating_sub(cpu);
    if !direct {
        // Every call counted as a success. (Read from the metrics, not the store: reading
        // thousands of records back would be counted as the gateway's work.)
        let expected = warmup + requests;
        let series = format!(
            "pai_requests_total{{workload=\"ext:bench\",model=\"gpt-4o-mini\",status=\"200\"}} {expected}\n"
        );
        if !fx.served.metrics().render().contains(&series) {
            return Err(format!("expected {expected} successful calls in the metrics").into());
        }
    }
    println!(
        "RESULT {}",
        serde_json::json!({
            "mode": "calls",
            "target": if direct { "direct" } else { "gateway" },
            "warmup": warmup,
            "requests": requests,
            "wall_s": sent.as_secs_f64(),
            "cpu_us_per_call": cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
        })
    );
    drop(fx);
    drop(mock);
    Ok(())
}

async fn send(client: &HttpClient, call: &Call) -> Result<(), BoxError> {
    let res = client.request(call.request()).await?;
    drain(res).await?;
    Ok(())
}

/// The gateway with every feature on, served on 127.0.0.1.
struct Served {
    served: Gateway,
    /// The call through the gateway, with its access key.
    gateway: Call,
    /// The same call straight to the mock.
    direct: Call,
}

impl Served {
    async fn start(path: &std::path::Path, url: &str) -> Result<Served, BoxError> {
        let store = Arc::new(SqliteStore::open(path, STORE_KEY).await?);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ledger = Arc::new(SqliteLedger::open(&store, clock.clone()).await?);
        let yaml = format!(
            r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: keys}}
data: {{openai: {key}}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: oai}}
spec:
  provider: openai
  endpoint: {url}/v1
  apiKeySecretRef: {{name: keys, key: openai}}
  allowedModels: [gpt-4o-mini]
  maxTokensPerDay: 1000000000000000
  externalAccess: {{enabled: true}}
"#,
            key = common::OPENAI_KEY
        );
        for r in load(&yaml)?.resources {
            store.apply(&r).await?;
        }
        let hasher = AccessKeyHasher::new(common::SECRET);
        let raw = access_key::generate().map_err(|_| "the OS random source failed")?;
        let mut key: AccessKey = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bench"},
            "spec": {"modelProvider": "oai", "limits": {"maxTokensPerDay": 1_000_000_000_000_000u64}},
        }))?;
        key.status.key_hash = Some(hasher.hash(&raw).0);
        store.apply(&Resource::AccessKey(key)).await?;
        let prices = pai_core::price::SharedPrices::default();
        let served = Gateway::builder()
            .store(store.clone())
            .key_hasher(hasher)
            .ledger(ledger)
            .prices(Arc::new(prices))
            .metrics(pai_tower::metrics::Metrics::new())
            .clock(clock)
            .build()
            .await?;
        let addr = serve(served.clone()).await?;
        Ok(Served {
            gateway: Call::openai(
                format!("http://{addr}/ext/v1/chat/completions"),
                &raw,
                common::chat_body(false),
            )?,
            direct: Call::openai(
                format!("{url}/v1/chat/completions"),
                common::OPENAI_KEY,
                common::chat_body(false),
            )?,
            served,
        })
    }
}

// === records ===

fn records(requests: usize, batch: usize) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    rt.block_on(async {
        let store = SqliteStore::open(&dir.path().join("pai.db"), STORE_KEY).await?;
        let records: Vec<CallRecord> = (0..requests).map(record).collect();
        let (started, cpu) = (Instant::now(), cpu_time());
        for chunk in records.chunks(batch) {
            store.record_calls(chunk).await.map_err(|e| e.error)?;
        }
        let (with_records, with_records_cpu) = (started.elapsed(), cpu_time() - cpu);
        let events: Vec<pai_core::AuditEvent> = records
            .iter()
            .map(|r| pai_core::AuditEvent::Call(r.clone()))
            .collect();
        let (started, cpu) = (Instant::now(), cpu_time());
        for chunk in events.chunks(batch) {
            store.append_audit(chunk).await?;
        }
        let (audit_only, audit_only_cpu) = (started.elapsed(), cpu_time() - cpu);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / requests.max(1) as f64;
        println!(
            "RESULT {}",
            serde_json::json!({
                "mode": "records",
                "records": requests,
                "batch": batch,
                "record_calls_us_per_record": per(with_records),
                "record_calls_cpu_us_per_record": per(with_records_cpu),
                "append_audit_us_per_event": per(audit_only),
                "append_audit_cpu_us_per_event": per(audit_only_cpu),
            })
        );
        store.close().await;
        Ok::<(), BoxError>(())
    })
}

/// User + system CPU time of the whole process so far (all threads: the store's connection
/// threads too); zero if the clock cannot be read.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes one timespec through the pointer, which points at a
    // live, writable local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    match (rc, u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
        (0, Ok(s), Ok(ns)) => Duration::new(s, ns),
        _ => Duration::ZERO,
    }
}

/// A call record as the gateway writes one for the benchmark's call.
fn record(i: usize) -> CallRecord {
    CallRecord {
        call_id: format!("01JCALLGRIND{i:014}"),
        started_at_ms: 1_764_300_000_000 + i as u64,
        workload: "ext:bench".into(),
        provider: "oai".into(),
        access_key: Some("bench".into()),
        model: "gpt-4o-mini".into(),
        binding: None,
        operation: "chat.completions".into(),
        stream: false,
        status: 200,
        usage: Some(Usage {
            input: 31,
            output: 20,
            ..Usage::default()
        }),
        cost_pico_usd: Some(16_650_000),
        duration_ms: 1,
        client_ip: Some("127.0.0.1".into()),
        error: None,
        guards: Vec::new(),
    }
}
