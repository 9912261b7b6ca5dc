//! `guard: http`: external prompt-injection classifiers, called in their own wire format, with
//! a cache of verdicts so a conversation's unchanged history is not scanned again every turn.
//!
//! ```yaml
//! kind: GuardBinding
//! spec:
//!   guard: http
//!   format: tei                  # tei | azure-prompt-shields | lakera
//!   endpoint: http://guard.internal:8080
//!   apiKeySecretRef: {name: guard-key, key: api-key}   # required for azure and lakera
//!   threshold: 0.8               # block at or above this score (default 0.5)
//!   timeoutMs: 300               # the whole scan, every request it needs included
//!   onError: block               # block (default) | allow
//! ```
//!
//! # The formats
//!
//! Each is spoken as the real service documents it (checked against its public documentation
//! and published clients in November 2026); the details live beside the code that speaks it:
//!
//! - **`tei`** — Hugging Face Text Embeddings Inference `POST {endpoint}/predict`, serving a
//!   sequence classifier such as `protectai/deberta-v3-base-prompt-injection-v2` or Llama
//!   Prompt Guard (see [`tei`]). `Authorization: Bearer` when a key is set (an Inference
//!   Endpoint), none otherwise. Scores are the classifier's own; `threshold` applies to them.
//! - **`azure-prompt-shields`** — Azure AI Content Safety
//!   `POST {endpoint}/contentsafety/text:shieldPrompt?api-version=2024-09-01` with
//!   `Ocp-Apim-Subscription-Key` (see [`azure`]): user messages as `userPrompt`, every other
//!   text (tool results first of all) as `documents`.
//! - **`lakera`** — Lakera Guard `POST {endpoint}/v2/guard` with `Authorization: Bearer` (see
//!   [`lakera`]): the texts as messages with their roles.
//!
//! Azure and Lakera answer yes or no, not a score: yes is score 1.0, so it blocks at any
//! threshold, and no is 0.0.
//!
//! # One scan
//!
//! Every text of the request (system prompts, messages, tool results) is keyed by the SHA-256
//! of the binding's identity (name, format, endpoint), where the text came from, and the text.
//! Texts whose key is in the cache are not sent; the others are cut into windows the service
//! reads whole (each format's limit, with overlap, so a long tool result is scanned end to end
//! rather than truncated), packed into as few requests as the format allows and sent, at most
//! [`MAX_IN_FLIGHT`] at a time, over one pooled connection set per binding. A text's score is
//! the highest of its windows'; the call's is the highest of its texts', cached or new, and it
//! blocks at or above the threshold, naming what was found and where (`INJECTION in a tool
//! result`), never the text. New verdicts are cached; errors never are.
//!
//! Fail closed: a connection failure, a non-2xx answer, an answer over [`MAX_ANSWER_BYTES`] or
//! one that does not read as the format says (a missing field, a count that does not match, a
//! classifier without a benign class) is [`Verdict::Error`], which the guard layer treats as
//! the binding's `onError` says (block by default: 503); a scan that outlasts `timeoutMs` is
//! cut off the same way. Nothing about the service's failure is an allow by accident. The key
//! is sent only in its header, marked sensitive, and is never in an error, a log or a record.
//!
//! Hits and misses are counted in `pai_guard_cache_total{binding,result}` (result `hit` or
//! `miss`, one series pair per GuardBinding).

mod azure;
mod cache;
mod lakera;
mod tei;
mod window;

pub use cache::DEFAULT_CACHE_ENTRIES;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::Uri;
use http_body_util::BodyExt;
use pai_core::provider::ApiKey;
use pai_core::resource::{GuardBinding, GuardFormat};
use pai_core::{Guard, GuardInput, TextSource, Transport, Verdict};
use pai_providers::{HttpTransport, TransportOptions};
use ring::digest;
use tokio::task::JoinSet;

use self::cache::{Found, Key, VerdictCache};
use self::window::{windows, Piece};
use super::kinds::GuardKind;
use crate::metrics::Metrics;

/// The largest answer read from a classifier.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Requests one scan has in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// The threshold when the binding sets none.
const DEFAULT_THRESHOLD: f32 = 0.5;
/// Texts above this many bytes in all are hashed off the async runtime.
const INLINE_HASH_BYTES: usize = 256 * 1024;
/// How long an idle pooled connection to a classifier is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// One request to a classifier: its body, and the pieces it carries in the order the answer
/// speaks of them.
pub(super) struct Batch {
    body: Bytes,
    pieces: Vec<usize>,
    /// Azure: the first piece is the `userPrompt`, the rest are `documents`.
    first_is_prompt: bool,
    /// Whether the answer speaks of each piece (else of the request as a whole).
    per_piece: bool,
}

