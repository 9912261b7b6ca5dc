//! The provider key an adapter sent, kept out of everything that comes back.
//!
//! [`crate::redact`] recognises keys by their shape, which misses keys of no known shape (a vLLM
//! token such as `vllm.Prod.Token.7f3a9b2c`) and masks it cannot tell from words. But the
//! gateway knows the exact key it sent, so [`SentKey`] removes that key wherever an upstream
//! quotes it back, and any masked form of it: a run of at least 4 characters of the key's start
//! or end next to a mask (`*`, `…`, `...`, or `\u2026` inside JSON), as in
//! `Incorrect API key provided: sk-proj-****abcd` or `vllm***2c`.
//!
//! [`Scrubbed`] wraps any adapter so that nothing it returns holds the key: the error a client
//! gets (and so the record and the logs, which are written from it), a buffered body, every
//! stream event whether forwarded or translated, and the stream's error. The gateway wraps
//! every adapter it calls, a library user's own included.
//!
//! A model's own text that happens to put 4 characters of the key's start or end next to `*`
//! (`**vllm**`) loses them too; keeping a key out of a response is worth that.
//!
//! # Example
//!
//! ```
//! use pai_providers::sent_key::SentKey;
//!
//! let key = SentKey::new("vllm.Prod.Token.7f3a9b2c").unwrap();
//! assert_eq!(
//!     key.redact("bad key vllm.Prod.Token.7f3a9b2c (vllm***2c)"),
//!     "bad key [redacted] ([redacted])"
//! );
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use memchr::memmem;
use pai_core::{
    Call, Credentials, Dialect, Error, EventAction, Passed, Provider, ProviderKind, SseEvent,
    StreamObserver, Usage,
};

use crate::redact::REDACTED;

/// Keys shorter than this are not searched for: they would match ordinary text.
const MIN_KEY_LEN: usize = 8;
/// How much of the key's start or end beside a mask counts as a masked form of it.
const MIN_VISIBLE: usize = 4;

/// The key sent upstream, to be removed from what comes back. See the module docs.
#[derive(Clone)]
pub struct SentKey {
    key: Box<[u8]>,
}

impl std::fmt::Debug for SentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentKey(***)")
    }
}

impl SentKey {
    /// The key, if it is long enough to look for.
    pub fn new(key: &str) -> Option<SentKey> {
        let key = key.trim();
        (key.len() >= MIN_KEY_LEN).then(|| SentKey {
            key: key.as_bytes().into(),
        })
    }

    /// `text` without the key or a masked form of it.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            // Only whole characters are cut out, so the text stays UTF-8.
            Some(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
            None => Cow::Borrowed(text),
        }
    }

    /// `bytes` without the key or a masked form of it; `None` when there was nothing to remove.
    pub fn redact_bytes(&self, text: &[u8]) -> Option<Vec<u8>> {
        let key = &self.key[..];
        // Any match holds the key's first or last 4 bytes: most texts are passed at once.
        let head = key.get(..MIN_VISIBLE)?;
        let tail = key.get(key.len() - MIN_VISIBLE..)?;
        if memmem::find(text, head).is_none() && memmem::find(text, tail).is_none() {
            return None;
        }
        let mut out = Vec::with_capacity(text.len());
        let (mut at, mut copied) = (0, 0);
        while at < text.len() {
            let rest = text.get(at..).unwrap_or_default();
            if rest.starts_with(key) {
                out.extend_from_slice(text.get(copied..at).unwrap_or_default());
                out.extend_from_slice(REDACTED.as_bytes());
                at += key.len();
                copied = at;
                continue;
            }
            let Some(mask) = mask_len(rest) else {
                at += 1;
                continue;
            };
            let after = at + mask;
            let left = common_start(text.get(copied..at).unwrap_or_default(), key);
            let right = common_end(text.get(after..).unwrap_or_default(), key);
            if left.max(right) >= MIN_VISIBLE {
                out.extend_from_slice(text.get(copied..at - left).unwrap_or_default());
                out.extend_from_slice(REDACTED.as_bytes());
                at = after + right;
                copied = at;
            } else {
                at = after;
            }
        }
        if copied == 0 {
            return None;
        }
        out.extend_from_slice(text.get(copied..).unwrap_or_default());
        Some(out)
    }

    /// `bytes`, or a copy without the key.
    fn redact_frame(&self, bytes: Bytes) -> Bytes {
        match self.redact_bytes(&bytes) {
            Some(clean) => Bytes::from(clean),
            None => bytes,
        }
    }

    /// `error` with the key taken out of its message.
    pub fn redact_error(&self, error: Error) -> Error {
        let clean = |s: String| match self.redact(&s) {
            Cow::Borrowed(_) => s,
            Cow::Owned(clean) => clean,
        };
        match error {
            Error::Upstream {
                status,
                message,
                retry_after_secs,
            } => Error::Upstream {
                status,
                message: clean(message),
                retry_after_secs,
            },
            Error::InvalidRequest { message, param } => Error::InvalidRequest {
                message: clean(message),
                param,
            },
            Error::UpstreamUnreachable(m) => Error::UpstreamUnreachable(clean(m)),
            Error::UpstreamTimeout(m) => Error::UpstreamTimeout(clean(m)),
            Error::Unavailable(m) => Error::Unavailable(clean(m)),
            Error::Internal(m) => Error::Internal(clean(m)),
            Error::NotImplemented(m) => Error::NotImplemented(clean(m)),
            Error::PermissionDenied(m) => Error::PermissionDenied(clean(m)),
            other => other,
        }
    }
}

