//! The open-file limit and the connection ceiling it implies.
//!
//! Every client is a file descriptor, so the process's `RLIMIT_NOFILE` caps the number of
//! connections one gateway can hold. At start-up the soft limit is raised to the hard one
//! (what `ulimit -Hn` or systemd's `LimitNOFILE` allow) and both figures are logged, so an
//! operator sees the ceiling before the clients find it.

/// Descriptors kept for everything that is not a client: listeners, worker links, API
/// connections, the runtime's own.
pub(crate) const RESERVED: u64 = 100;

/// The open-file limit in force after trying to raise it, or `None` where it cannot be read.
pub(crate) fn raise() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            None
        }
    }
}

/// Clients this limit leaves room for.
pub(crate) fn ceiling(limit: u64) -> u64 {
    limit.saturating_sub(RESERVED)
}
