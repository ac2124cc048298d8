//! Carries out the commands a business process sends (queries are in [`queries`](super::queries)).
//!
//! Commands never wait on a client: a payload is converted to a WebSocket message once and
//! shared by reference count with every recipient's queue. Commands that change a connection's
//! state go through [`Indexes`](crate::connections::state::Indexes), which keeps the connection and the user
//! and topic indexes consistent.
//!
//! Every body is checked by `validate::command` first, the rules every door shares; a
//! handler then only meets what depends on the state. Every command is bounded twice (see
//! [`limits`](super::limits)): what it may name, and how long it holds a thread.

use std::collections::HashSet;
use std::sync::Arc;

use wsgate_proto::v1::{
    BindUser, Broadcast, ClosedBy, DeleteTopics, ErrorCode, ForceOffline, Multicast, Payload,
    ReceiptMode, Result as CmdResult, SetSession, SingleCast, UnbindUser, envelope::Body,
};

use wsgate_proto::validate::{self, Refused};

use super::limits::{Budget, Limits, WORK_SLICE};
use super::queries;
use super::report::{Outcome, one_conn, refused, report, report_users};
use crate::connections::Connections;
use crate::connections::message::Message;
use crate::connections::receipts::Receipts;
use crate::connections::registry::{CloseRequest, Registry, SendOutcome};
use crate::connections::state::{Locked, TopicLimit};
use crate::connections::streams::rules::Kind;
use crate::stats::{CommandKind, Stats};
use crate::websocket::frame;

/// The receipts a cast asked for (`Envelope.receipt`): where its connections' outcomes go,
/// and whether its `Result` waits for them — then the cast may reach at most the per-command
/// connection-id limit, so that the `Result` stays within a frame.
#[derive(Debug)]
pub(crate) struct Asked {
    pub receipts: Arc<Receipts>,
    pub wait: bool,
    /// The ack id clients of the subprotocol are asked to answer with (`Envelope.client_ack`).
    pub ack: Option<u64>,
}

impl Asked {
    /// What `mode` and `client_ack` ask of `body`: `None` for no receipts; refused when `body`
    /// is no cast, or client acknowledgements are asked without receipts.
    pub(crate) fn of(mode: i32, client_ack: bool, body: &Body) -> Result<Option<Self>, Refused> {
        let wait = match ReceiptMode::try_from(mode) {
            Ok(ReceiptMode::None) if client_ack => {
                return Err(Refused::bad(
                    "Envelope.client_ack asks clients to acknowledge, and the answers come as receipts: set Envelope.receipt (RECEIPT_MODE_WAIT or RECEIPT_MODE_LATER) too",
                ));
            }
            Ok(ReceiptMode::None) => return Ok(None),
            Ok(ReceiptMode::Wait) => true,
            Ok(ReceiptMode::Later) => false,
            Err(_) => {
                return Err(Refused::bad(format!(
                    "Envelope.receipt {mode} is not a ReceiptMode this gateway knows (0 none, 1 wait, 2 later)"
                )));
            }
        };
        let cast = matches!(
            body,
            Body::SingleCast(_)
                | Body::Multicast(_)
                | Body::Broadcast(_)
                | Body::SendToUsers(_)
                | Body::Publish(_)
        );
        if !cast {
            return Err(Refused::bad(
                "Envelope.receipt is for casts (SingleCast, Multicast, Broadcast, SendToUsers, Publish); send this command without it",
            ));
        }
        Ok(Some(Self {
            receipts: Receipts::new(),
            wait,
            ack: client_ack.then(crate::connections::receipts::next_ack_id),
        }))
    }

    /// Refuses a waiting receipt for more connections than a `Result` may list.
    fn bound(asked: Option<&Self>, targets: usize, limits: &Limits) -> Result<(), Refused> {
        let max = limits.per_command.conn_ids;
        match asked {
            Some(a) if a.wait && targets > max => Err(Refused::bad(format!(
                "RECEIPT_MODE_WAIT lists at most {max} connections (--max-conn-ids-per-command) and this cast reaches {targets}; ask for RECEIPT_MODE_LATER, which sends the receipts in as many Receipts frames as they need"
            ))),
            _ => Ok(()),
        }
    }
}

