//! The audit chain: every gateway call and every admin change, as one append-only,
//! tamper-evident sequence.
//!
//! # How it holds
//!
//! Each [`AuditEntry`] carries its sequence number, when it was appended, the SHA-256 of the
//! entry before it (`prev`), what happened (`body`, the JSON of an [`AuditEvent`]), and an
//! HMAC-SHA256 over all of those under the [`AuditKey`], a key derived from the gateway's master
//! secret. Whoever can write to the database but does not hold the master secret can change,
//! remove, insert or reorder rows, but cannot make a changed or new entry carry a valid MAC, nor
//! relink the chain around a removed one; [`Verifier`] walks the entries in the order they are
//! stored and names the first that breaks the chain, and how.
//!
//! Two small records close the gaps a chain alone leaves open, both MAC'd as well:
//! - the **head** (`seq` and hash of the last entry), written in the same transaction as every
//!   append, so removing entries from the end is seen too. It also serialises appends: a store
//!   shared by several replicas appends under a lock on the head row, so the chain never forks.
//!   (Someone who saved an old head row and the rows after it can roll both back together; keep
//!   the head `pai audit verify` prints somewhere else if that matters, and check it with
//!   `--expect`.)
//! - the **seal** of the pruned prefix: retention removes the entries before a checkpoint, and
//!   the seal says through which entry and what that entry's hash was, so the first entry kept
//!   still links to something verifiable.
//!
//! Every [`CHECKPOINT_EVERY`]-th entry is a [`Checkpoint`]: a marker naming the chain's length
//! and the hash it has reached. Retention cuts only at checkpoints.
//!
//! Nothing secret goes in: call entries are [`CallRecord`]s (names, numbers, verdicts, never
//! key material or prompt text), admin entries carry keyed digests of the resource before and
//! after ([`AuditKey::digest`]), never its values.

use std::fmt;

use ring::{digest, hmac};
use serde::{Deserialize, Serialize};

use crate::access_key::{derive_subkey, hex};
use crate::store::{CallRecord, Store, StoreError};

/// Every this many sequence numbers, the chain holds a checkpoint.
pub const CHECKPOINT_EVERY: u64 = 1_000;

/// How the body of a checkpoint entry starts.
pub const CHECKPOINT_PREFIX: &str = r#"{"checkpoint":"#;

/// The purpose string of the audit key, derived from the key a store is given.
const AUDIT_PURPOSE: &str = "pai audit chain v1";

/// The hash a chain's first entry links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as an entry's body keeps it: `{"call": {…}}`, `{"admin": {…}}` or
/// `{"checkpoint": {…}}`. (Externally tagged: an internally tagged enum would buffer the
/// record, and serde's buffer cannot hold the u128 of a cost.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditEvent {
    /// One call through the gateway.
    Call(CallRecord),
    /// One change made through the admin API.
    Admin(AdminChange),
    /// A marker every [`CHECKPOINT_EVERY`] entries.
    Checkpoint(Checkpoint),
}

impl AuditEvent {
    /// `call`, `admin` or `checkpoint`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::Call(_) => "call",
            AuditEvent::Admin(_) => "admin",
            AuditEvent::Checkpoint(_) => "checkpoint",
        }
    }
}

/// A change made through the admin API: who, what, and digests of before and after.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminChange {
    /// Who made it: `admin-token` for the admin API's bearer, `retention` for the gateway's
    /// own pruning.
    pub actor: String,
    /// The address the change came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// `apply`, `delete`, `mint-key`, `rotate-key`, `prune-audit`.
    pub action: String,
    /// The resource's kind, when the change is to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `created`, `configured`, `unchanged`, `deleted`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Keyed digest of the resource before the change ([`AuditKey::digest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Keyed digest of the resource after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A marker in the chain: how long the chain was and the hash it had reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The sequence number of the entry before the checkpoint.
    pub through: u64,
    /// That entry's hash.
    pub head: String,
}

/// One entry of the chain, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Its place in the chain, from 1.
    pub seq: u64,
    /// Unix milliseconds when it was appended.
    pub at_ms: u64,
    /// The hash of the entry before ([`GENESIS`] for the first).
    pub prev: String,
    /// The JSON of its [`AuditEvent`].
    pub body: String,
    /// HMAC-SHA256 of the fields above under the [`AuditKey`], hex.
    pub mac: String,
}

impl AuditEntry {
    /// The SHA-256 of the whole entry, MAC included: what the next entry's `prev` holds.
    pub fn hash(&self) -> String {
        let signed = signed_bytes(self.seq, self.at_ms, &self.prev, &self.body);
        chain_hash(signed.as_bytes(), &self.mac)
    }

