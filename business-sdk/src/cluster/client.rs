//! The [`Cluster`] handle: every command of a [`Client`](crate::Client), sent to the gateways
//! it concerns, their answers merged.
//!
//! Each method builds its body (`command`, as a `Client` does), hands it to the members
//! (`fan_out`: route, send to all at once, collect) and merges what came back (`merge`). How
//! a cluster is made is `builder`'s; which links it holds is `members`'.

use std::fmt;
use std::sync::Arc;

use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{
    ConnInfo, CountsReply, Delivery, ListKind, ListReply, OnlineReply, Payload, Receipt,
};

use crate::cluster::members::Members;
use crate::cluster::merge;
use crate::cluster::report::{ClusterReport, Partial};
use crate::cluster::status::GatewayStatus;
use crate::command::{self, LIST_ALL_PAGE, next_cursor, strings};
use crate::error::Error;
use crate::outgoing::Call;
use crate::report as single;
use crate::session_change::SessionChange;
use crate::targets::Targets;

/// A business process connected to every gateway of a cluster: sends commands to the right
/// gateways and merges their answers.
///
/// Made with [`Cluster::builder`]. Cloning is cheap and every clone drives the same links. The
/// links run in the background until [`Cluster::shutdown`] is called, or until every clone and
/// the [`ClusterEvents`] receiver have been dropped. Every command of [`Client`](crate::Client)
/// exists here with the same name and arguments: single-connection commands return what the
/// `Client`'s do, the others a [`ClusterReport`] or a [`Partial`] answer that names the
/// gateways that did not answer.
///
/// ```no_run
/// use wsgate_business::{Cluster, Event, EventKind, Payload, StaticDiscovery};
///
/// # async fn run() -> Result<(), wsgate_business::Error> {
/// let gateways: StaticDiscovery = ["10.0.0.1:8081", "10.0.0.2:8081", "10.0.0.3:8081"]
///     .into_iter()
///     .collect();
/// let (cluster, mut events) = Cluster::builder(gateways)
///     .name("chat")
///     .events([EventKind::Open, EventKind::Message])
///     .connect()
///     .await?;
/// while let Some(ev) = events.recv().await {
///     match ev.event {
///         // Routed to the gateway that owns the connection (ev.node_id).
///         Event::Open(open) => cluster.bind_user(&open.conn_id, "alice").await?,
///         // Sent to every gateway; the report sums them up.
///         Event::Message(msg) => {
///             let Some(payload) = msg.payload else { continue };
///             let sent = cluster.send_to_users(["alice"], payload, [msg.conn_id]).await?;
///             for failure in &sent.failed {
///                 eprintln!("not everyone got it: {failure}");
///             }
///         }
///         _ => {}
///     }
/// }
/// cluster.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cluster {
    pub(super) inner: Arc<Handle>,
    /// What this handle's commands carry (see [`Cluster::with_command_id`]).
    call: Call,
}

/// Tells the links when the last handle is gone.
pub(super) struct Handle {
    pub(super) members: Arc<Members>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The links stop once `ClusterEvents` is dropped too.
        self.members.handles_gone();
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.members().config().name)
            .field("gateways", &self.gateways())
            .field("closed", &self.members().is_shut_down())
            .finish()
    }
}

impl Cluster {
    pub(crate) fn new(members: Arc<Members>) -> Self {
        Self {
            inner: Arc::new(Handle { members }),
            call: Call::default(),
        }
    }

    /// A handle on the same cluster whose commands carry `command_id` instead of a fresh one:
    /// each gateway carries out a command id once and answers a later command with that id
    /// with the first one's result. See [`Client::with_command_id`](crate::Client::with_command_id);
    /// the HTTP API's `Idempotency-Key` header does this.
    pub fn with_command_id(&self, command_id: impl Into<String>) -> Cluster {
        let mut handle = self.clone();
        handle.call.command_id = Some(command_id.into().into());
        handle
    }

