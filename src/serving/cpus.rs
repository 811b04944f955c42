//! The CPUs custom algorithms run on (`serving.algorithm_cpus`), as a container's
//! `--cpuset-cpus` would give them.
//!
//! Why it matters: a Python algorithm serving with threads (ThreadingHTTPServer, a single
//! gunicorn worker with threads, uvicorn) hands the GIL from thread to thread on every request;
//! with its threads spread over several CPUs each hand-over wakes a thread on another CPU, which
//! a virtual machine charges dearly (bench/machine.py: 50-60 µs a round trip on the benchmark's
//! VM, against 3-8 µs on one CPU). Measured with the committed fixture algorithm on one CPU of two
//! (docs/BENCHMARKS.md, proxy overhead): called directly it answers 1.6× the calls at 55 % of the
//! CPU per call, and through us 2×, keeping all of its direct throughput.
//! Algorithms with worker processes of their own (gunicorn with several workers) want a CPU per
//! worker instead, so nothing is pinned unless configured.

use std::fmt;

/// A set of CPUs in Linux's list syntax (`cpuset(7)`): `"1"`, `"0-3"`, `"0,2,4-7"`; in a
/// settings file also a bare number.
#[derive(Clone, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    /// The numbers listed, ascending, each once.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// These CPUs, in any order.
    pub fn from_cpus(mut cpus: Vec<usize>) -> CpuList {
        cpus.sort_unstable();
        cpus.dedup();
        CpuList(cpus)
    }

    pub fn parse(text: &str) -> Result<CpuList, String> {
        let mut cpus = Vec::new();
        for part in text.split(',') {
            let number =
                |s: &str| s.trim().parse::<usize>().map_err(|_| format!("{s:?} in {text:?} is not a CPU number"));
            let (first, last) = match part.split_once('-') {
                Some((first, last)) => (number(first)?, number(last)?),
                None => (number(part)?, number(part)?),
            };
            if first > last {
                return Err(format!("the range {part:?} in {text:?} runs backwards"));
            }
            if last >= MAX_CPUS {
                return Err(format!("CPU {last} is beyond the {MAX_CPUS} a CPU set can hold"));
            }
            cpus.extend(first..=last);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }

    /// Checks that this process may run on every CPU listed (its own affinity, which a container
    /// or `taskset` may have narrowed).
    pub fn check_allowed(&self) -> Result<(), String> {
        let allowed = allowed()?;
        match self.0.iter().find(|cpu| !allowed.contains(cpu)) {
            Some(cpu) => {
                Err(format!("CPU {cpu} is not one this process may run on (it may run on {})", CpuList(allowed)))
            }
            None => Ok(()),
        }
    }
}

/// glibc's `CPU_SETSIZE`: the CPUs `sched_setaffinity`'s fixed-size set can name.
const MAX_CPUS: usize = 1024;

impl fmt::Display for CpuList {
    /// Back in list syntax, runs written as ranges.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &cpu in &self.0 {
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == cpu => *last = cpu,
                _ => runs.push((cpu, cpu)),
            }
        }
        let runs: Vec<String> =
            runs.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        f.write_str(&runs.join(","))
    }
}

impl fmt::Debug for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuList({self})")
    }
}

impl serde::Serialize for CpuList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CpuList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CpuList, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CpuList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CPU list such as \"1\", \"0-3\" or \"0,2,4-7\"")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<CpuList, E> {
                CpuList::parse(text).map_err(E::custom)
            }

            // `MLOPS_SERVING__ALGORITHM_CPUS=1` arrives as a number.
            fn visit_u64<E: serde::de::Error>(self, cpu: u64) -> Result<CpuList, E> {
                CpuList::parse(&cpu.to_string()).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, cpu: i64) -> Result<CpuList, E> {
                CpuList::parse(&cpu.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Runs `spawn` (which starts a process) on a thread of its own pinned to `cpus`, inside the
/// caller's tokio runtime: the process forked there inherits the affinity from its first
/// instruction, and so does every thread and process it starts. (Pinning the child once it runs
/// would miss what it started in between; `pre_exec` would need `unsafe`.)
pub fn spawn_on<T: Send>(cpus: &CpuList, spawn: impl FnOnce() -> std::io::Result<T> + Send) -> std::io::Result<T> {
    let runtime = tokio::runtime::Handle::try_current().ok();
    std::thread::scope(|scope| {
        let pinned = std::thread::Builder::new().name("algorithm-spawn".into()).spawn_scoped(scope, || {
            pin_this_thread(cpus)?;
            let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
            spawn()
        })?;
        pinned.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(target_os = "linux")]
pub(crate) fn allowed() -> Result<Vec<usize>, String> {
    use nix::sched::{CpuSet, sched_getaffinity};
    use nix::unistd::Pid;
    let set = sched_getaffinity(Pid::from_raw(0)).map_err(|e| format!("cannot read this process's CPUs: {e}"))?;
    Ok((0..CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false)).collect())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn allowed() -> Result<Vec<usize>, String> {
    Err("pinning algorithms to CPUs is supported on Linux only".into())
}

#[cfg(target_os = "linux")]
pub(crate) fn pin_this_thread(cpus: &CpuList) -> std::io::Result<()> {
    use nix::sched::{CpuSet, sched_setaffinity};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    for &cpu in cpus.cpus() {
        set.set(cpu).map_err(std::io::Error::from)?;
    }
    // Pid 0: the calling thread.
    sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pin_this_thread(_: &CpuList) -> std::io::Result<()> {
    Err(std::io::Error::other("pinning algorithms to CPUs is supported on Linux only"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_as_linux_writes_them_and_print_back() {
        let list = CpuList::parse("4-6, 0,2,5").unwrap();
        assert_eq!(list.cpus(), [0, 2, 4, 5, 6]);
        assert_eq!(list.to_string(), "0,2,4-6");
        assert_eq!(CpuList::parse("3").unwrap().cpus(), [3]);
    }

    #[test]
    fn bad_lists_are_refused_naming_the_part() {
        for (text, says) in [
            ("", "is not a CPU number"),
            ("1,,2", "is not a CPU number"),
            ("a", "\"a\""),
            ("3-1", "runs backwards"),
            ("-1", "is not a CPU number"),
            ("0-5000", "beyond the 1024"),
        ] {
            let error = CpuList::parse(text).unwrap_err();
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_spawned_on_a_cpu_list_runs_there_only() {
        let before = allowed().unwrap();
        let first = before[0];
        let list = CpuList::parse(&first.to_string()).unwrap();
        list.check_allowed().unwrap();
        let child = spawn_on(&list, || {
            std::process::Command::new("sh").args(["-c", "grep Cpus_allowed_list /proc/self/status"]).output()
        })
        .unwrap();
        let status = String::from_utf8(child.stdout).unwrap();
        assert_eq!(status.split_whitespace().last(), Some(first.to_string().as_str()), "{status}");
        // The caller's own thread is left as it was.
        assert_eq!(allowed().unwrap(), before);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cpus_this_process_may_not_use_are_refused() {
        let error = CpuList::parse("1023").unwrap().check_allowed().unwrap_err();
        assert!(error.contains("CPU 1023 is not one this process may run on"), "{error}");
    }
}
