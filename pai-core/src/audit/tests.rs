use super::*;

fn call(n: u64) -> AuditEvent {
    AuditEvent::Call(CallRecord {
        call_id: format!("call-{n}"),
        workload: "ext:laptop".into(),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        status: 200,
        ..CallRecord::default()
    })
}

/// A chain of `n` call events as a store would keep it, with its head.
fn chain(key: &AuditKey, n: u64) -> (Vec<Positioned>, AuditHead) {
    let mut at = ChainPosition::genesis();
    let events: Vec<AuditEvent> = (1..=n).map(call).collect();
    let entries = key.append(&mut at, 1_700_000_000_000, &events);
    let rows = entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| Positioned {
            pos: i as u64 + 1,
            entry,
        })
        .collect();
    (rows, key.head(&at))
}

fn verify(key: &AuditKey, rows: &[Positioned], head: &AuditHead) -> Result<Verified, Tamper> {
    verify_sealed(key, None, rows, head)
}

fn verify_sealed(
    key: &AuditKey,
    seal: Option<&AuditSeal>,
    rows: &[Positioned],
    head: &AuditHead,
) -> Result<Verified, Tamper> {
    let mut verifier = Verifier::new(key, seal);
    for row in rows {
        verifier.push(row);
    }
    verifier.finish(Some(head))
}

fn key() -> AuditKey {
    AuditKey::derive(&[7; 32])
}

#[test]
fn an_untouched_chain_verifies_with_its_checkpoints() {
    let key = key();
    let (rows, head) = chain(&key, 2_500);
    let verified = verify(&key, &rows, &head).unwrap();
    // 2,500 calls and a checkpoint at 1,000 and 2,000.
    assert_eq!(verified.entries, 2_502);
    assert_eq!(verified.checkpoints, 2);
    assert_eq!(verified.head_seq, 2_502);
    assert_eq!(verified.head_hash, rows.last().unwrap().entry.hash());
    assert!(matches!(
        rows[999].entry.event(),
        Some(AuditEvent::Checkpoint(Checkpoint { through: 999, .. }))
    ));
}

#[test]
fn another_key_verifies_nothing() {
    let (rows, head) = chain(&key(), 3);
    let tamper = verify(&AuditKey::derive(&[8; 32]), &rows, &head).unwrap_err();
    assert_eq!((tamper.kind, tamper.seq), (TamperKind::Changed, 1));
}

#[test]
fn a_changed_entry_is_named() {
    let key = key();
    let (mut rows, head) = chain(&key, 10);
    rows[4].entry.body = rows[4]
        .entry
        .body
        .replace("\"status\":200", "\"status\":500");
    let tamper = verify(&key, &rows, &head).unwrap_err();
    assert_eq!(
        (tamper.kind, tamper.seq, tamper.pos),
        (TamperKind::Changed, 5, Some(5))
    );
    assert!(tamper.message.contains("entry 5"), "{tamper}");
}

#[test]
fn a_changed_last_entry_is_changed_not_inserted() {
    let key = key();
    let (mut rows, head) = chain(&key, 4);
    rows[3].entry.at_ms += 1;
    let tamper = verify(&key, &rows, &head).unwrap_err();
    assert_eq!((tamper.kind, tamper.seq), (TamperKind::Changed, 4));
}

#[test]
fn removed_entries_are_named() {
    let key = key();
    let (mut rows, head) = chain(&key, 10);
    rows.drain(3..5);
    let tamper = verify(&key, &rows, &head).unwrap_err();
    assert_eq!((tamper.kind, tamper.seq), (TamperKind::Removed, 4));
    assert!(
        tamper.message.contains("entries 4 to 5 were removed"),
        "{tamper}"
    );
}

#[test]
fn entries_removed_from_the_end_are_seen_through_the_head() {
    let key = key();
    let (mut rows, head) = chain(&key, 10);
    rows.truncate(8);
    let tamper = verify(&key, &rows, &head).unwrap_err();
    assert_eq!((tamper.kind, tamper.seq), (TamperKind::Removed, 9));
}

#[test]
fn an_inserted_entry_is_named() {
    let key = key();
    let (mut rows, head) = chain(&key, 10);
    // A forger without the key: a plausible entry with a made-up MAC, spliced in after 6.
    let mut forged = rows[6].entry.clone();
    forged.mac = "00".repeat(32);
    rows.insert(
        6,
        Positioned {
            pos: 0,
            entry: forged,
        },
    );
    let tamper = verify(&key, &rows, &head).unwrap_err();
    assert_eq!((tamper.kind, tamper.seq), (TamperKind::Inserted, 7));
    assert!(tamper.message.contains("after entry 6"), "{tamper}");
}

#[test]
fn an_entry_appended_by_someone_else_is_inserted() {
    let key = key();
    let (mut rows, head) = chain(&key, 3);
    let mut at = ChainPosition::from(&head);
    let forged = AuditKey::derive(&[9; 32]).append(&mut at, 1, &[call(99)]);
    rows.push(Positioned {
        pos: 4,
        entry: forged[0].clone(),
    });
    let tamper = verify(&key, &rows, &head).unwrap_err();
    assert_eq!((tamper.kind, tamper.seq), (TamperKind::Inserted, 4));
}

