//! How many connections one user may hold on this gateway (`--max-connections-per-user`) and
//! what happens past it (`--user-connection-policy`).
//!
//! The count is checked and the user bound in one step under the user index's entry lock
//! ([`Indexes::bind`](crate::connections::state::Indexes::bind)), so concurrent handshakes and `BindUser`
//! commands cannot together go past it. The limit is per gateway: in a cluster each gateway
//! counts its own connections.

/// What happens when a user would go past the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UserConnectionPolicy {
    /// The new connection is refused: a handshake gets HTTP 429, `BindUser` LIMIT_EXCEEDED.
    RefuseNew,
    /// The new connection is let in and the user's oldest one is closed with 4004.
    CloseOldest,
}

/// The limit as [`Indexes::bind`](crate::connections::state::Indexes::bind) applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLimit {
    /// Most connections per user; `usize::MAX` for none.
    pub max: usize,
    pub policy: UserConnectionPolicy,
}

impl UserLimit {
    /// No limit.
    #[cfg(test)]
    pub const NONE: UserLimit = UserLimit {
        max: usize::MAX,
        policy: UserConnectionPolicy::RefuseNew,
    };

    /// From `--max-connections-per-user` (0: none) and the policy.
    pub fn new(max: usize, policy: UserConnectionPolicy) -> Self {
        Self {
            max: if max == 0 { usize::MAX } else { max },
            policy,
        }
    }
}

/// The `n` oldest of a user's connections: on one gateway a connection id's sequence number
/// grows with every connection, so the smallest are the oldest. Ids of another boot (which
/// cannot be live here) or not parseable sort first.
pub fn oldest(conn_ids: &mut [String], n: usize) -> Vec<String> {
    let seq = |id: &String| {
        wsgate_proto::conn_id::parse(id)
            .map(|p| (p.boot, p.seq))
            .unwrap_or((0, 0))
    };
    conn_ids.sort_by_key(seq);
    conn_ids.iter().take(n).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_have_the_smallest_sequence_numbers() {
        let mut ids: Vec<String> = ["gw-1a-10", "gw-1a-2", "gw-1a-ff", "gw-1a-3"]
            .map(String::from)
            .to_vec();
        assert_eq!(oldest(&mut ids, 2), ["gw-1a-2", "gw-1a-3"]);
        assert_eq!(
            UserLimit::new(0, UserConnectionPolicy::RefuseNew).max,
            usize::MAX
        );
    }
}
