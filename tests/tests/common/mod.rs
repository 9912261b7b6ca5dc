//! The harness integration tests share: a Gateway on a MemoryStore in front of pai-mock.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use pai_core::resource::{load, AccessKey, Resource};
use pai_core::{access_key, AccessKeyHasher, BudgetLedger, Clock, PriceTable, Store};
use pai_mock::{MockConfig, MockUpstream};
use pai_store::MemoryStore;
use pai_tower::{Gateway, GatewayBuilder, Reliability, ResponseBody};

pub const SECRET: &[u8] = b"integration test secret 32 bytes";

pub struct Harness {
    pub gateway: Gateway,
    pub store: Arc<MemoryStore>,
    pub mock: MockUpstream,
    pub openai_key: String,
    pub anthropic_key: String,
    /// Keys minted for [`Options::keys_for`], in order.
    pub extra_keys: Vec<String>,
}

/// What a test may change about the harness.
#[derive(Default)]
pub struct Options {
    pub reliability: Option<Reliability>,
    pub ledger: Option<Arc<dyn BudgetLedger>>,
    /// Extra YAML applied after the base resources; `{url}` is the mock's URL.
    pub extra_yaml: String,
    /// Extra `spec` lines for the `oai` provider (e.g. `fallbacks: [...]`), indented by 2.
    pub oai_spec: String,
    /// Price calls with the built-in table.
    pub prices: bool,
    /// Price calls with this table (wins over `prices`).
    pub price_table: Option<Arc<dyn PriceTable>>,
    /// The gateway's wall clock ([`pai_tower::GatewayBuilder::clock`]).
    pub clock: Option<Arc<dyn Clock>>,
    /// Metrics to count into instead of the gateway's own.
    pub metrics: Option<pai_tower::metrics::Metrics>,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<pai_core::net::Cidr>,
    /// Mint one more access key for each of these ModelProviders (from `extra_yaml`).
    pub keys_for: Vec<String>,
    /// The gateway's prefix ([`pai_tower::GatewayBuilder::prefix`]), if any.
    pub prefix: Option<&'static str>,
    /// Anything else to set on the builder (a tracer, guard kinds), last.
    pub customize: Option<Box<dyn FnOnce(GatewayBuilder) -> GatewayBuilder + Send>>,
}

pub async fn harness() -> Harness {
    harness_with(Options::default()).await
}

pub async fn harness_with(options: Options) -> Harness {
    let mock = MockUpstream::start(
        MockConfig::default()
            .with_openai_key("sk-real-openai")
            .with_anthropic_key("sk-real-anthropic"),
    )
    .await
    .unwrap();
    let url = mock.url();
    let store = Arc::new(MemoryStore::new());
    let yaml = format!(
        r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: keys}}
data: {{openai: sk-real-openai, anthropic: sk-real-anthropic}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: oai}}
spec:
  provider: openai
  endpoint: {url}/v1
  apiKeySecretRef: {{name: keys, key: openai}}
  allowedModels: [gpt-4o-mini]
  externalAccess: {{enabled: true}}
{oai_spec}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: ant}}
spec:
  provider: anthropic
  endpoint: {url}
  apiKeySecretRef: {{name: keys, key: anthropic}}
  externalAccess: {{enabled: true}}