/// Runs one command or query body and counts it in `stats`: what a worker link and the
/// gateway's own cluster client ([`super::in_process`]) both do with one. `None` when `body` is
/// neither. With `asked`, a cast records each target's outcome there, sealed once it has queued
/// everything (refused too), so [`Receipts::all`] can end. `command_id` (empty: none) makes a
/// stream's publication one for the whole cluster (see [`crate::connections::streams::redis`]).
pub(crate) async fn carry_out(
    conns: &Connections,
    limits: &Limits,
    stats: &Stats,
    body: Body,
    asked: Option<&Asked>,
    command_id: &str,
) -> Option<CmdResult> {
    let kind = CommandKind::of(&body);
    let result = execute(conns, limits, body, asked, command_id).await;
    if let Some(asked) = asked {
        asked.receipts.seal();
    }
    let failed = result
        .as_ref()
        .is_some_and(|r| r.code != ErrorCode::Ok as i32);
    stats.command(kind, failed);
    result
}

/// Runs one command or query body. `None` when `body` is neither.
async fn execute(
    conns: &Connections,
    limits: &Limits,
    body: Body,
    asked: Option<&Asked>,
    command_id: &str,
) -> Option<CmdResult> {
    if let Err(refusal) = validate::command(&body, &limits.per_command) {
        return Some(refused(refusal));
    }
    let mut budget = Budget::default();
    let registry = &conns.registry;
    let result = match body {
        Body::SingleCast(c) => single_cast(registry, c, asked),
        Body::Multicast(c) => multicast(registry, c, asked, &mut budget).await,
        Body::Broadcast(c) => {
            Asked::bound(asked, registry.len(), limits).and_then(|()| broadcast(registry, c, asked))
        }
        Body::ForceOffline(c) => force_offline(conns, c, &mut budget).await,
        Body::BindUser(c) => bind_user(conns, limits, c).await,
        Body::UnbindUser(c) => unbind_user(conns, c),
        Body::SendToUsers(c) => {
            let to = Casting {
                kind: Kind::Users,
                names: &c.user_ids,
                exclude: &c.exclude_conn_ids,
                asked,
                command_id,
            };
            cast_to_streams(
                conns,
                limits,
                to,
                c.payload,
                "SendToUsers.payload",
                &mut budget,
            )
            .await
            .map(|(delivered, unknown_users)| report_users(delivered, Vec::new(), unknown_users))
        }
        Body::Subscribe(c) => {
            let targets = Targets::new("Subscribe", c.topics, c.conn_ids, c.user_ids);
            subscribe(conns, limits, targets, true, &mut budget).await
        }
        Body::Unsubscribe(c) => {
            let targets = Targets::new("Unsubscribe", c.topics, c.conn_ids, c.user_ids);
            subscribe(conns, limits, targets, false, &mut budget).await
        }
        Body::Publish(c) => {
            let to = Casting {
                kind: Kind::Topics,
                names: &c.topics,
                exclude: &c.exclude_conn_ids,
                asked,
                command_id,
            };
            cast_to_streams(conns, limits, to, c.payload, "Publish.payload", &mut budget)
                .await
                .map(|(delivered, _)| report(delivered, Vec::new()))
        }
        Body::DeleteTopics(c) => delete_topics(conns, c, &mut budget).await,
        Body::SetSession(c) => set_session(conns, c),
        Body::QueryOnline(q) => queries::online(conns, q),
        Body::QueryConnInfo(q) => queries::conn_info(conns, limits, q, &mut budget).await,
        Body::QueryCounts(q) => queries::counts(conns, q, &mut budget).await,
        Body::QueryList(q) => queries::list(conns, limits, q, &mut budget).await,
        _ => return None,
    };
    Some(result.unwrap_or_else(refused))
}

/// The message of a cast that is not a stream's publication.
fn message(
    payload: Option<Payload>,
    field: &str,
    asked: Option<&Asked>,
) -> Result<Message, Refused> {
    let frame = frame::outgoing(payload, field)?;
    Ok(Message::new(frame, asked.and_then(|a| a.ack)))
}

fn single_cast(registry: &Registry, c: SingleCast, asked: Option<&Asked>) -> Outcome {
    // An empty conn_id was refused by validate::command.
    let msg = message(c.payload, "SingleCast.payload", asked)?;
    let receipts = asked.map(|a| &a.receipts);
    Ok(match registry.send_with(&c.conn_id, &msg, receipts) {
        SendOutcome::Queued => report(1, Vec::new()),
        // A slow consumer is being closed: for the caller it is gone.
        SendOutcome::Unknown | SendOutcome::SlowConsumer => report(0, vec![c.conn_id]),
    })
}

