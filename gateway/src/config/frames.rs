//! The arithmetic that keeps every worker-link frame the gateway writes within
//! `--max-frame-bytes`: the largest event and the largest answer the limits allow, computed
//! from the settings, checked at start-up.
//!
//! A frame the gateway cannot send would cost a business process its link, so it must not be
//! possible to build one. Every part of every event and answer is bounded by a setting or a
//! constant: a connection id (at most 98 bytes), user ids and topic names (128), the session
//! (64 keys, 16 KiB), the handshake's head (16 KiB, from which path, query and headers come),
//! a client message (`--max-message-bytes`), the topics per connection and what one command may
//! name. Protobuf adds at most a few bytes per field ([`FIELD`], [`ENTRY`]). The sums below are
//! upper bounds; [`check`] refuses a configuration in which one of them exceeds the frame
//! limit, naming the setting to change. Two answers are cut to fit the frame instead:
//! `QueryConnInfo` (the rest is named in `more_conn_ids`), so only one connection's details
//! must fit, and `QueryList` pages (a shorter page, its cursor where it stopped).

use crate::config::Config;
use crate::connections::state::{MAX_NAME_BYTES, MAX_SESSION_BYTES, MAX_SESSION_KEYS};
use crate::websocket::MAX_HEAD_BYTES;

/// A connection id: `<node id, ≤ 64>-<boot, ≤ 16 hex>-<seq, ≤ 16 hex>`.
pub(crate) const MAX_CONN_ID_BYTES: usize = wsgate_proto::conn_id::MAX_NODE_ID_LEN + 34;
/// What protobuf adds to one string or bytes field: a tag of up to 2 bytes and a length of up
/// to 5.
pub(crate) const FIELD: usize = 7;
/// What it adds to one map entry: the entry's tag and length, and the key's and value's.
const ENTRY: usize = 3 * FIELD;
/// The envelope around a body: the request id and, on a link with acks, the event number (up
/// to 11 bytes each), the redelivered flag (2), the body's tag and length.
const ENVELOPE: usize = 11 + 11 + 2 + FIELD;
/// Numbers, enums and short fixed strings (an address, a close reason, a message) of one
/// event or answer, generously.
const SMALL_FIELDS: usize = 1024;

fn strings(count: usize, each: usize) -> usize {
    count.saturating_mul(each + FIELD)
}

/// The largest session: 16 KiB of keys and values in at most 64 entries.
fn session() -> usize {
    MAX_SESSION_BYTES + MAX_SESSION_KEYS * ENTRY
}

/// What a connection holds: its user, topics and session.
fn attached(config: &Config) -> usize {
    strings(1, MAX_NAME_BYTES) + strings(config.max_topics_per_conn, MAX_NAME_BYTES) + session()
}

/// Strings cut from the handshake's head (path, query, headers, forwarded addresses) may
/// appear twice (a forwarded header is also in the header map), each with its overhead.
fn from_head() -> usize {
    2 * MAX_HEAD_BYTES + 64 * ENTRY
}

/// The largest frame of each kind the gateway may write, and the settings that size it.
pub(crate) fn largest(config: &Config) -> Vec<(&'static str, &'static str, usize)> {
    let conn_id = strings(1, MAX_CONN_ID_BYTES);
    let base = ENVELOPE + SMALL_FIELDS + conn_id;
    let ids = |n: usize| strings(n, MAX_CONN_ID_BYTES);
    let names = |n: usize| strings(n, MAX_NAME_BYTES);
    let conn_ids = config.max_conn_ids_per_command;
    let user_ids = config.max_user_ids_per_command;
    vec![
        (
            "ConnMessage",
            "max-message-bytes or max-topics-per-conn",
            base + FIELD + config.max_message_bytes + attached(config),
        ),
        (
            "ConnOpen",
            "max-topics-per-conn",
            base + from_head() + attached(config),
        ),
        ("ConnClose", "max-topics-per-conn", base + attached(config)),
        ("Authorize", "(the 16 KiB request head)", base + from_head()),
        (
            // Unknown and limited connection ids, unknown user ids.
            "a command's Result",
            "max-conn-ids-per-command or max-user-ids-per-command",
            base + 2 * ids(conn_ids) + names(user_ids),
        ),
        (
            "an OnlineReply",
            "max-conn-ids-per-command or max-user-ids-per-command",
            base + ids(conn_ids) + names(user_ids),
        ),
        (
            // One connection's details, with every id asked about named beside it.
            "a ConnInfoReply",
            "max-topics-per-conn or max-conn-ids-per-command",
            base + 2 * ids(conn_ids) + FIELD + attached(config) + from_head(),
        ),
        (
            "a CountsReply",
            "max-topics-per-command",
            base + strings(config.max_topics_per_command, MAX_NAME_BYTES + 2 * 11),
        ),
    ]
}

