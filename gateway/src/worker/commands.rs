//! Carries out the commands and queries a business process sends.
//!
//! Commands never wait on a client: a payload is converted to a WebSocket message once and
//! shared by reference count with every recipient's queue. Commands that change a connection's
//! state go through [`Indexes`](crate::state::Indexes), which keeps the connection and the user
//! and topic indexes consistent.

use std::collections::HashSet;

use bytes::Bytes;
use wsgate_proto::v1::{
    BindUser, Broadcast, ClosedBy, ConnInfo, ConnInfoReply, CountsReply, DeleteTopics, ErrorCode,
    ForceOffline, ListKind, ListReply, Multicast, OnlineReply, Payload, Publish, QueryConnInfo,
    QueryCounts, QueryList, QueryOnline, Result as CmdResult, SendToUsers, SetSession, SingleCast,
    TopicCount, UnbindUser, envelope::Body, result::Reply,
};

use crate::client::frame;
use crate::registry::{CloseRequest, Registry, SendOutcome, close_code};
use crate::server::Shared;
use crate::state::{Locked, check_name};

/// Default and largest page for QueryList.
const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;

/// Runs one command or query body. `None` when `body` is neither.
pub(crate) fn execute(shared: &Shared, body: Body) -> Option<CmdResult> {
    let registry = &shared.registry;
    let result = match body {
        Body::SingleCast(c) => single_cast(registry, c),
        Body::Multicast(c) => multicast(registry, c),
        Body::Broadcast(c) => broadcast(registry, c),
        Body::ForceOffline(c) => force_offline(shared, c),
        Body::BindUser(c) => bind_user(shared, c),
        Body::UnbindUser(c) => unbind_user(shared, c),
        Body::SendToUsers(c) => send_to_users(shared, c),
        Body::Subscribe(c) => subscribe(shared, c.topics, c.conn_ids, c.user_ids, true),
        Body::Unsubscribe(c) => subscribe(shared, c.topics, c.conn_ids, c.user_ids, false),
        Body::Publish(c) => publish(shared, c),
        Body::DeleteTopics(c) => delete_topics(shared, c),
        Body::SetSession(c) => set_session(shared, c),
        Body::QueryOnline(q) => Ok(query_online(shared, q)),
        Body::QueryConnInfo(q) => Ok(query_conn_info(shared, q)),
        Body::QueryCounts(q) => query_counts(shared, q),
        Body::QueryList(q) => query_list(shared, q),
        _ => return None,
    };
    Some(result.unwrap_or_else(|message| CmdResult {
        code: ErrorCode::BadRequest as i32,
        message,
        ..Default::default()
    }))
}

/// The WebSocket frame for a payload, encoded once per command and shared by every recipient.
pub(crate) fn to_frame(payload: Option<Payload>, field: &str) -> Result<Bytes, String> {
    let payload =
        payload.ok_or_else(|| format!("{field} is missing; set it to the message to send"))?;
    if payload.is_text() {
        std::str::from_utf8(&payload.data).map_err(|_| {
            format!("{field} is marked text but is not valid UTF-8; send it as binary or fix its encoding")
        })?;
        Ok(frame::encode(frame::TEXT, &payload.data))
    } else {
        Ok(frame::encode(frame::BINARY, &payload.data))
    }
}

fn report(delivered: u32, unknown: Vec<String>) -> CmdResult {
    report_users(delivered, unknown, Vec::new())
}

fn report_users(delivered: u32, unknown: Vec<String>, unknown_users: Vec<String>) -> CmdResult {
    if unknown.is_empty() {
        return CmdResult {
            delivered,
            unknown_user_ids: unknown_users,
            ..Default::default()
        };
    }
    let message = match unknown.as_slice() {
        [one] => format!(
            "connection {one} is not connected to this gateway (it has closed, or belongs to another gateway)"
        ),
        many => format!(
            "{} connections are not connected to this gateway (they have closed, or belong to another gateway)",
            many.len()
        ),
    };
    CmdResult {
        code: ErrorCode::UnknownConnection as i32,
        message,
        delivered,
        unknown_conn_ids: unknown,
        unknown_user_ids: unknown_users,
        reply: None,
    }
}

