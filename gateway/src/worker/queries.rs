//! Answers the queries a business process sends: who is online, what a connection holds,
//! counts and paged lists.
//!
//! Every answer fits in one worker-link frame. Lists are paged (at most 10,000 items) and
//! what a query may name is limited ([`Limits`]); the one answer whose size depends on the
//! connections asked about, `QueryConnInfo`, stops before its frame would be full and names the
//! connections left out in `ConnInfoReply.more_conn_ids`, to be asked for again.

use std::collections::HashSet;

use prost::Message;
use wsgate_proto::v1::{
    ConnInfo, ConnInfoReply, CountsReply, ListKind, ListReply, OnlineReply, QueryConnInfo,
    QueryCounts, QueryList, QueryOnline, Result as CmdResult, TopicCount, result::Reply,
};

use super::limits::{Budget, Limits};
use super::report::{Outcome, report};
use crate::connections::Connections;

/// The page when QueryList.limit is 0.
const DEFAULT_PAGE: usize = 1000;

/// Room kept in a frame for the envelope and the Result's own fields around a reply.
const ENVELOPE_ROOM: usize = 64;

fn with_reply(mut result: CmdResult, reply: Reply) -> CmdResult {
    result.reply = Some(reply);
    result
}

pub(crate) fn online(conns: &Connections, q: QueryOnline) -> Outcome {
    let online = OnlineReply {
        conn_ids: q
            .conn_ids
            .into_iter()
            .filter(|id| conns.registry.get(id).is_some())
            .collect(),
        user_ids: q
            .user_ids
            .into_iter()
            .filter(|u| conns.indexes.has_user(u))
            .collect(),
    };
    Ok(with_reply(CmdResult::default(), Reply::Online(online)))
}

/// Bytes a repeated string field takes on the wire.
fn strings_len(items: &[String]) -> usize {
    items
        .iter()
        .map(|s| 1 + prost::encoding::encoded_len_varint(s.len() as u64) + s.len())
        .sum()
}

pub(crate) async fn conn_info(
    conns: &Connections,
    limits: &Limits,
    q: QueryConnInfo,
    budget: &mut Budget,
) -> Outcome {
    // Room for the connections' details: the frame less the envelope, and less every id as if
    // none fitted (each ends up in `conns`, `unknown_conn_ids` or `more_conn_ids`).
    let mut room = limits
        .max_frame_bytes
        .saturating_sub(ENVELOPE_ROOM + 2 * strings_len(&q.conn_ids));
    let mut infos = Vec::new();
    let mut unknown = Vec::new();
    let mut more = Vec::new();
    for id in q.conn_ids {
        budget.spend(1).await;
        if !more.is_empty() {
            more.push(id);
            continue;
        }
        let Some(conn) = conns.registry.get(&id) else {
            unknown.push(id);
            continue;
        };
        let attached = conn.state.snapshot();
        let mut topics = attached.topics;
        topics.sort();
        let info = ConnInfo {
            conn_id: id,
            user_id: attached.user_id.unwrap_or_default(),
            topics,
            session: attached.session,
            remote_addr: conn.info.remote_addr.to_string(),
            connected_at_ms: conn.info.connected_at_ms,
            forwarded_for: conn
                .info
                .forwarded_for
                .as_deref()
                .unwrap_or_default()
                .into(),
            real_ip: conn.info.real_ip.as_deref().unwrap_or_default().into(),
        };
        let size = info.encoded_len();
        let size = 1 + prost::encoding::encoded_len_varint(size as u64) + size;
        if size > room {
            more.push(info.conn_id);
            continue;
        }
        room -= size;
        infos.push(info);
    }
    Ok(with_reply(
        report(infos.len() as u32, unknown),
        Reply::ConnInfo(ConnInfoReply {
            conns: infos,
            more_conn_ids: more,
        }),
    ))
}

