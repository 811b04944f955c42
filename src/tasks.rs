//! What several modules need around spawned work: a task that ends with its owner, work
//! repeated at an interval, the message of a panic caught from work run elsewhere, and a lock
//! that outlives a panic.

/// A spawned task aborted when this is dropped, so background work ends with whatever owns it.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` every `interval`, forever (spawn it and abort it to stop); a failure is logged
/// as `failed` and the work tried again at the next interval.
pub async fn repeat<F, Fut, T, E>(interval: std::time::Duration, failed: &'static str, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    loop {
        tokio::time::sleep(interval).await;
        if let Err(e) = work().await {
            tracing::warn!(error = %e, "{failed}; trying again at the next interval");
        }
    }
}

/// The text a caught panic carries (`panic!` gives a `&str` or a `String`).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Locks `mutex` even if a thread panicked while holding it. Only for data that every holder
/// leaves whole at each step (callers say why theirs is), so a panic elsewhere cannot make it
/// unusable for the rest of the process.
pub fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