/// The `http` guard kind (see the module docs). Registered by [`crate::GatewayBuilder`]
/// unless a kind of that name is registered already; a library that assembles its own
/// [`crate::GuardLayer`] registers it itself.
///
/// Clones share one verdict cache.
#[derive(Clone, Debug)]
pub struct HttpGuardKind {
    cache: Arc<VerdictCache>,
    metrics: Option<Metrics>,
}

impl Default for HttpGuardKind {
    fn default() -> HttpGuardKind {
        HttpGuardKind::new()
    }
}

impl HttpGuardKind {
    /// With a cache of [`DEFAULT_CACHE_ENTRIES`] entries per generation.
    pub fn new() -> HttpGuardKind {
        HttpGuardKind {
            cache: Arc::new(VerdictCache::new(DEFAULT_CACHE_ENTRIES)),
            metrics: None,
        }
    }

    /// Keep at most `entries` verdicts per cache generation (two generations are kept); 0
    /// sends every text every time.
    pub fn cache_entries(mut self, entries: usize) -> HttpGuardKind {
        self.cache = Arc::new(VerdictCache::new(entries));
        self
    }

    /// Count cache hits and misses into `metrics`.
    pub fn metrics(mut self, metrics: Metrics) -> HttpGuardKind {
        self.metrics = Some(metrics);
        self
    }
}

impl GuardKind for HttpGuardKind {
    fn build(&self, binding: &GuardBinding) -> Result<Arc<dyn Guard>, String> {
        self.build_with_key(binding, None)
    }

    fn build_with_key(
        &self,
        binding: &GuardBinding,
        key: Option<&ApiKey>,
    ) -> Result<Arc<dyn Guard>, String> {
        let spec = &binding.spec;
        if spec.config.is_some() {
            return Err("guard: http takes no spec.config".to_owned());
        }
        let format = spec
            .format
            .ok_or_else(|| "spec.format is required".to_owned())?;
        let endpoint = spec
            .endpoint
            .as_deref()
            .ok_or_else(|| "spec.endpoint is required".to_owned())?;
        let path = match format {
            GuardFormat::Tei => tei::PATH,
            GuardFormat::AzurePromptShields => azure::PATH,
            GuardFormat::Lakera => lakera::PATH,
        };
        let url: Uri = format!("{}{path}", endpoint.trim_end_matches('/'))
            .parse()
            .map_err(|_| "spec.endpoint is not a URL".to_owned())?;
        let header = match format {
            GuardFormat::AzurePromptShields => HeaderName::from_static("ocp-apim-subscription-key"),
            GuardFormat::Tei | GuardFormat::Lakera => AUTHORIZATION,
        };
        let auth = match (format, key) {
            (GuardFormat::Tei, None) => None,
            (_, None) => {
                return Err(
                    "this format needs the service's key in spec.apiKeySecretRef".to_owned(),
                )
            }
            (_, Some(key)) => {
                let value = match format {
                    GuardFormat::AzurePromptShields => key.expose().to_owned(),
                    _ => format!("Bearer {}", key.expose()),
                };
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    "the key spec.apiKeySecretRef names is not a valid header value".to_owned()
                })?;
                value.set_sensitive(true);
                Some((header, value))
            }
        };
        let timeout = spec
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(super::DEFAULT_GUARD_TIMEOUT);
        // The guard layer cuts the whole scan off at `timeoutMs`; the client's own limits are
        // only a backstop behind it.
        let transport = HttpTransport::new(TransportOptions {
            connect_timeout: timeout.min(Duration::from_secs(10)),
            response_timeout: timeout + Duration::from_secs(1),
            pool_idle_timeout: POOL_IDLE,
        })
        .map_err(|e| format!("cannot make its HTTP client: {e}"))?;
        let mut identity = digest::Context::new(&digest::SHA256);
        for part in [binding.metadata.name.as_str(), path, endpoint] {
            identity.update(&(part.len() as u64).to_le_bytes());
            identity.update(part.as_bytes());
        }
        Ok(Arc::new(HttpGuard {
            name: binding.metadata.name.clone(),
            format,
            url,
            auth,
            transport,
            threshold: spec.threshold.map_or(DEFAULT_THRESHOLD, |t| t as f32),
            identity,
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
        }))
    }
}

/// One GuardBinding's classifier.
struct HttpGuard {
    name: String,
    format: GuardFormat,
    url: Uri,
    auth: Option<(HeaderName, HeaderValue)>,
    transport: HttpTransport,
    threshold: f32,
    /// The hash of the binding's identity, continued for each text.
    identity: digest::Context,
    cache: Arc<VerdictCache>,
    metrics: Option<Metrics>,
}

/// The worst found so far: its score, what, and where (`None`: in the request as a whole, when
/// the service's verdict cannot be pinned on one text).
#[derive(Default)]
struct Worst(Option<(Found, Option<TextSource>)>);

