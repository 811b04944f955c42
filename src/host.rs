//! What names this process among the replicas: job leases and the endpoint logs each replica
//! keeps in the database say which process they come from.

/// The machine's (or container's) name: `HOSTNAME`, else `/etc/hostname`, else `host`.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// A name for this process, unique among replicas and restarts: the host name and a random part.
pub fn process_name() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", hostname(), &id[..12])
}