    /// Its event, or `None` when the body is not one (a damaged entry).
    pub fn event(&self) -> Option<AuditEvent> {
        serde_json::from_str(&self.body).ok()
    }
}

/// The last entry of a chain, kept beside it so that entries removed from the end are seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditHead {
    /// The last entry's sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// HMAC of the two.
    pub mac: String,
}

/// The record that entries through `through` were pruned, and what the last of them hashed to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditSeal {
    /// The last pruned sequence number.
    pub through: u64,
    /// Its hash: the `prev` of the first entry kept.
    pub hash: String,
    /// HMAC of the two.
    pub mac: String,
}

/// An entry and where the store keeps it (its position in stored order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Positioned {
    /// The store's own order of the rows; a chain in good order has `pos == seq`.
    pub pos: u64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// The records that frame a stored chain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditEnds {
    /// The seal of the pruned prefix, if anything was pruned.
    pub seal: Option<AuditSeal>,
    /// The head, if anything was appended.
    pub head: Option<AuditHead>,
    /// The highest position in use.
    pub last_pos: u64,
}

fn signed_bytes(seq: u64, at_ms: u64, prev: &str, body: &str) -> String {
    format!("pai-audit-v1\n{seq}\n{at_ms}\n{prev}\n{body}")
}

/// An entry's hash ([`AuditEntry::hash`]) from its signed bytes and its MAC.
fn chain_hash(signed: &[u8], mac: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(signed);
    ctx.update(b"\n");
    ctx.update(mac.as_bytes());
    hex(ctx.finish().as_ref())
}

/// Events to append, borrowed: a store appends the calls it records without copying each
/// [`CallRecord`] into an [`AuditEvent`] first. Either form gives the same entries.
#[derive(Clone, Copy, Debug)]
pub enum AuditEvents<'a> {
    /// Any events.
    Events(&'a [AuditEvent]),
    /// One [`AuditEvent::Call`] per record.
    Calls(&'a [CallRecord]),
}

impl AuditEvents<'_> {
    /// How many events.
    pub fn len(&self) -> usize {
        match self {
            AuditEvents::Events(events) => events.len(),
            AuditEvents::Calls(calls) => calls.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, i: usize) -> Option<EventRef<'_>> {
        match self {
            AuditEvents::Events(events) => events.get(i).map(EventRef::from),
            AuditEvents::Calls(calls) => calls.get(i).map(EventRef::Call),
        }
    }
}

impl<'a> From<&'a [AuditEvent]> for AuditEvents<'a> {
    fn from(events: &'a [AuditEvent]) -> AuditEvents<'a> {
        AuditEvents::Events(events)
    }
}

impl<'a> From<&'a Vec<AuditEvent>> for AuditEvents<'a> {
    fn from(events: &'a Vec<AuditEvent>) -> AuditEvents<'a> {
        AuditEvents::Events(events)
    }
}

impl<'a, const N: usize> From<&'a [AuditEvent; N]> for AuditEvents<'a> {
    fn from(events: &'a [AuditEvent; N]) -> AuditEvents<'a> {
        AuditEvents::Events(events)
    }
}

