//! The rules a command or query must follow whatever the state of the gateway it goes to: the
//! one place they are written, so every door applies the same ones. The gateway checks every
//! body with [`command`] before it runs it; the SDK's cluster client checks a body before it
//! routes it, so a command that no gateway would receive (every connection id it names is of
//! an unknown node) is refused exactly as a gateway would refuse it, and the HTTP and gRPC
//! APIs, which go through that client, follow the same rules.
//!
//! Two kinds of refusal, both a [`Refused`]: [`ErrorCode::LimitExceeded`] when the body names
//! more than the gateway's per-command limits allow ([`Limits`], sent in `RegisterOk`), checked
//! first, and [`ErrorCode::BadRequest`] when a field is missing or invalid. Either way nothing
//! is done. What depends on the state (is a connection connected, would a session grow past
//! its limit, would a connection pass its topic limit) is the gateway's to answer.
//!
//! A command that would do nothing is refused rather than answered with an empty success, so
//! a caller's bug (an empty list built from a failed lookup) shows: a `Multicast` without
//! connection ids, a `ForceOffline`, `Subscribe` or `Unsubscribe` naming no connection, a
//! `SendToUsers`, `Publish` or `DeleteTopics` without a user or topic. A query of nothing
//! (`QueryOnline`, `QueryConnInfo` or `QueryCounts` with empty lists) answers nothing: asking
//! is harmless. An enum field with a value this version does not know (`Payload.kind` 7,
//! `QueryList.kind` 99) is refused, never guessed.

use std::fmt;

use crate::v1::{self, ErrorCode, Payload, PayloadKind, envelope::Body};

/// Longest user id, topic name or session key, in characters (Unicode scalar values, what
/// JSON Schema's `maxLength` counts).
pub const MAX_NAME_CHARS: usize = 128;
/// Longest `ForceOffline.reason`, in characters. The client receives its first 123 bytes, all
/// a WebSocket close frame holds beside the code.
pub const MAX_REASON_CHARS: usize = 123;
/// Largest `QueryList.limit` (0 means 1000).
pub const MAX_LIST_PAGE: u32 = 10_000;

/// Why a command is refused, with the protocol's code for it: what every door (worker link,
/// SDK, HTTP, gRPC) answers, each in its own words for the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: ErrorCode,
    pub message: String,
}

impl Refused {
    /// A field is missing or invalid.
    pub fn bad(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }

    /// The command names more than a limit allows, or would take something past one.
    pub fn limit(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::LimitExceeded,
            message: message.into(),
        }
    }

    /// The same refusal with where it happened in front, for example the target a
    /// per-target check was about.
    pub fn within(self, context: &str) -> Self {
        Self {
            code: self.code,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str_name())
    }
}

impl std::error::Error for Refused {}

/// What one command may name (0: not limited, for a peer that did not say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub topics: usize,
    pub conn_ids: usize,
    pub user_ids: usize,
}

impl Limits {
    /// The limits a gateway announced in `RegisterOk`.
    pub fn of(limits: &v1::Limits) -> Self {
        Self {
            topics: limits.max_topics_per_command as usize,
            conn_ids: limits.max_conn_ids_per_command as usize,
            user_ids: limits.max_user_ids_per_command as usize,
        }
    }

    /// The stricter of two sets of limits (a body bound for several gateways must suit each).
    pub fn min(self, other: Self) -> Self {
        let min = |a: usize, b: usize| match (a, b) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        Self {
            topics: min(self.topics, other.topics),
            conn_ids: min(self.conn_ids, other.conn_ids),
            user_ids: min(self.user_ids, other.user_ids),
        }
    }
}

/// The gateway setting behind each limit, for messages.
const TOPICS_FLAG: &str = "max-topics-per-command";
const CONN_IDS_FLAG: &str = "max-conn-ids-per-command";
const USER_IDS_FLAG: &str = "max-user-ids-per-command";

fn at_most(field: &str, what: &str, n: usize, limit: usize, flag: &str) -> Result<(), Refused> {
    if limit == 0 || n <= limit {
        return Ok(());
    }
    Err(Refused::limit(format!(
        "{field} names {n} {what}; one command may name at most {limit} (the gateway's --{flag}): split it into several commands"
    )))
}

/// Checks a user id or topic name: 1 to [`MAX_NAME_CHARS`] characters.
pub fn check_name(what: &str, name: &str) -> Result<(), Refused> {
    if name.is_empty() {
        return Err(Refused::bad(format!("{what} is empty; give it a name")));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(Refused::bad(format!(
            "{what} {:?}… is {chars} characters; the limit is {MAX_NAME_CHARS}",
            name.chars().take(16).collect::<String>(),
        )));
    }
    Ok(())
}

