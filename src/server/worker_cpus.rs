//! The runtime's worker threads, one per CPU, each kept on its own CPU (`serving.pin_workers`).
//!
//! Why: left free, the kernel's wake-up placement sometimes stacks both workers of a 2-CPU
//! machine (and the client threads they wake) on one CPU while the other idles; each worker
//! then runs about a millisecond at a stretch, so the connections it holds, and whatever waits
//! behind it, wait that long. `perf sched` of a loaded server (8 connections, the benchmark's
//! wrk) showed a wrk thread ready for 6.5 ms on CPU 0 behind both workers while CPU 1 was idle
//! half that time. Measured (one process, cells alternating unpinned and pinned): invocation
//! p99 3.4-4.0 ms unpinned against 0.9-1.7 ms pinned at 8 connections, 5.4-5.6 against
//! 2.4-3.4 ms at 32.
//!
//! Only when the process owns exactly as many CPUs as there are workers (a dedicated machine,
//! `taskset`, `docker --cpuset-cpus`, a Kubernetes pod with exclusive CPUs): where a CPU quota
//! limits a process that may run on more CPUs than it has workers, those CPUs are shared with
//! others and the kernel must stay free to move the workers off a busy one. Nor when custom
//! algorithms have CPUs of their own (`serving.algorithm_cpus`): the workers would have to share
//! theirs.
//!
//! Each worker pins itself the first time it parks once a plan is set ([`on_worker_park`],
//! tokio's `on_thread_park`, which only workers call). A thread or process inherits the CPUs
//! of the thread that starts it, so everything a pinned worker starts is set free again: the
//! blocking pool's threads as they start (tokio's `on_thread_start`), processes through
//! [`spawn_child`], threads of our own through [`free_this_thread`]; rayon's pool is built
//! before any worker is pinned.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::serving::cpus::{self, CpuList};

struct Plan {
    /// The CPU of each worker, in the order of their first park.
    workers: Vec<usize>,
    /// Every CPU the process may run on: what everything else runs on.
    all: CpuList,
}

static PLAN: OnceLock<Plan> = OnceLock::new();
/// Workers that took a CPU of the plan.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this worker has looked at the plan (pinned or not): it does so once.
    static SETTLED: Cell<bool> = const { Cell::new(false) };
}

/// One CPU per worker, or `None` when workers should stay free: unless the process may run on
/// exactly `workers` CPUs and no algorithm has CPUs of its own.
pub fn plan(workers: usize, allowed: &[usize], algorithm_cpus: Option<&CpuList>) -> Option<Vec<usize>> {
    (workers > 0 && allowed.len() == workers && algorithm_cpus.is_none()).then(|| allowed.to_vec())
}

/// Pins the current runtime's workers one per CPU, where [`plan`] says so; returns the CPUs.
/// Called once, by the server, before it serves, on a thread that is not a worker.
pub fn pin_workers(enabled: bool, algorithm_cpus: Option<&CpuList>) -> Option<Vec<usize>> {
    if !enabled {
        return None;
    }
    let workers = tokio::runtime::Handle::try_current().ok()?.metrics().num_workers();
    let allowed = cpus::allowed().ok()?;
    let cpus = plan(workers, &allowed, algorithm_cpus)?;
    // rayon starts its threads when its pool is built: here, from this free thread (batch
    // scoring, the analyzer and explanations use it).
    let _ = rayon::ThreadPoolBuilder::new().build_global();
    set(Plan { workers: cpus.clone(), all: CpuList::from_cpus(allowed) })?;
    Some(cpus)
}

fn set(plan: Plan) -> Option<()> {
    PLAN.set(plan).ok()
}

/// tokio's `on_thread_park` hook: a worker about to park takes the next CPU of the plan, once.
/// Before a plan is set (or without one) it costs a thread-local read and an atomic load.
pub fn on_worker_park() {
    if SETTLED.get() {
        return;
    }
    let Some(plan) = PLAN.get() else { return };
    SETTLED.set(true);
    let Some(&cpu) = plan.workers.get(TAKEN.fetch_add(1, Ordering::Relaxed)) else { return };
    if let Err(error) = cpus::pin_this_thread(&CpuList::from_cpus(vec![cpu])) {
        tracing::warn!(cpu, %error, "a runtime worker could not be kept on its CPU");
    }
}