async fn multicast(
    registry: &Registry,
    c: Multicast,
    asked: Option<&Asked>,
    budget: &mut Budget,
) -> Outcome {
    // Within the per-command limit already (validate::command), so a waiting receipt fits.
    let msg = message(c.payload, "Multicast.payload", asked)?;
    let receipts = asked.map(|a| &a.receipts);
    let mut delivered = 0;
    let mut unknown = Vec::new();
    let mut seen = HashSet::new();
    for id in c.conn_ids {
        // A connection named twice gets the message twice, but one receipt.
        let tracked = receipts.filter(|_| seen.insert(id.clone()));
        match registry.send_with(&id, &msg, tracked) {
            SendOutcome::Queued => delivered += 1,
            SendOutcome::Unknown | SendOutcome::SlowConsumer => unknown.push(id),
        }
        budget.spend(1).await;
    }
    Ok(report(delivered, unknown))
}

fn broadcast(registry: &Registry, c: Broadcast, asked: Option<&Asked>) -> Outcome {
    let msg = message(c.payload, "Broadcast.payload", asked)?;
    let exclude: HashSet<&str> = c.exclude.iter().map(String::as_str).collect();
    Ok(report(
        registry.broadcast(&msg, &exclude, asked.map(|a| &a.receipts)),
        Vec::new(),
    ))
}

async fn force_offline(conns: &Connections, c: ForceOffline, budget: &mut Budget) -> Outcome {
    // Checked by validate::command: a valid code and reason.
    let code = validate::close(i64::from(c.code), &c.reason)?;
    let last = match c.last_message {
        Some(p) => Some(message(Some(p), "ForceOffline.last_message", None)?),
        None => None,
    };
    let request = CloseRequest {
        code,
        reason: c.reason,
        closed_by: ClosedBy::Business,
    };
    let (by_user, unknown_users) = users_conns(conns, &c.user_ids, budget).await;
    let mut seen: HashSet<&str> = HashSet::new();
    let mut closed = 0;
    let mut unknown = Vec::new();
    // Named ids first, so an unknown one is reported; a user's connection that closed since
    // it was looked up is simply gone (and the answer stays bounded by what was named).
    let named = c.conn_ids.iter().map(|id| (id, true));
    for (id, is_named) in named.chain(by_user.iter().map(|id| (id, false))) {
        if !seen.insert(id.as_str()) {
            continue;
        }
        if conns.registry.close(id, last.as_ref(), request.clone()) {
            closed += 1;
        } else if is_named {
            unknown.push(id.clone());
        }
        budget.spend(1).await;
    }
    Ok(report_users(closed, unknown, unknown_users))
}

/// The current connections of these users, and the users that have none.
pub(crate) async fn users_conns(
    conns: &Connections,
    user_ids: &[String],
    budget: &mut Budget,
) -> (Vec<String>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for user in user_ids {
        let mine = conns.indexes.user_conns(user);
        budget.spend(1 + mine.len()).await;
        if mine.is_empty() {
            missing.push(user.clone());
        }
        found.extend(mine);
    }
    (found, missing)
}

/// Runs `change` on one connection under its lock; `None` when it is unknown.
fn with_conn<T>(
    conns: &Connections,
    conn_id: &str,
    change: impl FnOnce(&mut Locked<'_>) -> T,
) -> Option<T> {
    conns
        .registry
        .get(conn_id)
        .map(|conn| change(&mut conn.state.lock()))
}

async fn bind_user(conns: &Connections, limits: &Limits, c: BindUser) -> Outcome {
    let bound = match conns.registry.get(&c.conn_id) {
        None => None,
        Some(conn) => {
            let user = [(Kind::Users, c.user_id.as_str())];
            let bind = || {
                conns
                    .indexes
                    .bind(&mut conn.state.lock(), &c.user_id, limits.user)
            };
            Some(
                conns
                    .streams
                    .joining(&conns.registry, &conn, &user, bind)
                    .await,
            )
        }
    };
    let bound = match bound {
        None => return Ok(one_conn(c.conn_id, false)),
        Some(Err(refused)) => {
            return Err(Refused::limit(format!("BindUser refused: {refused}")));
        }
        Some(Ok(bound)) => bound,
    };
    for id in &bound.evicted {
        conns.registry.close(id, None, CloseRequest::replaced());
    }
    Ok(one_conn(c.conn_id, bound.bound))
}

fn unbind_user(conns: &Connections, c: UnbindUser) -> Outcome {
    let done = with_conn(conns, &c.conn_id, |l| conns.indexes.unbind(l)).unwrap_or(false);
    Ok(one_conn(c.conn_id, done))
}

/// A SendToUsers or Publish: to the users' connections or the topics' members.
struct Casting<'a> {
    kind: Kind,
    names: &'a [String],
    exclude: &'a [String],
    asked: Option<&'a Asked>,
    command_id: &'a str,
}

