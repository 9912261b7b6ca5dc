//! What both benchmarks share: the gateway in front of an in-process mock upstream, and the
//! requests they send, built the same way as `tests/tests/gateway.rs` builds its harness.
//!
//! The same request body goes to the mock directly and through the gateway, so the only
//! difference between the two measurements is the gateway itself (plus, over TCP, the extra
//! loopback hop a gateway always adds).

// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use pai_core::price::PriceBook;
use pai_core::resource::{load, AccessKey, Resource};
use pai_core::{access_key, AccessKeyHasher, Price, Store};
use pai_mock::{MockConfig, MockUpstream};
use pai_store::MemoryStore;
use pai_tower::{Gateway, PeerAddr};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Errors in benchmark setup; reported by `main` and the process exits non-zero.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const SECRET: &[u8] = b"benchmark secret of 32 bytes....";
pub const OPENAI_KEY: &str = "sk-real-openai";
const ANTHROPIC_KEY: &str = "sk-real-anthropic";

/// The reply length every benchmark asks the mock for: 20 words, so 20 content events when
/// streamed.
const PROMPT: &str = "You are benchmarking a gateway. Answer in twenty words. [mock:words=20]";
const SYSTEM: &str = "You are a helpful assistant that answers briefly.";

/// The mock upstream, a gateway with one OpenAI and one Anthropic provider pointing at it, and
/// an access key for each.
pub struct Fixture {
    pub gateway: Gateway,
    pub store: Arc<MemoryStore>,
    pub mock: MockUpstream,
    /// `pak_…` key bound to the OpenAI provider `oai`.
    pub openai_key: String,
    /// `pak_…` key bound to the Anthropic provider `ant`.
    pub anthropic_key: String,
    /// With `PAI_LOAD_OTLP=1`: the OTLP receiver the gateway's tracer exports every call's
    /// spans to, in process.
    pub otlp: Option<pai_mock::OtlpReceiver>,
}

impl Fixture {
    /// Start the mock on 127.0.0.1 and build the gateway, both on the current tokio runtime.
    pub async fn start() -> Result<Fixture, BoxError> {
        Fixture::around(start_mock().await?).await
    }

    /// Build the gateway in front of `mock`, on the current tokio runtime.
    pub async fn around(mock: MockUpstream) -> Result<Fixture, BoxError> {
        let url = mock.url();
        let store = Arc::new(MemoryStore::new());
        let yaml = format!(
            r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: keys}}
data: {{openai: {OPENAI_KEY}, anthropic: {ANTHROPIC_KEY}}}
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
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: ant}}
spec:
  provider: anthropic
  endpoint: {url}
  apiKeySecretRef: {{name: keys, key: anthropic}}
  externalAccess: {{enabled: true}}
"#
        );
        for r in load(&yaml)?.resources {
            store.apply(&r).await?;
        }
        let hasher = AccessKeyHasher::new(SECRET);
        let openai_key = mint(&store, &hasher, "k-oai", "oai").await?;
        let anthropic_key = mint(&store, &hasher, "k-ant", "ant").await?;
        let extra = Extra::from_env()?;
        extra.add_to(&store, &hasher, &url).await?;
        let mut builder = Gateway::builder()
            .store(store.clone())
            .key_hasher(hasher)
            .prices(Arc::new(extra.prices()));
        // Tracing on: every call's spans are exported to a receiver in this process.
        let otlp = match std::env::var("PAI_LOAD_OTLP").as_deref() {
            Ok("1") => Some(pai_mock::OtlpReceiver::start().await?),
            _ => None,
        };
        if let Some(receiver) = &otlp {
            builder = builder.tracer(pai_tower::Tracer::otlp(&receiver.url()).start()?);
        }
        let gateway = builder.build().await?;
        Ok(Fixture {
            gateway,
            store,
            mock,
            openai_key,
            anthropic_key,
            otlp,
        })
    }

    /// A chat completion straight to the mock, with the real provider key.
    pub fn direct_chat(&self, stream: bool) -> Result<Call, BoxError> {
        Call::openai(
            format!("{}/v1/chat/completions", self.mock.url()),
            OPENAI_KEY,
            chat_body(stream),
        )
    }

    /// The same chat completion for the gateway at `base` (`""` for an in-process `oneshot`,
    /// `http://127.0.0.1:PORT` over TCP), with the access key.
    pub fn gateway_chat(&self, base: &str, stream: bool) -> Result<Call, BoxError> {
        Call::openai(
            format!("{base}/ext/v1/chat/completions"),
            &self.openai_key,
            chat_body(stream),
        )
    }

    /// An Anthropic message straight to the mock, with the real provider key.
    pub fn direct_messages(&self, stream: bool) -> Result<Call, BoxError> {
        Call::anthropic(
            format!("{}/v1/messages", self.mock.url()),
            ANTHROPIC_KEY,
            messages_body(stream),
        )
    }

    /// The same message for the gateway at `base` (see [`Fixture::gateway_chat`]).
    pub fn gateway_messages(&self, base: &str, stream: bool) -> Result<Call, BoxError> {
        Call::anthropic(
            format!("{base}/ext/v1/messages"),
            &self.anthropic_key,
            messages_body(stream),
        )
    }
}

/// More configuration than the benchmark uses, to show that a call's cost does not grow with
/// it: `PAI_LOAD_EXTRA_KEYS` access keys, `PAI_LOAD_EXTRA_PROVIDERS` ModelProviders (each with
/// a key of its own) and `PAI_LOAD_EXTRA_PRICES` price overrides (half exact model ids, half
/// `prefix-*` wildcards) on top of the built-in prices. All default to 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extra {
    pub keys: usize,
    pub providers: usize,
    pub prices: usize,
}

