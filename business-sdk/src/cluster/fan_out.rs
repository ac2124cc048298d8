//! Sending one command across a cluster: pick the gateways (see `route`), send to all of them
//! at once, and collect each one's answer or failure.
//!
//! Every gateway's part runs concurrently with the single-gateway request/reply exchange
//! ([`LinkShared::request_on`]), bounded by the request timeout, on the session whose node id
//! it was routed by; the gateway of this process, if the cluster has one
//! ([`InProcess`](crate::InProcess)), is called instead. A gateway that is down, times out, drops the link or refuses becomes a
//! [`GatewayFailure`] named by its node id (or address); the answers that came are mapped by
//! the caller's function (the same `report` mappings a [`Client`](crate::Client) uses) and
//! merged by the caller.

use std::sync::Arc;

use futures_util::future::join_all;
use prost::Message;
use wsgate_proto::v1::{self, envelope::Body};
use wsgate_proto::{CodecError, conn_id, validate};

use crate::cluster::members::Members;
use crate::cluster::merge;
use crate::cluster::report::{GatewayFailure, Partial};
use crate::cluster::route::{self, ByNode, Recipients};
use crate::error::{self, Error};
use crate::link::{GatewayState, LinkShared, SessionHandle};
use crate::outgoing::{Call, Meta};

/// A registered gateway to send to.
struct Target {
    /// Its node id.
    node_id: String,
    link: Arc<LinkShared>,
    session: SessionHandle,
}

/// Where one command goes.
struct Plan {
    sends: Vec<(Target, Body)>,
    /// Gateways concerned that cannot be sent to.
    failed: Vec<GatewayFailure>,
    /// Ids that are no wsgate connection id.
    malformed: Vec<String>,
}

/// The answers of one fan-out, mapped.
pub(crate) struct Gathered<T> {
    /// The mapped answers, in the order of the gateways' addresses.
    pub(crate) values: Vec<T>,
    pub(crate) failed: Vec<GatewayFailure>,
    pub(crate) malformed: Vec<String>,
}

impl Members {
    /// The registered gateway owning `conn_id`, or why there is none.
    fn owner(&self, conn_id: &str) -> Result<Target, Error> {
        if self.is_shut_down() {
            return Err(Error::Closed);
        }
        let Some(node_id) = conn_id::node_of(conn_id) else {
            // Not a wsgate connection id: no gateway can know it.
            return Err(Error::UnknownConnection {
                conn_ids: vec![conn_id.to_owned()],
            });
        };
        let links = self.links();
        let up = links.iter().find_map(|link| {
            let session = link.session()?;
            (session.node_id == node_id).then(|| Target {
                node_id: session.node_id.clone(),
                link: link.clone(),
                session,
            })
        });
        if let Some(target) = up {
            return Ok(target);
        }
        if route::may_exist(node_id, &down_nodes(&links)) {
            Err(Error::GatewayUnavailable {
                node_id: node_id.to_owned(),
            })
        } else {
            // No gateway of the cluster has that node id, up or down: a typo or a stale id.
            Err(Error::UnknownConnection {
                conn_ids: vec![conn_id.to_owned()],
            })
        }
    }

    /// Refuses a body that a gateway would refuse whatever its state ([`validate::command`]),
    /// under the strictest limits of the registered gateways: checked before routing, so a
    /// command that reaches no gateway (it names only connections of unknown nodes) is refused
    /// as a gateway would refuse it.
    fn check(&self, body: &Body) -> Result<(), Error> {
        let limits = self
            .links()
            .iter()
            .filter_map(|link| link.session())
            .fold(validate::Limits::default(), |acc, s| acc.min(s.limits));
        validate::command(body, &limits).map_err(Error::from)
    }

    /// Sends `body` to the gateway owning `conn_id` and waits for its `Result`.
    pub(crate) async fn request_owner(
        &self,
        call: &Call,
        conn_id: &str,
        body: Body,
    ) -> Result<v1::Result, Error> {
        self.check(&body)?;
        elsewhere(call, conn_id)?;
        let target = self.owner(conn_id)?;
        let meta = call.meta(&body, self.config().retries);
        let reply = self.request_on(&target, body, &meta).await;
        self.unavailable_if_removed(reply, &target)
    }

