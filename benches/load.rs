//! Loopback load benchmark: what the gateway adds to a call, in latency and in CPU.
//!
//! # What runs
//!
//! One process, everything on 127.0.0.1, each party on its own tokio runtime as if it were its
//! own process: the mock and the gateway on multi-threaded runtimes (a worker per core each),
//! the load generator on one thread.
//!
//! ```text
//! direct:   client ──HTTP/1.1──▶ mock upstream
//! gateway:  client ──HTTP/1.1──▶ gateway (hyper-util auto server, PeerAddr per connection)
//!                                  ──HTTP/1.1──▶ mock upstream
//! ```
//!
//! The client is a hyper-util pooled client with keep-alive. For each concurrency level (1 and
//! 32 by default) and each scenario (an OpenAI chat completion, the same streamed, and a
//! streamed Anthropic message), it sends a fixed number of requests first straight to the mock,
//! then through the gateway, with `c` tasks pulling from one shared counter. Each run is
//! preceded by an unmeasured warm-up that opens the connections on both hops. A request's
//! latency runs from building it to the last byte of its body.
//!
//! # CPU per request
//!
//! Client, gateway and mock share the process, so the process CPU time (user + system, all
//! threads) read before and after a run covers all of them. The direct run costs client + mock;
//! the gateway run costs client + gateway + mock, so
//! `(cpu(gateway run) − cpu(direct run)) / requests` is the CPU the gateway adds to one call,
//! its own HTTP server and upstream client included. The clock is
//! `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` (nanoseconds); `/proc/self/stat` (`utime + stime`,
//! in clock ticks) is the fallback.
//!
//! # Bounds
//!
//! Requests per run: `PAI_LOAD_REQUESTS` (one number for every level, or one per level, e.g.
//! `2000,8000`; default 2,000 at c=1 and 8,000 at c=32). Levels: `PAI_LOAD_CONCURRENCY`
//! (default `1,32`). Scenarios: `PAI_LOAD_SCENARIOS` (default
//! `openai-chat,openai-chat-stream,anthropic-messages-stream`). A run that takes more than 120 s is aborted and the benchmark fails.
//! Without `--bench` (`cargo test --benches`), it runs 50 requests per run as a smoke test.
//!
//! Configuration size: `PAI_LOAD_EXTRA_KEYS`, `PAI_LOAD_EXTRA_PROVIDERS` and
//! `PAI_LOAD_EXTRA_PRICES` add that many access keys, ModelProviders and price overrides the
//! benchmark never calls, to show that a call costs the same however big the configuration is
//! (`benches/compare.py --sections config` runs both sizes, alternating).
//!
//! The table goes to stdout, followed by one line `RESULT {json}` for scripts.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use common::{client, drain, serve, BoxError, Call, Fixture, HttpClient};

/// No run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(120);
const DEFAULT_LEVELS: [(usize, usize); 2] = [(1, 2_000), (32, 8_000)];
const SMOKE_REQUESTS: usize = 50;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), BoxError> {
    let levels = levels()?;
    // Three runtimes, as if client, gateway and provider were three processes: every hop
    // crosses threads, as it does in production. On one shared runtime a hop is sometimes
    // free (both tasks on one worker) and sometimes not, and the figures flip between the two.
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
    let mock = mock_rt.block_on(common::start_mock())?;
    let fx = gateway_rt.block_on(Fixture::around(mock))?;
    let gateway = gateway_rt.block_on(serve(fx.gateway.clone()))?;
    let result = client_rt.block_on(bench(&fx, gateway, levels));
    // Stop the servers before their runtimes go.
    drop(fx);
    result
}

/// `(concurrency, requests)` pairs, from the environment or the defaults.
fn levels() -> Result<Vec<(usize, usize)>, BoxError> {
    let list = |name: &str| -> Result<Option<Vec<usize>>, BoxError> {
        match std::env::var(name) {
            Ok(v) => {
                let parsed: Result<Vec<usize>, _> =
                    v.split(',').map(|n| n.trim().parse::<usize>()).collect();
                let parsed = parsed.map_err(|e| format!("{name}={v:?}: {e}"))?;
                if parsed.is_empty() || parsed.contains(&0) {
                    return Err(format!("{name}={v:?}: give positive numbers").into());
                }
                Ok(Some(parsed))
            }
            Err(_) => Ok(None),
        }
    };
    let concurrency = list("PAI_LOAD_CONCURRENCY")?
        .unwrap_or_else(|| DEFAULT_LEVELS.iter().map(|(c, _)| *c).collect());
    let smoke = !std::env::args().any(|a| a == "--bench");
    let requests = match list("PAI_LOAD_REQUESTS")? {
        Some(r) if r.len() == 1 => vec![r[0]; concurrency.len()],
        Some(r) if r.len() == concurrency.len() => r,
        Some(_) => {
            return Err("PAI_LOAD_REQUESTS needs one number, or one per concurrency level".into())
        }
        None if smoke => vec![SMOKE_REQUESTS; concurrency.len()],
        None => concurrency
            .iter()
            .map(|c| {
                DEFAULT_LEVELS
                    .iter()
                    .find(|(dc, _)| dc == c)
                    .map_or(2_000, |(_, n)| *n)
            })
            .collect(),
    };
    Ok(concurrency.into_iter().zip(requests).collect())
}

