//! The handle a business process uses to send commands to the gateway.
//!
//! A [`Client`] is cheap to clone and can be used from many tasks at once. Every command goes
//! through the link driver's queue; commands that expect an answer get a fresh request id and
//! wait for the matching `Result` frame, at most for the request timeout. While the link is down
//! commands fail fast with [`Error::NotConnected`] instead of piling up.
//!
//! Today a client drives one link to one gateway. Connection-id commands are the ones a cluster
//! client would route by the id's node id (`wsgate_proto::conn_id::node_of`), and broadcasts
//! would go to every link; the methods are shaped so that can be added without changing them.

use std::fmt;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::debug;
use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{self, Broadcast, Envelope, ForceOffline, Multicast, Payload, SingleCast};

use crate::builder::{ClientBuilder, Config};
use crate::error::Error;
use crate::link::{LinkShared, Outgoing, SessionHandle, Stop};
use crate::report::{self, Report};

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
        let result = self
            .request(Body::Multicast(Multicast {
                conn_ids: conn_ids.into_iter().map(Into::into).collect(),
                payload: Some(payload),
            }))
            .await?;
        report::report_from_result(result)
    }

    /// Sends `payload` to every client connection of the gateway except those in `exclude`
    /// (pass `[]` to exclude nobody).
    pub async fn broadcast(
        &self,
        payload: Payload,
        exclude: impl IntoIterator<Item = String>,
    ) -> Result<Report, Error> {
        let result = self
            .request(Body::Broadcast(Broadcast {
                payload: Some(payload),
                exclude: exclude.into_iter().collect(),
            }))
            .await?;
        report::report_from_result(result)
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
        let result = self
            .request(Body::ForceOffline(ForceOffline {
                conn_ids: conn_ids.into_iter().map(Into::into).collect(),
                code: u32::from(code),
                reason: reason.to_owned(),
                last_message: last,
            }))
            .await?;
        report::report_from_result(result)
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