fn names(what: &str, names: &[String]) -> Result<(), Refused> {
    names.iter().try_for_each(|n| check_name(what, n))
}

/// A list that must name something: `field` is where it is, `what` one of its items.
fn non_empty_names(field: &str, what: &str, list: &[String]) -> Result<(), Refused> {
    if list.is_empty() {
        return Err(Refused::bad(format!(
            "{field} is empty; name at least one {what}"
        )));
    }
    names(what, list)
}

/// A field naming one connection. An empty one is a bad request (the field is missing), an
/// id that names no connected connection is the gateway's `UNKNOWN_CONNECTION`.
fn conn_id(field: &str, id: &str) -> Result<(), Refused> {
    if id.is_empty() {
        return Err(Refused::bad(format!(
            "{field} is empty; set it to a connection id from ConnOpen"
        )));
    }
    Ok(())
}

/// A list of connection ids that must name at least one.
fn non_empty_conn_ids(field: &str, ids: &[String]) -> Result<(), Refused> {
    if ids.is_empty() {
        return Err(Refused::bad(format!(
            "{field} is empty; name at least one connection id"
        )));
    }
    Ok(())
}

/// A command aimed at connections by id, by user or both, which must name some.
fn some_connections(
    command: &str,
    conn_ids: &[String],
    user_ids: &[String],
) -> Result<(), Refused> {
    if conn_ids.is_empty() && user_ids.is_empty() {
        return Err(Refused::bad(format!(
            "{command} names no connection: set conn_ids, user_ids or both"
        )));
    }
    Ok(())
}

/// A message to send: present, of a known kind, and valid UTF-8 when it is text.
pub fn payload(payload: Option<&Payload>, field: &str) -> Result<(), Refused> {
    let payload = payload.ok_or_else(|| {
        Refused::bad(format!("{field} is missing; set it to the message to send"))
    })?;
    match PayloadKind::try_from(payload.kind) {
        Ok(PayloadKind::Text) => std::str::from_utf8(&payload.data).map(|_| ()).map_err(|_| {
            Refused::bad(format!("{field} is marked text but is not valid UTF-8; send it as binary or fix its encoding"))
        }),
        Ok(PayloadKind::Binary) => Ok(()),
        Err(_) => Err(Refused::bad(format!(
            "{field}.kind {} is not a PayloadKind; use PAYLOAD_KIND_TEXT (0) or PAYLOAD_KIND_BINARY (1)",
            payload.kind
        ))),
    }
}

/// A `ForceOffline` close code and reason: the code to send (0 means 1000). The code is an
/// `i64` so a door whose number is wider than the protocol's `uint32` (JSON) is checked by
/// the same rule, with the same message, before it is narrowed.
pub fn close(code: i64, reason: &str) -> Result<u16, Refused> {
    let code = match code {
        0 | 1000 => 1000,
        c @ 3000..=4999 => c as u16,
        other => {
            return Err(Refused::bad(format!(
                "ForceOffline.code {other} is not a WebSocket close code a business process may send; use 1000 or an application code from 3000 to 4999"
            )));
        }
    };
    let chars = reason.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(Refused::bad(format!(
            "ForceOffline.reason is {chars} characters; a close reason is at most {MAX_REASON_CHARS}"
        )));
    }
    Ok(code)
}

/// Checks a `ForceOffline` (as [`command`] does) and gives the close code to send: for a door
/// that sends one request as several commands (by connection and by user), so the rules apply
/// to the request as received.
pub fn force_offline(c: &v1::ForceOffline, limits: &Limits) -> Result<u16, Refused> {
    let (conns, users) = (c.conn_ids.len(), c.user_ids.len());
    let field = "ForceOffline.conn_ids";
    at_most(
        field,
        "connection ids",
        conns,
        limits.conn_ids,
        CONN_IDS_FLAG,
    )?;
    let field = "ForceOffline.user_ids";
    at_most(field, "user ids", users, limits.user_ids, USER_IDS_FLAG)?;
    some_connections("ForceOffline", &c.conn_ids, &c.user_ids)?;
    let code = close(i64::from(c.code), &c.reason)?;
    if let Some(last) = &c.last_message {
        payload(Some(last), "ForceOffline.last_message")?;
    }
    names("user id", &c.user_ids)?;
    Ok(code)
}

/// Checks a command or query body. Bodies that are neither pass: they are not commands.
/// Longest command id (`Envelope.command_id`, HTTP `Idempotency-Key`), in bytes.
pub const MAX_COMMAND_ID_BYTES: usize = 128;