    /// Sends `body` to every gateway it concerns, concurrently, and maps each answer with
    /// `map`. Fails as a whole with [`Error::Closed`] after shutdown, and with a gateway's
    /// refusal ([`Error::Gateway`], for example a bad request) when no gateway accepted the
    /// command and at least one refused it: a refusal is the caller's to fix, not a gateway
    /// problem.
    pub(crate) async fn gather<T>(
        &self,
        call: &Call,
        body: Body,
        map: impl Fn(v1::Result) -> Result<T, Error>,
    ) -> Result<Gathered<T>, Error> {
        if self.is_shut_down() {
            return Err(Error::Closed);
        }
        self.check(&body)?;
        // One id for the command: each gateway remembers its own part by it.
        let meta = call.meta(&body, self.config().retries);
        let Plan {
            sends,
            mut failed,
            malformed,
        } = self.plan(body, call.only.as_deref());
        let meta = &meta;
        let answers = join_all(sends.into_iter().map(|(target, body)| async move {
            let reply = self.request_on(&target, body, meta).await;
            (target, reply)
        }))
        .await;
        if self.is_shut_down() {
            return Err(Error::Closed);
        }
        let mut values = Vec::with_capacity(answers.len());
        let mut refusal = None;
        for (target, reply) in answers {
            match reply.and_then(&map) {
                Ok(value) => values.push(value),
                Err(err) => {
                    failed.push(failure(&target, &err));
                    if refusal.is_none() && matches!(err, Error::Gateway { .. }) {
                        refusal = Some(err);
                    }
                }
            }
        }
        if values.is_empty()
            && let Some(err) = refusal
        {
            return Err(err);
        }
        Ok(Gathered {
            values,
            failed,
            malformed,
        })
    }

    /// Queues `body` with request id 0 on every gateway it concerns (a single-connection body
    /// only on the owner, which must be up).
    pub(crate) async fn post(&self, call: &Call, body: Body) -> Result<Partial<()>, Error> {
        if self.is_shut_down() {
            return Err(Error::Closed);
        }
        self.check(&body)?;
        // Fire and forget: nothing to retry, so only the caller's own command id goes along.
        let meta = call.meta(&body, false);
        let meta = &meta;
        if let Recipients::Owner(conn_id) = route::recipients_of(&body) {
            elsewhere(call, &conn_id)?;
            let target = self.owner(&conn_id)?;
            let sent = self.post_on(&target, body, meta).await;
            return self
                .unavailable_if_removed(sent, &target)
                .map(|()| Partial::default());
        }
        let Plan {
            sends, mut failed, ..
        } = self.plan(body, call.only.as_deref());
        let sent = join_all(sends.into_iter().map(|(target, body)| async move {
            let sent = self.post_on(&target, body, meta).await;
            (target, sent)
        }))
        .await;
        if self.is_shut_down() {
            return Err(Error::Closed);
        }
        for (target, result) in sent {
            if let Err(err) = result {
                failed.push(failure(&target, &err));
            }
        }
        Ok(Partial { value: (), failed })
    }

    /// Sends `body` to one gateway and waits for its answer: a call when it is the gateway of
    /// this process, else a request on its session, bounded by the request timeout.
    async fn request_on(
        &self,
        target: &Target,
        body: Body,
        meta: &Meta,
    ) -> Result<v1::Result, Error> {
        match self.in_process(&target.node_id) {
            Some(gateway) => {
                let body = fits(target, body)?;
                gateway
                    .execute(&meta.command_id, meta.receipt, meta.client_ack, body)
                    .await
                    .map_err(error::from_wire)
            }
            None => {
                let timeout = self.config().request_timeout;
                target
                    .link
                    .request_on(&target.session, body, meta, timeout)
                    .await
            }
        }
    }

    /// Queues `body` with no answer wanted: carried out at once by the gateway of this
    /// process (its answer dropped, as the gateway drops it on its link), else queued on the
    /// session.
    async fn post_on(&self, target: &Target, body: Body, meta: &Meta) -> Result<(), Error> {
        match self.in_process(&target.node_id) {
            Some(gateway) => {
                let body = fits(target, body)?;
                let _ = gateway
                    .execute(&meta.command_id, meta.receipt, meta.client_ack, body)
                    .await;
                Ok(())
            }
            None => {
                let timeout = self.config().request_timeout;
                target
                    .link
                    .post_on(&target.session, body, meta.clone(), timeout)
                    .await
            }
        }
    }