/// Fails with the first kind of frame the settings would let outgrow `--max-frame-bytes`.
pub(crate) fn check(config: &Config) -> Result<(), String> {
    for (what, setting, bytes) in largest(config) {
        if bytes > config.max_frame_bytes {
            return Err(format!(
                "{} bytes are too few: with these limits {what} can take {bytes} bytes; raise \
                 max-frame-bytes to at least {bytes}, or lower {setting}",
                config.max_frame_bytes
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use wsgate_proto::v1::{ConnClose, ConnMessage, Envelope, Payload, envelope::Body};

    #[test]
    fn the_defaults_fit_with_room_to_spare() {
        let config = Config::default();
        check(&config).expect("the defaults fit");
        let biggest = largest(&config).into_iter().map(|(_, _, b)| b).max();
        assert!(
            biggest.is_some_and(|b| b < config.max_frame_bytes / 2),
            "{biggest:?}"
        );
    }

    #[test]
    fn too_small_a_frame_names_what_to_change() {
        let config = Config {
            max_frame_bytes: 100_000,
            ..Config::default()
        };
        let err = check(&config).expect_err("too small");
        assert!(
            err.contains("max-frame-bytes") && err.contains("max-message-bytes"),
            "{err}"
        );
        let config = Config {
            max_frame_bytes: 2 * 1024 * 1024,
            max_message_bytes: 1024,
            max_topics_per_conn: 100_000,
            ..Config::default()
        };
        let err = check(&config).expect_err("too many topics");
        assert!(err.contains("max-topics-per-conn"), "{err}");
    }

    /// The bounds hold for real encodings: the fullest events the limits allow, encoded,
    /// stay within what `largest` says.
    #[test]
    fn the_bounds_cover_real_frames() {
        let config = Config {
            max_topics_per_conn: 200,
            max_message_bytes: 4096,
            ..Config::default()
        };
        let bound = |what: &str| {
            largest(&config)
                .into_iter()
                .find(|(w, _, _)| *w == what)
                .map(|(_, _, b)| b)
                .expect("a bound")
        };
        let conn_id = format!("{}-{}-{}", "n".repeat(64), "f".repeat(16), "f".repeat(16));
        assert_eq!(conn_id.len(), MAX_CONN_ID_BYTES);
        let session: std::collections::HashMap<String, String> = (0..MAX_SESSION_KEYS)
            .map(|i| {
                let key = format!("{i:0>128}");
                (key, "v".repeat(MAX_SESSION_BYTES / MAX_SESSION_KEYS - 128))
            })
            .collect();
        let topics: Vec<String> = (0..200).map(|i| format!("{i:x>128}")).collect();
        let close = Envelope {
            request_id: u64::MAX,
            body: Some(Body::ConnClose(ConnClose {
                conn_id: conn_id.clone(),
                code: 4999,
                reason: "r".repeat(123),
                closed_by: 3,
                user_id: "u".repeat(128),
                session: session.clone(),
                topics,
            })),
            ..Default::default()
        };
        assert!(
            close.encoded_len() <= bound("ConnClose"),
            "{}",
            close.encoded_len()
        );
        let message = Envelope {
            request_id: u64::MAX,
            body: Some(Body::ConnMessage(ConnMessage {
                conn_id,
                payload: Some(Payload::binary(vec![0u8; 4096])),
                user_id: "u".repeat(128),
                session,
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(
            message.encoded_len() <= bound("ConnMessage"),
            "{}",
            message.encoded_len()
        );
    }
}
