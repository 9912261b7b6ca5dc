//! Access keys: how they look, how they are minted, and how they are stored.
//!
//! A raw key is `pak_` followed by 43 base62 characters (256 random bits). Tools that insist on
//! an Anthropic-looking key get the wrapped form `sk-ant-api03-pak-<body>-AA`; both are accepted
//! wherever a key is. The store never sees a raw key: only its HMAC-SHA256 under the gateway's
//! own secret, so a stolen store file cannot be used to forge or recover keys.

use std::fmt;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const RAW_PREFIX: &str = "pak_";
const WRAPPED_PREFIX: &str = "sk-ant-api03-pak-";
const WRAPPED_SUFFIX: &str = "-AA";
const BODY_LEN: usize = 43;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Mint a new raw access key from the operating system's random source.
pub fn generate() -> Result<String, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let mut body = String::with_capacity(RAW_PREFIX.len() + BODY_LEN);
    body.push_str(RAW_PREFIX);
    // Rejection sampling keeps every character uniform: 62 * 4 = 248 < 256.
    let mut buf = [0u8; 64];
    while body.len() < RAW_PREFIX.len() + BODY_LEN {
        rng.fill(&mut buf)?;
        for b in buf {
            if b < 248 && body.len() < RAW_PREFIX.len() + BODY_LEN {
                body.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    Ok(body)
}

/// The wrapped form of a raw key, for clients that want an Anthropic-looking key.
pub fn wrap(raw: &str) -> String {
    let body = raw.strip_prefix(RAW_PREFIX).unwrap_or(raw);
    format!("{WRAPPED_PREFIX}{body}{WRAPPED_SUFFIX}")
}

/// The raw key inside a presented credential, raw or wrapped; `None` if it is neither.
pub fn unwrap(presented: &str) -> Option<String> {
    let presented = presented.trim();
    let body = if let Some(body) = presented.strip_prefix(RAW_PREFIX) {
        body
    } else {
        let inner = presented
            .strip_prefix("sk-ant-api03-pak")?
            .strip_suffix(WRAPPED_SUFFIX)?;
        inner
            .strip_prefix('-')
            .or_else(|| inner.strip_prefix('_'))?
    };
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(format!("{RAW_PREFIX}{body}"))
}

/// The keyed hash of an access key, as stored. Hex-encoded.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(pub String);

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Short enough to correlate in a debugger, useless to an attacker.
        let prefix: String = self.0.chars().take(8).collect();
        write!(f, "KeyHash({prefix}…)")
    }
}

/// Hashes access keys with HMAC-SHA256 under the gateway's secret.
#[derive(Clone)]
pub struct AccessKeyHasher {
    key: hmac::Key,
}

impl fmt::Debug for AccessKeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKeyHasher(..)")
    }
}

impl AccessKeyHasher {
    /// A hasher keyed by `secret` (at least 32 bytes of randomness, kept by the operator).
    pub fn new(secret: &[u8]) -> AccessKeyHasher {
        AccessKeyHasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The stored form of a raw key.
    pub fn hash(&self, raw: &str) -> KeyHash {
        let tag = hmac::sign(&self.key, raw.as_bytes());
        KeyHash(hex(tag.as_ref()))
    }
}

/// Derive a purpose-bound subkey from the gateway's master secret, so that one secret file can
/// key both access-key hashing and secret encryption without reusing key material.
pub fn derive_subkey(master: &[u8], purpose: &str) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, master);
    let tag = hmac::sign(&key, purpose.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&tag.as_ref()[..32]);
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.starts_with("pak_"));
        assert_eq!(a.len(), 4 + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn wrapped_and_raw_forms_name_the_same_key() {
        let raw = generate().unwrap();
        let wrapped = wrap(&raw);
        assert!(wrapped.starts_with("sk-ant-api03-pak-"));
        assert!(wrapped.ends_with("-AA"));
        assert_eq!(unwrap(&wrapped).as_deref(), Some(raw.as_str()));
        assert_eq!(unwrap(&raw).as_deref(), Some(raw.as_str()));
    }

    #[test]
    fn foreign_credentials_are_not_keys() {
        for bad in [
            "sk-ant-api03-abc-AA",
            "sk-proj-123",
            "pak_",
            "pak_a b",
            "Bearer pak_x",
        ] {
            assert_eq!(unwrap(bad), None, "{bad}");
        }
    }

    #[test]
    fn hashes_depend_on_the_gateway_secret() {
        let a = AccessKeyHasher::new(b"one secret of thirty-two bytes!!");
        let b = AccessKeyHasher::new(b"another secret of 32 bytes......");
        assert_eq!(a.hash("pak_x"), a.hash("pak_x"));
        assert_ne!(a.hash("pak_x"), b.hash("pak_x"));
        assert_eq!(a.hash("pak_x").0.len(), 64);
        assert!(!format!("{:?}", a.hash("pak_x")).contains(&a.hash("pak_x").0));
    }
}
