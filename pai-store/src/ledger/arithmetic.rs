//! The arithmetic of the ledger contract, apart from where the counters live, so that every
//! ledger (in memory, in one SQL transaction, behind a network call) admits and charges alike.

use pai_core::{Refusal, ScopeKey, ScopeLimit};

/// Whether reserving `scopes` fits on today's counters, read through `counter` as
/// `(spent, reserved)` for a scope (`(0, 0)` for one never seen). The refusal names the first
/// scope, in the order given, where `spent + reserved + amount > limit`, and says it resets in
/// `resets_in_secs`; reaching a limit exactly is allowed. A scope named twice in one call
/// counts both amounts.
///
/// This only decides: the caller adds each scope's `amount` to its reserved counter when it
/// answers `Ok`, and changes nothing when it answers a refusal, with no other reservation in
/// between (under one lock, in one transaction), which is what makes a reservation atomic
/// across its scopes.
///
/// ```
/// use pai_core::ledger::Unit;
/// use pai_core::{ScopeKey, ScopeLimit};
///
/// let key = ScopeKey { kind: "access-key", name: "alice".into() };
/// let scope = |amount| {
///     [ScopeLimit { key: key.clone(), unit: Unit::Tokens, limit: 1_000, amount }]
/// };
/// // 700 spent and 200 held: 100 more fits exactly, 101 does not.
/// let counter = |_: &ScopeKey| (700, 200);
/// assert!(pai_store::ledger::admit(&scope(100), counter, 3_600).is_ok());
/// let refusal = pai_store::ledger::admit(&scope(101), counter, 3_600).unwrap_err();
/// assert_eq!((refusal.scope, refusal.resets_in_secs), (key, 3_600));
/// ```
pub fn admit(
    scopes: &[ScopeLimit],
    mut counter: impl FnMut(&ScopeKey) -> (u128, u128),
    resets_in_secs: u64,
) -> Result<(), Refusal> {
    for (i, scope) in scopes.iter().enumerate() {
        let (spent, reserved) = counter(&scope.key);
        let earlier = scopes[..i]
            .iter()
            .filter(|s| s.key == scope.key)
            .fold(0u128, |sum, s| sum.saturating_add(s.amount));
        let reserved = reserved.saturating_add(earlier);
        if spent.saturating_add(reserved).saturating_add(scope.amount) > scope.limit {
            return Err(Refusal {
                scope: scope.key.clone(),
                spent,
                reserved,
                limit: scope.limit,
                resets_in_secs,
            });
        }
    }
    Ok(())
}

/// What closing a reservation charges each of its scopes, in the order reserved: `actual[i]`,
/// or the amount reserved where `actual` has no entry (fail closed). Each scope's reserved
/// counter drops by `scope.amount` and its spent counter (on the reservation's day) grows by
/// the charge.
///
/// Settling passes what the call used; expiring an abandoned reservation passes `&[]`, which
/// charges it in full.
///
/// ```
/// use pai_core::ledger::Unit;
/// use pai_core::{ScopeKey, ScopeLimit};
///
/// let scope = |name: &str| ScopeLimit {
///     key: ScopeKey { kind: "provider", name: name.into() },
///     unit: Unit::Tokens,
///     limit: 1_000,
///     amount: 400,
/// };
/// let scopes = [scope("openai"), scope("anthropic")];
/// let settled: Vec<u128> = pai_store::ledger::charges(&scopes, &[250]).map(|(_, c)| c).collect();
/// assert_eq!(settled, [250, 400]);
/// let expired: Vec<u128> = pai_store::ledger::charges(&scopes, &[]).map(|(_, c)| c).collect();
/// assert_eq!(expired, [400, 400]);
/// ```
pub fn charges<'a>(
    scopes: &'a [ScopeLimit],
    actual: &'a [u128],
) -> impl Iterator<Item = (&'a ScopeLimit, u128)> + 'a {
    scopes
        .iter()
        .enumerate()
        .map(move |(i, scope)| (scope, actual.get(i).copied().unwrap_or(scope.amount)))
}