#[test]
fn a_copied_entry_is_inserted() {
    let key = key();
    let (mut rows, head) = chain(&key, 5);
    let copy = rows[1].clone();
    rows.insert(3, copy);
    let tamper = verify(&key, &rows, &head).unwrap_err();
    assert_eq!((tamper.kind, tamper.seq), (TamperKind::Inserted, 2));
}

#[test]
fn reordered_entries_are_named() {
    let key = key();
    let (mut rows, head) = chain(&key, 10);
    rows.swap(4, 5);
    (rows[4].pos, rows[5].pos) = (5, 6);
    let tamper = verify(&key, &rows, &head).unwrap_err();
    assert_eq!((tamper.kind, tamper.seq), (TamperKind::Reordered, 5));
    assert!(tamper.message.contains("after entry 6"), "{tamper}");
}

#[test]
fn a_changed_or_rolled_back_head_is_named() {
    let key = key();
    let (rows, mut head) = chain(&key, 5);
    let old = key.head(&ChainPosition {
        seq: 3,
        hash: rows[2].entry.hash(),
    });
    assert_eq!(verify(&key, &rows[..3], &old).unwrap().head_seq, 3);
    head.seq = 4;
    assert_eq!(
        verify(&key, &rows, &head).unwrap_err().kind,
        TamperKind::Changed
    );
    let tamper = verify(&key, &rows, &old).unwrap_err();
    assert!(tamper.message.contains("rolled back"), "{tamper}");
}

#[test]
fn a_pruned_prefix_verifies_under_its_seal_and_not_without() {
    let key = key();
    let (rows, head) = chain(&key, 1_500);
    // Retention cuts at the checkpoint, entry 1,000.
    let kept = &rows[999..];
    let seal = key.seal(999, &kept[0].entry.prev);
    let verified = verify_sealed(&key, Some(&seal), kept, &head).unwrap();
    assert_eq!((verified.sealed_through, verified.entries), (999, 502));
    // Without the seal, or under a forged one, the cut shows.
    assert_eq!(
        verify(&key, kept, &head).unwrap_err().kind,
        TamperKind::Removed
    );
    let mut forged = key.seal(1_100, &rows[1_100].entry.prev);
    forged.through = 1_099;
    let tamper = verify_sealed(&key, Some(&forged), &rows[1_099..], &head).unwrap_err();
    assert!(tamper.message.contains("seal"), "{tamper}");
    // An honest seal that covers less than was removed: the rest is missing.
    let older = key.seal(499, &rows[499].entry.prev);
    assert_eq!(
        verify_sealed(&key, Some(&older), kept, &head)
            .unwrap_err()
            .kind,
        TamperKind::Removed
    );
}

#[test]
fn every_event_reads_back_from_its_body() {
    let key = key();
    let mut record = match call(1) {
        AuditEvent::Call(c) => c,
        _ => unreachable!(),
    };
    // A cost is a u128 of pico-USD: it must survive the body.
    record.cost_pico_usd = Some(u128::from(u64::MAX) * 3);
    let events = [
        AuditEvent::Call(record),
        AuditEvent::Admin(AdminChange {
            actor: "admin-token".into(),
            action: "apply".into(),
            ..AdminChange::default()
        }),
    ];
    let entries = key.append(&mut ChainPosition::genesis(), 1, &events);
    let read: Vec<AuditEvent> = entries.iter().map(|e| e.event().unwrap()).collect();
    assert_eq!(read, events);
}

#[test]
fn digests_are_keyed() {
    let a = key().digest(b"sk-live-123");
    assert_eq!(a, key().digest(b"sk-live-123"));
    assert_ne!(a, AuditKey::derive(&[1; 32]).digest(b"sk-live-123"));
    assert!(!a.contains("sk-live"));
}

#[test]
fn borrowed_events_serialise_as_owned_ones() {
    let record = match call(7) {
        AuditEvent::Call(c) => c,
        _ => unreachable!(),
    };
    let events = [
        AuditEvent::Call(record),
        AuditEvent::Admin(AdminChange {
            actor: "admin-token".into(),
            action: "apply".into(),
            name: Some("k".into()),
            ..AdminChange::default()
        }),
        AuditEvent::Checkpoint(Checkpoint {
            through: 999,
            head: GENESIS.into(),
        }),
    ];
    for event in &events {
        assert_eq!(
            serde_json::to_string(&EventRef::from(event)).unwrap(),
            serde_json::to_string(event).unwrap()
        );
    }
}

#[test]
fn calls_append_as_their_call_events_do() {
    let key = key();
    let records: Vec<CallRecord> = (1..=1_500)
        .map(|n| match call(n) {
            AuditEvent::Call(c) => c,
            _ => unreachable!(),
        })
        .collect();
    let events: Vec<AuditEvent> = records.iter().cloned().map(AuditEvent::Call).collect();
    let (mut a, mut b) = (ChainPosition::genesis(), ChainPosition::genesis());
    let owned = key.append(&mut a, 5, &events);
    let borrowed = key.append(&mut b, 5, AuditEvents::Calls(&records));
    // 1,500 calls cross a checkpoint: 1,501 entries, the same either way.
    assert_eq!(owned.len(), 1_501);
    assert_eq!(owned, borrowed);
    assert_eq!(a, b);
    // Each entry's hash is the next one's `prev`, and the head holds the last.
    for pair in owned.windows(2) {
        assert_eq!(pair[0].hash(), pair[1].prev);
    }
    assert_eq!(owned.last().map(AuditEntry::hash), Some(a.hash));
}
