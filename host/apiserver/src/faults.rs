//! Fault injection and request counters, so tests can prove an operator survives a flaky API
//! server and does not write more than it must.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to break, for which requests. Matching requests are delayed by `latency`, then fail
/// with `status` with probability `error_rate`; watches matching it are cut after
/// `drop_watches_after`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Verbs the rule applies to (`create`, `update`, `patch`, `delete`, `get`, `list`,
    /// `watch`); empty = all.
    pub verbs: Vec<String>,
    /// Plural resource names (`secrets`, `databases`); empty = all.
    pub resources: Vec<String>,
    /// Probability in `0.0..=1.0` that a matching request fails.
    pub error_rate: f64,
    /// The failure: 409 (Conflict), 429 (TooManyRequests, with `Retry-After: 1`) or anything
    /// else as 500 (InternalError).
    pub status: u16,
    pub latency: Duration,
    pub drop_watches_after: Option<Duration>,
    /// Seed of the random choices, so a failing test run can be repeated.
    pub seed: u64,
}

impl Default for FaultRule {
    fn default() -> Self {
        Self {
            verbs: Vec::new(),
            resources: Vec::new(),
            error_rate: 0.0,
            status: 500,
            latency: Duration::ZERO,
            drop_watches_after: None,
            seed: 0,
        }
    }
}

struct Active {
    rule: FaultRule,
    rng: StdRng,
}

/// Handle to the server's fault switch; clones share it.
#[derive(Clone, Default)]
pub struct Faults {
    active: Arc<Mutex<Option<Active>>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rule = self.lock().as_ref().map(|a| a.rule.clone());
        f.debug_struct("Faults").field("rule", &rule).finish()
    }
}

/// What the server does to one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub latency: Duration,
    pub fail_with: Option<u16>,
    pub drop_watch_after: Option<Duration>,
}

impl Faults {
    /// Replaces the active rule.
    pub fn set(&self, rule: FaultRule) {
        let rng = StdRng::seed_from_u64(rule.seed);
        *self.lock() = Some(Active { rule, rng });
    }

    /// Back to a well-behaved server.
    pub fn clear(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Active>> {
        self.active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn decide(&self, verb: &str, resource: &str) -> Decision {
        let mut guard = self.lock();
        let Some(active) = guard.as_mut() else {
            return Decision::default();
        };
        let rule = &active.rule;
        let applies = (rule.verbs.is_empty() || rule.verbs.iter().any(|v| v == verb))
            && (rule.resources.is_empty() || rule.resources.iter().any(|r| r == resource));
        if !applies {
            return Decision::default();
        }
        let fail = rule.error_rate > 0.0 && active.rng.random::<f64>() < rule.error_rate;
        Decision {
            latency: rule.latency,
            fail_with: fail.then_some(rule.status),
            drop_watch_after: if verb == "watch" {
                rule.drop_watches_after
            } else {
                None
            },
        }
    }
}

/// Snapshot of the request counters since start (or the last reset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every request, discovery included.
    pub requests: u64,
    /// POST, PUT, PATCH and DELETE requests to resources.
    pub writes: u64,
    /// Resource requests by verb: `create`, `update`, `patch`, `delete`, `get`, `list`, `watch`.
    pub by_verb: BTreeMap<String, u64>,
    /// Writes by plural resource name (`databases`, `jobs`, `events`).
    pub writes_by_resource: BTreeMap<String, u64>,
}

#[derive(Clone, Default)]
pub(crate) struct Counters(Arc<Mutex<Stats>>);

impl Counters {
    fn lock(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn request(&self) {
        self.lock().requests += 1;
    }

    pub fn resource_request(&self, verb: &str, resource: &str) {
        let mut stats = self.lock();
        *stats.by_verb.entry(verb.to_owned()).or_default() += 1;
        if matches!(
            verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) {
            stats.writes += 1;
            *stats
                .writes_by_resource
                .entry(resource.to_owned())
                .or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> Stats {
        self.lock().clone()
    }

    pub fn reset(&self) {
        *self.lock() = Stats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_only_to_their_verbs_and_resources() {
        let faults = Faults::default();
        faults.set(FaultRule {
            verbs: vec!["create".into()],
            resources: vec!["secrets".into()],
            error_rate: 1.0,
            status: 429,
            ..FaultRule::default()
        });
        assert_eq!(faults.decide("create", "secrets").fail_with, Some(429));
        assert_eq!(faults.decide("get", "secrets").fail_with, None);
        assert_eq!(faults.decide("create", "jobs").fail_with, None);
        faults.clear();
        assert_eq!(faults.decide("create", "secrets").fail_with, None);
    }

    #[test]
    fn the_same_seed_fails_the_same_requests() {
        let run = || {
            let faults = Faults::default();
            faults.set(FaultRule {
                error_rate: 0.5,
                seed: 7,
                ..FaultRule::default()
            });
            (0..32)
                .map(|_| faults.decide("get", "jobs").fail_with.is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        assert!(first.contains(&true) && first.contains(&false));
    }
}
