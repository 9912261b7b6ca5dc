//! What an external guard (`guard: http`, format `tei`) adds to a call, against the
//! classifier's own round trip.
//!
//! Four measurements, interleaved round by round so drift hits them alike, all against the
//! in-process mock on loopback and the gateway in process (`oneshot`), one thread for
//! everything (as `gateway.rs`, so hand-offs between threads do not blur microseconds):
//!
//! - `classifier`: `POST /predict` straight to the mock with the body the guard sends for one new
//!   text, over a pooled hyper-util client: the classifier's own round trip.
//! - `unguarded`: a chat completion through the gateway to a provider with no guard.
//! - `guarded`: the same through a provider whose TEI GuardBinding is enforced; the user message
//!   is new every call (a cache miss: one text sent), the system prompt is cached.
//! - `cached`: the guarded call repeated with the same messages: every text a cache hit, no
//!   request to the classifier.
//!
//! The overhead of the guard is (guarded − unguarded) − classifier at each percentile; the target
//! is at most 0.2 ms. Run: `cargo bench -p pai-benches --bench http_guard`. It asserts nothing
//! beyond every call succeeding.

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pai_core::resource::load;
use pai_core::Store;
use tower::ServiceExt;

use common::{drain, mint, BoxError, Fixture};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const ROUNDS: usize = 20;
const PER_ROUND: usize = 100;
const SYSTEM: &str = "You are a helpful assistant that answers briefly.";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_guard bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn prompt(i: usize) -> String {
    format!("Answer in twenty words, question {i:08}. [mock:words=20]")
}

fn chat(key: &str, user: &str) -> Result<Request<Full<Bytes>>, BoxError> {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
    });
    Ok(Request::post("/ext/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?)
}

fn predict(url: &str, user: &str) -> Result<Request<Full<Bytes>>, BoxError> {
    let body = serde_json::json!({"inputs": [[user]], "truncate": true});
    Ok(Request::post(format!("{url}/predict"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn run() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let fx = Fixture::start().await?;
        let url = fx.mock.url();
        let yaml = format!(
            r#"
apiVersion: pai.io/v1
kind: GuardBinding
metadata: {{name: tei-shield}}
spec: {{guard: http, format: tei, endpoint: "{url}", threshold: 0.8, timeoutMs: 1000}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: shielded}}
spec:
  provider: openai
  endpoint: {url}/v1
  apiKeySecretRef: {{name: keys, key: openai}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: true}}
  guards: [tei-shield]
"#
        );
        for r in load(&yaml)?.resources {
            fx.store.apply(&r).await?;
        }
        let hasher = pai_core::AccessKeyHasher::new(common::SECRET);
        let shielded_key = mint(&fx.store, &hasher, "k-shielded", "shielded").await?;
        fx.gateway.caught_up().await?;

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);

        let mut classifier = Vec::new();
        let mut unguarded = Vec::new();
        let mut guarded = Vec::new();
        let mut cached = Vec::new();
        let fixed = prompt(0);
        // Warm up: connections opened, the system prompt and the fixed prompt cached.
        for i in 0..50 {
            drain(fx.gateway.clone().oneshot(chat(&fx.openai_key, &prompt(i))?).await?).await?;
            drain(fx.gateway.clone().oneshot(chat(&shielded_key, &fixed)?).await?).await?;
            drain(client.request(predict(&url, &prompt(i))?).await?).await?;
        }
        let mut n = 1_000_000;
        for _ in 0..ROUNDS {
            for _ in 0..PER_ROUND {
                n += 1;
                let text = prompt(n);
                let started = Instant::now();
                drain(client.request(predict(&url, &text)?).await?).await?;
                classifier.push(started.elapsed());

                let started = Instant::now();
                drain(fx.gateway.clone().oneshot(chat(&fx.openai_key, &text)?).await?).await?;
                unguarded.push(started.elapsed());

                let started = Instant::now();
                drain(fx.gateway.clone().oneshot(chat(&shielded_key, &text)?).await?).await?;
                guarded.push(started.elapsed());

                let started = Instant::now();
                drain(fx.gateway.clone().oneshot(chat(&shielded_key, &fixed)?).await?).await?;
                cached.push(started.elapsed());
            }
        }
        let sent = fx.mock.calls("/predict");
        for v in [&mut classifier, &mut unguarded, &mut guarded, &mut cached] {
            v.sort();
        }
        let runs = classifier.len();
        println!("http guard (tei, in-process gateway, mock on loopback), {runs} calls each:");
        let row = |name: &str, v: &[Duration]| {
            println!(
                "  {name:<11} p50 {:>8.1} µs   p99 {:>8.1} µs",
                us(percentile(v, 0.5)),
                us(percentile(v, 0.99))
            );
        };
        row("classifier", &classifier);
        row("unguarded", &unguarded);
        row("guarded", &guarded);
        row("cached", &cached);
        let mut json = Vec::new();
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            let added = us(percentile(&guarded, q)) - us(percentile(&unguarded, q));
            let own = us(percentile(&classifier, q));
            let cache = us(percentile(&cached, q)) - us(percentile(&unguarded, q));
            println!(
                "  {name}: guard adds {added:>7.1} µs; classifier {own:>7.1} µs; overhead {:>7.1} µs (target ≤ 200); all cached adds {cache:>6.1} µs",
                added - own
            );
            json.push(format!(
                "\"{name}\":{{\"added_us\":{added:.1},\"classifier_us\":{own:.1},\"overhead_us\":{:.1},\"cached_added_us\":{cache:.1}}}",
                added - own
            ));
        }
        println!("  classifier requests seen by the mock: {sent}");
        println!("RESULT {{\"bench\":\"http_guard\",\"runs\":{runs},{}}}", json.join(","));
        Ok(())
    })
}