/// Distinct users among a topic's members.
async fn topic_users(conns: &Connections, topic: &str, budget: &mut Budget) -> HashSet<String> {
    let mut users = HashSet::new();
    for id in conns.indexes.topic_conns(topic) {
        budget.spend(1).await;
        if let Some(user) = conns
            .registry
            .get(&id)
            .and_then(|h| h.state.lock().user_id().map(str::to_owned))
        {
            users.insert(user);
        }
    }
    users
}

pub(crate) async fn counts(conns: &Connections, q: QueryCounts, budget: &mut Budget) -> Outcome {
    let mut topic_counts = Vec::with_capacity(q.topics.len());
    for topic in &q.topics {
        topic_counts.push(TopicCount {
            topic: topic.clone(),
            connections: conns.indexes.topic_members(topic) as u64,
            users: topic_users(conns, topic, budget).await.len() as u64,
        });
    }
    let counts = CountsReply {
        connections: conns.registry.len() as u64,
        users: conns.indexes.user_count() as u64,
        topics: conns.indexes.topic_count() as u64,
        topic_counts,
    };
    Ok(with_reply(CmdResult::default(), Reply::Counts(counts)))
}

pub(crate) async fn list(
    conns: &Connections,
    limits: &Limits,
    q: QueryList,
    budget: &mut Budget,
) -> Outcome {
    // Checked by validate::command: at most MAX_LIST_PAGE, a known kind.
    let limit = match q.limit as usize {
        0 => DEFAULT_PAGE,
        n => n,
    };
    let kind = ListKind::try_from(q.kind).unwrap_or(ListKind::Unspecified);
    // The members of a topic or user named "" (no topic or user is): an empty list.
    let cursor = q.cursor.as_str();
    let (items, next_cursor) = match kind {
        ListKind::Unspecified => (Vec::new(), String::new()),
        ListKind::Connections => conns.registry.page(cursor, limit),
        ListKind::Users => conns.indexes.page_users(cursor, limit),
        ListKind::Topics => conns.indexes.page_topics(cursor, limit),
        ListKind::TopicConnections => crate::connections::state::page(
            conns.indexes.topic_conns(&q.key).into_iter(),
            cursor,
            limit,
        ),
        ListKind::TopicUsers => crate::connections::state::page(
            topic_users(conns, &q.key, budget).await.into_iter(),
            cursor,
            limit,
        ),
        ListKind::UserConnections => crate::connections::state::page(
            conns.indexes.user_conns(&q.key).into_iter(),
            cursor,
            limit,
        ),
    };
    let (items, next_cursor) = fit_page(items, next_cursor, limits.max_frame_bytes);
    Ok(with_reply(
        CmdResult::default(),
        Reply::List(ListReply { items, next_cursor }),
    ))
}

/// A page cut to what one frame holds: when the items would not fit, the page ends earlier
/// and its cursor is the last item kept, so paging goes on from there.
fn fit_page(
    mut items: Vec<String>,
    next_cursor: String,
    max_frame: usize,
) -> (Vec<String>, String) {
    // The cursor is at most one more name, the envelope a few bytes.
    let room = max_frame.saturating_sub(ENVELOPE_ROOM + 2 * (next_cursor.len() + 8));
    let mut used = 0;
    let fits = items
        .iter()
        .take_while(|s| {
            used += 1 + prost::encoding::encoded_len_varint(s.len() as u64) + s.len();
            used <= room
        })
        .count();
    if fits == items.len() {
        return (items, next_cursor);
    }
    items.truncate(fits.max(1));
    let cursor = items.last().cloned().unwrap_or_default();
    (items, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_that_would_not_fit_a_frame_ends_early_and_pages_on() {
        let items: Vec<String> = (0..100).map(|i| format!("{i:0>100}")).collect();
        let (all, cursor) = fit_page(items.clone(), String::new(), 1 << 20);
        assert_eq!((all.len(), cursor.as_str()), (100, ""), "fits whole");
        let (some, cursor) = fit_page(items.clone(), String::new(), 2048);
        assert!(some.len() < 100 && !some.is_empty());
        assert_eq!(&cursor, some.last().expect("an item"));
        let size: usize = some.iter().map(|s| s.len() + 2).sum();
        assert!(size <= 2048, "{size}");
    }
}