    /// A handle on the same cluster whose casts wait for receipts from every gateway: see
    /// [`Client::with_receipts`](crate::Client::with_receipts); the merged report lists every
    /// gateway's receipts.
    pub fn with_receipts(&self) -> Cluster {
        let mut handle = self.clone();
        handle.call.receipt = wsgate_proto::v1::ReceiptMode::Wait;
        handle
    }

    /// A handle whose casts answer at once and whose receipts follow as
    /// [`Event::Receipts`](crate::Event::Receipts), one series per gateway (its
    /// [`ClusterEvent::node_id`](crate::ClusterEvent)). See
    /// [`Client::with_receipts_later`](crate::Client::with_receipts_later). A gateway of this
    /// process (the APIs' in-process part) refuses it.
    pub fn with_receipts_later(&self) -> Cluster {
        let mut handle = self.clone();
        handle.call.receipt = wsgate_proto::v1::ReceiptMode::Later;
        handle
    }

    /// A handle whose commands reach only the gateway with node id `node_id`: a command for
    /// everyone (a broadcast, a publish, a user's connections) is carried out there alone, and
    /// connection ids of other gateways are left out of the commands that report (reported
    /// neither unknown nor failed); the single-connection commands (`single_cast`,
    /// `bind_user`, …) answer [`Error::UnknownConnection`] for them.
    /// For a source every gateway reads on its own (a gateway's consumers of Redis Pub/Sub or
    /// NATS subjects): each delivers to its own connections, so each client gets a message once.
    pub fn only_gateway(&self, node_id: impl Into<String>) -> Cluster {
        let mut handle = self.clone();
        handle.call.only = Some(node_id.into().into());
        handle
    }

    /// A handle whose casts also ask each client to acknowledge: see
    /// [`Client::with_client_acks`](crate::Client::with_client_acks).
    pub fn with_client_acks(&self) -> Cluster {
        let mut handle = self.clone();
        handle.call = handle.call.with_client_acks();
        handle
    }

    fn members(&self) -> &Members {
        &self.inner.members
    }

    /// Sends `payload` to one client connection, on the gateway that owns it.
    ///
    /// Fails with [`Error::GatewayUnavailable`] when that gateway is not connected (nothing is
    /// sent) and [`Error::UnknownConnection`] when the connection is gone (or the id is not a
    /// wsgate connection id).
    pub async fn single_cast(
        &self,
        conn_id: impl Into<String>,
        payload: Payload,
    ) -> Result<(), Error> {
        let conn_id = conn_id.into();
        self.single(&conn_id, command::single_cast(conn_id.clone(), payload))
            .await
    }

    /// Sends `payload` to several client connections: each gateway gets its own connections'
    /// ids, all at once. Ids of gateways that are not connected are reported in
    /// [`ClusterReport::failed`] (one entry per node id); ids that are gone in
    /// [`Report::unknown_conn_ids`](crate::Report::unknown_conn_ids).
    pub async fn multicast(
        &self,
        conn_ids: impl IntoIterator<Item = impl Into<String>>,
        payload: Payload,
    ) -> Result<ClusterReport, Error> {
        self.report(command::multicast(strings(conn_ids), payload))
            .await
    }

    /// Sends `payload` to every client connection of every gateway except those in `exclude`
    /// (pass `[]` to exclude nobody).
    pub async fn broadcast(
        &self,
        payload: Payload,
        exclude: impl IntoIterator<Item = String>,
    ) -> Result<ClusterReport, Error> {
        self.report(command::broadcast(payload, exclude.into_iter().collect()))
            .await
    }

    /// Closes client connections from the server side (see
    /// [`Client::force_offline`](crate::Client::force_offline)), each on its own gateway.
    pub async fn force_offline(
        &self,
        conn_ids: impl IntoIterator<Item = impl Into<String>>,
        code: u16,
        reason: &str,
        last: Option<Payload>,
    ) -> Result<ClusterReport, Error> {
        self.report(command::force_offline(
            strings(conn_ids),
            Vec::new(),
            code,
            reason,
            last,
        ))
        .await
    }

