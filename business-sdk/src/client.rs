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
//! Today a client drives one link to one gateway. Connection-id commands are the ones a cluster
//! client would route by the id's node id (`wsgate_proto::conn_id::node_of`); user, topic and
//! broadcast commands would go to every link and their reports and query replies be merged; the
//! methods are shaped so that can be added without changing them.

use std::fmt;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::debug;
use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{
    self, BindUser, Broadcast, ConnInfo, CountsReply, DeleteTopics, Envelope, ErrorCode,
    ForceOffline, ListKind, ListReply, Multicast, OnlineReply, Payload, Publish, QueryConnInfo,
    QueryCounts, QueryList, QueryOnline, SendToUsers, SingleCast, Subscribe, UnbindUser,
    Unsubscribe,
};

use crate::builder::{ClientBuilder, Config};
use crate::error::Error;
use crate::link::{LinkShared, Outgoing, SessionHandle, Stop};
use crate::report::{self, Report};
use crate::session_change::SessionChange;
use crate::targets::Targets;

/// The page size [`Client::list_all`] asks for.
const LIST_ALL_PAGE: u32 = 1000;

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
}

struct Inner {
    config: Arc<Config>,
    link: Arc<LinkShared>,
    stop: Stop,
    tracker: TaskTracker,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone; the link stops once `Events` is dropped too.
        self.stop.clients_gone.cancel();
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.link.addr())
            .field("name", &self.inner.config.name)
            .field("node_id", &self.inner.link.node_id())
            .field("closed", &self.inner.stop.shutdown.is_cancelled())
            .finish()
    }
}

impl Client {
    /// Starts describing a client of the gateway whose worker listener is at `addr`
    /// (`"host:port"`, for example `"127.0.0.1:8081"`).
    pub fn builder(addr: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(addr)
    }