/// An [`AuditEvent`] by reference: serialises exactly as the event does (same tags, same
/// fields), which `tests::borrowed_events_serialise_as_owned_ones` holds it to.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum EventRef<'a> {
    Call(&'a CallRecord),
    Admin(&'a AdminChange),
    Checkpoint(&'a Checkpoint),
}

impl<'a> From<&'a AuditEvent> for EventRef<'a> {
    fn from(event: &'a AuditEvent) -> EventRef<'a> {
        match event {
            AuditEvent::Call(c) => EventRef::Call(c),
            AuditEvent::Admin(a) => EventRef::Admin(a),
            AuditEvent::Checkpoint(c) => EventRef::Checkpoint(c),
        }
    }
}

/// The key that MACs the chain, its head and its seal.
#[derive(Clone)]
pub struct AuditKey {
    key: hmac::Key,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// The audit key derived from a store's secret key (itself derived from the master secret).
    pub fn derive(secret_key: &[u8; 32]) -> AuditKey {
        AuditKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &derive_subkey(secret_key, AUDIT_PURPOSE)),
        }
    }

    fn mac(&self, bytes: &[u8]) -> String {
        hex(hmac::sign(&self.key, bytes).as_ref())
    }

    fn checks(&self, bytes: &[u8], mac: &str) -> bool {
        // `verify` compares in constant time; a MAC that is not hex is simply wrong.
        decode_hex(mac).is_some_and(|tag| hmac::verify(&self.key, bytes, &tag).is_ok())
    }

    /// A keyed digest of `bytes`: equal inputs give equal digests, and without the key nothing
    /// about the input (a secret's value, say) can be guessed from it.
    pub fn digest(&self, bytes: &[u8]) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"pai-audit-digest-v1\n");
        ctx.update(bytes);
        self.mac(ctx.finish().as_ref())
    }

    /// The entries that record `events` after `head`, with a checkpoint wherever a sequence
    /// number falls on [`CHECKPOINT_EVERY`]; `head` moves to the last of them.
    pub fn append<'a>(
        &self,
        head: &mut ChainPosition,
        at_ms: u64,
        events: impl Into<AuditEvents<'a>>,
    ) -> Vec<AuditEntry> {
        let events = events.into();
        let mut out = Vec::with_capacity(events.len() + 1);
        for event in (0..events.len()).filter_map(|i| events.get(i)) {
            if (head.seq + 1).is_multiple_of(CHECKPOINT_EVERY) {
                let checkpoint = Checkpoint {
                    through: head.seq,
                    head: head.hash.clone(),
                };
                out.push(self.link(head, at_ms, EventRef::Checkpoint(&checkpoint)));
            }
            out.push(self.link(head, at_ms, event));
        }
        out
    }

    fn link(&self, head: &mut ChainPosition, at_ms: u64, event: EventRef<'_>) -> AuditEntry {
        // Serialising plain data (strings, numbers, maps with string keys) cannot fail; an
        // empty object stands in if it ever did, and verification would name the entry.
        let body = serde_json::to_string(&event).unwrap_or_else(|_| "{}".to_owned());
        let seq = head.seq + 1;
        // The signed bytes are built once: the MAC and the entry's hash both cover them.
        let signed = signed_bytes(seq, at_ms, &head.hash, &body);
        let mac = self.mac(signed.as_bytes());
        let hash = chain_hash(signed.as_bytes(), &mac);
        let entry = AuditEntry {
            seq,
            at_ms,
            prev: std::mem::replace(&mut head.hash, hash),
            body,
            mac,
        };
        head.seq = seq;
        entry
    }

    /// Whether `entry`'s MAC is the one this key gives it.
    pub fn verifies(&self, entry: &AuditEntry) -> bool {
        let bytes = signed_bytes(entry.seq, entry.at_ms, &entry.prev, &entry.body);
        self.checks(bytes.as_bytes(), &entry.mac)
    }

    /// The head record for `position`.
    pub fn head(&self, position: &ChainPosition) -> AuditHead {
        AuditHead {
            seq: position.seq,
            hash: position.hash.clone(),
            mac: self
                .mac(format!("pai-audit-head-v1\n{}\n{}", position.seq, position.hash).as_bytes()),
        }
    }

    /// Whether `head`'s MAC is this key's.
    pub fn verifies_head(&self, head: &AuditHead) -> bool {
        let bytes = format!("pai-audit-head-v1\n{}\n{}", head.seq, head.hash);
        self.checks(bytes.as_bytes(), &head.mac)
    }

    /// The seal saying entries through `through`, whose hash is `hash`, were pruned.
    pub fn seal(&self, through: u64, hash: &str) -> AuditSeal {
        AuditSeal {
            through,
            hash: hash.to_owned(),
            mac: self.mac(format!("pai-audit-seal-v1\n{through}\n{hash}").as_bytes()),
        }
    }

    /// Whether `seal`'s MAC is this key's.
    pub fn verifies_seal(&self, seal: &AuditSeal) -> bool {
        let bytes = format!("pai-audit-seal-v1\n{}\n{}", seal.through, seal.hash);
        self.checks(bytes.as_bytes(), &seal.mac)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Where a chain has got to: the last sequence number and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainPosition {
    /// The last entry's sequence number; 0 for an empty chain.
    pub seq: u64,
    /// Its hash; [`GENESIS`] for an empty chain.
    pub hash: String,
}

impl ChainPosition {
    /// An empty chain.
    pub fn genesis() -> ChainPosition {
        ChainPosition {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

impl From<&AuditHead> for ChainPosition {
    fn from(head: &AuditHead) -> ChainPosition {
        ChainPosition {
            seq: head.seq,
            hash: head.hash.clone(),
        }
    }
}

/// How an entry broke the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TamperKind {
    /// Its content is not what was written.
    Changed,
    /// Entries are missing.
    Removed,
    /// An entry that pai did not write (or a copy of one it did) is there.
    Inserted,
    /// Entries are out of the order they were written in.
    Reordered,
}

/// The first place where the stored chain is not what pai wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tamper {
    /// What was done.
    pub kind: TamperKind,
    /// The sequence number of the entry concerned (for a removal, the first one missing).
    pub seq: u64,
    /// Its position in the store, when it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<u64>,
    /// The finding in words.
    pub message: String,
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A chain that verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints among them.
    pub checkpoints: u64,
    /// Entries before this one were pruned under a valid seal (0: none were).
    pub sealed_through: u64,
    /// The last entry's sequence number.
    pub head_seq: u64,
    /// The last entry's hash: keep it elsewhere to check later with `--expect`.
    pub head_hash: String,
}

/// What went wrong at the first suspicious entry, while the rest is read to tell which.
#[derive(Debug)]
enum Suspect {
    /// An entry whose MAC fails at `pos`; `next_links` says whether the entry after it
    /// continues the chain from before it (then it was inserted).
    BadMac { pos: u64, next_links: Option<bool> },
    /// Sequence numbers `expected..found` are missing before the entry at `pos`.
    Gap {
        pos: u64,
        found: u64,
        moved: Option<(u64, u64)>,
    },
}

/// Walks a chain in stored order and names the first entry that was changed, removed,
/// inserted or reordered.
///
/// Feed it every entry with [`push`](Verifier::push), in the store's order, then
/// [`finish`](Verifier::finish) with the head record. Memory stays constant whatever the
/// chain's length.
#[derive(Debug)]
pub struct Verifier {
    key: AuditKey,
    at: ChainPosition,
    sealed_through: u64,
    entries: u64,
    checkpoints: u64,
    suspect: Option<Suspect>,
    found: Option<Tamper>,
}

impl Verifier {
    /// A verifier for a chain whose prefix may have been pruned under `seal`.
    pub fn new(key: &AuditKey, seal: Option<&AuditSeal>) -> Verifier {
        let mut verifier = Verifier {
            key: key.clone(),
            at: ChainPosition::genesis(),
            sealed_through: 0,
            entries: 0,
            checkpoints: 0,
            suspect: None,
            found: None,
        };
        if let Some(seal) = seal {
            if key.verifies_seal(seal) {
                verifier.at = ChainPosition {
                    seq: seal.through,
                    hash: seal.hash.clone(),
                };
                verifier.sealed_through = seal.through;
            } else {
                verifier.found = Some(Tamper {
                    kind: TamperKind::Changed,
                    seq: seal.through,
                    pos: None,
                    message: format!(
                        "the seal of the pruned entries (through entry {}) was changed: its MAC does not match",
                        seal.through
                    ),
                });
            }
        }
        verifier
    }

    /// The next entry in stored order.
    pub fn push(&mut self, item: &Positioned) {
        if self.found.is_some() {
            return;
        }
        let (pos, entry) = (item.pos, &item.entry);
        let expected = self.at.seq + 1;
        match &mut self.suspect {
            None => {}
            Some(Suspect::BadMac { next_links, .. }) => {
                if next_links.is_none() {
                    *next_links = Some(
                        self.key.verifies(entry)
                            && entry.seq == expected
                            && entry.prev == self.at.hash,
                    );
                }
                return;
            }
            Some(Suspect::Gap { found, moved, .. }) => {
                if moved.is_none()
                    && (expected..*found).contains(&entry.seq)
                    && self.key.verifies(entry)
                {
                    *moved = Some((entry.seq, pos));
                }
                return;
            }
        }
        if !self.key.verifies(entry) {
            self.suspect = Some(Suspect::BadMac {
                pos,
                next_links: None,
            });
            return;
        }
        if entry.seq > expected {
            self.suspect = Some(Suspect::Gap {
                pos,
                found: entry.seq,
                moved: None,
            });
            return;
        }
        if entry.seq < expected {
            self.found = Some(Tamper {
                kind: TamperKind::Inserted,
                seq: entry.seq,
                pos: Some(pos),
                message: format!(
                    "an entry was inserted after entry {}: position {pos} holds a second copy of entry {}",
                    self.at.seq, entry.seq
                ),
            });
            return;
        }
        if entry.prev != self.at.hash {
            self.found = Some(Tamper {
                kind: TamperKind::Changed,
                seq: entry.seq,
                pos: Some(pos),
                message: format!(
                    "entry {} (position {pos}) does not link to entry {}: the chain was changed",
                    entry.seq, self.at.seq
                ),
            });
            return;
        }
        if entry.body.starts_with(CHECKPOINT_PREFIX) {
            self.checkpoints += 1;
        }
        self.entries += 1;
        self.at = ChainPosition {
            seq: entry.seq,
            hash: entry.hash(),
        };
    }

    /// The verdict, given the head record stored beside the chain.
    pub fn finish(mut self, head: Option<&AuditHead>) -> Result<Verified, Tamper> {
        if let Some(found) = self.found.take() {
            return Err(found);
        }
        let expected = self.at.seq + 1;
        let head_ok = head.filter(|h| self.key.verifies_head(h));
        match self.suspect.take() {
            Some(Suspect::BadMac { pos, next_links }) => {
                // Inserted when the chain goes on past it as if it were not there, or when it
                // comes after the head pai last wrote.
                let after_head =
                    next_links.is_none() && head_ok.is_some_and(|h| h.seq == self.at.seq);
                return Err(if next_links == Some(true) || after_head {
                    Tamper {
                        kind: TamperKind::Inserted,
                        seq: expected,
                        pos: Some(pos),
                        message: format!(
                            "an entry pai did not write was inserted after entry {} (position {pos}): its MAC does not match and the chain goes on without it",
                            self.at.seq
                        ),
                    }
                } else {
                    Tamper {
                        kind: TamperKind::Changed,
                        seq: expected,
                        pos: Some(pos),
                        message: format!(
                            "entry {expected} (position {pos}) was changed: its MAC does not match its content"
                        ),
                    }
                });
            }
            Some(Suspect::Gap {
                pos,
                found,
                moved: Some((seq, at)),
            }) => {
                return Err(Tamper {
                    kind: TamperKind::Reordered,
                    seq,
                    pos: Some(at),
                    message: format!(
                        "entries were reordered: entry {seq} is stored at position {at}, after entry {found} (position {pos}), instead of after entry {}",
                        self.at.seq
                    ),
                });
            }
            Some(Suspect::Gap {
                pos,
                found,
                moved: None,
            }) => {
                let missing = if found - expected == 1 {
                    format!("entry {expected} was removed")
                } else {
                    format!("entries {expected} to {} were removed", found - 1)
                };
                return Err(Tamper {
                    kind: TamperKind::Removed,
                    seq: expected,
                    pos: None,
                    message: format!(
                        "{missing}: entry {} is followed by entry {found} (position {pos})",
                        self.at.seq
                    ),
                });
            }
            None => {}
        }
        match head {
            None if self.at.seq > self.sealed_through => Err(Tamper {
                kind: TamperKind::Removed,
                seq: self.at.seq,
                pos: None,
                message: "the chain's head record was removed".to_owned(),
            }),
            Some(h) if !self.key.verifies_head(h) => Err(Tamper {
                kind: TamperKind::Changed,
                seq: h.seq,
                pos: None,
                message: "the chain's head record was changed: its MAC does not match".to_owned(),
            }),
            Some(h) if h.seq > self.at.seq => Err(Tamper {
                kind: TamperKind::Removed,
                seq: expected,
                pos: None,
                message: if h.seq == expected {
                    format!("entry {expected}, the last, was removed")
                } else {
                    format!("entries {expected} to {}, the last, were removed", h.seq)
                },
            }),
            Some(h) if h.seq < self.at.seq || h.hash != self.at.hash => Err(Tamper {
                kind: TamperKind::Changed,
                seq: h.seq,
                pos: None,
                message: format!(
                    "the chain's head record names entry {}, but the chain ends at entry {}: the head was rolled back",
                    h.seq, self.at.seq
                ),
            }),
            _ => Ok(Verified {
                entries: self.entries,
                checkpoints: self.checkpoints,
                sealed_through: self.sealed_through,
                head_seq: self.at.seq,
                head_hash: self.at.hash,
            }),
        }
    }
}

/// Entries read per page while verifying.
const VERIFY_PAGE: usize = 1_000;

/// Verify the chain `store` keeps under `key`: `Ok(Err(tamper))` names the first entry that
/// was changed, removed, inserted or reordered.
pub async fn verify(
    store: &dyn Store,
    key: &AuditKey,
) -> Result<Result<Verified, Tamper>, StoreError> {
    let ends = store.audit_ends().await?;
    let mut verifier = Verifier::new(key, ends.seal.as_ref());
    let mut after = 0;
    loop {
        let page = store.audit_page(after, VERIFY_PAGE).await?;
        for item in &page {
            verifier.push(item);
        }
        match page.last() {
            Some(last) if page.len() == VERIFY_PAGE => after = last.pos,
            _ => break,
        }
    }
    Ok(verifier.finish(ends.head.as_ref()))
}

#[cfg(test)]
mod tests;