impl Worst {
    fn consider(&mut self, found: &Found, source: Option<TextSource>) {
        if self.0.as_ref().is_none_or(|(w, _)| found.score > w.score) {
            self.0 = Some((found.clone(), source));
        }
    }
}

#[async_trait::async_trait]
impl Guard for HttpGuard {
    fn name(&self) -> &str {
        &self.name
    }

    async fn inspect(&self, input: &GuardInput) -> Verdict {
        let texts: Vec<(TextSource, &str)> = input
            .texts
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(s, t)| (*s, t.as_str()))
            .collect();
        if texts.is_empty() {
            return Verdict::Allow;
        }
        let keys = match self.keys(&texts).await {
            Ok(keys) => keys,
            Err(reason) => return Verdict::Error { reason },
        };
        let mut worst = Worst::default();
        let mut misses: Vec<usize> = Vec::new();
        let mut asked: HashSet<&Key> = HashSet::new();
        let mut hits = 0usize;
        for (i, key) in keys.iter().enumerate() {
            if let Some(found) = self.cache.get(key) {
                hits += 1;
                worst.consider(&found, Some(texts[i].0));
            } else if asked.insert(key) {
                misses.push(i);
            }
        }
        self.count(hits, misses.len());
        if !misses.is_empty() {
            if let Err(reason) = self.scan(&texts, &keys, &misses, &mut worst).await {
                return Verdict::Error { reason };
            }
        }
        match worst.0 {
            Some((found, source)) if found.score >= self.threshold => Verdict::Block {
                reason: format!(
                    "{} in {}",
                    found.label.as_deref().unwrap_or("an attack"),
                    place(source)
                ),
                score: found.score,
            },
            _ => Verdict::Allow,
        }
    }
}

impl HttpGuard {
    /// Each text's cache key; a large request is hashed off the runtime.
    async fn keys(&self, texts: &[(TextSource, &str)]) -> Result<Vec<Key>, String> {
        let size: usize = texts.iter().map(|(_, t)| t.len()).sum();
        if size <= INLINE_HASH_BYTES {
            return Ok(keys_of(&self.identity, texts.iter().copied()));
        }
        let owned: Vec<(TextSource, String)> =
            texts.iter().map(|(s, t)| (*s, (*t).to_owned())).collect();
        let identity = self.identity.clone();
        tokio::task::spawn_blocking(move || {
            keys_of(&identity, owned.iter().map(|(s, t)| (*s, t.as_str())))
        })
        .await
        .map_err(|_| "hashing the request's texts failed".to_owned())
    }

    /// Send the texts `misses` names to the service, cache what it says, and fold it into
    /// `worst`.
    async fn scan(
        &self,
        texts: &[(TextSource, &str)],
        keys: &[Key],
        misses: &[usize],
        worst: &mut Worst,
    ) -> Result<(), String> {
        let (size, overlap) = match self.format {
            GuardFormat::Tei => (tei::WINDOW, tei::OVERLAP),
            GuardFormat::AzurePromptShields => (azure::WINDOW, azure::OVERLAP),
            GuardFormat::Lakera => (lakera::WINDOW, lakera::OVERLAP),
        };
        let mut pieces = Vec::new();
        for (owner, &i) in misses.iter().enumerate() {
            let (source, text) = texts[i];
            for w in windows(text, size, overlap) {
                pieces.push(Piece {
                    text: w,
                    source,
                    owner,
                });
            }
        }
        let batches = match self.format {
            GuardFormat::Tei => tei::plan(&pieces),
            GuardFormat::AzurePromptShields => azure::plan(&pieces),
            GuardFormat::Lakera => lakera::plan(&pieces),
        };
        let answers = self.send_all(&batches).await?;
        // Per text: the highest of its windows, and whether that can be pinned on it.
        let mut per_text: Vec<(Found, bool)> = vec![
            (
                Found {
                    score: 0.0,
                    label: None
                },
                true
            );
            misses.len()
        ];
        for (batch, found) in batches.iter().zip(answers) {
            // A verdict on the whole request is one text's when the request carried only it.
            let owners = |p: &usize| pieces[*p].owner;
            let one_text = batch
                .pieces
                .first()
                .map(owners)
                .is_some_and(|first| batch.pieces.iter().all(|p| owners(p) == first));
            for (&p, f) in batch.pieces.iter().zip(found) {
                let slot = &mut per_text[pieces[p].owner];
                if !(batch.per_piece || one_text) && f.score > 0.0 {
                    slot.1 = false;
                }
                if f.score > slot.0.score {
                    slot.0 = f;
                }
            }
        }
        for (owner, (found, attributable)) in per_text.into_iter().enumerate() {
            let i = misses[owner];
            if attributable {
                self.cache.insert(keys[i], found.clone());
            }
            worst.consider(&found, attributable.then_some(texts[i].0));
        }
        Ok(())
    }

