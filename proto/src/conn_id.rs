//! Connection ids: `<node_id>-<boot>-<seq>`, unique across gateways and restarts.
//!
//! * `node_id` is the owning gateway's node id (letters, digits, `.`, `_`, `-`; 1 to 64 bytes),
//!   so a business process or another gateway can route a command for a connection to its
//!   gateway without a lookup;
//! * `boot` is the gateway's start time in microseconds since the Unix epoch, in lowercase hex,
//!   so ids stay unique when a gateway restarts with the same node id;
//! * `seq` is a per-boot counter starting at 1, in lowercase hex.
//!
//! The node id is everything before the last two `-`, so node ids may contain `-` themselves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest node id accepted.
pub const MAX_NODE_ID_LEN: usize = 64;

/// Why a node id or connection id is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnIdError {
    #[error("node id is empty; set one with --node-id (letters, digits, '.', '_' or '-')")]
    EmptyNodeId,
    #[error("node id is {0} bytes long; use at most {MAX_NODE_ID_LEN}")]
    NodeIdTooLong(usize),
    #[error("node id {0:?} contains {1:?}; use only letters, digits, '.', '_' or '-'")]
    BadNodeIdChar(String, char),
    #[error("{0:?} is not a wsgate connection id (expected <node_id>-<boot>-<seq>)")]
    Malformed(String),
}

/// Checks that `node_id` can be embedded in connection ids.
pub fn validate_node_id(node_id: &str) -> Result<(), ConnIdError> {
    if node_id.is_empty() {
        return Err(ConnIdError::EmptyNodeId);
    }
    if node_id.len() > MAX_NODE_ID_LEN {
        return Err(ConnIdError::NodeIdTooLong(node_id.len()));
    }
    if let Some(c) = node_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ConnIdError::BadNodeIdChar(node_id.to_owned(), c));
    }
    Ok(())
}

/// The parts of a connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnIdParts<'a> {
    pub node_id: &'a str,
    pub boot: u64,
    pub seq: u64,
}

/// Splits a connection id into its parts.
pub fn parse(conn_id: &str) -> Result<ConnIdParts<'_>, ConnIdError> {
    let malformed = || ConnIdError::Malformed(conn_id.to_owned());
    let mut parts = conn_id.rsplitn(3, '-');
    let seq = parts.next().ok_or_else(malformed)?;
    let boot = parts.next().ok_or_else(malformed)?;
    let node_id = parts.next().ok_or_else(malformed)?;
    validate_node_id(node_id).map_err(|_| malformed())?;
    let hex = |s: &str| {
        if s.is_empty()
            || s.len() > 16
            || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            None
        } else {
            u64::from_str_radix(s, 16).ok()
        }
    };
    Ok(ConnIdParts {
        node_id,
        boot: hex(boot).ok_or_else(malformed)?,
        seq: hex(seq).ok_or_else(malformed)?,
    })
}

/// The node id of the gateway that owns `conn_id`, if it is a well-formed connection id.
pub fn node_of(conn_id: &str) -> Option<&str> {
    parse(conn_id).ok().map(|p| p.node_id)
}

/// Issues connection ids for one gateway boot.
#[derive(Debug)]
pub struct ConnIdGenerator {
    prefix: String,
    seq: AtomicU64,
}

impl ConnIdGenerator {
    /// A generator for `node_id` whose boot part is the current time.
    pub fn new(node_id: &str) -> Result<Self, ConnIdError> {
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Self::with_boot(node_id, boot)
    }

    /// A generator with an explicit boot value (tests, replays).
    pub fn with_boot(node_id: &str, boot: u64) -> Result<Self, ConnIdError> {
        validate_node_id(node_id)?;
        Ok(Self {
            prefix: format!("{node_id}-{boot:x}-"),
            seq: AtomicU64::new(1),
        })
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        use std::fmt::Write;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.prefix.len() + 8);
        id.push_str(&self.prefix);
        let _ = write!(id, "{seq:x}");
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_back() {
        let g = ConnIdGenerator::with_boot("gw-eu.1", 0x5f2c).expect("valid");
        let a = g.next_id();
        let b = g.next_id();
        assert_eq!(a, "gw-eu.1-5f2c-1");
        assert_ne!(a, b);
        let p = parse(&b).expect("parses");
        assert_eq!(
            p,
            ConnIdParts {
                node_id: "gw-eu.1",
                boot: 0x5f2c,
                seq: 2
            }
        );
        assert_eq!(node_of(&a), Some("gw-eu.1"));
    }

    #[test]
    fn restarts_give_new_ids() {
        let a = ConnIdGenerator::with_boot("n", 1).expect("valid").next_id();
        let b = ConnIdGenerator::with_boot("n", 2).expect("valid").next_id();
        assert_ne!(a, b);
    }

    #[test]
    fn bad_ids_and_node_ids() {
        for bad in [
            "",
            "x",
            "a-b",
            "-1-2",
            "n-1-",
            "n-xyz-1",
            "n-1-G",
            "n p-1-2",
            "n-11111111111111111-1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(validate_node_id(""), Err(ConnIdError::EmptyNodeId));
        assert!(matches!(
            validate_node_id("a/b"),
            Err(ConnIdError::BadNodeIdChar(_, '/'))
        ));
        assert!(matches!(
            validate_node_id(&"a".repeat(65)),
            Err(ConnIdError::NodeIdTooLong(65))
        ));
    }
}