impl Extra {
    pub fn from_env() -> Result<Extra, BoxError> {
        let read = |name: &str| -> Result<usize, BoxError> {
            match std::env::var(name) {
                Ok(v) => Ok(v.trim().parse().map_err(|e| format!("{name}={v}: {e}"))?),
                Err(_) => Ok(0),
            }
        };
        Ok(Extra {
            keys: read("PAI_LOAD_EXTRA_KEYS")?,
            providers: read("PAI_LOAD_EXTRA_PROVIDERS")?,
            prices: read("PAI_LOAD_EXTRA_PRICES")?,
        })
    }

    async fn add_to(
        &self,
        store: &MemoryStore,
        hasher: &AccessKeyHasher,
        url: &str,
    ) -> Result<(), BoxError> {
        let mut yaml = String::new();
        for i in 0..self.providers {
            yaml.push_str(&format!(
                "---\napiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {{name: extra-{i}}}\n\
                 spec:\n  provider: openai\n  endpoint: {url}/v1\n  \
                 apiKeySecretRef: {{name: keys, key: openai}}\n  allowedModels: [model-{i}]\n  \
                 maxTokensPerDay: 1000000000\n  externalAccess: {{enabled: true}}\n"
            ));
        }
        if !yaml.is_empty() {
            for r in load(&yaml)?.resources {
                store.apply(&r).await?;
            }
        }
        for i in 0..self.keys {
            let provider = match self.providers {
                0 => "oai".to_owned(),
                n => format!("extra-{}", i % n),
            };
            mint(store, hasher, &format!("extra-key-{i}"), &provider).await?;
        }
        Ok(())
    }

    fn prices(&self) -> PriceBook {
        PriceBook::with_overrides((0..self.prices).map(|i| {
            let key = match i % 2 {
                0 => format!("model-{i}"),
                _ => format!("family-{i}-*"),
            };
            (key, Price::from_usd_per_million(1.0, 0.5, 1.25, 2.0))
        }))
    }
}

/// Start the mock upstream on 127.0.0.1, on the current tokio runtime, accepting only the
/// provider keys the gateway is given.
pub async fn start_mock() -> Result<MockUpstream, BoxError> {
    let config = MockConfig::default()
        .with_openai_key(OPENAI_KEY)
        .with_anthropic_key(ANTHROPIC_KEY);
    Ok(MockUpstream::start(config).await?)
}

/// Store access key `name` bound to ModelProvider `provider`; answer the raw key.
pub async fn mint(
    store: &MemoryStore,
    hasher: &AccessKeyHasher,
    name: &str,
    provider: &str,
) -> Result<String, BoxError> {
    let raw = access_key::generate().map_err(|_| "the OS random source failed")?;
    let mut key: AccessKey = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"modelProvider": provider},
    }))?;
    key.status.key_hash = Some(hasher.hash(&raw).0);
    store.apply(&Resource::AccessKey(key)).await?;
    Ok(raw)
}

/// An OpenAI chat completion. Streams ask for usage, as the gateway does upstream anyway, so
/// the mock sends the same events either way.
pub fn chat_body(stream: bool) -> Bytes {
    let mut body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": PROMPT},
        ],
    });
    if stream {
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    Bytes::from(body.to_string())
}

/// An Anthropic message.
fn messages_body(stream: bool) -> Bytes {
    let mut body = serde_json::json!({
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": PROMPT}],
    });
    if stream {
        body["stream"] = true.into();
    }
    Bytes::from(body.to_string())
}

/// One request, ready to be sent many times: cloning the parts is cheap (`Bytes`, `Uri` and
/// header values are reference-counted or small).
#[derive(Clone, Debug)]
pub struct Call {
    uri: Uri,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Call {
    pub fn openai(uri: String, key: &str, body: Bytes) -> Result<Call, BoxError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {key}").parse()?,
        );
        headers.insert(http::header::CONTENT_TYPE, "application/json".parse()?);
        Ok(Call {
            uri: uri.parse()?,
            headers,
            body,
        })
    }

    fn anthropic(uri: String, key: &str, body: Bytes) -> Result<Call, BoxError> {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-api-key", key.parse()?);
        headers.insert("anthropic-version", "2023-06-01".parse()?);
        headers.insert(http::header::CONTENT_TYPE, "application/json".parse()?);
        Ok(Call {
            uri: uri.parse()?,
            headers,
            body,
        })
    }

    /// A fresh request.
    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Check the status and read the whole body, frame by frame, as a client would; returns the
/// number of body bytes. A refusal is an error, so nothing is ever timed as a fast failure.
pub async fn drain<B>(res: http::Response<B>) -> Result<usize, BoxError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let (parts, mut body) = res.into_parts();
    let mut bytes = 0;
    let mut text = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(Into::into)?.into_data() {
            bytes += data.len();
            if !parts.status.is_success() && text.len() < 1024 {
                text.extend_from_slice(&data);
            }
        }
    }
    if !parts.status.is_success() {
        return Err(format!(
            "status {}: {}",
            parts.status,
            String::from_utf8_lossy(&text)
        )
        .into());
    }
    Ok(bytes)
}

/// The load generators' HTTP client.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Serve `gateway` on 127.0.0.1 as a real server would: HTTP/1.1 and h2c, no Nagle delay, the
/// peer address in each request's extensions.
pub async fn serve(gateway: Gateway) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let gateway = gateway.clone();
            tokio::spawn(async move {
                let service = service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    gateway.clone().oneshot(req)
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The load generator's client: pooled, keep-alive, HTTP/1.1, no Nagle delay.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(connector)
}