fn cast_to<'a>(
    registry: &Registry,
    ids: impl IntoIterator<Item = &'a String>,
    msg: &Bytes,
) -> CmdResult {
    let mut delivered = 0;
    let mut unknown = Vec::new();
    for id in ids {
        match registry.send(id, msg) {
            SendOutcome::Queued => delivered += 1,
            // A slow consumer is being closed: for the caller it is gone.
            SendOutcome::Unknown | SendOutcome::SlowConsumer => unknown.push(id.clone()),
        }
    }
    report(delivered, unknown)
}

fn single_cast(registry: &Registry, c: SingleCast) -> Result<CmdResult, String> {
    if c.conn_id.is_empty() {
        return Err("SingleCast.conn_id is empty; set it to a connection id from ConnOpen".into());
    }
    let msg = to_frame(c.payload, "SingleCast.payload")?;
    Ok(cast_to(registry, [&c.conn_id], &msg))
}

fn multicast(registry: &Registry, c: Multicast) -> Result<CmdResult, String> {
    let msg = to_frame(c.payload, "Multicast.payload")?;
    Ok(cast_to(registry, &c.conn_ids, &msg))
}

fn broadcast(registry: &Registry, c: Broadcast) -> Result<CmdResult, String> {
    let msg = to_frame(c.payload, "Broadcast.payload")?;
    Ok(report(registry.broadcast(&msg, &c.exclude), Vec::new()))
}

fn force_offline(shared: &Shared, c: ForceOffline) -> Result<CmdResult, String> {
    let code = match c.code {
        0 => close_code::NORMAL,
        1000 => 1000,
        c @ 3000..=4999 => c as u16,
        other => {
            return Err(format!(
                "ForceOffline.code {other} is not allowed; use 1000 or an application code from 3000 to 4999"
            ));
        }
    };
    if c.reason.len() > 123 {
        return Err(format!(
            "ForceOffline.reason is {} bytes; a close reason holds at most 123",
            c.reason.len()
        ));
    }
    let last = match c.last_message {
        Some(p) => Some(to_frame(Some(p), "ForceOffline.last_message")?),
        None => None,
    };
    let request = CloseRequest {
        code,
        reason: c.reason,
        closed_by: ClosedBy::Business,
    };
    c.user_ids
        .iter()
        .try_for_each(|u| check_name("user id", u))?;
    let (mut targets, unknown_users) = users_conns(shared, &c.user_ids);
    let mut seen: HashSet<String> = targets.iter().cloned().collect();
    targets.extend(c.conn_ids.into_iter().filter(|id| seen.insert(id.clone())));
    let mut closed = 0;
    let mut unknown = Vec::new();
    for id in targets {
        if shared.registry.close(&id, last.clone(), request.clone()) {
            closed += 1;
        } else {
            unknown.push(id);
        }
    }
    Ok(report_users(closed, unknown, unknown_users))
}

/// The current connections of these users, and the users that have none.
fn users_conns(shared: &Shared, user_ids: &[String]) -> (Vec<String>, Vec<String>) {
    let mut conns = Vec::new();
    let mut missing = Vec::new();
    for user in user_ids {
        let mine = shared.indexes.user_conns(user);
        if mine.is_empty() {
            missing.push(user.clone());
        }
        conns.extend(mine);
    }
    (conns, missing)
}

fn check_names(what: &str, names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Err(format!("no {what} given; name at least one"));
    }
    names.iter().try_for_each(|n| check_name(what, n))
}

