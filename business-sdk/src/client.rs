//! The handle a business process uses to send commands to the gateway.
//!
//! A [`Client`] is cheap to clone and can be used from many tasks at once. Every command goes
//! through the link driver's queue; commands that expect an answer get a fresh request id and
//! wait for the matching `Result` frame, at most for the request timeout. While the link is down
//! commands fail fast with [`Error::NotConnected`] instead of piling up.
//!
//! Command families: casts to connections (`single_cast`, `multicast`, `broadcast`), users
//! (`bind_user`, `unbind_user`, `send_to_users`, `force_offline_users`), topics (`subscribe`,
//! `unsubscribe`, `publish`, `delete_topics`), per-connection session data (`set_session`),
//! closing connections (`force_offline`) and queries (`online`, `conn_info`, `counts`, `list`,
//! `list_all`).
//!
//! Argument conventions: lists that name what a command acts on take anything that turns into
//! strings (`["a", "b"]`, a `Vec<String>`, an iterator); lists that are often empty (the
//! `exclude` lists, `online`'s two lists, `counts`' topics) take `String` items so that a plain
//! `[]` works. Commands with one target connection turn an unknown id into
//! [`Error::UnknownConnection`]; the others return a [`Report`] listing the unknown targets.
//!
//! A client is one link to one gateway: every method builds its body (`command`), sends it with
//! the link's request/reply exchange ([`LinkShared::request`]) and maps the `Result` (`report`).
//! A [`Cluster`](crate::Cluster) does the same over one link per gateway, routing
//! connection-id commands by the id's node id and sending the others to every gateway.

use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;
use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{
    self, ConnInfo, CountsReply, ListKind, ListReply, OnlineReply, Payload, ReceiptMode,
};

use crate::command::{self, LIST_ALL_PAGE, next_cursor, strings};
use crate::config::Config;
use crate::error::Error;
use crate::link::LinkShared;
use crate::outgoing::Call;
use crate::report::{self, Report};
use crate::session_change::SessionChange;
use crate::targets::Targets;

/// A connected business process: sends commands to the gateway.
///
/// Made with [`Client::builder`]. Cloning is cheap and every clone drives the same link.
/// The link runs in a background task until [`Client::shutdown`] is called, or until every
/// clone and the [`Events`](crate::Events) receiver have been dropped. Keep a clone alive (bind
/// it to a named variable such as `_client`, not `_`) for as long as you want to send commands.
///
/// ```no_run
/// use wsgate_business::{Client, Event, EventKind, Payload};
///
/// # async fn run() -> Result<(), wsgate_business::Error> {
/// let (client, mut events) = Client::builder("127.0.0.1:8081")
///     .name("greeter")
///     .events([EventKind::Open])
///     .connect()
///     .await?;
/// while let Some(event) = events.recv().await {
///     if let Event::Open(open) = event {
///         client.single_cast(&open.conn_id, Payload::text("welcome")).await?;
///         let report = client.broadcast(Payload::text("someone joined"), [open.conn_id]).await?;
///         println!("told {} others", report.delivered);
///     }
/// }
/// client.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// What this handle's commands carry (see [`Client::with_command_id`]).
    call: Call,
}

struct Inner {
    config: Arc<Config>,
    link: Arc<LinkShared>,
    /// Cancelled when the last handle is dropped.
    clients_gone: CancellationToken,
    tracker: TaskTracker,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone; the link stops once `Events` is dropped too.
        self.clients_gone.cancel();
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.link.addr())
            .field("name", &self.inner.config.name)
            .field("node_id", &self.inner.link.node_id())
            .field("closed", &self.inner.link.is_shut_down())
            .finish()
    }
}