    /// Which gateway gets which body; with `only`, that gateway alone (the ids of others are
    /// left out).
    fn plan(&self, body: Body, only: Option<&str>) -> Plan {
        let (conn_ids, everyone) = match route::recipients_of(&body) {
            Recipients::Everyone => (Vec::new(), true),
            Recipients::Owner(conn_id) => (vec![conn_id], false),
            Recipients::Split { conn_ids, everyone } => (conn_ids, everyone),
        };
        let ByNode {
            mut groups,
            malformed,
        } = route::split_by_node(conn_ids);
        if let Some(only) = only {
            groups.retain(|node_id, _| node_id == only);
        }
        let mut plan = Plan {
            sends: Vec::new(),
            failed: Vec::new(),
            malformed,
        };
        let links = self.links();
        let down_now = down_nodes(&links);
        for link in links {
            if only.is_some_and(|only| link.node_id().as_deref() != Some(only)) {
                continue;
            }
            match link.session() {
                Some(session) => {
                    let ids = groups.remove(&session.node_id).unwrap_or_default();
                    if everyone || !ids.is_empty() {
                        let body = route::restrict(&body, ids);
                        let target = Target {
                            node_id: session.node_id.clone(),
                            link,
                            session,
                        };
                        plan.sends.push((target, body));
                    }
                }
                None if everyone => plan.failed.push(down(&link)),
                None => {}
            }
        }
        // Ids of a node no gateway has, up or down, are unknown connections, not a failure.
        let (unavailable, unknown): (Vec<_>, Vec<_>) = groups
            .into_iter()
            .partition(|(node_id, _)| route::may_exist(node_id, &down_now));
        plan.malformed
            .extend(unknown.into_iter().flat_map(|(_, ids)| ids));
        let unavailable = unavailable.into_iter().map(|(node_id, _)| GatewayFailure {
            gateway: node_id.clone(),
            error: Error::GatewayUnavailable { node_id }.to_string(),
        });
        let mut failed = Vec::new();
        merge::add_failures(&mut failed, plan.failed);
        merge::add_failures(&mut failed, unavailable.collect());
        plan.failed = failed;
        plan
    }

    /// A link removed from the cluster while the request was on it answers `Closed`; for the
    /// caller that gateway is simply unavailable.
    fn unavailable_if_removed<T>(
        &self,
        result: Result<T, Error>,
        target: &Target,
    ) -> Result<T, Error> {
        match result {
            Err(Error::Closed) if !self.is_shut_down() => Err(Error::GatewayUnavailable {
                node_id: target.node_id.clone(),
            }),
            other => other,
        }
    }
}

/// A connection of another gateway than the one a handle is restricted to
/// ([`Cluster::only_gateway`](crate::Cluster::only_gateway)): unknown to that handle.
fn elsewhere(call: &Call, conn_id: &str) -> Result<(), Error> {
    match &call.only {
        Some(only) if conn_id::node_of(conn_id) != Some(&**only) => Err(Error::UnknownConnection {
            conn_ids: vec![conn_id.to_owned()],
        }),
        _ => Ok(()),
    }
}

/// `body`, if the gateway's link could carry it: a call to the in-process gateway is held to
/// the link's frame limit too, so a command is refused as too large by one rule whichever way
/// it travels. Sized as the link sends it, with a request id.
fn fits(target: &Target, body: Body) -> Result<Body, Error> {
    let envelope = v1::Envelope {
        request_id: 1,
        body: Some(body),
        ..Default::default()
    };
    let len = envelope.encoded_len();
    match envelope.body {
        Some(body) if len <= target.session.max_frame => Ok(body),
        _ => Err(Error::Codec(CodecError::FrameTooLarge {
            len,
            max: target.session.max_frame,
        })),
    }
}

/// The node ids of the gateways that are not registered now: the last one each registered
/// with, `None` for one that never has.
fn down_nodes(links: &[Arc<LinkShared>]) -> Vec<Option<String>> {
    links
        .iter()
        .filter(|link| link.session().is_none())
        .map(|link| link.status().node_id)
        .collect()
}

/// The failure of a gateway that was sent (its part of) a command.
fn failure(target: &Target, err: &Error) -> GatewayFailure {
    let error = match err {
        Error::Closed => format!(
            "the gateway at {} left the cluster (no longer discovered) before answering",
            target.link.addr()
        ),
        other => format!("{other} (gateway at {})", target.link.addr()),
    };
    GatewayFailure {
        gateway: target.node_id.clone(),
        error,
    }
}

/// The failure of a gateway that is not registered.
fn down(link: &LinkShared) -> GatewayFailure {
    let status = link.status();
    let error = match (status.state, status.last_error) {
        (GatewayState::Connecting, _) => format!(
            "not connected to the gateway at {} yet: the first attempt is under way",
            link.addr()
        ),
        (_, Some(why)) => format!(
            "not connected to the gateway at {}: {why}; the SDK keeps retrying it",
            link.addr()
        ),
        (_, None) => format!(
            "not connected to the gateway at {}; the SDK keeps retrying it",
            link.addr()
        ),
    };
    GatewayFailure {
        gateway: status.node_id.unwrap_or_else(|| link.addr().to_owned()),
        error,
    }
}