struct Scenario {
    name: &'static str,
    direct: Call,
    gateway: Call,
}

async fn bench(
    fx: &Fixture,
    gateway: SocketAddr,
    levels: Vec<(usize, usize)>,
) -> Result<(), BoxError> {
    let base = format!("http://{gateway}");
    let client = client();
    // `PAI_LOAD_SCENARIOS=openai-chat,openai-chat-stream` runs only those.
    let only: Option<Vec<String>> = std::env::var("PAI_LOAD_SCENARIOS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let scenarios = [
        Scenario {
            name: "openai-chat",
            direct: fx.direct_chat(false)?,
            gateway: fx.gateway_chat(&base, false)?,
        },
        Scenario {
            name: "openai-chat-stream",
            direct: fx.direct_chat(true)?,
            gateway: fx.gateway_chat(&base, true)?,
        },
        Scenario {
            name: "anthropic-messages-stream",
            direct: fx.direct_messages(true)?,
            gateway: fx.gateway_messages(&base, true)?,
        },
    ];
    if let Some(unknown) = only
        .iter()
        .flatten()
        .find(|n| !scenarios.iter().any(|s| &s.name == n))
    {
        return Err(format!("PAI_LOAD_SCENARIOS: no scenario {unknown:?}").into());
    }
    eprintln!(
        "pai load bench: mock at {}, gateway at {base}, {} cores",
        fx.mock.url(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut rows = Vec::new();
    for &(concurrency, requests) in &levels {
        let chosen = |s: &&Scenario| only.as_ref().is_none_or(|o| o.iter().any(|n| n == s.name));
        for s in scenarios.iter().filter(chosen) {
            let direct = measure(&client, &s.direct, concurrency, requests).await?;
            fx.mock.clear();
            let via = measure(&client, &s.gateway, concurrency, requests).await?;
            fx.mock.clear();
            let row = Row {
                scenario: s.name,
                concurrency,
                direct,
                gateway: via,
            };
            eprintln!("{}", row.line());
            rows.push(row);
        }
    }
    // Every gateway call must have been recorded as a success.
    let calls = recorded_calls(fx).await?;
    let failed = calls.iter().filter(|c| c.error.is_some()).count();
    if failed > 0 {
        return Err(format!("{failed} of {} recorded gateway calls failed", calls.len()).into());
    }

    println!();
    println!("{}", Row::header());
    for row in &rows {
        println!("{}", row.line());
    }
    println!();
    println!(
        "latency: request built → last body byte; added = gateway − direct. CPU: whole process \
         ({}), per request; added = what the gateway costs per call.",
        CPU_CLOCK
    );
    // A loopback call to the mock takes well under a millisecond; a slower baseline means the
    // upstream waits (a timer, a directive), and gateway work that overlaps the wait is hidden.
    if let Some(slow) = rows
        .iter()
        .find(|r| r.concurrency == 1 && r.direct.percentile_us(50.0) > 1_000.0)
    {
        println!(
            "warning: the direct {} call takes {:.0} µs at c=1: the upstream itself is waiting, \
             and the added latency is understated by whatever gateway work fits in that wait.",
            slow.scenario,
            slow.direct.percentile_us(50.0)
        );
    }
    let json = serde_json::json!({
        "bench": "load",
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_clock": CPU_CLOCK,
        "runs": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    println!("RESULT {json}");
    Ok(())
}

/// The gateway's call records, once the background recorder has caught up.
async fn recorded_calls(fx: &Fixture) -> Result<Vec<pai_core::CallRecord>, BoxError> {
    use pai_core::Store;
    let mut last = 0;
    for _ in 0..100 {
        let calls = fx.store.recent_calls(usize::MAX).await?;
        if calls.len() == last && last > 0 {
            return Ok(calls);
        }
        last = calls.len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(fx.store.recent_calls(usize::MAX).await?)
}

// === one run ===

/// The outcome of sending `requests` calls.
struct Run {
    requests: usize,
    wall: Duration,
    cpu: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
}

impl Run {
    /// Nearest-rank percentile, in microseconds.
    fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[i].as_secs_f64() * 1e6
    }

    fn per_second(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests as f64
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests,
            "wall_s": round(self.wall.as_secs_f64(), 3),
            "p50_us": round(self.percentile_us(50.0), 1),
            "p90_us": round(self.percentile_us(90.0), 1),
            "p99_us": round(self.percentile_us(99.0), 1),
            "max_us": round(self.percentile_us(100.0), 1),
            "rps": round(self.per_second(), 0),
            "cpu_us_per_req": round(self.cpu_us_per_request(), 1),
        })
    }
}

/// Warm up, then send `requests` calls with `concurrency` workers and time them.
async fn measure(
    client: &HttpClient,
    call: &Call,
    concurrency: usize,
    requests: usize,
) -> Result<Run, BoxError> {
    let warmup = (concurrency * 20).max(500);
    drive(
        client,
        call,
        concurrency,
        warmup,
        Instant::now() + RUN_LIMIT,
    )
    .await?;
    let cpu_before = cpu_time()?;
    let started = Instant::now();
    let mut latencies = drive(client, call, concurrency, requests, started + RUN_LIMIT).await?;
    let wall = started.elapsed();
    let cpu = cpu_time()?.saturating_sub(cpu_before);
    latencies.sort_unstable();
    Ok(Run {
        requests: latencies.len(),
        wall,
        cpu,
        latencies,
    })
}

/// Send `requests` calls from `concurrency` tasks; every call must succeed before `deadline`.
async fn drive(
    client: &HttpClient,
    call: &Call,
    concurrency: usize,
    requests: usize,
    deadline: Instant,
) -> Result<Vec<Duration>, BoxError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.min(requests) {
        let (client, call, next) = (client.clone(), call.clone(), next.clone());
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(requests / concurrency + 1);
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let left = deadline.saturating_duration_since(Instant::now());
                let started = Instant::now();
                let sent = async { drain(client.request(call.request()).await?).await };
                match tokio::time::timeout(left, sent).await {
                    Ok(Ok(_)) => latencies.push(started.elapsed()),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(BoxError::from(format!(
                            "run aborted: not done within {} s",
                            RUN_LIMIT.as_secs()
                        )))
                    }
                }
            }
            Ok(latencies)
        });
    }
    let mut all = Vec::with_capacity(requests);
    // Returning early drops the set, which aborts the other workers.
    while let Some(joined) = workers.join_next().await {
        all.extend(joined??);
    }
    Ok(all)
}

