//! What `apply` answers and what it keeps, the same way in every store.

use pai_core::{Applied, Resource, Stored};

/// Whether two resources serialize to the same JSON: what `apply` calls unchanged.
pub fn same_json(a: &Resource, b: &Resource) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// What applying `resource` over `existing` (the stored resource of the same kind and name, if
/// any) at unix second `now` answers, and the record to keep unless nothing changed.
///
/// - nothing stored: [`Applied::Created`], generation 1, created and updated `now`;
/// - stored with the same JSON ([`same_json`]): [`Applied::Unchanged`] and `None`: write
///   nothing, and do not bump the store's [`Revision`](crate::Revision);
/// - stored and different: [`Applied::Configured`], the generation bumped, `updated_at` now,
///   `created_at` kept.
///
/// ```
/// use pai_core::{Applied, Resource};
///
/// let agent: Resource = serde_json::from_value(serde_json::json!({
///     "apiVersion": "pai.io/v1", "kind": "Agent",
///     "metadata": {"name": "bot"}, "spec": {"models": ["openai/gpt-4o"]},
/// }))?;
/// let (applied, created) = pai_store::apply::outcome(None, &agent, 100);
/// let created = created.ok_or("a new resource is kept")?;
/// assert_eq!((applied, created.generation), (Applied::Created, 1));
/// assert_eq!(pai_store::apply::outcome(Some(&created), &agent, 200), (Applied::Unchanged, None));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn outcome(
    existing: Option<&Stored>,
    resource: &Resource,
    now: u64,
) -> (Applied, Option<Stored>) {
    match existing {
        Some(old) if same_json(&old.resource, resource) => (Applied::Unchanged, None),
        Some(old) => (
            Applied::Configured,
            Some(Stored {
                resource: resource.clone(),
                created_at: old.created_at,
                updated_at: now,
                generation: old.generation.saturating_add(1),
            }),
        ),
        None => (
            Applied::Created,
            Some(Stored {
                resource: resource.clone(),
                created_at: now,
                updated_at: now,
                generation: 1,
            }),
        ),
    }
}