/// Lets the calling thread run on every CPU of the process again, if workers are pinned. Also
/// tokio's `on_thread_start` hook: a blocking-pool thread a pinned worker starts is set free.
pub fn free_this_thread() {
    if let Some(plan) = PLAN.get()
        && let Err(error) = cpus::pin_this_thread(&plan.all)
    {
        tracing::warn!(%error, "a thread started by a pinned worker could not be set free");
    }
}

/// Runs `spawn` (which starts a process) so that the process may run on every CPU of ours,
/// not only its caller's: from a thread of its own when workers are pinned.
pub fn spawn_child<T: Send>(spawn: impl FnOnce() -> std::io::Result<T> + Send) -> std::io::Result<T> {
    match PLAN.get() {
        Some(plan) => cpus::spawn_on(&plan.all, spawn),
        None => spawn(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_pinned_only_when_the_process_owns_one_cpu_each() {
        assert_eq!(plan(2, &[0, 1], None), Some(vec![0, 1]));
        assert_eq!(plan(2, &[4, 6], None), Some(vec![4, 6]));
        assert_eq!(plan(1, &[3], None), Some(vec![3]));
        // A quota gave fewer workers than CPUs the process may run on: shared CPUs, stay free.
        assert_eq!(plan(2, &[0, 1, 2, 3], None), None);
        // More workers than CPUs (TOKIO_WORKER_THREADS): they share CPUs anyway.
        assert_eq!(plan(4, &[0, 1], None), None);
        // Algorithms have CPUs of their own among these.
        assert_eq!(plan(2, &[0, 1], Some(&CpuList::parse("1").unwrap())), None);
        assert_eq!(plan(0, &[], None), None);
    }

    /// A runtime with the hooks: each worker ends up on the CPU the plan gives it; a thread or
    /// process a pinned worker starts runs on every CPU. The plan is this test's alone (the hook reads
    /// the process's one plan; no other test sets it).
    #[cfg(target_os = "linux")]
    #[test]
    fn each_worker_takes_a_cpu_of_the_plan_and_what_it_starts_runs_anywhere() {
        fn cpus_of_this_thread() -> Vec<usize> {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
            CpuList::parse(line.split_whitespace().last().unwrap()).unwrap().cpus().to_vec()
        }
        let allowed = cpus::allowed().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .on_thread_park(on_worker_park)
            .on_thread_start(free_this_thread)
            .enable_all()
            .build()
            .unwrap();
        // The same CPU for both workers: any machine has one this process may use.
        let first = allowed[0];
        set(Plan { workers: vec![first, first], all: CpuList::from_cpus(allowed.clone()) }).unwrap();
        runtime.block_on(async {
            // Each worker parks while idle, so after a moment both have settled. Two tasks
            // that wait for each other (blocking their threads) run on both workers at once.
            let mut seen = Vec::new();
            for _ in 0..200 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let both = std::sync::Arc::new(std::sync::Barrier::new(2));
                let tasks: Vec<_> = (0..2)
                    .map(|_| {
                        let both = both.clone();
                        tokio::spawn(async move {
                            both.wait();
                            (std::thread::current().id(), cpus_of_this_thread())
                        })
                    })
                    .collect();
                seen.clear();
                for task in tasks {
                    seen.push(task.await.unwrap());
                }
                if seen.iter().all(|(_, cpus)| cpus == &[first]) {
                    break;
                }
            }
            assert_ne!(seen[0].0, seen[1].0, "the two tasks ran on two workers");
            assert!(seen.iter().all(|(_, cpus)| cpus == &[first]), "{seen:?}");
            // From a pinned worker: a blocking thread it starts, and a process, run anywhere.
            let (worker, blocking, child) = tokio::spawn(async {
                let blocking = tokio::task::spawn_blocking(cpus_of_this_thread).await.unwrap();
                let child = spawn_child(|| {
                    std::process::Command::new("sh").args(["-c", "grep Cpus_allowed_list /proc/self/status"]).output()
                })
                .unwrap();
                (cpus_of_this_thread(), blocking, String::from_utf8(child.stdout).unwrap())
            })
            .await
            .unwrap();
            assert_eq!(worker, [first]);
            assert_eq!(blocking, allowed);
            let child = CpuList::parse(child.split_whitespace().last().unwrap()).unwrap();
            assert_eq!(child.cpus(), allowed);
        });
        assert_eq!(TAKEN.load(Ordering::Relaxed), 2);
    }
}
