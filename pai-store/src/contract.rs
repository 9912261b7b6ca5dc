//! The semantics every [`Store`] must keep, as checks a store can run against itself.
//!
//! Each check takes a store that holds nothing of the kind it exercises (call `run_all` on a
//! fresh, empty store) and panics with a message naming the broken rule. Other crates enable the
//! `contract-tests` feature in their dev-dependencies and run them against their own store:
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_store_keeps_the_contract() {
//!     pai_store::contract::run_all(&MyStore::connect().await?).await;
//! }
//! ```

// Test support: a failed expectation is a failed check, reported by panicking like `assert!`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use pai_core::resource::{
    AccessKey, AccessKeySpec, AccessKeyStatus, Agent, AgentSpec, GuardBinding, Metadata, Secret,
    API_VERSION,
};
use pai_core::{
    Applied, CallRecord, Kind, Resource, Store, StoreError, Usage, UsageTotals, WorkloadTotals,
};

use pai_core::AuditKey;

use crate::unix_now;

/// Every check below, one after another, on one empty store.
pub async fn run_all(store: &dyn Store) {
    lifecycle(store).await;
    watch_counts_changes(store).await;
    access_keys_by_hash(store).await;
    secrets_round_trip(store).await;
    calls_and_usage(store).await;
    usage_by_workload(store).await;
}

fn agent(name: &str, model: &str) -> Resource {
    Resource::Agent(Agent {
        api_version: API_VERSION.to_owned(),
        metadata: Metadata {
            name: name.to_owned(),
            ..Metadata::default()
        },
        spec: AgentSpec {
            models: vec![model.to_owned()],
            ..AgentSpec::default()
        },
    })
}

fn guard(name: &str, threshold: f64) -> Resource {
    Resource::GuardBinding(GuardBinding {
        api_version: API_VERSION.to_owned(),
        metadata: Metadata {
            name: name.to_owned(),
            ..Metadata::default()
        },
        spec: pai_core::resource::GuardBindingSpec {
            guard: "prompt-guard".to_owned(),
            threshold: Some(threshold),
            ..Default::default()
        },
    })
}

fn access_key(name: &str, status: AccessKeyStatus) -> Resource {
    Resource::AccessKey(AccessKey {
        api_version: API_VERSION.to_owned(),
        metadata: Metadata {
            name: name.to_owned(),
            ..Metadata::default()
        },
        spec: AccessKeySpec {
            model_provider: Some("openai".to_owned()),
            ..AccessKeySpec::default()
        },
        status,
    })
}

fn key_status(current: &str, previous: Option<(&str, Option<u64>)>) -> AccessKeyStatus {
    AccessKeyStatus {
        tokens_today: 0,
        key_hash: Some(current.to_owned()),
        previous_key_hash: previous.map(|(h, _)| h.to_owned()),
        previous_key_expires_at: previous.and_then(|(_, at)| at),
    }
}

