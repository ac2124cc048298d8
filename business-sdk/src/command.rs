//! The wire form of every command and query: the envelope body each [`Client`](crate::Client)
//! and [`Cluster`](crate::Cluster) method sends.
//!
//! Both handles build their bodies here, so a command means the same thing whether it goes to
//! one gateway or is routed across many (the cluster then only splits the connection ids a body
//! names by their owner, see `cluster::route`). Also here: the paging rule of `list_all`.

use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{
    BindUser, Broadcast, DeleteTopics, ErrorCode, ForceOffline, ListKind, Multicast, Payload,
    Publish, QueryConnInfo, QueryCounts, QueryList, QueryOnline, SendToUsers, SingleCast,
    Subscribe, UnbindUser, Unsubscribe,
};

use crate::error::Error;
use crate::session_change::SessionChange;
use crate::targets::Targets;

/// The page size `list_all` asks for.
pub(crate) const LIST_ALL_PAGE: u32 = 1000;

/// Collects ids or names into the `Vec<String>` a command carries.
pub(crate) fn strings(items: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

pub(crate) fn single_cast(conn_id: String, payload: Payload) -> Body {
    Body::SingleCast(SingleCast {
        conn_id,
        payload: Some(payload),
    })
}

pub(crate) fn multicast(conn_ids: Vec<String>, payload: Payload) -> Body {
    Body::Multicast(Multicast {
        conn_ids,
        payload: Some(payload),
    })
}

pub(crate) fn broadcast(payload: Payload, exclude: Vec<String>) -> Body {
    Body::Broadcast(Broadcast {
        payload: Some(payload),
        exclude,
    })
}

/// `ForceOffline` of connections (`conn_ids`) and/or every connection of users (`user_ids`).
pub(crate) fn force_offline(
    conn_ids: Vec<String>,
    user_ids: Vec<String>,
    code: u16,
    reason: &str,
    last: Option<Payload>,
) -> Body {
    Body::ForceOffline(ForceOffline {
        conn_ids,
        code: u32::from(code),
        reason: reason.to_owned(),
        last_message: last,
        user_ids,
    })
}

pub(crate) fn bind_user(conn_id: String, user_id: String) -> Body {
    Body::BindUser(BindUser { conn_id, user_id })
}

pub(crate) fn unbind_user(conn_id: String) -> Body {
    Body::UnbindUser(UnbindUser { conn_id })
}

pub(crate) fn send_to_users(
    user_ids: Vec<String>,
    payload: Payload,
    exclude_conn_ids: Vec<String>,
) -> Body {
    Body::SendToUsers(SendToUsers {
        user_ids,
        payload: Some(payload),
        exclude_conn_ids,
    })
}

pub(crate) fn subscribe(topics: Vec<String>, targets: Targets) -> Body {
    Body::Subscribe(Subscribe {
        topics,
        conn_ids: targets.conn_ids,
        user_ids: targets.user_ids,
    })
}

pub(crate) fn unsubscribe(topics: Vec<String>, targets: Targets) -> Body {
    Body::Unsubscribe(Unsubscribe {
        topics,
        conn_ids: targets.conn_ids,
        user_ids: targets.user_ids,
    })
}

pub(crate) fn publish(
    topics: Vec<String>,
    payload: Payload,
    exclude_conn_ids: Vec<String>,
) -> Body {
    Body::Publish(Publish {
        topics,
        payload: Some(payload),
        exclude_conn_ids,
    })
}

pub(crate) fn delete_topics(topics: Vec<String>) -> Body {
    Body::DeleteTopics(DeleteTopics { topics })
}

pub(crate) fn set_session(conn_id: String, change: SessionChange) -> Body {
    Body::SetSession(change.into_command(conn_id))
}

pub(crate) fn online(conn_ids: Vec<String>, user_ids: Vec<String>) -> Body {
    Body::QueryOnline(QueryOnline { conn_ids, user_ids })
}

pub(crate) fn conn_info(conn_ids: Vec<String>) -> Body {
    Body::QueryConnInfo(QueryConnInfo { conn_ids })
}

pub(crate) fn counts(topics: Vec<String>) -> Body {
    Body::QueryCounts(QueryCounts { topics })
}

pub(crate) fn list(kind: ListKind, key: String, cursor: String, limit: u32) -> Body {
    Body::QueryList(QueryList {
        kind: kind as i32,
        key,
        cursor,
        limit,
    })
}

/// Where the next page of a list starts, or `None` after the last page. A cursor that does not
/// move forward would loop forever, so it is an error.
pub(crate) fn next_cursor(cursor: &str, next: String) -> Result<Option<String>, Error> {
    if next.is_empty() {
        Ok(None)
    } else if next.as_str() > cursor {
        Ok(Some(next))
    } else {
        Err(Error::Gateway {
            code: ErrorCode::Unsupported,
            message: format!(
                "the gateway sent an unexpected reply to QueryList: next_cursor {next:?} does not come after the cursor {cursor:?}; stopping to avoid an endless listing"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_stops_at_an_empty_cursor() {
        assert_eq!(next_cursor("", String::new()).expect("last"), None);
        assert_eq!(next_cursor("b", String::new()).expect("last"), None);
    }

    #[test]
    fn listing_moves_forward() {
        assert_eq!(
            next_cursor("", "alice".into()).expect("next").as_deref(),
            Some("alice")
        );
        assert_eq!(
            next_cursor("alice", "bob".into()).expect("next").as_deref(),
            Some("bob")
        );
    }

    #[test]
    fn a_cursor_that_does_not_advance_is_an_error() {
        for (cursor, next) in [("bob", "bob"), ("bob", "alice")] {
            let err = next_cursor(cursor, next.into()).expect_err("stuck");
            assert!(
                matches!(err, Error::Gateway { code: ErrorCode::Unsupported, ref message }
                    if message.contains("unexpected reply to QueryList")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn strings_accepts_strs_and_strings() {
        assert_eq!(strings(["a", "b"]), ["a", "b"]);
        assert_eq!(strings(vec![String::from("c")]), ["c"]);
        assert!(strings(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn force_offline_carries_both_lists_and_the_code() {
        let Body::ForceOffline(f) = force_offline(
            vec!["gw-1-1".into()],
            vec!["alice".into()],
            4000,
            "bye",
            None,
        ) else {
            panic!("expected ForceOffline");
        };
        assert_eq!(f.conn_ids, ["gw-1-1"]);
        assert_eq!(f.user_ids, ["alice"]);
        assert_eq!(f.code, 4000);
        assert_eq!(f.reason, "bye");
    }
}
