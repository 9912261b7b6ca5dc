//! Tampering with a stored audit chain the way someone with write access to the database
//! would, and checking that verification names what was done. The same SQL runs on SQLite and
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;

use pai_core::audit::{self, TamperKind};
use pai_core::{AuditKey, CallRecord, Store};

/// What is done, and what verification must say: the kind and the entry named.
pub(crate) const CASES: &[(&str, &[&str], TamperKind, u64)] = &[
    (
        "edit",
        &[r#"UPDATE audit SET body = replace(body, '"status":200', '"status":201') WHERE seq = 5"#],
        TamperKind::Changed,
        5,
    ),
    ("delete", &["DELETE FROM audit WHERE seq = 5"], TamperKind::Removed, 5),
    (
        "delete the last",
        &["DELETE FROM audit WHERE seq = 10"],
        TamperKind::Removed,
        10,
    ),
    (
        "insert",
        &[
            "UPDATE audit SET pos = -pos WHERE pos >= 5",
            "UPDATE audit SET pos = 1 - pos WHERE pos < 0",
            "INSERT INTO audit (pos, seq, at_ms, prev, body, mac) \
             SELECT 5, seq, at_ms, prev, replace(body, 'call-5', 'call-x'), mac FROM audit WHERE seq = 5",
        ],
        TamperKind::Inserted,
        5,
    ),
    (
        "reorder",
        &[
            "UPDATE audit SET pos = -1 WHERE seq = 5",
            "UPDATE audit SET pos = 5 WHERE seq = 6",
            "UPDATE audit SET pos = 6 WHERE seq = 5",
        ],
        TamperKind::Reordered,
        5,
    ),
    ("drop the head", &["DELETE FROM audit_ends"], TamperKind::Removed, 10),
];

/// Record ten calls, one batch each, run `statements`, and check the verdict.
pub(crate) async fn check<F, Fut>(
    store: &dyn Store,
    key: &AuditKey,
    case: &(&str, &[&str], TamperKind, u64),
    execute: F,
) where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let (name, statements, kind, seq) = case;
    for n in 1..=10 {
        let call = CallRecord {
            call_id: format!("call-{n}"),
            workload: "ext:laptop".into(),
            status: 200,
            ..CallRecord::default()
        };
        store.record_call(&call).await.unwrap();
    }
    let before = audit::verify(store, key).await.unwrap();
    assert_eq!(
        before.map(|v| v.head_seq),
        Ok(10),
        "{name}: the untouched chain verifies"
    );
    let positions: Vec<u64> = store
        .audit_page(0, 20)
        .await
        .unwrap()
        .iter()
        .map(|p| p.pos)
        .collect();
    assert_eq!(
        positions,
        (1..=10).collect::<Vec<u64>>(),
        "{name}: rows at their own positions"
    );
    for statement in *statements {
        execute((*statement).to_owned()).await;
    }
    let tamper = audit::verify(store, key)
        .await
        .unwrap()
        .expect_err(&format!("{name}: the tampering went unnoticed"));
    assert_eq!((tamper.kind, tamper.seq), (*kind, *seq), "{name}: {tamper}");
}