    /// Every batch's answer, read; the first failure fails the scan. One batch is sent
    /// inline; more go out at most [`MAX_IN_FLIGHT`] at a time, and are dropped (their
    /// connections with them) if the scan is cut off.
    async fn send_all(&self, batches: &[Batch]) -> Result<Vec<Vec<Found>>, String> {
        if let [batch] = batches {
            let answer = self.send(batch.body.clone()).await?;
            return Ok(vec![self.read(&answer, batch)?]);
        }
        let mut out: Vec<Option<Vec<Found>>> = Vec::new();
        out.resize_with(batches.len(), || None);
        let mut running = JoinSet::new();
        let mut next = 0;
        while next < batches.len() || !running.is_empty() {
            while next < batches.len() && running.len() < MAX_IN_FLIGHT {
                let sent = send(
                    self.transport.clone(),
                    self.url.clone(),
                    self.auth.clone(),
                    batches[next].body.clone(),
                );
                let index = next;
                running.spawn(async move { (index, sent.await) });
                next += 1;
            }
            match running.join_next().await {
                Some(Ok((index, answer))) => {
                    out[index] = Some(self.read(&answer?, &batches[index])?);
                }
                Some(Err(_)) => return Err("a request to the classifier failed".to_owned()),
                None => break,
            }
        }
        out.into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "a request to the classifier was not answered".to_owned())
    }

    async fn send(&self, body: Bytes) -> Result<Bytes, String> {
        send(
            self.transport.clone(),
            self.url.clone(),
            self.auth.clone(),
            body,
        )
        .await
    }

    fn read(&self, answer: &[u8], batch: &Batch) -> Result<Vec<Found>, String> {
        let found = match self.format {
            GuardFormat::Tei => tei::read(answer, batch),
            GuardFormat::AzurePromptShields => azure::read(answer, batch),
            GuardFormat::Lakera => lakera::read(answer, batch),
        }?;
        if found.len() != batch.pieces.len() {
            return Err("the classifier's answer does not match the request".to_owned());
        }
        Ok(found)
    }

    fn count(&self, hits: usize, misses: usize) {
        let Some(metrics) = &self.metrics else { return };
        for (result, n) in [("hit", hits), ("miss", misses)] {
            if n > 0 {
                metrics.add(
                    "pai_guard_cache_total",
                    &[("binding", &self.name), ("result", result)],
                    n as f64,
                );
            }
        }
    }
}

/// One request to the classifier, its answer's body read whole up to [`MAX_ANSWER_BYTES`].
/// Errors say what failed, never the URL, a header or the body.
async fn send(
    transport: HttpTransport,
    url: Uri,
    auth: Option<(HeaderName, HeaderValue)>,
    body: Bytes,
) -> Result<Bytes, String> {
    let mut request = http::Request::post(url)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json");
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let request = request
        .body(body)
        .map_err(|_| "the request to the classifier could not be built".to_owned())?;
    let response = transport
        .send(request)
        .await
        .map_err(|e| format!("the classifier could not be reached ({e})"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the classifier answered HTTP {}", status.as_u16()));
    }
    let mut body = response.into_body();
    let mut answer: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err("the classifier's answer broke off".to_owned());
        };
        if let Ok(data) = frame.into_data() {
            if answer.len() + data.len() > MAX_ANSWER_BYTES {
                return Err(format!(
                    "the classifier's answer is larger than {MAX_ANSWER_BYTES} bytes"
                ));
            }
            answer.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(answer))
}

/// The cache key of each text.
fn keys_of<'a>(
    identity: &digest::Context,
    texts: impl Iterator<Item = (TextSource, &'a str)>,
) -> Vec<Key> {
    texts
        .map(|(source, text)| {
            let mut h = identity.clone();
            h.update(&[source_tag(source)]);
            h.update(text.as_bytes());
            let mut key = [0u8; 32];
            key.copy_from_slice(h.finish().as_ref());
            key
        })
        .collect()
}

fn source_tag(source: TextSource) -> u8 {
    match source {
        TextSource::System => 0,
        TextSource::User => 1,
        TextSource::Assistant => 2,
        TextSource::ToolResult => 3,
    }
}

/// Where a text came from, in a block's reason.
fn place(source: Option<TextSource>) -> &'static str {
    match source {
        Some(TextSource::System) => "the system prompt",
        Some(TextSource::User) => "a user message",
        Some(TextSource::Assistant) => "an assistant message",
        Some(TextSource::ToolResult) => "a tool result",
        None => "the messages sent",
    }
}