impl Client {
    pub(crate) fn new(
        config: Arc<Config>,
        link: Arc<LinkShared>,
        clients_gone: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                link,
                clients_gone,
                tracker,
            }),
            call: Call::default(),
        }
    }

    /// A handle on the same link whose commands carry `command_id` (`Envelope.command_id`)
    /// instead of a fresh one: the gateway carries out a command id once and answers every
    /// later command with that id with the first one's result — use it to retry one command
    /// yourself, across restarts of this process too (derive the id from what the command is
    /// for, such as an order number and its status). One id per command: the gateway refuses an
    /// id reused for a different command. Printable ASCII, at most 128 bytes.
    pub fn with_command_id(&self, command_id: impl Into<String>) -> Client {
        let mut handle = self.clone();
        handle.call.command_id = Some(command_id.into().into());
        handle
    }

    /// A handle on the same link whose casts (`multicast`, `broadcast`, `send_to_users`,
    /// `publish`) wait for receipts: the [`Report`] lists, for each target connection, whether
    /// the message was written to its socket, the connection was gone, or the message was
    /// dropped unwritten (a slow consumer, or closed with it queued). The answer comes once
    /// every target has an outcome, so allow for slow clients in the request timeout. A cast
    /// may reach at most the gateway's `--max-conn-ids-per-command` connections with receipts
    /// (a bigger one is refused). For one connection, use `multicast` with its id. Other
    /// commands are refused on this handle.
    pub fn with_receipts(&self) -> Client {
        let mut handle = self.clone();
        handle.call.receipt = ReceiptMode::Wait;
        handle
    }

    /// A handle whose casts answer at once, as without receipts, and whose receipts follow as
    /// [`Event::Receipts`](crate::Event::Receipts) — for any number of targets (a broadcast, a
    /// big topic), without holding the caller. Combine with
    /// [`with_command_id`](Self::with_command_id) to know which cast an event is about.
    pub fn with_receipts_later(&self) -> Client {
        let mut handle = self.clone();
        handle.call.receipt = ReceiptMode::Later;
        handle
    }

    /// A handle whose casts also ask each client to acknowledge the message (clients of the
    /// `wsgate.stream.v1` subprotocol, such as the JavaScript client; docs/streams.md): a
    /// target's receipt is then [`Delivery::Acked`](wsgate_proto::v1::Delivery::Acked) or,
    /// when no acknowledgement came within the gateway's `--client-ack-timeout`,
    /// [`Delivery::Unacked`](wsgate_proto::v1::Delivery::Unacked); a plain client's stays
    /// `Written`. Waits for receipts (as [`with_receipts`](Self::with_receipts), so for up to
    /// that timeout) unless combined with [`with_receipts_later`](Self::with_receipts_later).
    pub fn with_client_acks(&self) -> Client {
        let mut handle = self.clone();
        handle.call = handle.call.with_client_acks();
        handle
    }

    /// Sends `payload` to one client connection.
    ///
    /// Fails with [`Error::UnknownConnection`] when the connection is not (or no longer)
    /// connected to the gateway.
    pub async fn single_cast(
        &self,
        conn_id: impl Into<String>,
        payload: Payload,
    ) -> Result<(), Error> {
        let conn_id = conn_id.into();
        let result = self
            .request(command::single_cast(conn_id.clone(), payload))
            .await?;
        report::single_from_result(&conn_id, result)
    }

    /// Sends `payload` to several client connections. The payload is encoded once.
    ///
    /// Ids the gateway does not know are listed in [`Report::unknown_conn_ids`]; the others are
    /// still served.
    pub async fn multicast(
        &self,
        conn_ids: impl IntoIterator<Item = impl Into<String>>,
        payload: Payload,
    ) -> Result<Report, Error> {
        self.request_report(command::multicast(strings(conn_ids), payload))
            .await
    }

    /// Sends `payload` to every client connection of the gateway except those in `exclude`
    /// (pass `[]` to exclude nobody).
    pub async fn broadcast(
        &self,
        payload: Payload,
        exclude: impl IntoIterator<Item = String>,
    ) -> Result<Report, Error> {
        self.request_report(command::broadcast(payload, exclude.into_iter().collect()))
            .await
    }

    /// Closes client connections from the server side with WebSocket close `code` (1000 or
    /// 3000-4999; 0 means 1000) and `reason`, optionally sending `last` just before the close
    /// frame. [`Report::delivered`] counts the connections closed.
    pub async fn force_offline(
        &self,
        conn_ids: impl IntoIterator<Item = impl Into<String>>,
        code: u16,
        reason: &str,
        last: Option<Payload>,
    ) -> Result<Report, Error> {
        self.request_report(command::force_offline(
            strings(conn_ids),
            Vec::new(),
            code,
            reason,
            last,
        ))
        .await
    }

    /// Binds `user_id` to a connection (re-binding it if it was bound to another user). The
    /// connection then carries the user id in every later event and is reached by the user
    /// commands ([`send_to_users`](Self::send_to_users), [`force_offline_users`](Self::force_offline_users),
    /// topic commands with [`Targets::user`]).
    ///
    /// A user id is a non-empty string of at most 128 characters (else [`Error::Gateway`] with
    /// [`ErrorCode::BadRequest`](crate::ErrorCode::BadRequest)). Fails with [`Error::UnknownConnection`] when the connection
    /// is not connected to the gateway.
    ///
    /// ```no_run
    /// # async fn run(client: wsgate_business::Client, msg: wsgate_business::ConnMessage)
    /// # -> Result<(), wsgate_business::Error> {
    /// use wsgate_business::Payload;
    ///
    /// // After a client logged in with a message, bind it and greet all of the user's devices.
    /// client.bind_user(&msg.conn_id, "alice").await?;
    /// client.send_to_users(["alice"], Payload::text("new login"), [msg.conn_id]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind_user(
        &self,
        conn_id: impl Into<String>,
        user_id: impl Into<String>,
    ) -> Result<(), Error> {
        let conn_id = conn_id.into();
        let result = self
            .request(command::bind_user(conn_id.clone(), user_id.into()))
            .await?;
        report::single_from_result(&conn_id, result)
    }

    /// Removes a connection's user binding; its topics and session data stay. Unbinding a
    /// connection that has no user succeeds. Fails with [`Error::UnknownConnection`] when the
    /// connection is not connected to the gateway.
    pub async fn unbind_user(&self, conn_id: impl Into<String>) -> Result<(), Error> {
        let conn_id = conn_id.into();
        let result = self.request(command::unbind_user(conn_id.clone())).await?;
        report::single_from_result(&conn_id, result)
    }

    /// Sends `payload` to every connection of these users, except the connections in
    /// `exclude_conn_ids` (pass `[]` to exclude none). The payload is encoded once.
    ///
    /// Users with no connection on the gateway are listed in [`Report::unknown_user_ids`]; that
    /// is not an error (they may be offline, or on another gateway).
    pub async fn send_to_users(
        &self,
        user_ids: impl IntoIterator<Item = impl Into<String>>,
        payload: Payload,
        exclude_conn_ids: impl IntoIterator<Item = String>,
    ) -> Result<Report, Error> {
        self.request_report(command::send_to_users(
            strings(user_ids),
            payload,
            exclude_conn_ids.into_iter().collect(),
        ))
        .await
    }

    /// Closes every connection of these users, as [`force_offline`](Self::force_offline)
    /// does for connection ids. [`Report::delivered`] counts the connections closed; users with
    /// no connection are listed in [`Report::unknown_user_ids`].
    pub async fn force_offline_users(
        &self,
        user_ids: impl IntoIterator<Item = impl Into<String>>,
        code: u16,
        reason: &str,
        last: Option<Payload>,
    ) -> Result<Report, Error> {
        self.request_report(command::force_offline(
            Vec::new(),
            strings(user_ids),
            code,
            reason,
            last,
        ))
        .await
    }

    /// Adds connections to topics: the connections and the users' current connections in
    /// `targets` (connections a user opens later are not added). A topic name is a non-empty
    /// string of at most 128 characters; a topic exists while it has members.
    ///
    /// [`Report::delivered`] counts the connections affected; unknown connections and users are
    /// listed in the report.
    ///
    /// ```no_run
    /// # async fn run(client: wsgate_business::Client, conn_id: String)
    /// # -> Result<(), wsgate_business::Error> {
    /// use wsgate_business::{Payload, Targets};
    ///
    /// client.subscribe(["room:42"], Targets::conn(&conn_id)).await?;
    /// client.subscribe(["room:42", "staff"], Targets::users(["alice", "bob"])).await?;
    /// let report = client.publish(["room:42"], Payload::text("hello room"), [conn_id]).await?;
    /// println!("{} members got it", report.delivered);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
        targets: Targets,
    ) -> Result<Report, Error> {
        self.request_report(command::subscribe(strings(topics), targets))
            .await
    }

    /// Removes connections from topics, chosen as in [`subscribe`](Self::subscribe).
    pub async fn unsubscribe(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
        targets: Targets,
    ) -> Result<Report, Error> {
        self.request_report(command::unsubscribe(strings(topics), targets))
            .await
    }

    /// Sends `payload` to every member of these topics except the connections in
    /// `exclude_conn_ids` (pass `[]` to exclude none). A connection in several of the topics
    /// gets it once. [`Report::delivered`] counts the connections it was queued for.
    pub async fn publish(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
        payload: Payload,
        exclude_conn_ids: impl IntoIterator<Item = String>,
    ) -> Result<Report, Error> {
        self.request_report(command::publish(
            strings(topics),
            payload,
            exclude_conn_ids.into_iter().collect(),
        ))
        .await
    }

    /// Removes every member from these topics. [`Report::delivered`] counts the topics deleted.
    pub async fn delete_topics(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Report, Error> {
        self.request_report(command::delete_topics(strings(topics)))
            .await
    }

    /// Changes a connection's session data: the small string map the gateway keeps per
    /// connection and hands back in every `ConnMessage` and `ConnClose`.
    ///
    /// Limits: 64 keys, keys up to 128 characters, 16 KiB in all; a change that would exceed them is
    /// refused whole with [`Error::Gateway`] ([`ErrorCode::BadRequest`](crate::ErrorCode::BadRequest), the message names the
    /// limit). Fails with [`Error::UnknownConnection`] when the connection is not connected.
    ///
    /// ```no_run
    /// # async fn run(client: wsgate_business::Client, conn_id: String)
    /// # -> Result<(), wsgate_business::Error> {
    /// use wsgate_business::SessionChange;
    ///
    /// client
    ///     .set_session(&conn_id, SessionChange::new().set("room", "42").delete("draft"))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_session(
        &self,
        conn_id: impl Into<String>,
        change: SessionChange,
    ) -> Result<(), Error> {
        let conn_id = conn_id.into();
        let result = self
            .request(command::set_session(conn_id.clone(), change))
            .await?;
        report::single_from_result(&conn_id, result)
    }

    /// Which of these connections and users are connected to the gateway (pass `[]` for
    /// either list).
    ///
    /// ```no_run
    /// # async fn run(client: wsgate_business::Client) -> Result<(), wsgate_business::Error> {
    /// let online = client.online([], ["alice".to_owned(), "bob".to_owned()]).await?;
    /// if online.user_ids.iter().any(|u| u == "alice") {
    ///     println!("alice is here");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn online(
        &self,
        conn_ids: impl IntoIterator<Item = String>,
        user_ids: impl IntoIterator<Item = String>,
    ) -> Result<OnlineReply, Error> {
        let result = self
            .request(command::online(
                conn_ids.into_iter().collect(),
                user_ids.into_iter().collect(),
            ))
            .await?;
        report::online_from_result(result)
    }

    /// Everything the gateway knows about these connections: user, topics, session, address,
    /// connect time. Connections that are not connected are simply absent from the answer.
    /// When the answer would not fit in one frame the gateway sends part of it and names the
    /// rest; this asks again until every connection is answered.
    pub async fn conn_info(
        &self,
        conn_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Vec<ConnInfo>, Error> {
        let mut ask = strings(conn_ids);
        let mut all = Vec::new();
        loop {
            let result = self.request(command::conn_info(ask)).await?;
            let (conns, more) = report::conn_info_from_result(result)?;
            if more.is_empty() {
                all.extend(conns);
                return Ok(all);
            }
            if conns.is_empty() {
                return Err(report::conn_info_stuck(&more));
            }
            all.extend(conns);
            ask = more;
        }
    }

    /// How many connections, users (with at least one connection) and topics (with at least one
    /// member) the gateway has, plus the member counts of the named topics (pass `[]` for
    /// none).
    pub async fn counts(
        &self,
        topics: impl IntoIterator<Item = String>,
    ) -> Result<CountsReply, Error> {
        let result = self
            .request(command::counts(topics.into_iter().collect()))
            .await?;
        report::counts_from_result(result)
    }

    /// One page of a list: connections, users or topics of the gateway, or the connections or
    /// users of topic `key`, or the connections of user `key` (see [`ListKind`]; `key` is
    /// ignored by the kinds that take none).
    ///
    /// Items come in ascending byte order: the first `limit` items greater than `cursor`
    /// (`limit` 0 means 1000; more than 10000 is refused). Start with an empty cursor and pass
    /// each reply's `next_cursor` back until it is empty, or use [`list_all`](Self::list_all).
    pub async fn list(
        &self,
        kind: ListKind,
        key: impl Into<String>,
        cursor: impl Into<String>,
        limit: u32,
    ) -> Result<ListReply, Error> {
        let result = self
            .request(command::list(kind, key.into(), cursor.into(), limit))
            .await?;
        report::list_from_result(result)
    }

    /// A whole list, fetched in pages of 1000 with [`list`](Self::list) until the gateway says
    /// there is no more. Items added or removed meanwhile may or may not be included; none is
    /// repeated. For very large lists prefer paging yourself.
    ///
    /// ```no_run
    /// # async fn run(client: wsgate_business::Client) -> Result<(), wsgate_business::Error> {
    /// use wsgate_business::ListKind;
    ///
    /// let members = client.list_all(ListKind::TopicConnections, "room:42").await?;
    /// let users = client.list_all(ListKind::Users, "").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_all(
        &self,
        kind: ListKind,
        key: impl Into<String>,
    ) -> Result<Vec<String>, Error> {
        let key = key.into();
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .list(kind, key.as_str(), cursor.as_str(), LIST_ALL_PAGE)
                .await?;
            items.extend(page.items);
            match next_cursor(&cursor, page.next_cursor)? {
                Some(next) => cursor = next,
                None => return Ok(items),
            }
        }
    }

    /// Sends any envelope body with request id 0: the gateway answers nothing and only logs
    /// failures. Returns once the frame is queued for the link (not when it is written).
    pub async fn post(&self, body: Body) -> Result<(), Error> {
        let link = &self.inner.link;
        let session = link.current()?;
        // Fire and forget: nothing to retry, so only the handle's own command id goes along.
        let meta = self.call.meta(&body, false);
        link.post_on(&session, body, meta, self.inner.config.request_timeout)
            .await
    }

    /// The node id of the gateway this client is registered with, or `None` while the link is
    /// down.
    pub fn node_id(&self) -> Option<String> {
        self.inner.link.node_id()
    }

    /// Closes the link and stops the driver, failing commands still waiting with
    /// [`Error::Closed`]. [`Events`](crate::Events) yields a final
    /// [`Event::Disconnected`](crate::Event::Disconnected) and then `None`. Later commands fail
    /// with [`Error::Closed`]. Idempotent; every clone is affected.
    pub async fn shutdown(&self) {
        debug!(addr = %self.inner.link.addr(), "shutting down the wsgate client");
        self.inner.link.close("the client was shut down");
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// Sends a command and turns its `Result` into a [`Report`].
    async fn request_report(&self, body: Body) -> Result<Report, Error> {
        report::report_from_result(self.request(body).await?)
    }

    /// Sends a command with a fresh request id and waits for the gateway's `Result`.
    async fn request(&self, body: Body) -> Result<v1::Result, Error> {
        let meta = self.call.meta(&body, self.inner.config.retries);
        self.inner
            .link
            .request(body, &meta, self.inner.config.request_timeout)
            .await
    }
}