"#,
        oai_spec = options.oai_spec
    );
    for r in load(&yaml).unwrap().resources {
        store.apply(&r).await.unwrap();
    }
    if !options.extra_yaml.is_empty() {
        let extra = options.extra_yaml.replace("{url}", &url);
        for r in load(&extra).unwrap().resources {
            store.apply(&r).await.unwrap();
        }
    }
    let hasher = AccessKeyHasher::new(SECRET);
    let openai_key = mint(&store, &hasher, "k-oai", "oai", None).await;
    let anthropic_key = mint(&store, &hasher, "k-ant", "ant", None).await;
    let mut extra_keys = Vec::new();
    for provider in &options.keys_for {
        let name = format!("k-{provider}");
        extra_keys.push(mint(&store, &hasher, &name, provider, None).await);
    }
    // ModelBindings that name a provider type call the mock, not the public endpoint.
    let mut builder = Gateway::builder()
        .store(store.clone())
        .key_hasher(hasher)
        .trusted_proxies(options.trusted_proxies)
        .provider_endpoint(pai_core::ProviderKind::Anthropic, &url)
        .provider_endpoint(pai_core::ProviderKind::OpenAi, &format!("{url}/v1"));

    if let Some(r) = options.reliability {
        builder = builder.reliability(r);
    }
    if let Some(l) = options.ledger {
        builder = builder.ledger(l);
    }
    if let Some(prefix) = options.prefix {
        builder = builder.prefix(prefix);
    }
    if let Some(table) = options.price_table {
        builder = builder.prices(table);
    } else if options.prices {
        builder = builder.prices(Arc::new(pai_core::price::SharedPrices::default()));
    }
    if let Some(clock) = options.clock {
        builder = builder.clock(clock);
    }
    if let Some(metrics) = options.metrics {
        builder = builder.metrics(metrics);
    }
    if let Some(customize) = options.customize {
        builder = customize(builder);
    }
    let gateway = builder.build().await.unwrap();
    Harness {
        gateway,
        store,
        mock,
        openai_key,
        anthropic_key,
        extra_keys,
    }
}

pub async fn mint(
    store: &MemoryStore,
    hasher: &AccessKeyHasher,
    name: &str,
    provider: &str,
    max_tokens_per_day: Option<u64>,
) -> String {
    mint_spec(
        store,
        hasher,
        name,
        serde_json::json!({"modelProvider": provider, "limits": {"maxTokensPerDay": max_tokens_per_day}}),
    )
    .await
}

/// Store an AccessKey `name` with `spec` and a fresh key; answer the raw key.
pub async fn mint_spec(
    store: &MemoryStore,
    hasher: &AccessKeyHasher,
    name: &str,
    spec: serde_json::Value,
) -> String {
    let raw = access_key::generate().unwrap();
    let mut key: AccessKey =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec}))
            .unwrap();
    key.status.key_hash = Some(hasher.hash(&raw).0);
    store.apply(&Resource::AccessKey(key)).await.unwrap();
    raw
}

pub fn openai_request(key: &str, body: serde_json::Value) -> Request<Full<Bytes>> {
    Request::post("/ext/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

pub fn anthropic_request(key: &str, body: serde_json::Value) -> Request<Full<Bytes>> {
    Request::post("/ext/v1/messages?beta=true")
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

pub async fn collect(
    res: http::Response<ResponseBody>,
) -> (StatusCode, http::HeaderMap, Vec<Bytes>) {
    let (parts, mut body) = res.into_parts();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    frames.push(data);
                }
            }
            Err(e) => panic!("body error: {e}"),
        }
    }
    (parts.status, parts.headers, frames)
}

/// Wait (boundedly) for the call recorder to write `n` records.
pub async fn records(store: &MemoryStore, n: usize) -> Vec<pai_core::CallRecord> {
    for _ in 0..500 {
        let calls = store.recent_calls(100_000).await.unwrap();
        if calls.len() >= n {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.recent_calls(100_000).await.unwrap()
}

/// Reliability settings fast enough for tests.
pub fn fast() -> Reliability {
    Reliability {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..Reliability::default()
    }
}

/// The SSE events of a collected stream, whatever frames they came in.
pub fn events(frames: &[Bytes]) -> Vec<String> {
    let text = String::from_utf8_lossy(&frames.concat()).replace("\r\n", "\n");
    text.split_terminator("\n\n").map(str::to_owned).collect()
}

/// The last SSE event of a collected stream.
pub fn last_event(frames: &[Bytes]) -> String {
    events(frames).pop().unwrap_or_default()
}
