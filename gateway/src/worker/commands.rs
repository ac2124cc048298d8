//! Carries out the commands a business process sends (queries are in [`queries`](super::queries)).
//!
//! Commands never wait on a client: a payload is converted to a WebSocket message once and
//! shared by reference count with every recipient's queue. Commands that change a connection's
//! state go through [`Indexes`](crate::connections::state::Indexes), which keeps the connection and the user
//! and topic indexes consistent.
//!
//! Every command is bounded twice. What it may name is limited (topics, connection ids and user
//! ids per command: [`Limits`]), checked before anything is done, so a refused command changes
//! nothing and no answer can outgrow a frame. And what it costs is paid in slices: a command
//! whose work grows with the connections it reaches gives its thread back to the runtime every
//! [`WORK_SLICE`] steps ([`Budget`]), so one large command never stalls other connections,
//! links or the APIs.

use std::collections::HashSet;

use bytes::Bytes;
use wsgate_proto::v1::{
    BindUser, Broadcast, ClosedBy, DeleteTopics, ErrorCode, ForceOffline, Multicast, Publish,
    Result as CmdResult, SendToUsers, SetSession, SingleCast, UnbindUser, envelope::Body,
};

use super::queries;
use crate::connections::Connections;
use crate::connections::registry::{CloseRequest, Registry, SendOutcome};
use crate::connections::users::UserLimit;
use crate::websocket::close_code;
use crate::websocket::frame;
use wsgate_proto::validate;

use crate::connections::state::{Locked, TopicLimit};

/// Steps (a connection reached, a membership changed) a command takes before it lets other
/// tasks run.
pub(crate) const WORK_SLICE: usize = 2048;

/// Counts a command's steps and yields to the runtime after every [`WORK_SLICE`].
#[derive(Debug, Default)]
pub(crate) struct Budget(usize);

impl Budget {
    pub(crate) async fn spend(&mut self, steps: usize) {
        self.0 += steps;
        if self.0 >= WORK_SLICE {
            self.0 = 0;
            tokio::task::yield_now().await;
        }
    }
}

/// Why a command was refused as a whole, with the protocol's code for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandError {
    pub code: ErrorCode,
    pub message: String,
}

impl CommandError {
    pub(crate) fn limit(message: String) -> Self {
        Self {
            code: ErrorCode::LimitExceeded,
            message,
        }
    }

    fn into_result(self) -> CmdResult {
        CmdResult {
            code: self.code as i32,
            message: self.message,
            ..Default::default()
        }
    }
}

impl From<String> for CommandError {
    fn from(message: String) -> Self {
        Self {
            code: ErrorCode::BadRequest,
            message,
        }
    }
}

impl From<validate::Invalid> for CommandError {
    fn from(invalid: validate::Invalid) -> Self {
        Self {
            code: invalid.code,
            message: invalid.message,
        }
    }
}

type Outcome = Result<CmdResult, CommandError>;

/// The limits commands run under, from the gateway's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// What one command may name (checked by [`validate::command`] before it runs).
    pub per_command: validate::Limits,
    pub topics_per_conn: usize,
    pub user: UserLimit,
    /// No answer may be larger (`--max-frame-bytes`).
    pub max_frame_bytes: usize,
}

impl Limits {
    pub(crate) fn of(config: &crate::Config) -> Self {
        Self {
            per_command: validate::Limits {
                topics: config.max_topics_per_command,
                conn_ids: config.max_conn_ids_per_command,
                user_ids: config.max_user_ids_per_command,
            },
            topics_per_conn: config.max_topics_per_conn,
            user: UserLimit::new(
                config.max_connections_per_user,
                config.user_connection_policy,
            ),
            max_frame_bytes: config.max_frame_bytes,
        }
    }
}

/// Runs one command or query body. `None` when `body` is neither.
pub(crate) async fn execute(conns: &Connections, limits: &Limits, body: Body) -> Option<CmdResult> {
    if let Err(invalid) = validate::command(&body, &limits.per_command) {
        return Some(CommandError::from(invalid).into_result());
    }
    let mut budget = Budget::default();
    let registry = &conns.registry;
    let result = match body {
        Body::SingleCast(c) => single_cast(registry, c),
        Body::Multicast(c) => multicast(registry, c, &mut budget).await,
        Body::Broadcast(c) => broadcast(registry, c),
        Body::ForceOffline(c) => force_offline(conns, c, &mut budget).await,
        Body::BindUser(c) => bind_user(conns, limits, c),
        Body::UnbindUser(c) => unbind_user(conns, c),
        Body::SendToUsers(c) => send_to_users(conns, c, &mut budget).await,
        Body::Subscribe(c) => {
            let targets = Targets::new("Subscribe", c.topics, c.conn_ids, c.user_ids);
            subscribe(conns, limits, targets, true, &mut budget).await
        }
        Body::Unsubscribe(c) => {
            let targets = Targets::new("Unsubscribe", c.topics, c.conn_ids, c.user_ids);
            subscribe(conns, limits, targets, false, &mut budget).await
        }
        Body::Publish(c) => publish(conns, c, &mut budget).await,
        Body::DeleteTopics(c) => delete_topics(conns, c, &mut budget).await,
        Body::SetSession(c) => set_session(conns, c),
        Body::QueryOnline(q) => queries::online(conns, q),
        Body::QueryConnInfo(q) => queries::conn_info(conns, limits, q, &mut budget).await,
        Body::QueryCounts(q) => queries::counts(conns, q, &mut budget).await,
        Body::QueryList(q) => queries::list(conns, limits, q, &mut budget).await,
        _ => return None,
    };
    Some(result.unwrap_or_else(CommandError::into_result))
}

