//! The limiters: one GCRA limiter per limit, kept beside the snapshot.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use pai_core::Error;

use crate::snapshot::Snapshot;

/// What a limit belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    /// `AccessKey.spec.limits.maxRequestsPerMinute`.
    AccessKey,
    /// `Agent.spec.rateLimits.maxRequestsPerMinute`.
    Agent,
    /// `ModelProvider.spec.maxRequestsPerMinute`.
    ModelProvider,
}

impl Owner {
    fn kind(self) -> &'static str {
        match self {
            Owner::AccessKey => "AccessKey",
            Owner::Agent => "Agent",
            Owner::ModelProvider => "ModelProvider",
        }
    }
}

/// One limit: whose, and how many per minute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LimitKey {
    owner: Owner,
    name: String,
    per_minute: u32,
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The live limiters of one gateway, surviving snapshot rebuilds. See the module docs.
pub(crate) struct RateLimits<C: Clock = DefaultClock> {
    clock: C,
    limiters: RwLock<Limiters<C>>,
}

struct Limiters<C: Clock> {
    map: HashMap<LimitKey, Arc<Limiter<C>>>,
    /// The newest snapshot revision the map was pruned against: a request still running on an
    /// older snapshot must not drop the limiter of a resource applied since.
    pruned_at: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::with_clock(DefaultClock::default())
    }
}

impl<C: Clock> fmt::Debug for RateLimits<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.limiters.read().map(|m| m.map.len()).unwrap_or(0);
        f.debug_struct("RateLimits").field("limiters", &n).finish()
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Limiters that read time from `clock`.
    pub(crate) fn with_clock(clock: C) -> Self {
        RateLimits {
            clock,
            limiters: RwLock::new(Limiters {
                map: HashMap::new(),
                pruned_at: 0,
            }),
        }
    }

    /// Take one request from `owner` `name`'s limit of `per_minute`, or say how long to wait.
    /// `snapshot` is the configuration the call runs under: the limits it no longer names are
    /// dropped when a new one is added.
    pub(crate) fn check(
        &self,
        owner: Owner,
        name: &str,
        per_minute: u32,
        snapshot: &Snapshot,
    ) -> Result<(), Error> {
        let Some(quota) = NonZeroU32::new(per_minute).map(Quota::per_minute) else {
            // Refused at apply time; a stored 0 (written before that check) refuses every call.
            return Err(refusal(owner, name, per_minute, 60));
        };
        let key = LimitKey {
            owner,
            name: name.to_owned(),
            per_minute,
        };
        let limiter = self.limiter(key, quota, snapshot);
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Whole seconds, rounded up, at least 1: a client that waits that long gets in.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            refusal(owner, name, per_minute, secs.max(1))
        })
    }

    fn limiter(&self, key: LimitKey, quota: Quota, snapshot: &Snapshot) -> Arc<Limiter<C>> {
        // A poisoned lock only means another request panicked mid-insert; the map is still a
        // map, so go on with it.
        if let Some(l) = self
            .limiters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(&key)
        {
            return l.clone();
        }
        let live = live_limits(snapshot);
        let mut limiters = self.limiters.write().unwrap_or_else(|p| p.into_inner());
        if snapshot.revision >= limiters.pruned_at {
            limiters.pruned_at = snapshot.revision;
            limiters.map.retain(|k, _| live.contains(k));
        }
        limiters
            .map
            .entry(key)
            .or_insert_with(|| Arc::new(RateLimiter::direct_with_clock(quota, self.clock.clone())))
            .clone()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiters.read().map(|m| m.map.len()).unwrap_or(0)
    }
}

fn refusal(owner: Owner, name: &str, per_minute: u32, retry_after_secs: u64) -> Error {
    Error::RateLimited {
        message: format!(
            "rate limit reached: {} {name:?} maxRequestsPerMinute ({per_minute}); retry in {retry_after_secs} s",
            owner.kind()
        ),
        retry_after_secs,
    }
}

/// Every limit `snapshot` names.
fn live_limits(snapshot: &Snapshot) -> HashSet<LimitKey> {
    let key = |owner, name: &str, per_minute| LimitKey {
        owner,
        name: name.to_owned(),
        per_minute,
    };
    let mut live = HashSet::new();
    for k in snapshot.keys.values() {
        if let Some(n) = k.key.spec.limits.max_requests_per_minute {
            live.insert(key(Owner::AccessKey, &k.key.metadata.name, n));
        }
    }
    for a in snapshot.agents.values() {
        if let Some(n) = a.spec.rate_limits.max_requests_per_minute {
            live.insert(key(Owner::Agent, &a.metadata.name, n));
        }
    }
    for p in snapshot.providers.values() {
        if let Some(n) = p.resource.spec.max_requests_per_minute {
            live.insert(key(Owner::ModelProvider, &p.resource.metadata.name, n));
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;
    use pai_core::resource::{Agent, AgentRateLimits, AgentSpec, Metadata};

    use super::*;

    fn agent(name: &str, per_minute: u32) -> Arc<Agent> {
        Arc::new(Agent {
            api_version: "pai.io/v1".into(),
            metadata: Metadata {
                name: name.into(),
                ..Metadata::default()
            },
            spec: AgentSpec {
                models: vec!["p/m".into()],
                rate_limits: AgentRateLimits {
                    max_requests_per_minute: Some(per_minute),
                    ..AgentRateLimits::default()
                },
                ..AgentSpec::default()
            },
        })
    }

    fn snapshot(agents: &[(&str, u32)]) -> Snapshot {
        let mut s = Snapshot::default();
        for (name, n) in agents {
            s.agents.insert((*name).into(), agent(name, *n));
        }
        s
    }

    #[test]
    fn a_burst_of_the_limit_then_refusals_that_say_when() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(clock.clone());
        let snap = snapshot(&[("bot", 3)]);
        for _ in 0..3 {
            limits.check(Owner::Agent, "bot", 3, &snap).unwrap();
        }
        let e = limits.check(Owner::Agent, "bot", 3, &snap).unwrap_err();
        assert_eq!(e.retry_after_secs(), Some(20));
        assert!(e
            .to_string()
            .contains("Agent \"bot\" maxRequestsPerMinute (3)"));
        // One request's worth comes back every 20 s; never a retry-after of 0.
        clock.advance(Duration::from_millis(19_500));
        let e = limits.check(Owner::Agent, "bot", 3, &snap).unwrap_err();
        assert_eq!(e.retry_after_secs(), Some(1));
        clock.advance(Duration::from_millis(500));
        limits.check(Owner::Agent, "bot", 3, &snap).unwrap();
    }

    #[test]
    fn limiters_of_resources_gone_or_changed_are_dropped() {
        let limits = RateLimits::with_clock(FakeRelativeClock::default());
        let before = snapshot(&[("a", 1), ("b", 1)]);
        limits.check(Owner::Agent, "a", 1, &before).unwrap();
        limits.check(Owner::Agent, "b", 1, &before).unwrap();
        assert_eq!(limits.len(), 2);
        // "a" is deleted and "b" gets a new limit: adding b's new limiter drops both old ones.
        let after = snapshot(&[("b", 2)]);
        limits.check(Owner::Agent, "b", 2, &after).unwrap();
        assert_eq!(limits.len(), 1);
    }
}
