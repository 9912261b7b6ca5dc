//! Sealing secret values with AES-256-GCM before they reach a store's disk.
//!
//! A sealed value is `nonce || ciphertext || tag`: a fresh random 96-bit nonce for every write
//! (never a counter, which a copied or restored file could replay), and a context (the secret's
//! kind and name) as associated data, so a ciphertext copied onto another secret's row fails to
//! open instead of handing out the wrong credential.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use pai_core::StoreError;

/// The key that seals and opens secret values: what a durable [`Store`](pai_core::Store)
/// uses to keep the contract that secrets are encrypted at rest.
///
/// Seal each Secret's `data` bound to a context naming that secret (`SqliteStore` uses
/// `Secret/<name>`), store only the sealed bytes, and open them with the same context on the
/// way out. A value that does not open (another key, another secret's row, altered bytes)
/// should answer [`StoreError::Corrupt`] with a message that quotes nothing of it. Keep the
/// 256-bit key outside the store: whoever holds both can read every secret.
///
/// ```
/// let secrets = pai_store::SecretBox::new(&[7; 32])?;
/// let sealed = secrets.seal(b"Secret/openai", b"sk-live-123")?;
/// assert_eq!(secrets.open(b"Secret/openai", &sealed).as_deref(), Some(&b"sk-live-123"[..]));
/// assert_eq!(secrets.open(b"Secret/other", &sealed), None);
/// # Ok::<(), pai_core::StoreError>(())
/// ```
pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl SecretBox {
    /// A box for a 256-bit key.
    pub fn new(secret_key: &[u8; 32]) -> Result<SecretBox, StoreError> {
        let key = UnboundKey::new(&AES_256_GCM, secret_key).map_err(|_| {
            StoreError::Unavailable("the secret key is not a valid AES-256 key".into())
        })?;
        Ok(SecretBox {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// `plaintext` sealed, bound to `context`. Fails only if the operating system's random
    /// source does ([`StoreError::Unavailable`]).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| {
            StoreError::Unavailable("the operating system's random source failed".into())
        })?;
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut body,
            )
            .map_err(|_| StoreError::Unavailable("sealing a secret failed".into()))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + body.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// The plaintext of `sealed`, or `None` if it was not sealed by this key for `context` or
    /// has been altered.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut body)
            .ok()?;
        Some(plaintext.to_vec())
    }
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox { key: <redacted> }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_what_it_sealed_for_the_same_context() {
        let b = SecretBox::new(&[7; 32]).unwrap();
        let sealed = b.seal(b"Secret/openai", b"sk-live").unwrap();
        assert_eq!(
            b.open(b"Secret/openai", &sealed).as_deref(),
            Some(&b"sk-live"[..])
        );
        assert!(!sealed.windows(7).any(|w| w == b"sk-live"));
        assert_eq!(
            b.open(b"Secret/other", &sealed),
            None,
            "moved to another secret"
        );
        assert_eq!(
            SecretBox::new(&[8; 32])
                .unwrap()
                .open(b"Secret/openai", &sealed),
            None
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(b.open(b"Secret/openai", &tampered), None);
        assert_eq!(
            b.open(b"Secret/openai", &sealed[..5]),
            None,
            "shorter than a nonce"
        );
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let b = SecretBox::new(&[7; 32]).unwrap();
        let one = b.seal(b"Secret/a", b"same").unwrap();
        let two = b.seal(b"Secret/a", b"same").unwrap();
        assert_ne!(one[..NONCE_LEN], two[..NONCE_LEN]);
        assert_ne!(one, two);
    }
}