    /// Binds `user_id` to a connection, on the gateway that owns it (see
    /// [`Client::bind_user`](crate::Client::bind_user)). A user may have connections on
    /// several gateways; the user commands reach all of them.
    pub async fn bind_user(
        &self,
        conn_id: impl Into<String>,
        user_id: impl Into<String>,
    ) -> Result<(), Error> {
        let conn_id = conn_id.into();
        self.single(
            &conn_id,
            command::bind_user(conn_id.clone(), user_id.into()),
        )
        .await
    }

    /// Removes a connection's user binding, on the gateway that owns it.
    pub async fn unbind_user(&self, conn_id: impl Into<String>) -> Result<(), Error> {
        let conn_id = conn_id.into();
        self.single(&conn_id, command::unbind_user(conn_id.clone()))
            .await
    }

    /// Sends `payload` to every connection of these users on every gateway, except the
    /// connections in `exclude_conn_ids` (pass `[]` to exclude none).
    ///
    /// [`Report::unknown_user_ids`](crate::Report::unknown_user_ids) lists the users that no answering gateway knows (offline,
    /// as far as the cluster can tell).
    pub async fn send_to_users(
        &self,
        user_ids: impl IntoIterator<Item = impl Into<String>>,
        payload: Payload,
        exclude_conn_ids: impl IntoIterator<Item = String>,
    ) -> Result<ClusterReport, Error> {
        self.report(command::send_to_users(
            strings(user_ids),
            payload,
            exclude_conn_ids.into_iter().collect(),
        ))
        .await
    }

    /// Closes every connection of these users on every gateway.
    pub async fn force_offline_users(
        &self,
        user_ids: impl IntoIterator<Item = impl Into<String>>,
        code: u16,
        reason: &str,
        last: Option<Payload>,
    ) -> Result<ClusterReport, Error> {
        self.report(command::force_offline(
            Vec::new(),
            strings(user_ids),
            code,
            reason,
            last,
        ))
        .await
    }

    /// Adds connections to topics: the connection ids in `targets` on their gateways, and the
    /// users' current connections on every gateway (when `targets` names users).
    pub async fn subscribe(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
        targets: Targets,
    ) -> Result<ClusterReport, Error> {
        self.report(command::subscribe(strings(topics), targets))
            .await
    }

    /// Removes connections from topics, chosen and routed as in
    /// [`subscribe`](Self::subscribe).
    pub async fn unsubscribe(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
        targets: Targets,
    ) -> Result<ClusterReport, Error> {
        self.report(command::unsubscribe(strings(topics), targets))
            .await
    }

    /// Sends `payload` to every member of these topics on every gateway, except the
    /// connections in `exclude_conn_ids`.
    pub async fn publish(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
        payload: Payload,
        exclude_conn_ids: impl IntoIterator<Item = String>,
    ) -> Result<ClusterReport, Error> {
        self.report(command::publish(
            strings(topics),
            payload,
            exclude_conn_ids.into_iter().collect(),
        ))
        .await
    }