    pub(crate) fn new(
        config: Arc<Config>,
        link: Arc<LinkShared>,
        stop: Stop,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                link,
                stop,
                tracker,
            }),
        }
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
            .request(Body::SingleCast(SingleCast {
                conn_id: conn_id.clone(),
                payload: Some(payload),
            }))
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
        self.request_report(Body::Multicast(Multicast {
            conn_ids: conn_ids.into_iter().map(Into::into).collect(),
            payload: Some(payload),
        }))
        .await
    }

    /// Sends `payload` to every client connection of the gateway except those in `exclude`
    /// (pass `[]` to exclude nobody).
    pub async fn broadcast(
        &self,
        payload: Payload,
        exclude: impl IntoIterator<Item = String>,
    ) -> Result<Report, Error> {
        self.request_report(Body::Broadcast(Broadcast {
            payload: Some(payload),
            exclude: exclude.into_iter().collect(),
        }))
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
        self.request_report(Body::ForceOffline(ForceOffline {
            conn_ids: conn_ids.into_iter().map(Into::into).collect(),
            code: u32::from(code),
            reason: reason.to_owned(),
            last_message: last,
            user_ids: Vec::new(),
        }))
        .await
    }

    /// Binds `user_id` to a connection (re-binding it if it was bound to another user). The
    /// connection then carries the user id in every later event and is reached by the user
    /// commands ([`send_to_users`](Self::send_to_users), [`force_offline_users`](Self::force_offline_users),
    /// topic commands with [`Targets::user`]).
    ///
    /// A user id is a non-empty string of at most 128 bytes (else [`Error::Gateway`] with
    /// [`ErrorCode::BadRequest`]). Fails with [`Error::UnknownConnection`] when the connection
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
            .request(Body::BindUser(BindUser {
                conn_id: conn_id.clone(),
                user_id: user_id.into(),
            }))
            .await?;
        report::single_from_result(&conn_id, result)
    }

    /// Removes a connection's user binding; its topics and session data stay. Unbinding a
    /// connection that has no user succeeds. Fails with [`Error::UnknownConnection`] when the
    /// connection is not connected to the gateway.
    pub async fn unbind_user(&self, conn_id: impl Into<String>) -> Result<(), Error> {
        let conn_id = conn_id.into();
        let result = self
            .request(Body::UnbindUser(UnbindUser {
                conn_id: conn_id.clone(),
            }))
            .await?;
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
        self.request_report(Body::SendToUsers(SendToUsers {
            user_ids: strings(user_ids),
            payload: Some(payload),
            exclude_conn_ids: exclude_conn_ids.into_iter().collect(),
        }))
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
        self.request_report(Body::ForceOffline(ForceOffline {
            conn_ids: Vec::new(),
            code: u32::from(code),
            reason: reason.to_owned(),
            last_message: last,
            user_ids: strings(user_ids),
        }))
        .await
    }

    /// Adds connections to topics: the connections and the users' current connections in
    /// `targets` (connections a user opens later are not added). A topic name is a non-empty
    /// string of at most 128 bytes; a topic exists while it has members.
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
        self.request_report(Body::Subscribe(Subscribe {
            topics: strings(topics),
            conn_ids: targets.conn_ids,
            user_ids: targets.user_ids,
        }))
        .await
    }

    /// Removes connections from topics, chosen as in [`subscribe`](Self::subscribe).
    pub async fn unsubscribe(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
        targets: Targets,
    ) -> Result<Report, Error> {
        self.request_report(Body::Unsubscribe(Unsubscribe {
            topics: strings(topics),
            conn_ids: targets.conn_ids,
            user_ids: targets.user_ids,
        }))
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
        self.request_report(Body::Publish(Publish {
            topics: strings(topics),
            payload: Some(payload),
            exclude_conn_ids: exclude_conn_ids.into_iter().collect(),
        }))
        .await
    }

    /// Removes every member from these topics. [`Report::delivered`] counts the topics deleted.
    pub async fn delete_topics(
        &self,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Report, Error> {
        self.request_report(Body::DeleteTopics(DeleteTopics {
            topics: strings(topics),
        }))
        .await
    }

    /// Changes a connection's session data: the small string map the gateway keeps per
    /// connection and hands back in every `ConnMessage` and `ConnClose`.
    ///
    /// Limits: 64 keys, keys up to 128 bytes, 16 KiB in all; a change that would exceed them is
    /// refused whole with [`Error::Gateway`] ([`ErrorCode::BadRequest`], the message names the
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
            .request(Body::SetSession(change.into_command(conn_id.clone())))
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
            .request(Body::QueryOnline(QueryOnline {
                conn_ids: conn_ids.into_iter().collect(),
                user_ids: user_ids.into_iter().collect(),
            }))
            .await?;
        report::online_from_result(result)
    }

    /// Everything the gateway knows about these connections: user, topics, session, address,
    /// connect time. Connections that are not connected are simply absent from the answer.
    pub async fn conn_info(
        &self,
        conn_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Vec<ConnInfo>, Error> {
        let result = self
            .request(Body::QueryConnInfo(QueryConnInfo {
                conn_ids: strings(conn_ids),
            }))
            .await?;
        report::conn_info_from_result(result)
    }

    /// How many connections, users (with at least one connection) and topics (with at least one
    /// member) the gateway has, plus the member counts of the named topics (pass `[]` for
    /// none).
    pub async fn counts(
        &self,
        topics: impl IntoIterator<Item = String>,
    ) -> Result<CountsReply, Error> {
        let result = self
            .request(Body::QueryCounts(QueryCounts {
                topics: topics.into_iter().collect(),
            }))
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
            .request(Body::QueryList(QueryList {
                kind: kind as i32,
                key: key.into(),
                cursor: cursor.into(),
                limit,
            }))
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
        let session = self.session()?;
        let outgoing = Outgoing {
            envelope: Envelope {
                request_id: 0,
                body: Some(body),
            },
            reply: None,
        };
        match tokio::time::timeout(self.inner.config.request_timeout, session.tx.send(outgoing))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.not_sent()),
            Err(_) => Err(Error::Timeout),
        }
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
        self.inner.stop.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// Sends a command and turns its `Result` into a [`Report`].
    async fn request_report(&self, body: Body) -> Result<Report, Error> {
        report::report_from_result(self.request(body).await?)
    }

    /// Sends a command with a fresh request id and waits for the gateway's `Result`.
    async fn request(&self, body: Body) -> Result<v1::Result, Error> {
        let session = self.session()?;
        let request_id = self.inner.link.next_request_id();
        let (reply_tx, reply_rx) = oneshot::channel();
        let outgoing = Outgoing {
            envelope: Envelope {
                request_id,
                body: Some(body),
            },
            reply: Some(reply_tx),
        };
        let exchange = async {
            session
                .tx
                .send(outgoing)
                .await
                .map_err(|_| self.not_sent())?;
            reply_rx.await.map_err(|_| self.lost())?
        };
        match tokio::time::timeout(self.inner.config.request_timeout, exchange).await {
            Ok(reply) => reply,
            Err(_) => {
                debug!(request_id, "request timed out");
                Err(Error::Timeout)
            }
        }
    }

    /// The current session, or why there is none.
    fn session(&self) -> Result<SessionHandle, Error> {
        if self.inner.stop.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        self.inner.link.session().ok_or(Error::NotConnected)
    }

    /// The error for a command the link would not take.
    fn not_sent(&self) -> Error {
        if self.inner.stop.shutdown.is_cancelled() {
            Error::Closed
        } else {
            Error::NotConnected
        }
    }

    /// The error for a command whose reply will never come.
    fn lost(&self) -> Error {
        if self.inner.stop.shutdown.is_cancelled() {
            Error::Closed
        } else {
            Error::Disconnected
        }
    }
}

/// Collects ids or names into the `Vec<String>` a command carries.
fn strings(items: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

/// Where the next page of a list starts, or `None` after the last page. A cursor that does not
/// move forward would loop forever, so it is an error.
fn next_cursor(cursor: &str, next: String) -> Result<Option<String>, Error> {
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
}