// === results ===

struct Row {
    scenario: &'static str,
    concurrency: usize,
    direct: Run,
    gateway: Run,
}

impl Row {
    fn added_us(&self, p: f64) -> f64 {
        self.gateway.percentile_us(p) - self.direct.percentile_us(p)
    }

    fn added_cpu_us(&self) -> f64 {
        (self.gateway.cpu.as_secs_f64() - self.direct.cpu.as_secs_f64()) * 1e6
            / self.gateway.requests as f64
    }

    fn header() -> String {
        format!(
            "{:<25} {:>3} {:>6} | {:>17} | {:>17} | {:>15} | {:>15} | {:>22}\n{:<25} {:>3} {:>6} | {:>8} {:>8} | {:>8} {:>8} | {:>7} {:>7} | {:>7} {:>7} | {:>7} {:>7} {:>6}",
            "", "", "", "direct µs", "gateway µs", "added µs", "req/s", "CPU µs/request",
            "scenario", "c", "reqs", "p50", "p99", "p50", "p99", "p50", "p99", "direct",
            "gateway", "direct", "gateway", "added",
        )
    }

    fn line(&self) -> String {
        format!(
            "{:<25} {:>3} {:>6} | {:>8.1} {:>8.1} | {:>8.1} {:>8.1} | {:>7.1} {:>7.1} | {:>7.0} {:>7.0} | {:>7.1} {:>7.1} {:>6.1}",
            self.scenario,
            self.concurrency,
            self.gateway.requests,
            self.direct.percentile_us(50.0),
            self.direct.percentile_us(99.0),
            self.gateway.percentile_us(50.0),
            self.gateway.percentile_us(99.0),
            self.added_us(50.0),
            self.added_us(99.0),
            self.direct.per_second(),
            self.gateway.per_second(),
            self.direct.cpu_us_per_request(),
            self.gateway.cpu_us_per_request(),
            self.added_cpu_us(),
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.scenario,
            "concurrency": self.concurrency,
            "direct": self.direct.json(),
            "gateway": self.gateway.json(),
            "added": {
                "p50_us": round(self.added_us(50.0), 1),
                "p99_us": round(self.added_us(99.0), 1),
                "cpu_us_per_req": round(self.added_cpu_us(), 1),
            },
        })
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

// === process CPU time ===

/// How [`cpu_time`] reads the clock, for the report.
const CPU_CLOCK: &str = "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)";

/// User + system CPU time of all the process's threads so far.
fn cpu_time() -> Result<Duration, BoxError> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes one timespec through the pointer, which points at a
    // live, writable local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        if let (Ok(s), Ok(ns)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
            return Ok(Duration::new(s, ns));
        }
    }
    // Same quantity, in clock ticks (10 ms): coarser, but still good over a long run.
    proc_stat_cpu()
}

/// `utime + stime` from `/proc/self/stat`, converted from clock ticks.
fn proc_stat_cpu() -> Result<Duration, BoxError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("unreadable /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64, BoxError> {
        Ok(fields.get(i).ok_or("short /proc/self/stat")?.parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf reads a configuration value and has no memory effects.
    let per_second = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    Ok(Duration::from_nanos(total * 1_000_000_000 / per_second))
}