    /// Removes every member from these topics on every gateway. [`Report::delivered`](crate::Report::delivered) sums the
    /// topics each gateway deleted (a topic with members on two gateways counts twice).
    pub async fn delete_topics(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<ClusterReport, Error> {
        self.report(command::delete_topics(strings(topics))).await
    }

    /// Changes a connection's session data, on the gateway that owns it (see
    /// [`Client::set_session`](crate::Client::set_session)).
    pub async fn set_session(
        &self,
        conn_id: impl Into<String>,
        change: SessionChange,
    ) -> Result<(), Error> {
        let conn_id = conn_id.into();
        self.single(&conn_id, command::set_session(conn_id.clone(), change))
            .await
    }

    /// Which of these connections (asked of their gateways) and users (asked of every gateway)
    /// are connected; the union, in the order asked.
    pub async fn online(
        &self,
        conn_ids: impl IntoIterator<Item = String>,
        user_ids: impl IntoIterator<Item = String>,
    ) -> Result<Partial<OnlineReply>, Error> {
        let conn_ids: Vec<String> = conn_ids.into_iter().collect();
        let user_ids: Vec<String> = user_ids.into_iter().collect();
        let gathered = self
            .members()
            .gather(
                &self.call,
                command::online(conn_ids.clone(), user_ids.clone()),
                single::online_from_result,
            )
            .await?;
        Ok(Partial {
            value: merge::online(&conn_ids, &user_ids, gathered.values),
            failed: gathered.failed,
        })
    }

    /// Everything the owning gateways know about these connections, grouped by gateway.
    /// Connections that are gone (or ids that are no wsgate connection id) are simply absent;
    /// the gateways that could not be asked are in [`Partial::failed`].
    pub async fn conn_info(
        &self,
        conn_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Partial<Vec<ConnInfo>>, Error> {
        let mut ask = strings(conn_ids);
        let mut value = Vec::new();
        let mut failed = Vec::new();
        // A gateway whose answer would not fit one frame names the rest: ask again for those.
        loop {
            let gathered = self
                .members()
                .gather(
                    &self.call,
                    command::conn_info(ask),
                    single::conn_info_from_result,
                )
                .await?;
            merge::add_failures(&mut failed, gathered.failed);
            let mut more = Vec::new();
            let mut answered = 0;
            for (conns, rest) in gathered.values {
                answered += conns.len();
                value.extend(conns);
                more.extend(rest);
            }
            if more.is_empty() {
                return Ok(Partial { value, failed });
            }
            if answered == 0 {
                return Err(single::conn_info_stuck(&more));
            }
            ask = more;
        }
    }

    /// The counts of every gateway, summed (per topic too, for the named `topics`; pass `[]`
    /// for none).
    ///
    /// Gateways count only their own: a user connected to two gateways counts twice in
    /// `users`, and a topic with members on two gateways twice in `topics`. For distinct users
    /// use [`list_all`](Self::list_all) with [`ListKind::Users`].
    pub async fn counts(
        &self,
        topics: impl IntoIterator<Item = String>,
    ) -> Result<Partial<CountsReply>, Error> {
        let gathered = self
            .members()
            .gather(
                &self.call,
                command::counts(topics.into_iter().collect()),
                single::counts_from_result,
            )
            .await?;
        Ok(Partial {
            value: merge::counts(gathered.values),
            failed: gathered.failed,
        })
    }

    /// One page of a list across the cluster (see [`Client::list`](crate::Client::list) for
    /// the kinds): every gateway is asked for `limit` items after `cursor`, and the answers
    /// are merged in ascending byte order without repeats (a user or topic may be on several
    /// gateways) and cut to `limit` items. Pass `next_cursor` back until it is empty, or use
    /// [`list_all`](Self::list_all).
    pub async fn list(
        &self,
        kind: ListKind,
        key: impl Into<String>,
        cursor: impl Into<String>,
        limit: u32,
    ) -> Result<Partial<ListReply>, Error> {
        let cursor = cursor.into();
        let gathered = self
            .members()
            .gather(
                &self.call,
                command::list(kind, key.into(), cursor.clone(), limit),
                single::list_from_result,
            )
            .await?;
        Ok(Partial {
            value: merge::list(&cursor, limit, gathered.values),
            failed: gathered.failed,
        })
    }

    /// A whole list across the cluster, in ascending byte order without repeats, fetched in
    /// pages of 1000 with [`list`](Self::list). A gateway that failed on any page is in
    /// [`Partial::failed`] (once) and some of its items may be missing.
    ///
    /// ```no_run
    /// # async fn run(cluster: wsgate_business::Cluster) -> Result<(), wsgate_business::Error> {
    /// use wsgate_business::ListKind;
    ///
    /// let users = cluster.list_all(ListKind::Users, "").await?;
    /// println!("{} distinct users online", users.value.len());
    /// if !users.is_complete() {
    ///     eprintln!("some gateways did not answer: {:?}", users.failed);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_all(
        &self,
        kind: ListKind,
        key: impl Into<String>,
    ) -> Result<Partial<Vec<String>>, Error> {
        let key = key.into();
        let mut all = Partial::<Vec<String>>::default();
        let mut cursor = String::new();
        loop {
            let page = self
                .list(kind, key.as_str(), cursor.as_str(), LIST_ALL_PAGE)
                .await?;
            merge::add_failures(&mut all.failed, page.failed);
            all.value.extend(page.value.items);
            match next_cursor(&cursor, page.value.next_cursor)? {
                Some(next) => cursor = next,
                None => return Ok(all),
            }
        }
    }

    /// Sends any command body to the gateways it concerns, routed like the typed commands (a
    /// body naming connections goes to their owners, one for everyone to every gateway), and
    /// merges their answers: for callers that hold commands as bodies, such as the gateway's
    /// consumers. A refusal is an error as for the typed commands; a connection that is gone
    /// is in [`Report::unknown_conn_ids`](crate::Report::unknown_conn_ids).
    pub async fn command(&self, body: Body) -> Result<ClusterReport, Error> {
        self.report(body).await
    }

    /// Sends any envelope body with request id 0 (no answer), routed like the typed commands:
    /// a body naming one connection goes to its gateway (fails fast with
    /// [`Error::GatewayUnavailable`]), one naming several is split per owner, any other goes
    /// to every gateway. Returns once the frames are queued; [`Partial::failed`] names the
    /// gateways that could not take theirs.
    pub async fn post(&self, body: Body) -> Result<Partial<()>, Error> {
        self.members().post(&self.call, body).await
    }

    /// The node ids of the gateways that are registered now (up or draining), ordered by
    /// their addresses. The node id is the prefix of every connection id a gateway issues.
    pub fn node_ids(&self) -> Vec<String> {
        self.members()
            .links()
            .iter()
            .filter_map(|link| link.node_id())
            .collect()
    }

    /// Every discovered gateway and what its link is doing, ordered by address.
    ///
    /// ```no_run
    /// # fn run(cluster: wsgate_business::Cluster) {
    /// use wsgate_business::GatewayState;
    ///
    /// for gw in cluster.gateways() {
    ///     if gw.state != GatewayState::Up {
    ///         eprintln!("{} ({:?}) is {}: {:?}", gw.addr, gw.node_id, gw.state, gw.last_error);
    ///     }
    /// }
    /// # }
    /// ```
    pub fn gateways(&self) -> Vec<GatewayStatus> {
        self.members().statuses()
    }

    /// Closes every link and stops rediscovery, failing commands still waiting with
    /// [`Error::Closed`]. [`ClusterEvents`] yields a final [`Event::Disconnected`](crate::Event::Disconnected) per
    /// connected gateway and then `None`. Later commands fail with [`Error::Closed`].
    /// Idempotent; every clone is affected.
    pub async fn shutdown(&self) {
        tracing::debug!("shutting down the wsgate cluster client");
        self.members()
            .shutdown("the cluster client was shut down")
            .await;
    }

    /// Sends a single-connection command to the owner and maps the answer like a `Client`.
    async fn single(&self, conn_id: &str, body: Body) -> Result<(), Error> {
        let result = self
            .members()
            .request_owner(&self.call, conn_id, body)
            .await?;
        single::single_from_result(conn_id, result)
    }

    /// Sends a command to the gateways it concerns and merges their reports.
    async fn report(&self, body: Body) -> Result<ClusterReport, Error> {
        let gathered = self
            .members()
            .gather(&self.call, body, single::report_from_result)
            .await?;
        let mut report = merge::reports(gathered.values, gathered.malformed.clone());
        // No gateway could have these ids: gone, as a gateway reports its unknown ones.
        if self.call.receipt != wsgate_proto::v1::ReceiptMode::None {
            report
                .receipts
                .extend(gathered.malformed.into_iter().map(|conn_id| Receipt {
                    conn_id,
                    delivery: Delivery::Gone as i32,
                }));
        }
        Ok(ClusterReport {
            report,
            failed: gathered.failed,
        })
    }
}