fn secret(name: &str, data: &[(&str, &str)]) -> Resource {
    Resource::Secret(Secret {
        api_version: API_VERSION.to_owned(),
        metadata: Metadata {
            name: name.to_owned(),
            labels: BTreeMap::from([("team".to_owned(), "platform".to_owned())]),
            ..Metadata::default()
        },
        data: data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

async fn apply(store: &dyn Store, resource: &Resource) -> Applied {
    store
        .apply(resource)
        .await
        .unwrap_or_else(|e| panic!("apply {}: {e}", resource.describe()))
}

async fn names(store: &dyn Store, kind: Kind) -> Vec<String> {
    let listed = store.list(kind).await.expect("list");
    listed
        .iter()
        .map(|s| s.resource.name().to_owned())
        .collect()
}

async fn key_named(store: &dyn Store, hash: &str) -> Option<String> {
    store
        .access_key_by_hash(hash)
        .await
        .expect("access_key_by_hash")
        .map(|s| s.resource.name().to_owned())
}

/// Create, re-apply, change, list and delete: `Applied` answers, generations, timestamps, order.
pub async fn lifecycle(store: &dyn Store) {
    let before = unix_now();
    let v1 = agent("support-bot", "openai/gpt-4o");
    assert_eq!(
        apply(store, &v1).await,
        Applied::Created,
        "first apply creates"
    );
    let created = store
        .get(Kind::Agent, "support-bot")
        .await
        .expect("get")
        .expect("an applied resource can be read back");
    assert_eq!(created.resource, v1, "get returns what was applied");
    assert_eq!(created.generation, 1, "a new resource is generation 1");
    assert!(
        created.created_at >= before && created.created_at <= unix_now(),
        "created_at is now, in unix seconds"
    );
    assert_eq!(created.updated_at, created.created_at);

    assert_eq!(
        apply(store, &v1).await,
        Applied::Unchanged,
        "same JSON is unchanged"
    );
    let same = store.get(Kind::Agent, "support-bot").await.expect("get");
    assert_eq!(
        same.as_ref(),
        Some(&created),
        "an unchanged apply touches nothing"
    );

    let v2 = agent("support-bot", "anthropic/claude-sonnet-4-5");
    assert_eq!(
        apply(store, &v2).await,
        Applied::Configured,
        "a change configures"
    );
    let changed = store
        .get(Kind::Agent, "support-bot")
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(changed.resource, v2);
    assert_eq!(changed.generation, 2, "a change bumps the generation");
    assert_eq!(changed.created_at, created.created_at, "created_at is kept");
    assert!(changed.updated_at >= created.updated_at);

    for name in ["zeta", "alpha", "mid"] {
        apply(store, &agent(name, "openai/gpt-4o-mini")).await;
    }
    assert_eq!(
        names(store, Kind::Agent).await,
        ["alpha", "mid", "support-bot", "zeta"],
        "list is sorted by name"
    );
    assert!(
        store
            .list(Kind::GuardBinding)
            .await
            .expect("list")
            .is_empty(),
        "list holds one kind only"
    );
    assert_eq!(
        store.get(Kind::GuardBinding, "alpha").await.expect("get"),
        None,
        "names are per kind"
    );

    assert!(
        store.delete(Kind::Agent, "mid").await.expect("delete"),
        "delete removes"
    );
    assert!(
        !store.delete(Kind::Agent, "mid").await.expect("delete"),
        "nothing twice"
    );
    assert!(!store
        .delete(Kind::GuardBinding, "alpha")
        .await
        .expect("delete"));
    assert_eq!(store.get(Kind::Agent, "mid").await.expect("get"), None);
    assert_eq!(apply(store, &agent("mid", "x/y")).await, Applied::Created);
    let again = store
        .get(Kind::Agent, "mid")
        .await
        .expect("get")
        .expect("recreated");
    assert_eq!(again.generation, 1, "a deleted resource comes back new");

    for name in ["alpha", "mid", "support-bot", "zeta"] {
        assert!(store.delete(Kind::Agent, name).await.expect("delete"));
    }
    assert!(names(store, Kind::Agent).await.is_empty());
}

/// `watch` moves after every change and only then.
pub async fn watch_counts_changes(store: &dyn Store) {
    let mut rx = store.watch();
    let mut last = *rx.borrow_and_update();
    let mut expect_change = |rx: &mut tokio::sync::watch::Receiver<u64>, changed: bool, what| {
        assert_eq!(rx.has_changed().expect("store alive"), changed, "{what}");
        let now = *rx.borrow_and_update();
        if changed {
            assert!(now > last, "{what}: revision must grow");
        }
        last = now;
    };

    apply(store, &guard("pii", 0.5)).await;
    expect_change(&mut rx, true, "create is a change");
    apply(store, &guard("pii", 0.5)).await;
    expect_change(&mut rx, false, "an unchanged apply is not a change");
    apply(store, &guard("pii", 0.9)).await;
    expect_change(&mut rx, true, "configure is a change");
    assert!(!store
        .delete(Kind::GuardBinding, "absent")
        .await
        .expect("delete"));
    expect_change(&mut rx, false, "deleting nothing is not a change");
    assert!(store
        .delete(Kind::GuardBinding, "pii")
        .await
        .expect("delete"));
    expect_change(&mut rx, true, "delete is a change");

    let late = guard("late", 0.1);
    let (woke, _) = tokio::join!(
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed()),
        store.apply(&late),
    );
    assert!(
        matches!(woke, Ok(Ok(()))),
        "a waiting receiver wakes on a change"
    );
    assert!(store
        .delete(Kind::GuardBinding, "late")
        .await
        .expect("delete"));
}

/// Lookup by current and previous key hash, rotation grace and its end, and one hash per key.
pub async fn access_keys_by_hash(store: &dyn Store) {
    let now = unix_now();
    let alice = access_key(
        "alice",
        key_status("h-alice-2", Some(("h-alice-1", Some(now + 3600)))),
    );
    let bob = access_key(
        "bob",
        key_status("h-bob-2", Some(("h-bob-1", Some(now.saturating_sub(60))))),
    );
    let carol = access_key("carol", key_status("h-carol-1", Some(("h-carol-0", None))));
    for key in [&alice, &bob, &carol] {
        assert_eq!(apply(store, key).await, Applied::Created);
    }

    let found = store
        .access_key_by_hash("h-alice-2")
        .await
        .expect("lookup")
        .expect("the current hash finds its key");
    assert_eq!(
        found.resource, alice,
        "the lookup returns the whole AccessKey"
    );
    assert_eq!(
        key_named(store, "h-alice-1").await.as_deref(),
        Some("alice"),
        "grace"
    );
    assert_eq!(key_named(store, "h-bob-2").await.as_deref(), Some("bob"));
    assert_eq!(key_named(store, "h-bob-1").await, None, "grace has ended");
    assert_eq!(
        key_named(store, "h-carol-1").await.as_deref(),
        Some("carol")
    );
    assert_eq!(
        key_named(store, "h-carol-0").await,
        None,
        "grace without an end is none"
    );
    assert_eq!(key_named(store, "h-unknown").await, None);
    assert_eq!(key_named(store, "").await, None);

    let mut rx = store.watch();
    rx.borrow_and_update();
    for stolen in [
        key_status("h-bob-2", None),
        key_status("h-dave", Some(("h-alice-1", Some(now + 60)))),
    ] {
        match store.apply(&access_key("dave", stolen)).await {
            Err(StoreError::Conflict(_)) => {}
            other => panic!("a hash another key holds must conflict, got {other:?}"),
        }
    }
    assert_eq!(store.get(Kind::AccessKey, "dave").await.expect("get"), None);
    assert!(
        !rx.has_changed().expect("alive"),
        "a refused write is not a change"
    );
    assert_eq!(key_named(store, "h-bob-2").await.as_deref(), Some("bob"));
    assert_eq!(key_named(store, "h-dave").await, None);

    assert_eq!(
        apply(store, &alice).await,
        Applied::Unchanged,
        "a key keeps its own hashes"
    );
    let rotated = access_key(
        "alice",
        key_status("h-alice-3", Some(("h-alice-2", Some(now + 3600)))),
    );
    assert_eq!(apply(store, &rotated).await, Applied::Configured);
    assert_eq!(
        key_named(store, "h-alice-3").await.as_deref(),
        Some("alice")
    );
    assert_eq!(
        key_named(store, "h-alice-2").await.as_deref(),
        Some("alice")
    );
    assert_eq!(
        key_named(store, "h-alice-1").await,
        None,
        "rotation drops the oldest"
    );

    assert!(store.delete(Kind::AccessKey, "bob").await.expect("delete"));
    assert_eq!(
        key_named(store, "h-bob-2").await,
        None,
        "a deleted key is gone"
    );
    let erin = access_key("erin", key_status("h-bob-2", None));
    assert_eq!(
        apply(store, &erin).await,
        Applied::Created,
        "its hash is free again"
    );
    assert_eq!(key_named(store, "h-bob-2").await.as_deref(), Some("erin"));

    for name in ["alice", "carol", "erin"] {
        assert!(store.delete(Kind::AccessKey, name).await.expect("delete"));
    }
    assert_eq!(key_named(store, "h-alice-3").await, None);
}

/// Secrets come back exactly as applied, and compare by value for `Unchanged`.
pub async fn secrets_round_trip(store: &dyn Store) {
    let v1 = secret(
        "openai",
        &[("api-key", "sk-live-SUPERSECRET-123"), ("org", "org-1")],
    );
    assert_eq!(apply(store, &v1).await, Applied::Created);
    let got = store
        .get(Kind::Secret, "openai")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(got.resource, v1, "secret values come back decrypted");
    let listed = store.list(Kind::Secret).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].resource, v1);
    assert_eq!(apply(store, &v1).await, Applied::Unchanged);

    let v2 = secret("openai", &[("api-key", "sk-live-ROTATED-456")]);
    assert_eq!(apply(store, &v2).await, Applied::Configured);
    let got = store
        .get(Kind::Secret, "openai")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(got.resource, v2);
    assert_eq!(got.generation, 2);
    assert!(store.delete(Kind::Secret, "openai").await.expect("delete"));
    assert_eq!(store.get(Kind::Secret, "openai").await.expect("get"), None);
}