/// A command id: 1 to [`MAX_COMMAND_ID_BYTES`] bytes of printable ASCII (space to `~`), so it
/// fits an HTTP header and a log line as it is. `field` names it in the refusal.
pub fn command_id(field: &str, id: &str) -> Result<(), Refused> {
    if id.is_empty() || id.len() > MAX_COMMAND_ID_BYTES {
        return Err(Refused::bad(format!(
            "{field} must be 1 to {MAX_COMMAND_ID_BYTES} bytes long, got {}; use a UUID or another id unique per command",
            id.len()
        )));
    }
    if let Some(c) = id.bytes().find(|b| !(b' '..=b'~').contains(b)) {
        return Err(Refused::bad(format!(
            "{field} may hold only printable ASCII (space to '~'), found byte 0x{c:02x}; use a UUID or another id unique per command"
        )));
    }
    Ok(())
}

pub fn command(body: &Body, limits: &Limits) -> Result<(), Refused> {
    let topics = |field: &str, list: &[String]| {
        at_most(field, "topics", list.len(), limits.topics, TOPICS_FLAG)
    };
    let conn_ids = |field: &str, list: &[String]| {
        at_most(
            field,
            "connection ids",
            list.len(),
            limits.conn_ids,
            CONN_IDS_FLAG,
        )
    };
    let user_ids = |field: &str, list: &[String]| {
        at_most(
            field,
            "user ids",
            list.len(),
            limits.user_ids,
            USER_IDS_FLAG,
        )
    };
    match body {
        Body::SingleCast(c) => {
            conn_id("SingleCast.conn_id", &c.conn_id)?;
            payload(c.payload.as_ref(), "SingleCast.payload")?;
        }
        Body::Multicast(c) => {
            conn_ids("Multicast.conn_ids", &c.conn_ids)?;
            non_empty_conn_ids("Multicast.conn_ids", &c.conn_ids)?;
            payload(c.payload.as_ref(), "Multicast.payload")?;
        }
        Body::Broadcast(c) => {
            conn_ids("Broadcast.exclude", &c.exclude)?;
            payload(c.payload.as_ref(), "Broadcast.payload")?;
        }
        Body::ForceOffline(c) => {
            force_offline(c, limits)?;
        }
        Body::BindUser(c) => {
            conn_id("BindUser.conn_id", &c.conn_id)?;
            check_name("BindUser.user_id", &c.user_id)?;
        }
        Body::UnbindUser(c) => conn_id("UnbindUser.conn_id", &c.conn_id)?,
        Body::SendToUsers(c) => {
            user_ids("SendToUsers.user_ids", &c.user_ids)?;
            conn_ids("SendToUsers.exclude_conn_ids", &c.exclude_conn_ids)?;
            non_empty_names("SendToUsers.user_ids", "user id", &c.user_ids)?;
            payload(c.payload.as_ref(), "SendToUsers.payload")?;
        }
        Body::Subscribe(v1::Subscribe {
            topics: t,
            conn_ids: c,
            user_ids: u,
        })
        | Body::Unsubscribe(v1::Unsubscribe {
            topics: t,
            conn_ids: c,
            user_ids: u,
        }) => {
            let command = if matches!(body, Body::Subscribe(_)) {
                "Subscribe"
            } else {
                "Unsubscribe"
            };
            topics(&format!("{command}.topics"), t)?;
            conn_ids(&format!("{command}.conn_ids"), c)?;
            user_ids(&format!("{command}.user_ids"), u)?;
            non_empty_names(&format!("{command}.topics"), "topic", t)?;
            some_connections(command, c, u)?;
            names("user id", u)?;
        }
        Body::Publish(c) => {
            topics("Publish.topics", &c.topics)?;
            conn_ids("Publish.exclude_conn_ids", &c.exclude_conn_ids)?;
            non_empty_names("Publish.topics", "topic", &c.topics)?;
            payload(c.payload.as_ref(), "Publish.payload")?;
        }
        Body::DeleteTopics(c) => {
            topics("DeleteTopics.topics", &c.topics)?;
            non_empty_names("DeleteTopics.topics", "topic", &c.topics)?;
        }
        Body::SetSession(c) => conn_id("SetSession.conn_id", &c.conn_id)?,
        Body::QueryOnline(q) => {
            conn_ids("QueryOnline.conn_ids", &q.conn_ids)?;
            user_ids("QueryOnline.user_ids", &q.user_ids)?;
        }
        Body::QueryConnInfo(q) => conn_ids("QueryConnInfo.conn_ids", &q.conn_ids)?,
        Body::QueryCounts(q) => {
            topics("QueryCounts.topics", &q.topics)?;
            names("topic", &q.topics)?;
        }
        Body::QueryList(q) => {
            if q.limit > MAX_LIST_PAGE {
                return Err(Refused::bad(format!(
                    "QueryList.limit {} is over the maximum of {MAX_LIST_PAGE}",
                    q.limit
                )));
            }
            match v1::ListKind::try_from(q.kind) {
                Ok(v1::ListKind::Unspecified) | Err(_) => {
                    return Err(Refused::bad(format!(
                        "QueryList.kind {} is not a list kind; use one of LIST_KIND_CONNECTIONS (1) to LIST_KIND_USER_CONNECTIONS (6)",
                        q.kind
                    )));
                }
                Ok(_) => {}
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    const LIMITS: Limits = Limits {
        topics: 10,
        conn_ids: 10,
        user_ids: 10,
    };

    #[test]
    fn limits_come_first_and_name_their_setting() {
        let body = Body::Subscribe(v1::Subscribe {
            topics: vec![String::new(); 11],
            conn_ids: vec!["c".into()],
            user_ids: vec![],
        });
        let err = command(&body, &LIMITS).expect_err("too many");
        assert_eq!(err.code, ErrorCode::LimitExceeded);
        assert!(
            err.message.contains("--max-topics-per-command"),
            "{}",
            err.message
        );
        // Not limited: then the empty names are what is wrong.
        let err = command(&body, &Limits::default()).expect_err("empty names");
        assert_eq!(err.code, ErrorCode::BadRequest);
    }

    #[test]
    fn names_count_characters() {
        assert!(
            check_name("topic", &"é".repeat(128)).is_ok(),
            "256 bytes, 128 characters"
        );
        assert!(check_name("topic", &"a".repeat(129)).is_err());
        assert!(check_name("topic", "").is_err());
    }

    #[test]
    fn payloads_must_be_known_and_text_must_be_utf8() {
        assert!(payload(Some(&Payload::text("hi")), "p").is_ok());
        let bad_text = Payload {
            data: vec![0xff].into(),
            kind: PayloadKind::Text as i32,
        };
        assert!(
            payload(Some(&bad_text), "p")
                .expect_err("utf8")
                .message
                .contains("UTF-8")
        );
        let odd = Payload {
            data: vec![1].into(),
            kind: 7,
        };
        assert!(
            payload(Some(&odd), "p")
                .expect_err("kind")
                .message
                .contains("PayloadKind")
        );
        assert!(
            payload(None, "p")
                .expect_err("missing")
                .message
                .contains("missing")
        );
    }

    #[test]
    fn close_codes_and_reasons() {
        assert_eq!(close(0, ""), Ok(1000));
        assert_eq!(close(4321, "bye"), Ok(4321));
        assert!(close(2000, "").is_err());
        assert!(close(-1, "").is_err());
        assert!(close(70_000, "").is_err());
        assert!(close(1000, &"é".repeat(123)).is_ok());
        assert!(close(1000, &"a".repeat(124)).is_err());
    }

    #[test]
    fn the_stricter_limit_wins() {
        let a = Limits {
            topics: 5,
            conn_ids: 0,
            user_ids: 7,
        };
        let b = Limits {
            topics: 9,
            conn_ids: 3,
            user_ids: 0,
        };
        assert_eq!(
            a.min(b),
            Limits {
                topics: 5,
                conn_ids: 3,
                user_ids: 7
            }
        );
        assert!(
            command(
                &Body::Multicast(v1::Multicast {
                    conn_ids: strings("c", 4),
                    payload: Some(Payload::text("x"))
                }),
                &a.min(b)
            )
            .is_err()
        );
    }

    #[test]
    fn command_ids_are_short_printable_ascii() {
        assert!(command_id("id", "0b7c3f0e-5a43-4d8e-9d7e-3f2f0c1a2b3c").is_ok());
        assert!(command_id("id", &"x".repeat(MAX_COMMAND_ID_BYTES)).is_ok());
        let long = command_id("id", &"x".repeat(MAX_COMMAND_ID_BYTES + 1)).unwrap_err();
        assert!(long.message.contains("1 to 128 bytes"), "{}", long.message);
        assert!(command_id("id", "").is_err());
        let control = command_id("id", "a\nb").unwrap_err();
        assert!(control.message.contains("0x0a"), "{}", control.message);
        assert!(command_id("id", "é").is_err());
    }
}