/// The length of the mask at the start of `bytes`: a run of `*`, `…`, `\u2026`, and dots when
/// there are at least three.
fn mask_len(bytes: &[u8]) -> Option<usize> {
    let mut len = 0;
    loop {
        let rest = bytes.get(len..).unwrap_or_default();
        let step = if rest.first() == Some(&b'*') {
            1
        } else if rest.starts_with("…".as_bytes()) {
            "…".len()
        } else if rest.starts_with(br"\u2026") {
            6
        } else if rest.starts_with(b"...") {
            rest.iter().take_while(|&&b| b == b'.').count()
        } else {
            break;
        };
        len += step;
    }
    (len > 0).then_some(len)
}

/// The length of the longest end of `before` that is a start of `key`.
fn common_start(before: &[u8], key: &[u8]) -> usize {
    (1..=before.len().min(key.len()))
        .rev()
        .find(|&n| key.get(..n).is_some_and(|start| before.ends_with(start)))
        .unwrap_or(0)
}

/// The length of the longest start of `after` that is an end of `key`.
fn common_end(after: &[u8], key: &[u8]) -> usize {
    (1..=after.len().min(key.len()))
        .rev()
        .find(|&n| after.get(..n).is_some_and(|start| key.ends_with(start)))
        .unwrap_or(0)
}

// === impl Scrubbed ===

/// An adapter whose every output is cleaned of the key it sent. See the module docs.
pub struct Scrubbed {
    adapter: Arc<dyn Provider>,
    key: SentKey,
}

impl Scrubbed {
    /// Wrap `adapter`, which calls with `credentials`; the adapter itself when they hold no key
    /// worth looking for.
    pub fn wrap(adapter: Arc<dyn Provider>, credentials: &Credentials) -> Arc<dyn Provider> {
        match credentials
            .api_key
            .as_ref()
            .and_then(|k| SentKey::new(k.expose()))
        {
            Some(key) => Arc::new(Scrubbed { adapter, key }),
            None => adapter,
        }
    }
}

impl Provider for Scrubbed {
    fn kind(&self) -> Option<ProviderKind> {
        self.adapter.kind()
    }

    fn dialect(&self) -> Dialect {
        self.adapter.dialect()
    }

    fn build_request(
        &self,
        call: &Call,
        credentials: &Credentials,
    ) -> Result<http::Request<Bytes>, Error> {
        self.adapter.build_request(call, credentials)
    }

    fn response_body(&self, call: &Call, body: Bytes) -> Result<Bytes, Error> {
        match self.adapter.response_body(call, body) {
            Ok(body) => Ok(self.key.redact_frame(body)),
            Err(e) => Err(self.key.redact_error(e)),
        }
    }

    fn usage(&self, call: &Call, body: &[u8]) -> Option<Usage> {
        self.adapter.usage(call, body)
    }

    fn stream_observer(&self, call: &Call) -> Box<dyn StreamObserver> {
        Box::new(ScrubbedObserver {
            observer: self.adapter.stream_observer(call),
            key: self.key.clone(),
        })
    }

    fn upstream_error(
        &self,
        call: &Call,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Error {
        // Before the adapter reads the body: it cuts long messages, and a cut key is harder to
        // recognise.
        let clean = self.key.redact_bytes(body);
        let body = clean.as_deref().unwrap_or(body);
        let error = self.adapter.upstream_error(call, status, headers, body);
        self.key.redact_error(error)
    }
}

/// A stream observer whose events and error are cleaned of the key.
struct ScrubbedObserver {
    observer: Box<dyn StreamObserver>,
    key: SentKey,
}

impl StreamObserver for ScrubbedObserver {
    fn on_event(&mut self, event: &SseEvent) -> Passed {
        let Some(raw) = self.key.redact_bytes(&event.raw) else {
            let passed = self.observer.on_event(event);
            return self.clean(passed);
        };
        // The adapter sees the event cleaned, so what it keeps (the error message) is clean too.
        let clean = SseEvent {
            event: event.event.clone(),
            data: self.key.redact(&event.data).into_owned(),
            raw: Bytes::from(raw),
        };
        let passed = self.observer.on_event(&clean);
        match passed.action {
            EventAction::Forward => Passed {
                action: EventAction::Replace(clean.raw),
                ..passed
            },
            _ => self.clean(passed),
        }
    }