fn call(n: u32, started_at_ms: u64, provider: &str, key: Option<&str>) -> CallRecord {
    CallRecord {
        call_id: format!("call-{n}"),
        started_at_ms,
        workload: key.map_or_else(|| "support-bot".to_owned(), |k| format!("ext:{k}")),
        provider: provider.to_owned(),
        access_key: key.map(str::to_owned),
        model: "gpt-4o".to_owned(),
        binding: None,
        operation: "chat.completions".to_owned(),
        stream: n >= 3,
        status: 200,
        usage: None,
        cost_pico_usd: None,
        duration_ms: 100 + u64::from(n),
        client_ip: Some("10.0.0.7".to_owned()),
        error: None,
        // One call carries a guard's verdict, so that every store is seen to keep them.
        guards: match n {
            2 => vec![pai_core::GuardVerdict {
                binding: "prompt-guard-default".to_owned(),
                verdict: pai_core::GuardDecision::Block,
                enforcement: pai_core::Enforcement::Audit,
                score: Some(0.97),
                category: Some("instruction override".to_owned()),
                stage: pai_core::GuardStage::Answer,
            }],
            _ => Vec::new(),
        },
    }
}

/// Calls come back whole and newest first; totals group by provider and access key.
pub async fn calls_and_usage(store: &dyn Store) {
    let usage = |input, output| Usage {
        input,
        cached_input: 3,
        cache_write: 2,
        output,
        reasoning: 1,
    };
    let big = 1u128 << 100;
    let early = CallRecord {
        usage: Some(usage(1, 1)),
        cost_pico_usd: Some(7),
        ..call(0, 500, "openai", Some("alice"))
    };
    let c1 = CallRecord {
        usage: Some(usage(10, 5)),
        cost_pico_usd: Some(100),
        binding: Some("fast".to_owned()),
        ..call(1, 1_000, "openai", Some("alice"))
    };
    let c2 = CallRecord {
        status: 502,
        error: Some("upstream answered 502".to_owned()),
        client_ip: None,
        ..call(2, 2_000, "openai", Some("alice"))
    };
    let c3 = CallRecord {
        usage: Some(Usage::default()),
        cost_pico_usd: Some(0),
        ..call(3, 3_000, "openai", None)
    };
    let c4 = CallRecord {
        usage: Some(usage(20, 8)),
        cost_pico_usd: Some(u128::from(u64::MAX) + 1),
        model: "claude-sonnet-4-5".to_owned(),
        operation: "messages".to_owned(),
        ..call(4, 3_000, "anthropic", Some("bob"))
    };
    let c5 = CallRecord {
        usage: Some(usage(30, 9)),
        cost_pico_usd: Some(big),
        ..call(5, 3_000, "openai", Some("alice"))
    };
    // One by one, then a batch: a batch keeps its order, as if recorded one after another.
    for record in [&early, &c1, &c2] {
        store.record_call(record).await.expect("record_call");
    }
    store
        .record_calls(&[c3.clone(), c4.clone(), c5.clone()])
        .await
        .expect("record_calls");

    let recent = store.recent_calls(100).await.expect("recent_calls");
    assert_eq!(
        recent,
        [&c5, &c4, &c3, &c2, &c1, &early].map(Clone::clone),
        "newest first, ties latest recorded first, every field as recorded"
    );
    assert_eq!(
        store.recent_calls(2).await.expect("recent_calls"),
        [c5.clone(), c4.clone()]
    );
    assert!(store
        .recent_calls(0)
        .await
        .expect("recent_calls")
        .is_empty());

    let totals =
        |requests, usage, cost_pico_usd, last_used_ms, provider: &str, key: Option<&str>| {
            UsageTotals {
                provider: provider.to_owned(),
                access_key: key.map(str::to_owned),
                requests,
                usage,
                cost_pico_usd,
                last_used_ms,
            }
        };
    let sorted = |mut t: Vec<UsageTotals>| {
        t.sort_by(|a, b| (&a.provider, &a.access_key).cmp(&(&b.provider, &b.access_key)));
        t
    };
    let since = sorted(store.usage_since(1_000).await.expect("usage_since"));
    let alice_usage = Usage {
        input: 40,
        cached_input: 6,
        cache_write: 4,
        output: 14,
        reasoning: 2,
    };
    assert_eq!(
        since,
        [
            totals(
                1,
                usage(20, 8),
                u128::from(u64::MAX) + 1,
                3_000,
                "anthropic",
                Some("bob")
            ),
            totals(1, Usage::default(), 0, 3_000, "openai", None),
            totals(3, alice_usage, 100 + big, 3_000, "openai", Some("alice")),
        ],
        "totals per provider and access key, from `since_ms` on, costs summed exactly"
    );
    let all = sorted(store.usage_since(0).await.expect("usage_since"));
    let alice = all
        .iter()
        .find(|t| t.access_key.as_deref() == Some("alice"))
        .expect("alice's totals");
    assert_eq!(
        alice.requests, 4,
        "every call counts, with or without usage"
    );
    assert_eq!(alice.cost_pico_usd, 107 + big);
    assert_eq!(alice.last_used_ms, 3_000);
    assert!(
        store
            .usage_since(3_001)
            .await
            .expect("usage_since")
            .is_empty(),
        "nothing started after the last call"
    );
}