impl Casting<'_> {
    /// The connections of one user or topic now.
    fn members(&self, conns: &Connections, name: &str) -> Vec<String> {
        match self.kind {
            Kind::Users => conns.indexes.user_conns(name),
            Kind::Topics => conns.indexes.topic_conns(name),
        }
    }
}

/// Queues `plain` for the connections of every user or topic named: a name that is a stream
/// gets a publication of its own, queued under the stream's lock (see
/// [`crate::connections::streams`]); the others are reached once per connection, as before
/// streams. Returns how many were reached and the names with no connection.
async fn cast_to_streams(
    conns: &Connections,
    limits: &Limits,
    to: Casting<'_>,
    payload: Option<Payload>,
    field: &str,
    budget: &mut Budget,
) -> Result<(u32, Vec<String>), Refused> {
    let plain = frame::outgoing(payload, field)?;
    let ack = to.asked.and_then(|a| a.ack);
    if let Some(a) = to.asked.filter(|a| a.wait) {
        // A waiting receipt lists every target: count them first, so nothing is sent when
        // they cannot all be listed.
        let mut targets = 0;
        for name in to.names {
            targets += to.members(conns, name).len();
            budget.spend(1).await;
        }
        Asked::bound(Some(a), targets, limits)?;
    }
    let mut delivered = 0;
    let mut missing = Vec::new();
    let mut plain_targets = Vec::new();
    for name in to.names {
        let stream = conns.streams.lock(to.kind, name).await;
        let members = to.members(conns, name);
        budget.spend(1 + members.len()).await;
        if members.is_empty() {
            missing.push(name.clone());
        }
        match stream {
            Some(mut stream) => {
                let stats = conns.registry.stats();
                let messages = stream
                    .publish(plain.clone(), ack, to.command_id, stats)
                    .await
                    .map_err(|refused| refused.within(&format!("{} {name}", to.kind.noun())))?;
                // Earlier publications this gateway had not delivered come first, without
                // receipts or counting: the cast is the last one.
                if let Some((cast, earlier)) = messages.split_last() {
                    for msg in earlier {
                        let targets = Recipients {
                            targets: &members,
                            exclude: to.exclude,
                            asked: None,
                        };
                        send_each(&conns.registry, targets, msg, budget).await;
                    }
                    let targets = Recipients {
                        targets: &members,
                        exclude: to.exclude,
                        asked: to.asked,
                    };
                    delivered += send_each(&conns.registry, targets, cast, budget).await;
                }
            }
            None => plain_targets.extend(members),
        }
    }
    let targets = Recipients {
        targets: &plain_targets,
        exclude: to.exclude,
        asked: to.asked,
    };
    delivered += send_each(&conns.registry, targets, &Message::new(plain, ack), budget).await;
    Ok((delivered, missing))
}

/// Who a SendToUsers or Publish reaches: the connections found, those excluded, and the
/// receipts asked for.
struct Recipients<'a> {
    targets: &'a [String],
    exclude: &'a [String],
    asked: Option<&'a Asked>,
}

/// Queues `msg` once for each distinct connection not excluded; returns how many got it.
async fn send_each(
    registry: &Registry,
    to: Recipients<'_>,
    msg: &Message,
    budget: &mut Budget,
) -> u32 {
    let Recipients {
        targets: conns,
        exclude,
        asked,
    } = to;
    let receipts = asked.map(|a| &a.receipts);
    let exclude: HashSet<&str> = exclude.iter().map(String::as_str).collect();
    let mut seen = HashSet::with_capacity(conns.len());
    let mut delivered = 0;
    for id in conns {
        budget.spend(1).await;
        if exclude.contains(id.as_str()) || !seen.insert(id.as_str()) {
            continue;
        }
        if registry.send_with(id, msg, receipts) == SendOutcome::Queued {
            delivered += 1;
        }
    }
    delivered
}

/// The topics and connections of a Subscribe or Unsubscribe.
struct Targets {
    command: &'static str,
    topics: Vec<String>,
    conn_ids: Vec<String>,
    user_ids: Vec<String>,
}