pub(crate) fn report(delivered: u32, unknown: Vec<String>) -> CmdResult {
    report_users(delivered, unknown, Vec::new())
}

pub(crate) fn report_users(
    delivered: u32,
    unknown: Vec<String>,
    unknown_users: Vec<String>,
) -> CmdResult {
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
        ..Default::default()
    }
}

fn single_cast(registry: &Registry, c: SingleCast) -> Outcome {
    if c.conn_id.is_empty() {
        return Err(String::from(
            "SingleCast.conn_id is empty; set it to a connection id from ConnOpen",
        )
        .into());
    }
    let msg = frame::outgoing(c.payload, "SingleCast.payload")?;
    Ok(match registry.send(&c.conn_id, &msg) {
        SendOutcome::Queued => report(1, Vec::new()),
        // A slow consumer is being closed: for the caller it is gone.
        SendOutcome::Unknown | SendOutcome::SlowConsumer => report(0, vec![c.conn_id]),
    })
}

async fn multicast(registry: &Registry, c: Multicast, budget: &mut Budget) -> Outcome {
    let msg = frame::outgoing(c.payload, "Multicast.payload")?;
    let mut delivered = 0;
    let mut unknown = Vec::new();
    for id in c.conn_ids {
        match registry.send(&id, &msg) {
            SendOutcome::Queued => delivered += 1,
            SendOutcome::Unknown | SendOutcome::SlowConsumer => unknown.push(id),
        }
        budget.spend(1).await;
    }
    Ok(report(delivered, unknown))
}

fn broadcast(registry: &Registry, c: Broadcast) -> Outcome {
    let msg = frame::outgoing(c.payload, "Broadcast.payload")?;
    let exclude: HashSet<&str> = c.exclude.iter().map(String::as_str).collect();
    Ok(report(registry.broadcast(&msg, &exclude), Vec::new()))
}

async fn force_offline(conns: &Connections, c: ForceOffline, budget: &mut Budget) -> Outcome {
    // Checked by validate::command: a valid code and reason.
    let code = validate::close(c.code, &c.reason)?;
    let last = match c.last_message {
        Some(p) => Some(frame::outgoing(Some(p), "ForceOffline.last_message")?),
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
        if conns.registry.close(id, last.clone(), request.clone()) {
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

fn one_conn_result(conn_id: String, done: bool) -> CmdResult {
    if done {
        report(1, Vec::new())
    } else {
        report(0, vec![conn_id])
    }
}

/// The close request for connections a user's new connection pushed past the per-user limit.
pub(crate) fn evicted_request() -> CloseRequest {
    CloseRequest {
        code: close_code::REPLACED,
        reason: "replaced by a newer connection of the same user".into(),
        closed_by: ClosedBy::Gateway,
    }
}

fn bind_user(conns: &Connections, limits: &Limits, c: BindUser) -> Outcome {
    let bound = with_conn(conns, &c.conn_id, |l| {
        conns.indexes.bind(l, &c.user_id, limits.user)
    });
    let bound = match bound {
        None => return Ok(one_conn_result(c.conn_id, false)),
        Some(Err(refused)) => {
            return Err(CommandError::limit(format!("BindUser refused: {refused}")));
        }
        Some(Ok(bound)) => bound,
    };
    for id in &bound.evicted {
        conns.registry.close(id, None, evicted_request());
    }
    Ok(one_conn_result(c.conn_id, bound.bound))
}

fn unbind_user(conns: &Connections, c: UnbindUser) -> Outcome {
    let done = with_conn(conns, &c.conn_id, |l| conns.indexes.unbind(l)).unwrap_or(false);
    Ok(one_conn_result(c.conn_id, done))
}

async fn send_to_users(conns: &Connections, c: SendToUsers, budget: &mut Budget) -> Outcome {
    let msg = frame::outgoing(c.payload, "SendToUsers.payload")?;
    let (targets, unknown_users) = users_conns(conns, &c.user_ids, budget).await;
    let delivered = send_each(&conns.registry, targets, &c.exclude_conn_ids, &msg, budget).await;
    Ok(report_users(delivered, Vec::new(), unknown_users))
}

/// Queues `msg` once for each distinct connection not excluded; returns how many got it.
async fn send_each(
    registry: &Registry,
    conns: Vec<String>,
    exclude: &[String],
    msg: &Bytes,
    budget: &mut Budget,
) -> u32 {
    let exclude: HashSet<&str> = exclude.iter().map(String::as_str).collect();
    let mut seen = HashSet::with_capacity(conns.len());
    let mut delivered = 0;
    for id in &conns {
        budget.spend(1).await;
        if exclude.contains(id.as_str()) || !seen.insert(id.as_str()) {
            continue;
        }
        if registry.send(id, msg) == SendOutcome::Queued {
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
        done = with_conn(conns, id, |l| {
            if join {
                conns.indexes.subscribe(l, slice, limit)
            } else {
                Ok(conns.indexes.unsubscribe(l, slice))
            }
        });
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

async fn publish(conns: &Connections, c: Publish, budget: &mut Budget) -> Outcome {
    let msg = frame::outgoing(c.payload, "Publish.payload")?;
    let mut targets = Vec::new();
    for topic in &c.topics {
        let members = conns.indexes.topic_conns(topic);
        budget.spend(1 + members.len()).await;
        targets.extend(members);
    }
    let delivered = send_each(&conns.registry, targets, &c.exclude_conn_ids, &msg, budget).await;
    Ok(report(delivered, Vec::new()))
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
        return Ok(one_conn_result(c.conn_id, false));
    };
    let done = conns
        .indexes
        .set_session(&mut conn.state.lock(), c.set, &c.delete, c.replace)
        .map_err(|e| format!("SetSession refused: {e}"))?;
    Ok(one_conn_result(c.conn_id, done))
}