/// Totals group by workload, provider, model and binding, sorted by those with calls through no
/// binding first; costs are summed exactly, and calls that used tokens without a price are
/// counted apart. Needs a store holding no calls started at or after 10,000,000 ms.
pub async fn usage_by_workload(store: &dyn Store) {
    const T: u64 = 10_000_000;
    let tokens = |input, output| Usage {
        input,
        cached_input: 2,
        cache_write: 1,
        output,
        reasoning: 1,
    };
    let big = 1u128 << 100;
    let bot = |n: u32, at: u64| CallRecord {
        started_at_ms: T + at,
        ..call(100 + n, 0, "openai", None)
    };
    let fast = |n: u32, at: u64| CallRecord {
        binding: Some("fast".to_owned()),
        ..bot(n, at)
    };
    let records = [
        // Before the period: not counted.
        CallRecord {
            started_at_ms: T - 1,
            usage: Some(tokens(1_000, 1_000)),
            cost_pico_usd: Some(1),
            ..bot(0, 0)
        },
        CallRecord {
            usage: Some(tokens(10, 5)),
            cost_pico_usd: Some(5),
            ..bot(1, 10)
        },
        CallRecord {
            usage: Some(tokens(20, 6)),
            cost_pico_usd: Some(big),
            ..bot(2, 30)
        },
        // Used tokens, no price: unpriced.
        CallRecord {
            usage: Some(tokens(7, 3)),
            ..fast(3, 20)
        },
        // No usage, or no tokens, and no price: not unpriced.
        fast(4, 40),
        CallRecord {
            usage: Some(Usage::default()),
            ..fast(5, 15)
        },
        CallRecord {
            usage: Some(tokens(1, 1)),
            cost_pico_usd: Some(u128::from(u64::MAX) + 1),
            ..fast(6, 25)
        },
        // Refused before a provider was chosen.
        CallRecord {
            provider: String::new(),
            model: String::new(),
            status: 429,
            ..bot(7, 50)
        },
        CallRecord {
            workload: "ext:alice".to_owned(),
            provider: "anthropic".to_owned(),
            access_key: Some("alice".to_owned()),
            model: "claude-sonnet-4-5".to_owned(),
            usage: Some(tokens(100, 50)),
            cost_pico_usd: Some(u128::from(u64::MAX) + 1),
            ..bot(8, 5)
        },
    ];
    for record in &records {
        store.record_call(record).await.expect("record_call");
    }

    let group =
        |workload: &str, provider: &str, model: &str, binding: Option<&str>| WorkloadTotals {
            workload: workload.to_owned(),
            provider: provider.to_owned(),
            model: model.to_owned(),
            binding: binding.map(str::to_owned),
            ..WorkloadTotals::default()
        };
    let expected = [
        WorkloadTotals {
            requests: 1,
            usage: tokens(100, 50),
            cost_pico_usd: u128::from(u64::MAX) + 1,
            last_used_ms: T + 5,
            ..group("ext:alice", "anthropic", "claude-sonnet-4-5", None)
        },
        WorkloadTotals {
            requests: 1,
            last_used_ms: T + 50,
            ..group("support-bot", "", "", None)
        },
        WorkloadTotals {
            requests: 2,
            usage: Usage {
                input: 30,
                cached_input: 4,
                cache_write: 2,
                output: 11,
                reasoning: 2,
            },
            cost_pico_usd: 5 + big,
            last_used_ms: T + 30,
            ..group("support-bot", "openai", "gpt-4o", None)
        },
        WorkloadTotals {
            requests: 4,
            usage: Usage {
                input: 8,
                cached_input: 4,
                cache_write: 2,
                output: 4,
                reasoning: 2,
            },
            cost_pico_usd: u128::from(u64::MAX) + 1,
            unpriced_requests: 1,
            last_used_ms: T + 40,
            ..group("support-bot", "openai", "gpt-4o", Some("fast"))
        },
    ];
    assert_eq!(
        store.usage_by_workload(T).await.expect("usage_by_workload"),
        expected,
        "totals per workload, provider, model and binding, from `since_ms` on, sorted"
    );
    assert_eq!(
        store
            .usage_by_workload(T + 31)
            .await
            .expect("usage_by_workload"),
        [
            WorkloadTotals {
                requests: 1,
                last_used_ms: T + 50,
                ..group("support-bot", "", "", None)
            },
            WorkloadTotals {
                requests: 1,
                last_used_ms: T + 40,
                ..group("support-bot", "openai", "gpt-4o", Some("fast"))
            },
        ],
        "only calls started at or after `since_ms`"
    );
    assert!(
        store
            .usage_by_workload(T + 51)
            .await
            .expect("usage_by_workload")
            .is_empty(),
        "nothing started after the last call"
    );
}

