//! At most so many invocations of one endpoint at once on this replica: a saturated endpoint
//! answers 429 at once (with `Retry-After`) instead of queueing work it cannot finish, and one
//! busy endpoint cannot take every worker from the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct InvocationLimiter {
    per_endpoint: usize,
    slots: Mutex<HashMap<(String, String), Arc<Semaphore>>>,
}

/// Held while an invocation runs; dropping it frees the slot.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl InvocationLimiter {
    pub fn new(per_endpoint: usize) -> Self {
        Self { per_endpoint: per_endpoint.max(1), slots: Mutex::new(HashMap::new()) }
    }

    /// A slot for one invocation of the endpoint, or `None` when it is saturated.
    pub fn try_acquire(&self, environment: &str, name: &str) -> Option<Slot> {
        let semaphore = {
            let mut slots = self.slots.lock().expect("limiter lock");
            slots
                .entry((environment.to_string(), name.to_string()))
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint)))
                .clone()
        };
        semaphore.try_acquire_owned().ok().map(Slot)
    }

    pub fn per_endpoint(&self) -> usize {
        self.per_endpoint
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
}