/// Runs `change` on one connection under its lock; false when it is unknown or closing.
fn with_conn(shared: &Shared, conn_id: &str, change: impl FnOnce(&mut Locked<'_>) -> bool) -> bool {
    match shared.registry.get(conn_id) {
        Some(conn) => change(&mut conn.state.lock()),
        None => false,
    }
}

fn check_conn_id(field: &str, conn_id: &str) -> Result<(), String> {
    if conn_id.is_empty() {
        return Err(format!(
            "{field} is empty; set it to a connection id from ConnOpen"
        ));
    }
    Ok(())
}

fn one_conn_result(conn_id: String, done: bool) -> CmdResult {
    if done {
        report(1, Vec::new())
    } else {
        report(0, vec![conn_id])
    }
}

fn bind_user(shared: &Shared, c: BindUser) -> Result<CmdResult, String> {
    check_conn_id("BindUser.conn_id", &c.conn_id)?;
    check_name("BindUser.user_id", &c.user_id)?;
    let done = with_conn(shared, &c.conn_id, |l| {
        shared.indexes.bind(&c.conn_id, l, &c.user_id)
    });
    Ok(one_conn_result(c.conn_id, done))
}

fn unbind_user(shared: &Shared, c: UnbindUser) -> Result<CmdResult, String> {
    check_conn_id("UnbindUser.conn_id", &c.conn_id)?;
    let done = with_conn(shared, &c.conn_id, |l| shared.indexes.unbind(&c.conn_id, l));
    Ok(one_conn_result(c.conn_id, done))
}

fn send_to_users(shared: &Shared, c: SendToUsers) -> Result<CmdResult, String> {
    check_names("user id", &c.user_ids)?;
    let msg = to_frame(c.payload, "SendToUsers.payload")?;
    let (conns, unknown_users) = users_conns(shared, &c.user_ids);
    let delivered = send_each(&shared.registry, conns, &c.exclude_conn_ids, &msg);
    Ok(report_users(delivered, Vec::new(), unknown_users))
}

/// Queues `msg` once for each distinct connection not excluded; returns how many got it.
fn send_each(registry: &Registry, conns: Vec<String>, exclude: &[String], msg: &Bytes) -> u32 {
    let mut seen = HashSet::with_capacity(conns.len());
    let mut delivered = 0;
    for id in &conns {
        if exclude.contains(id) || !seen.insert(id.as_str()) {
            continue;
        }
        if registry.send(id, msg) == SendOutcome::Queued {
            delivered += 1;
        }
    }
    delivered
}

fn subscribe(
    shared: &Shared,
    topics: Vec<String>,
    conn_ids: Vec<String>,
    user_ids: Vec<String>,
    join: bool,
) -> Result<CmdResult, String> {
    check_names("topic", &topics)?;
    if conn_ids.is_empty() && user_ids.is_empty() {
        return Err("no conn_ids or user_ids given; name the connections to (un)subscribe".into());
    }
    user_ids.iter().try_for_each(|u| check_name("user id", u))?;
    let (by_user, unknown_users) = users_conns(shared, &user_ids);
    let mut seen = HashSet::new();
    let mut affected = 0;
    let mut unknown = Vec::new();
    let named: HashSet<&String> = conn_ids.iter().collect();
    for id in conn_ids.iter().chain(by_user.iter()) {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let done = with_conn(shared, id, |l| {
            topics.iter().all(|t| {
                if join {
                    shared.indexes.subscribe(id, l, t)
                } else {
                    shared.indexes.unsubscribe(id, l, t)
                }
            })
        });
        if done {
            affected += 1;
        } else if named.contains(id) {
            unknown.push(id.clone());
        }
    }
    Ok(report_users(affected, unknown, unknown_users))
}

fn publish(shared: &Shared, c: Publish) -> Result<CmdResult, String> {
    check_names("topic", &c.topics)?;
    let msg = to_frame(c.payload, "Publish.payload")?;
    let conns = c
        .topics
        .iter()
        .flat_map(|t| shared.indexes.topic_conns(t))
        .collect();
    Ok(report(
        send_each(&shared.registry, conns, &c.exclude_conn_ids, &msg),
        Vec::new(),
    ))
}

fn delete_topics(shared: &Shared, c: DeleteTopics) -> Result<CmdResult, String> {
    check_names("topic", &c.topics)?;
    let mut deleted = 0;
    for topic in &c.topics {
        let members = shared.indexes.topic_conns(topic);
        if !members.is_empty() {
            deleted += 1;
        }
        for id in members {
            with_conn(shared, &id, |l| shared.indexes.unsubscribe(&id, l, topic));
        }
    }
    Ok(report(deleted, Vec::new()))
}

fn set_session(shared: &Shared, c: SetSession) -> Result<CmdResult, String> {
    check_conn_id("SetSession.conn_id", &c.conn_id)?;
    let Some(conn) = shared.registry.get(&c.conn_id) else {
        return Ok(one_conn_result(c.conn_id, false));
    };
    let done = shared
        .indexes
        .set_session(&mut conn.state.lock(), c.set, &c.delete, c.replace)
        .map_err(|e| format!("SetSession refused: {e}"))?;
    Ok(one_conn_result(c.conn_id, done))
}

fn with_reply(mut result: CmdResult, reply: Reply) -> CmdResult {
    result.reply = Some(reply);
    result
}

fn query_online(shared: &Shared, q: QueryOnline) -> CmdResult {
    let online = OnlineReply {
        conn_ids: q
            .conn_ids
            .into_iter()
            .filter(|id| shared.registry.get(id).is_some())
            .collect(),
        user_ids: q
            .user_ids
            .into_iter()
            .filter(|u| shared.indexes.has_user(u))
            .collect(),
    };
    with_reply(CmdResult::default(), Reply::Online(online))
}

fn query_conn_info(shared: &Shared, q: QueryConnInfo) -> CmdResult {
    let mut conns = Vec::new();
    let mut unknown = Vec::new();
    for id in q.conn_ids {
        let Some(conn) = shared.registry.get(&id) else {
            unknown.push(id);
            continue;
        };
        let attached = conn.state.snapshot();
        let mut topics = attached.topics;
        topics.sort();
        conns.push(ConnInfo {
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
        });
    }
    with_reply(
        report(conns.len() as u32, unknown),
        Reply::ConnInfo(ConnInfoReply { conns }),
    )
}

/// Distinct users among a topic's members.
fn topic_users(shared: &Shared, topic: &str) -> HashSet<String> {
    shared
        .indexes
        .topic_conns(topic)
        .iter()
        .filter_map(|id| shared.registry.get(id))
        .filter_map(|h| h.state.lock().user_id().map(str::to_owned))
        .collect()
}

fn query_counts(shared: &Shared, q: QueryCounts) -> Result<CmdResult, String> {
    q.topics.iter().try_for_each(|t| check_name("topic", t))?;
    let counts = CountsReply {
        connections: shared.registry.len() as u64,
        users: shared.indexes.user_count() as u64,
        topics: shared.indexes.topic_count() as u64,
        topic_counts: q
            .topics
            .iter()
            .map(|t| TopicCount {
                topic: t.clone(),
                connections: shared.indexes.topic_members(t) as u64,
                users: topic_users(shared, t).len() as u64,
            })
            .collect(),
    };
    Ok(with_reply(CmdResult::default(), Reply::Counts(counts)))
}

fn query_list(shared: &Shared, q: QueryList) -> Result<CmdResult, String> {
    let limit = match q.limit as usize {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(format!(
                "QueryList.limit {n} is over the maximum of {MAX_PAGE}"
            ));
        }
        n => n,
    };
    let kind = ListKind::try_from(q.kind).unwrap_or(ListKind::Unspecified);
    let needs_key = matches!(
        kind,
        ListKind::TopicConnections | ListKind::TopicUsers | ListKind::UserConnections
    );
    if needs_key && q.key.is_empty() {
        return Err(format!(
            "QueryList.key is empty; {} needs the topic or user id",
            kind.as_str_name()
        ));
    }
    let cursor = q.cursor.as_str();
    let (items, next_cursor) = match kind {
        ListKind::Unspecified => {
            return Err(
                "QueryList.kind is missing or unknown; set one of the LIST_KIND_* values".into(),
            );
        }
        ListKind::Connections => shared.registry.page(cursor, limit),
        ListKind::Users => shared.indexes.page_users(cursor, limit),
        ListKind::Topics => shared.indexes.page_topics(cursor, limit),
        ListKind::TopicConnections => crate::state::page(
            shared.indexes.topic_conns(&q.key).into_iter(),
            cursor,
            limit,
        ),
        ListKind::TopicUsers => {
            crate::state::page(topic_users(shared, &q.key).into_iter(), cursor, limit)
        }
        ListKind::UserConnections => {
            crate::state::page(shared.indexes.user_conns(&q.key).into_iter(), cursor, limit)
        }
    };
    Ok(with_reply(
        CmdResult::default(),
        Reply::List(ListReply { items, next_cursor }),
    ))
}
