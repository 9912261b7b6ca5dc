//! Which hashes an AccessKey answers to, shared by every store here so they agree.

use pai_core::resource::AccessKey;
use pai_core::StoreError;

/// The hashes a store indexes for `key`, each with the unix second it stops working (`None`:
/// for as long as it is the current key).
///
/// A previous hash without an expiry is never accepted (rotation grace must end), so it is not
/// indexed; nor are empty hashes, which no presented key can legitimately hash to.
pub(crate) fn indexed_hashes(key: &AccessKey) -> Vec<(&str, Option<u64>)> {
    let status = &key.status;
    let mut out = Vec::with_capacity(2);
    if let Some(current) = status.key_hash.as_deref().filter(|h| !h.is_empty()) {
        out.push((current, None));
    }
    if let (Some(previous), Some(expires_at)) = (
        status
            .previous_key_hash
            .as_deref()
            .filter(|h| !h.is_empty()),
        status.previous_key_expires_at,
    ) {
        if !out.iter().any(|(h, _)| *h == previous) {
            out.push((previous, Some(expires_at)));
        }
    }
    out
}

/// Whether `key` accepts a presented key hashing to `hash` at unix second `now`.
pub(crate) fn accepts(key: &AccessKey, hash: &str, now: u64) -> bool {
    indexed_hashes(key)
        .into_iter()
        .any(|(h, expires_at)| h == hash && expires_at.is_none_or(|t| t > now))
}

/// The refusal when `name` claims a hash that `owner` already holds.
pub(crate) fn conflict(name: &str, owner: &str) -> StoreError {
    StoreError::Conflict(format!(
        "AccessKey {name:?} has a key hash that already belongs to AccessKey {owner:?}; \
         mint a new key for it"
    ))
}
