//! `pai serve` processes of a test's own, sharing one PostgreSQL schema (and a Redis prefix),
//! driven over loopback like a load balancer would.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub const ADMIN_TOKEN: &str = "pai_admin_scale_test_token_0123456789";
pub const UPSTREAM_KEY: &str = "sk-upstream-openai-REALKEY-0001";

/// The `pai` binary: `PAI_BIN`, or the one built beside this test (`scripts/test` builds it
/// before the tests run). `None` prints a SKIP line.
pub fn pai_bin(test: &str) -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("PAI_BIN") {
        return Some(bin.into());
    }
    // target/debug/deps/scale-… → target/debug/pai
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("pai");
    if bin.exists() {
        Some(bin)
    } else {
        eprintln!(
            "SKIP: {test}: no pai binary at {} (run `cargo build -p pai-bin` or set PAI_BIN)",
            bin.display()
        );
        None
    }
}

/// One `pai serve`; killed (SIGKILL) when dropped.
pub struct Replica {
    pub child: Child,
    pub url: String,
    pub admin_url: String,
    pub log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// Start `pai serve … ARGS` on ports of its own and wait for both listeners.
    pub fn start(bin: &Path, data_dir: &Path, log: PathBuf, args: &[String]) -> Replica {
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("PAI_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .env_remove("PAI_STORE_URL")
            .env_remove("PAI_LEDGER_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pai serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let path = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&path).expect("log file");
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                for (what, prefix) in [
                    ("gateway", "pai gateway listening on "),
                    ("admin", "pai admin API listening on "),
                ] {
                    if let Some(url) = line.strip_prefix(prefix) {
                        let _ = tx.send((what, url.trim().to_owned()));
                    }
                }
            }
        });
        let (mut url, mut admin_url) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while url.is_none() || admin_url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(("gateway", u)) => url = Some(u),
                Ok((_, u)) => admin_url = Some(u),
                Err(_) => panic!(
                    "pai serve did not start within 60 s: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        }
        Replica {
            child,
            url: url.unwrap(),
            admin_url: admin_url.unwrap(),
            log,
        }
    }

    /// `pai ARGS` against this replica's admin API, with `input` on stdin; its stdout.
    pub fn cli(&self, bin: &Path, args: &[&str], input: Option<&str>) -> String {
        let mut child = Command::new(bin)
            .args(args)
            .env("PAI_ADMIN_URL", &self.admin_url)
            .env("PAI_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pai");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().expect("pai");
        assert!(
            out.status.success(),
            "pai {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// What the ledger says is spent today on a budget, through this replica's admin API.
    pub async fn spent(&self, http: &Http, scope: &str, name: &str) -> Option<u64> {
        let req = Request::get(format!("{}/admin/v1/budgets", self.admin_url))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, body) = http.send(req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array()?.clone();
        items
            .iter()
            .find(|b| b["scope"] == scope && b["name"] == name)
            .and_then(|b| b["spent"].as_u64())
    }
}

/// Resources in front of the mock: one OpenAI-dialect provider.
pub fn resources(mock_url: &str) -> String {
    format!(
        "apiVersion: pai.io/v1
kind: Secret
metadata: {{name: openai-upstream}}
data: {{api-key: {UPSTREAM_KEY}}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: local-openai}}
spec:
  provider: openai
  endpoint: {mock_url}/v1
  apiKeySecretRef: {{name: openai-upstream}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: true}}
"
    )
}

/// An HTTP/1 client for many concurrent calls.
#[derive(Clone)]
pub struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    pub fn new() -> Http {
        Http(Client::builder(TokioExecutor::new()).build_http())
    }

    /// Send and read the whole answer as JSON (`null` if it is not JSON).
    pub async fn send(&self, req: Request<Full<Bytes>>) -> (StatusCode, serde_json::Value) {
        let resp = tokio::time::timeout(Duration::from_secs(60), self.0.request(req))
            .await
            .expect("an answer within 60 s")
            .expect("request");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// A chat completion of `words` output words with output bound `max_tokens`.
    pub async fn chat(
        &self,
        url: &str,
        key: &str,
        max_tokens: u64,
        words: u64,
    ) -> (StatusCode, serde_json::Value) {
        let body = serde_json::json!({
            "model": "gpt-4o-mini",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": format!("Count [mock:words={words}]")}],
        });
        let req = Request::post(format!("{url}/ext/v1/chat/completions"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        self.send(req).await
    }

    /// The status of `GET /ext/v1/models` with `key`: 200 when the replica accepts the key.
    pub async fn models(&self, url: &str, key: &str) -> StatusCode {
        let req = Request::get(format!("{url}/ext/v1/models"))
            .header("authorization", format!("Bearer {key}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(req).await.0
    }
}

/// Poll `probe` every 5 ms until it holds, up to `limit`; how long it took.
pub async fn time_until<F, Fut>(limit: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if probe().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// A small, seeded PRNG (SplitMix64): reproducible sizes without a dependency.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
