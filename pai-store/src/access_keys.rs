//! Which hashes an AccessKey answers to, shared by every store so that they agree.
//!
//! A store indexes each AccessKey under the hashes [`indexed_hashes`] lists (the index is how
//! `access_key_by_hash` finds a key without scanning), refuses a write that would give a hash
//! to a second key with [`conflict`], and, having found a key through its index, answers it
//! only if [`accepts`] says the key still takes that hash now: the resource is the truth, the
//! index is derived from it.

use pai_core::resource::AccessKey;
use pai_core::StoreError;

/// The hashes a store indexes for `key`, each with the unix second it stops working (`None`:
/// for as long as it is the current key).
///
/// The current hash first, then the previous one during its rotation grace. A previous hash
/// without an expiry is never accepted (rotation grace must end), so it is not indexed; nor are
/// empty hashes, which no presented key can legitimately hash to.
///
/// ```
/// use pai_core::resource::AccessKey;
///
/// let mut key: AccessKey = serde_json::from_value(serde_json::json!({
///     "metadata": {"name": "alice"}, "spec": {"modelProvider": "openai"},
/// }))?;
/// key.status.key_hash = Some("h-new".into());
/// key.status.previous_key_hash = Some("h-old".into());
/// key.status.previous_key_expires_at = Some(1_000);
/// assert_eq!(
///     pai_store::access_keys::indexed_hashes(&key),
///     [("h-new", None), ("h-old", Some(1_000))]
/// );
/// assert!(pai_store::access_keys::accepts(&key, "h-old", 999));
/// assert!(!pai_store::access_keys::accepts(&key, "h-old", 1_000));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn indexed_hashes(key: &AccessKey) -> Vec<(&str, Option<u64>)> {
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

/// Whether `key` accepts a presented key hashing to `hash` at unix second `now`: it is the
/// current hash, or the previous one before its grace ends.
pub fn accepts(key: &AccessKey, hash: &str, now: u64) -> bool {
    indexed_hashes(key)
        .into_iter()
        .any(|(h, expires_at)| h == hash && expires_at.is_none_or(|t| t > now))
}

/// The refusal, a [`StoreError::Conflict`], when AccessKey `name` claims a hash that AccessKey
/// `owner` already holds. The write must change nothing.
pub fn conflict(name: &str, owner: &str) -> StoreError {
    StoreError::Conflict(format!(
        "AccessKey {name:?} has a key hash that already belongs to AccessKey {owner:?}; \
         mint a new key for it"
    ))
}
