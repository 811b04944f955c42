//! Who listens on a custom algorithm's port. The algorithm binds a port we pick (free when we
//! picked it) and name in its environment, as SageMaker's container contract has it; until the
//! algorithm holds that port, any other program may take it: an algorithm another replica on the
//! same host started in the same moment, a test's emulator, anything. Its answer to `GET /ping`
//! would make the endpoint ready and its invocations go to someone else's model. So an algorithm
//! counts as ready only when every listener a connection to `127.0.0.1:<port>` can reach belongs
//! to a process of the algorithm's process group.
//!
//! Read from `/proc` (the socket tables, then the file descriptors of the group's processes):
//! the kernel has no call that names a listener's owner to an unprivileged process.

/// Who holds the listeners on a port.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Holder {
    /// Nothing listens on it (yet).
    Nobody,
    /// Processes of the group, and only they.
    Group,
    /// Something else; says who, when this server can see it.
    Other(String),
}

#[cfg(target_os = "linux")]
pub(super) fn holder(port: u16, group: i32) -> Holder {
    linux::holder(port, group)
}

/// Elsewhere `/proc` is not there to ask; the port is taken on trust, as before this check.
#[cfg(not(target_os = "linux"))]
pub(super) fn holder(_port: u16, _group: i32) -> Holder {
    Holder::Group
}

#[cfg(target_os = "linux")]
mod linux {
    use super::Holder;
    use procfs::net::{TcpNetEntry, TcpState};
    use procfs::process::{FDTarget, Process};
    use std::collections::BTreeSet;
    use std::net::{IpAddr, Ipv4Addr};

    /// The inodes of the listening sockets a connection to `127.0.0.1:port` may reach: bound to
    /// that address or to any address, over IPv4 or dual-stack IPv6.
    fn reachable_listeners(port: u16) -> BTreeSet<u64> {
        let entries = procfs::net::tcp().unwrap_or_default().into_iter().chain(procfs::net::tcp6().unwrap_or_default());
        entries.filter(|e| reaches(e, port)).map(|e| e.inode).collect()
    }

    fn reaches(entry: &TcpNetEntry, port: u16) -> bool {
        let ip = match entry.local_address.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let address_reaches = match ip {
            IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST || v4.is_unspecified(),
            IpAddr::V6(v6) => v6.is_unspecified(),
        };
        entry.state == TcpState::Listen && entry.local_address.port() == port && address_reaches
    }

    /// The socket inodes among `wanted` that `process` has open.
    fn sockets_of(process: &Process, wanted: &BTreeSet<u64>) -> BTreeSet<u64> {
        let Ok(fds) = process.fd() else { return BTreeSet::new() };
        fds.flatten()
            .filter_map(|fd| match fd.target {
                FDTarget::Socket(inode) if wanted.contains(&inode) => Some(inode),
                _ => None,
            })
            .collect()
    }

    pub(super) fn holder(port: u16, group: i32) -> Holder {
        let listeners = reachable_listeners(port);
        if listeners.is_empty() {
            return Holder::Nobody;
        }
        let Ok(processes) = procfs::process::all_processes() else {
            return Holder::Other("a process this server cannot see (/proc is not readable)".into());
        };
        let processes: Vec<(Process, procfs::process::Stat)> =
            processes.flatten().filter_map(|p| p.stat().ok().map(|stat| (p, stat))).collect();
        let mut unclaimed = listeners.clone();
        for (process, _) in processes.iter().filter(|(_, stat)| stat.pgrp == group) {
            for inode in sockets_of(process, &listeners) {
                unclaimed.remove(&inode);
            }
        }
        if unclaimed.is_empty() {
            return Holder::Group;
        }
        // Only on this (rare) path are the other processes' descriptors read, to say who it is.
        let who = processes
            .iter()
            .filter(|(_, stat)| stat.pgrp != group)
            .find(|(process, _)| !sockets_of(process, &unclaimed).is_empty())
            .map(|(_, stat)| format!("process {} ({})", stat.pid, stat.comm))
            .unwrap_or_else(|| "a process this server cannot see".into());
        Holder::Other(who)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn own_group() -> i32 {
        nix::unistd::getpgrp().as_raw()
    }

    #[test]
    fn a_listener_of_the_group_is_the_groups() {
        for address in ["127.0.0.1:0", "0.0.0.0:0", "[::]:0"] {
            let listener = TcpListener::bind(address).unwrap();
            let port = listener.local_addr().unwrap().port();
            assert_eq!(holder(port, own_group()), Holder::Group, "{address}");
        }
    }

    #[test]
    fn a_listener_of_another_group_is_named() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let Holder::Other(who) = holder(port, own_group() + 1) else { panic!("not the group's") };
        assert!(who.starts_with(&format!("process {} (", std::process::id())), "{who}");
    }

    #[test]
    fn a_released_port_and_one_on_another_address_have_no_holder() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert_eq!(holder(port, own_group()), Holder::Nobody);
        // ::1 is not reached by a connection to 127.0.0.1.
        let listener = TcpListener::bind("[::1]:0").unwrap();
        assert_eq!(holder(listener.local_addr().unwrap().port(), own_group() + 1), Holder::Nobody);
    }
}