    fn on_end(&mut self) -> Passed {
        let passed = self.observer.on_end();
        self.clean(passed)
    }

    fn usage(&self) -> Option<Usage> {
        self.observer.usage()
    }

    fn stream_error(&self) -> Option<String> {
        self.observer
            .stream_error()
            .map(|e| self.key.redact(&e).into_owned())
    }
}

impl ScrubbedObserver {
    /// `passed` with its replacement bytes cleaned of the key, the final event (which
    /// redaction before it may move) still marked where it begins.
    fn clean(&self, passed: Passed) -> Passed {
        let EventAction::Replace(bytes) = &passed.action else {
            return passed;
        };
        if self.key.redact_bytes(bytes).is_none() {
            return passed;
        }
        let at = passed.final_at.filter(|at| *at <= bytes.len());
        let (before, last) = match at {
            Some(at) => (bytes.slice(..at), bytes.slice(at..)),
            None => (bytes.clone(), Bytes::new()),
        };
        let before = self.key.redact_frame(before);
        let last = self.key.redact_frame(last);
        let mut joined = Vec::with_capacity(before.len() + last.len());
        joined.extend_from_slice(&before);
        joined.extend_from_slice(&last);
        Passed {
            action: EventAction::Replace(Bytes::from(joined)),
            content: passed.content,
            final_at: at.map(|_| before.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "vllm.Prod.Token.7f3a9b2c";

    fn redact(text: &str) -> String {
        SentKey::new(KEY).unwrap().redact(text).into_owned()
    }

    #[test]
    fn the_key_and_its_masked_forms_are_removed() {
        for (text, want) in [
            ("key vllm.Prod.Token.7f3a9b2c.", "key [redacted]."),
            ("vllm***2c", "[redacted]"),
            ("provided: vllm.Prod...9b2c, ok", "provided: [redacted], ok"),
            ("****7f3a9b2c", "[redacted]"),
            ("cut: vllm.Pr…", "cut: [redacted]"),
            (r#""vllm.Prod\u2026""#, r#""[redacted]""#),
            ("key=vllm********", "key=[redacted]"),
            (
                "x vllm.Prod.Token.7f3a9b2cvllm.Prod.Token.7f3a9b2c",
                "x [redacted][redacted]",
            ),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn text_without_the_key_is_left_alone() {
        for text in [
            "Incorrect API key provided: sk-proj-****abcd",
            "vllm is a server... of models",
            "a *bold* claim, 9b2",
            "Prod.Token",
            "",
        ] {
            assert!(
                matches!(SentKey::new(KEY).unwrap().redact(text), Cow::Borrowed(_)),
                "{text}"
            );
        }
    }

    #[test]
    fn short_keys_are_not_searched_for() {
        assert!(SentKey::new("abc").is_none());
        assert!(SentKey::new("        ").is_none());
    }

    #[test]
    fn a_final_event_stays_marked_where_it_begins_after_the_key_is_cut_out() {
        struct Joined;
        impl StreamObserver for Joined {
            fn on_event(&mut self, _: &SseEvent) -> Passed {
                let bytes = format!("data: {{\"error\":\"bad key {KEY}\"}}\n\ndata: [DONE]\n\n");
                let at = bytes.len() - b"data: [DONE]\n\n".len();
                Passed::replace(Bytes::from(bytes)).final_at(at)
            }
            fn usage(&self) -> Option<Usage> {
                None
            }
        }
        let mut observer = ScrubbedObserver {
            observer: Box::new(Joined),
            key: SentKey::new(KEY).unwrap(),
        };
        let event = SseEvent {
            event: None,
            data: "x".to_owned(),
            raw: Bytes::from_static(b"data: x\n\n"),
        };
        let passed = observer.on_event(&event);
        let EventAction::Replace(bytes) = &passed.action else {
            panic!("{passed:?}")
        };
        let at = passed.final_at.unwrap();
        assert_eq!(&bytes[at..], b"data: [DONE]\n\n");
        assert!(!String::from_utf8_lossy(bytes).contains(KEY));
    }

    #[test]
    fn non_ascii_text_around_a_mask_stays_utf8() {
        assert_eq!(
            redact("clé ☕…vllm.Prod.Token.7f3a9b2c…é"),
            "clé ☕[redacted]…é"
        );
        assert_eq!(redact("«vllm***»"), "«[redacted]»");
    }
}
