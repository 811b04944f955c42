//! At most so many invocations of one endpoint at once on this replica: a saturated endpoint
//! answers 429 at once (with `Retry-After`) instead of queueing work it cannot finish, and one
//! busy endpoint cannot take every worker from the others.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct InvocationLimiter {
    per_endpoint: usize,
    /// Environment, then endpoint name. Read-locked on every invocation, found by `&str` (no
    /// key is built per call); written the first time an endpoint is invoked.
    slots: RwLock<Names<Names<Arc<Semaphore>>>>,
}

/// foldhash rather than SipHash: two lookups on every invocation. A caller can make up names,
/// but an unknown endpoint's entry is removed as soon as it is found missing.
type Names<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// Held while an invocation runs; dropping it frees the slot.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl InvocationLimiter {
    pub fn new(per_endpoint: usize) -> Self {
        Self { per_endpoint: per_endpoint.max(1), slots: RwLock::default() }
    }

    /// A slot for one invocation of the endpoint, or `None` when it is saturated.
    pub fn try_acquire(&self, environment: &str, name: &str) -> Option<Slot> {
        let known = {
            let slots = self.slots.read().expect("limiter lock");
            slots.get(environment).and_then(|names| names.get(name)).cloned()
        };
        let semaphore = known.unwrap_or_else(|| {
            let mut slots = self.slots.write().expect("limiter lock");
            slots
                .entry(environment.to_string())
                .or_default()
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint)))
                .clone()
        });
        semaphore.try_acquire_owned().ok().map(Slot)
    }

    /// Drops the slots of an endpoint that turned out not to exist, so that invoking made-up
    /// names cannot grow the table. Invocations holding a slot keep theirs.
    pub fn forget(&self, environment: &str, name: &str) {
        let mut slots = self.slots.write().expect("limiter lock");
        if let Some(names) = slots.get_mut(environment) {
            names.remove(name);
            if names.is_empty() {
                slots.remove(environment);
            }
        }
    }

    pub fn per_endpoint(&self) -> usize {
        self.per_endpoint
    }

    /// Endpoints with slots.
    #[cfg(test)]
    fn endpoints(&self) -> usize {
        self.slots.read().expect("limiter lock").values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_takes_at_most_its_limit_and_others_are_unaffected() {
        let limiter = InvocationLimiter::new(2);
        let a = limiter.try_acquire("dev", "churn").expect("first");
        let _b = limiter.try_acquire("dev", "churn").expect("second");
        assert!(limiter.try_acquire("dev", "churn").is_none(), "saturated");
        assert!(limiter.try_acquire("prod", "churn").is_some(), "another environment's endpoint");
        assert!(limiter.try_acquire("dev", "other").is_some(), "another endpoint");
        drop(a);
        assert!(limiter.try_acquire("dev", "churn").is_some(), "a finished invocation frees its slot");
    }

    #[test]
    fn forgotten_endpoints_leave_the_table() {
        let limiter = InvocationLimiter::new(1);
        let held = limiter.try_acquire("dev", "made-up").expect("first");
        limiter.try_acquire("dev", "real").expect("another");
        assert_eq!(limiter.endpoints(), 2);
        limiter.forget("dev", "made-up");
        limiter.forget("prod", "never-seen");
        assert_eq!(limiter.endpoints(), 1, "only the real one is kept");
        drop(held);
        assert!(limiter.try_acquire("dev", "made-up").is_some(), "a new table entry, a new slot");
    }
}