impl Targets {
    fn new(
        command: &'static str,
        topics: Vec<String>,
        conn_ids: Vec<String>,
        user_ids: Vec<String>,
    ) -> Self {
        Self {
            command,
            topics,
            conn_ids,
            user_ids,
        }
    }
}

async fn subscribe(
    conns: &Connections,
    limits: &Limits,
    t: Targets,
    join: bool,
    budget: &mut Budget,
) -> Outcome {
    let Targets {
        command,
        topics,
        conn_ids,
        user_ids,
    } = t;
    let (by_user, unknown_users) = users_conns(conns, &user_ids, budget).await;
    let mut seen = HashSet::new();
    let mut affected = 0;
    let mut unknown = Vec::new();
    let mut limited = Vec::new();
    let mut limited_count = 0usize;
    let mut refusal = None;
    let named: HashSet<&String> = conn_ids.iter().collect();
    for id in conn_ids.iter().chain(by_user.iter()) {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let done = change_topics(conns, id, &topics, join, limits.topics_per_conn, budget).await;
        match done {
            Some(Ok(true)) => affected += 1,
            Some(Err(over)) => {
                refusal.get_or_insert(over);
                limited_count += 1;
                // Listed up to the per-command limit, so the answer stays within a frame.
                if limited.len() < limits.per_command.conn_ids.max(1) {
                    limited.push(id.clone());
                }
            }
            Some(Ok(false)) | None => {
                if named.contains(id) {
                    unknown.push(id.clone());
                }
            }
        }
    }
    let mut result = report_users(affected, unknown, unknown_users);
    if let Some(over) = refusal {
        result.code = ErrorCode::LimitExceeded as i32;
        result.message = format!(
            "{command}: {limited_count} connection(s) left unchanged ({}): {over}; unsubscribe them from other topics first, or raise the limit; {affected} connection(s) done",
            preview(&limited),
        );
        result.limited_conn_ids = limited;
    }
    Ok(result)
}

/// Joins or leaves `topics` for one connection, [`WORK_SLICE`] topics under its lock at a
/// time with a yield in between: within a slice all or nothing (the topic limit), so a batch of
/// at most one slice — every batch, with the default limits — is all or nothing; a larger one
/// keeps the slices done before one that would pass the limit. `None`: not connected.
async fn change_topics(
    conns: &Connections,
    id: &str,
    topics: &[String],
    join: bool,
    limit: usize,
    budget: &mut Budget,
) -> Option<Result<bool, TopicLimit>> {
    let mut done = Some(Ok(true));
    for slice in topics.chunks(WORK_SLICE) {
        done = match conns.registry.get(id) {
            None => None,
            Some(conn) if join => {
                // Topics that are streams are joined under their locks (replay first).
                let candidates: Vec<(Kind, &str)> =
                    slice.iter().map(|t| (Kind::Topics, t.as_str())).collect();
                let subscribe = || {
                    conns
                        .indexes
                        .subscribe(&mut conn.state.lock(), slice, limit)
                };
                let joined = conns
                    .streams
                    .joining(&conns.registry, &conn, &candidates, subscribe);
                Some(joined.await)
            }
            Some(conn) => Some(Ok(conns.indexes.unsubscribe(&mut conn.state.lock(), slice))),
        };
        budget.spend(slice.len()).await;
        if !matches!(done, Some(Ok(true))) {
            break;
        }
    }
    done
}

/// The first few ids of a list, for a message.
fn preview(ids: &[String]) -> String {
    let mut shown: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
    if ids.len() > 3 {
        shown.push("…");
    }
    shown.join(", ")
}

async fn delete_topics(conns: &Connections, c: DeleteTopics, budget: &mut Budget) -> Outcome {
    let mut deleted = 0;
    for topic in &c.topics {
        let members = conns.indexes.topic_conns(topic);
        if !members.is_empty() {
            deleted += 1;
        }
        let one = std::slice::from_ref(topic);
        for id in members {
            with_conn(conns, &id, |l| conns.indexes.unsubscribe(l, one));
            budget.spend(1).await;
        }
    }
    Ok(report(deleted, Vec::new()))
}

fn set_session(conns: &Connections, c: SetSession) -> Outcome {
    let Some(conn) = conns.registry.get(&c.conn_id) else {
        return Ok(one_conn(c.conn_id, false));
    };
    let done = conns
        .indexes
        .set_session(&mut conn.state.lock(), c.set, &c.delete, c.replace)
        .map_err(|e| e.within("SetSession refused"))?;
    Ok(one_conn(c.conn_id, done))
}