/// The audit chain, on an empty store whose chain is MAC'd under `key`: every recorded call is
/// an entry, admin events are appended after them, checkpoints fall every
/// [`CHECKPOINT_EVERY`](pai_core::audit::CHECKPOINT_EVERY) entries, and after retention prunes
/// up to a checkpoint the chain still verifies under its seal.
pub async fn audit_chain(store: &dyn Store, key: &AuditKey) {
    use pai_core::audit::{self, AdminChange, AuditEvent};

    let call = |n: u64| CallRecord {
        call_id: format!("audit-{n}"),
        started_at_ms: 1_000 + n,
        workload: "ext:laptop".into(),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        status: 200,
        ..CallRecord::default()
    };
    let calls: Vec<CallRecord> = (1..=2_100).map(call).collect();
    for batch in calls.chunks(300) {
        store.record_calls(batch).await.unwrap();
    }
    store
        .append_audit(&[AuditEvent::Admin(AdminChange {
            actor: "admin-token".into(),
            action: "delete".into(),
            kind: Some("Agent".into()),
            name: Some("old".into()),
            ..AdminChange::default()
        })])
        .await
        .unwrap();
    let verified = audit::verify(store, key).await.unwrap().unwrap();
    // 2,100 calls, the admin change, and checkpoints at 1,000 and 2,000.
    assert_eq!(verified.entries, 2_103, "every call and change is an entry");
    assert_eq!(verified.checkpoints, 2);
    let page = store.audit_page(0, 5).await.unwrap();
    assert_eq!(page.len(), 5);
    assert!(page.windows(2).all(|w| w[0].pos < w[1].pos), "stored order");
    assert!(matches!(page[0].entry.event(), Some(AuditEvent::Call(c)) if c.call_id == "audit-1"));
    let ends = store.audit_ends().await.unwrap();
    let head = ends.head.expect("a head after appends");
    assert_eq!(
        (head.seq, &head.hash),
        (verified.head_seq, &verified.head_hash)
    );
    let last = store.audit_page(ends.last_pos - 1, 10).await.unwrap();
    assert!(
        matches!(last[..], [ref only] if only.entry.event().is_some_and(|e| e.kind() == "admin"))
    );

    // Retention: everything is old enough, so the cut is the last checkpoint (entry 2,000).
    let far_future = u64::MAX / 2;
    let (removed, seal) = store
        .prune_audit(far_future)
        .await
        .unwrap()
        .expect("something to prune");
    assert_eq!((removed, seal.through), (1_999, 1_999));
    let after = audit::verify(store, key).await.unwrap().unwrap();
    assert_eq!(after.sealed_through, 1_999);
    // The checkpoint, 102 calls and the change kept, and the pruning recorded.
    assert_eq!(after.entries, 2_103 - 1_999 + 1);
    assert_eq!(store.audit_page(0, 1).await.unwrap()[0].entry.seq, 2_000);
    // Calls themselves are not the chain: usage still counts them all.
    let usage = store.usage_since(0).await.unwrap();
    assert_eq!(usage.iter().map(|u| u.requests).sum::<u64>(), 2_100);
    // A second pruning finds no older checkpoint to cut at.
    assert!(store.prune_audit(far_future).await.unwrap().is_none());
}
