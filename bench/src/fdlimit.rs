//! The open-file limit: raised to the hard limit at start, because every client is a socket.
//!
//! Children (the targets) inherit the raised limit. The clients the bench can hold is the
//! limit minus a margin for everything else it opens (HTTP connections, the SDK link, pipes,
//! the runtime's own descriptors).

/// Descriptors kept back for everything that is not a client socket.
const MARGIN: u64 = 100;

/// Raises the soft open-file limit as far as the hard limit allows; the limit now in force.
pub fn raise() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!(
                "wsgate-bench: cannot raise the open-file limit ({e}); keeping the current one"
            );
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Client sockets one bench process can hold under `limit`.
pub fn max_clients(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(MARGIN)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn leaves_a_margin() {
        assert_eq!(super::max_clients(20_000), 19_900);
        assert_eq!(super::max_clients(50), 0);
    }
}
