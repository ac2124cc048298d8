//! The rules a command or query must follow whatever the state of the gateway it goes to: the
//! one place they are written, so every door applies the same ones. The gateway checks every
//! body with [`command`] before it runs it; the SDK's cluster client checks a body before it
//! routes it, so a command that no gateway would receive (every connection id it names is of
//! an unknown node) is refused exactly as a gateway would refuse it, and the HTTP and gRPC
//! APIs, which go through that client, follow the same rules.
//!
//! Two kinds of refusal: [`ErrorCode::LimitExceeded`] when the body names more than the
//! gateway's per-command limits allow ([`Limits`], sent in `RegisterOk`), checked first, and
//! [`ErrorCode::BadRequest`] when a field is missing or invalid. Either way nothing is done.
//! What depends on the state (is a connection connected, would a session grow past its limit,
//! would a connection pass its topic limit) is the gateway's to answer.

use crate::v1::{self, ErrorCode, Payload, PayloadKind, envelope::Body};

/// Longest user id, topic name or session key, in characters (Unicode scalar values, what
/// JSON Schema's `maxLength` counts).
pub const MAX_NAME_CHARS: usize = 128;
/// Longest `ForceOffline.reason`, in characters. The client receives its first 123 bytes, all
/// a WebSocket close frame holds beside the code.
pub const MAX_REASON_CHARS: usize = 123;
/// Largest `QueryList.limit` (0 means 1000).
pub const MAX_LIST_PAGE: u32 = 10_000;

/// Why a body is refused, with the protocol's code for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: ErrorCode,
    pub message: String,
}

impl Invalid {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }
}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Self::bad(message)
    }
}

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

fn at_most(field: &str, what: &str, n: usize, limit: usize, flag: &str) -> Result<(), Invalid> {
    if limit == 0 || n <= limit {
        return Ok(());
    }
    Err(Invalid {
        code: ErrorCode::LimitExceeded,
        message: format!(
            "{field} names {n} {what}; one command may name at most {limit} (the gateway's --{flag}): split it into several commands"
        ),
    })
}

/// Checks a user id or topic name: 1 to [`MAX_NAME_CHARS`] characters.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} is empty; give it a name"));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "{what} {:?}… is {chars} characters; the limit is {MAX_NAME_CHARS}",
            name.chars().take(16).collect::<String>(),
        ));
    }
    Ok(())
}

fn names(what: &str, names: &[String]) -> Result<(), String> {
    names.iter().try_for_each(|n| check_name(what, n))
}

fn non_empty_names(what: &str, list: &[String]) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!("no {what} given; name at least one"));
    }
    names(what, list)
}

fn conn_id(field: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!(
            "{field} is empty; set it to a connection id from ConnOpen"
        ));
    }
    Ok(())
}

/// A message to send: present, of a known kind, and valid UTF-8 when it is text.
pub fn payload(payload: Option<&Payload>, field: &str) -> Result<(), String> {
    let payload =
        payload.ok_or_else(|| format!("{field} is missing; set it to the message to send"))?;
    match PayloadKind::try_from(payload.kind) {
        Ok(PayloadKind::Text) => std::str::from_utf8(&payload.data).map(|_| ()).map_err(|_| {
            format!("{field} is marked text but is not valid UTF-8; send it as binary or fix its encoding")
        }),
        Ok(PayloadKind::Binary) => Ok(()),
        Err(_) => Err(format!(
            "{field}.kind {} is not a PayloadKind; use PAYLOAD_KIND_TEXT (0) or PAYLOAD_KIND_BINARY (1)",
            payload.kind
        )),
    }
}

/// A `ForceOffline` close code and reason: the code to send (0 means 1000).
pub fn close(code: u32, reason: &str) -> Result<u16, String> {
    let code = match code {
        0 => 1000,
        1000 => 1000,
        c @ 3000..=4999 => c as u16,
        other => {
            return Err(format!(
                "ForceOffline.code {other} is not allowed; use 1000 or an application code from 3000 to 4999"
            ));
        }
    };
    let chars = reason.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(format!(
            "ForceOffline.reason is {chars} characters; a close reason is at most {MAX_REASON_CHARS}"
        ));
    }
    Ok(code)
}

/// Checks a command or query body. Bodies that are neither pass: they are not commands.
pub fn command(body: &Body, limits: &Limits) -> Result<(), Invalid> {
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
            payload(c.payload.as_ref(), "Multicast.payload")?;
        }
        Body::Broadcast(c) => {
            conn_ids("Broadcast.exclude", &c.exclude)?;
            payload(c.payload.as_ref(), "Broadcast.payload")?;
        }
        Body::ForceOffline(c) => {
            conn_ids("ForceOffline.conn_ids", &c.conn_ids)?;
            user_ids("ForceOffline.user_ids", &c.user_ids)?;
            close(c.code, &c.reason)?;
            if let Some(last) = &c.last_message {
                payload(Some(last), "ForceOffline.last_message")?;
            }
            names("user id", &c.user_ids)?;
        }
        Body::BindUser(c) => {
            conn_id("BindUser.conn_id", &c.conn_id)?;
            check_name("BindUser.user_id", &c.user_id)?;
        }
        Body::UnbindUser(c) => conn_id("UnbindUser.conn_id", &c.conn_id)?,
        Body::SendToUsers(c) => {
            user_ids("SendToUsers.user_ids", &c.user_ids)?;
            conn_ids("SendToUsers.exclude_conn_ids", &c.exclude_conn_ids)?;
            non_empty_names("user id", &c.user_ids)?;
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
            non_empty_names("topic", t)?;
            if c.is_empty() && u.is_empty() {
                return Err(Invalid::bad(
                    "no conn_ids or user_ids given; name the connections to (un)subscribe",
                ));
            }
            names("user id", u)?;
        }
        Body::Publish(c) => {
            topics("Publish.topics", &c.topics)?;
            conn_ids("Publish.exclude_conn_ids", &c.exclude_conn_ids)?;
            non_empty_names("topic", &c.topics)?;
            payload(c.payload.as_ref(), "Publish.payload")?;
        }
        Body::DeleteTopics(c) => {
            topics("DeleteTopics.topics", &c.topics)?;
            non_empty_names("topic", &c.topics)?;
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
                return Err(Invalid::bad(format!(
                    "QueryList.limit {} is over the maximum of {MAX_LIST_PAGE}",
                    q.limit
                )));
            }
            match v1::ListKind::try_from(q.kind) {
                Ok(v1::ListKind::Unspecified) | Err(_) => {
                    return Err(Invalid::bad(
                        "QueryList.kind is missing or unknown; set one of the LIST_KIND_* values",
                    ));
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
                .contains("UTF-8")
        );
        let odd = Payload {
            data: vec![1].into(),
            kind: 7,
        };
        assert!(
            payload(Some(&odd), "p")
                .expect_err("kind")
                .contains("PayloadKind")
        );
        assert!(payload(None, "p").expect_err("missing").contains("missing"));
    }

    #[test]
    fn close_codes_and_reasons() {
        assert_eq!(close(0, ""), Ok(1000));
        assert_eq!(close(4321, "bye"), Ok(4321));
        assert!(close(2000, "").is_err());
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
}
