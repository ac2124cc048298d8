//! The driver of one worker link: connect, register, heartbeat, read events, write commands,
//! and reconnect with backoff when the link is lost.
//!
//! One [`Link`] talks to one gateway and runs as one background task. It shares only a
//! [`LinkShared`] with the handles that send commands: the request id counter, while registered
//! the sending end of the current session's command queue, the link's [`LinkStatus`], and its
//! shutdown token. [`LinkShared::request`] is the one request/reply exchange of the SDK: a
//! caller that finds no session fails fast with [`Error::NotConnected`]. A
//! [`Client`](crate::Client) is one link; a [`Cluster`](crate::Cluster) runs one `Link` per
//! gateway (started with [`Link::dial`], which reports its first attempt and keeps retrying)
//! and routes commands by the node id of each link's session.
//!
//! Within a session the reader and the writer run concurrently (in one task), so a gateway that
//! is slow to read commands never stops us from reading its events, and the other way round.
//! The writer feeds every frame that is ready and flushes once per burst. Replies are matched to
//! requests through a map of oneshot senders keyed by request id; when the session ends every
//! request still in it fails with [`Error::Disconnected`] (or [`Error::Closed`] on shutdown).
//!
//! The gateway's own requests (Authorize, the handshake hook) go to the event consumer as
//! [`AuthorizeCall`]s holding this session's command queue, so each answer goes back on the
//! registration that was asked and is refused once that registration has ended.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wsgate_proto::codec::DEFAULT_MAX_FRAME_BYTES;
use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{self, Envelope, ErrorCode, Limits, Ping, Pong, Register};
use wsgate_proto::{CodecError, PROTOCOL_VERSION, WorkerCodec};

use crate::authorize::{AuthorizeCall, Responder};
use crate::backoff::Backoff;
use crate::builder::Config;
use crate::cluster::GatewayState;
use crate::error::{self, Error};
use crate::events::{Event, EventSink};

/// The smallest duration accepted for timers (a zero period would spin or panic).
pub(crate) const MIN_DURATION: Duration = Duration::from_millis(1);
/// Heartbeat interval used when neither the builder nor the gateway set one.
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// Heartbeat timeout used when neither the builder nor the gateway set one.
const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);
/// Commands queued towards the writer before callers wait (backpressure).
const COMMAND_QUEUE: usize = 1024;
/// Frames fed before a flush is forced, so one busy producer cannot delay a flush forever.
const MAX_BURST: usize = 256;
/// A session that lasted this long resets the reconnect backoff; shorter ones (a gateway that
/// accepts and immediately drops us) keep escalating it.
const STABLE_SESSION: Duration = Duration::from_secs(1);
/// How long a shutdown waits to flush what was already written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a link runs on: a TCP stream, or a TLS stream over one.
pub(crate) trait LinkStream:
    AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug
{
}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug> LinkStream for T {}

type Transport = Framed<Box<dyn LinkStream>, WorkerCodec>;

/// What a request's caller receives: the gateway's `Result`, or why there is none.
pub(crate) type Reply = Result<v1::Result, Error>;

/// Requests waiting for their reply, by request id.
type Pending = Mutex<HashMap<u64, oneshot::Sender<Reply>>>;

/// One frame on its way to the writer.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) envelope: Envelope,
    /// Where the reply goes; `None` for fire-and-forget frames (request id 0).
    pub(crate) reply: Option<oneshot::Sender<Reply>>,
}

/// The part of a registered session that clients use.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    pub(crate) tx: mpsc::Sender<Outgoing>,
    pub(crate) node_id: String,
    /// What the gateway's commands may name, as its `RegisterOk` said.
    pub(crate) limits: wsgate_proto::validate::Limits,
}

/// What a link is doing, for [`Cluster::gateways`](crate::Cluster::gateways) and for the
/// failures a cluster reports for a gateway that is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkStatus {
    pub(crate) state: GatewayState,
    /// The node id of the last registration (kept while the link is down).
    pub(crate) node_id: Option<String>,
    /// Why the link is down, or why the last attempt failed.
    pub(crate) last_error: Option<String>,
}

/// State shared between a link driver and the handles that send commands through it.
#[derive(Debug)]
pub(crate) struct LinkShared {
    addr: String,
    next_request_id: AtomicU64,
    session: Mutex<Option<SessionHandle>>,
    status: Mutex<LinkStatus>,
    /// Cancelled when this link is shut down (by `Client::shutdown`, `Cluster::shutdown`, or a
    /// cluster dropping a gateway that vanished from discovery).
    shutdown: CancellationToken,
    /// Why it was shut down, for the final [`Event::Disconnected`].
    shutdown_reason: OnceLock<String>,
}

impl LinkShared {
    /// A link to `addr` that stops when `shutdown` is cancelled.
    pub(crate) fn new(addr: String, shutdown: CancellationToken) -> Self {
        Self {
            addr,
            next_request_id: AtomicU64::new(1),
            session: Mutex::new(None),
            status: Mutex::new(LinkStatus {
                state: GatewayState::Connecting,
                node_id: None,
                last_error: None,
            }),
            shutdown,
            shutdown_reason: OnceLock::new(),
        }
    }

    /// The gateway address this link dials.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// A fresh non-zero request id (0 means "no reply wanted").
    pub(crate) fn next_request_id(&self) -> u64 {
        loop {
            let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// The current session, if registered.
    pub(crate) fn session(&self) -> Option<SessionHandle> {
        self.lock().clone()
    }

    /// The node id of the current registration.
    pub(crate) fn node_id(&self) -> Option<String> {
        self.lock().as_ref().map(|s| s.node_id.clone())
    }

    /// What the link is doing now.
    pub(crate) fn status(&self) -> LinkStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether this link was shut down.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Records why the link is being shut down (the first reason wins). Cancelling the token
    /// is the caller's business: a cluster cancels one parent token for all its links.
    pub(crate) fn set_shutdown_reason(&self, reason: impl Into<String>) {
        let _ = self.shutdown_reason.set(reason.into());
    }

    /// Shuts this link down, saying why.
    pub(crate) fn close(&self, reason: impl Into<String>) {
        self.set_shutdown_reason(reason);
        self.shutdown.cancel();
    }

    /// The current session, or why there is none ([`Error::Closed`], [`Error::NotConnected`]).
    pub(crate) fn current(&self) -> Result<SessionHandle, Error> {
        if self.is_shut_down() {
            return Err(Error::Closed);
        }
        self.session().ok_or(Error::NotConnected)
    }

    /// Sends a command on the current session with a fresh request id and waits for the
    /// gateway's `Result`, at most `timeout` in all.
    pub(crate) async fn request(&self, body: Body, timeout: Duration) -> Reply {
        let session = self.current()?;
        self.request_on(&session, body, timeout).await
    }

    /// Like [`request`](Self::request), on a session the caller already picked (a cluster
    /// routes by the session's node id and must send on that very session).
    pub(crate) async fn request_on(
        &self,
        session: &SessionHandle,
        body: Body,
        timeout: Duration,
    ) -> Reply {
        let request_id = self.next_request_id();
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
        match tokio::time::timeout(timeout, exchange).await {
            Ok(reply) => reply,
            Err(_) => {
                debug!(addr = %self.addr, request_id, "request timed out");
                Err(Error::Timeout)
            }
        }
    }

    /// Queues a body with request id 0 (no reply) on `session`, waiting at most `timeout` for
    /// room in the queue.
    pub(crate) async fn post_on(
        &self,
        session: &SessionHandle,
        body: Body,
        timeout: Duration,
    ) -> Result<(), Error> {
        let outgoing = Outgoing {
            envelope: Envelope {
                request_id: 0,
                body: Some(body),
            },
            reply: None,
        };
        match tokio::time::timeout(timeout, session.tx.send(outgoing)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.not_sent()),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// The error for a command the link would not take.
    fn not_sent(&self) -> Error {
        if self.is_shut_down() {
            Error::Closed
        } else {
            Error::NotConnected
        }
    }

    /// The error for a command whose reply will never come.
    fn lost(&self) -> Error {
        if self.is_shut_down() {
            Error::Closed
        } else {
            Error::Disconnected
        }
    }

    fn set_session(&self, session: Option<SessionHandle>) {
        *self.lock() = session;
    }

    fn set_status(&self, change: impl FnOnce(&mut LinkStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn lock(&self) -> MutexGuard<'_, Option<SessionHandle>> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A TCP connection on which the gateway accepted our `Register`.
#[derive(Debug)]
pub(crate) struct Established {
    transport: Transport,
    node_id: String,
    limits: Limits,
}

/// Dials the gateway and performs the register handshake, bounded by the request timeout.
pub(crate) async fn establish(config: &Config, shared: &LinkShared) -> Result<Established, Error> {
    let addr = shared.addr();
    let connect_error = |source| Error::Connect {
        addr: addr.to_owned(),
        source,
    };
    let stream = match tokio::time::timeout(config.request_timeout, TcpStream::connect(addr)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(connect_error(err)),
        Err(_) => {
            return Err(connect_error(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no TCP connection within {:?}", config.request_timeout),
            )));
        }
    };
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%addr, error = %err, "cannot set TCP_NODELAY on the worker link");
    }
    let stream: Box<dyn LinkStream> = match &config.tls {
        None => Box::new(stream),
        Some(tls) => {
            let handshake = tokio::time::timeout(config.request_timeout, tls.connect(addr, stream));
            match handshake.await {
                Ok(Ok(stream)) => Box::new(stream),
                Ok(Err(err)) => return Err(err),
                Err(_) => {
                    return Err(connect_error(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no TLS handshake within {:?}", config.request_timeout),
                    )));
                }
            }
        }
    };
    let mut transport = Framed::new(stream, WorkerCodec::default());

    let request_id = shared.next_request_id();
    let register = Envelope {
        request_id,
        body: Some(Body::Register(Register {
            name: config.name.clone(),
            token: config.token.clone(),
            events: config.events.iter().map(|k| *k as i32).collect(),
            protocol_version: PROTOCOL_VERSION,
            authorize: config.authorize,
        })),
    };
    debug!(%addr, name = %config.name, "registering with the gateway");
    transport.send(register).await.map_err(|err| match err {
        CodecError::Io(source) => connect_error(source),
        other => Error::Codec(other),
    })?;

    let deadline = Instant::now() + config.request_timeout;
    loop {
        let envelope = match tokio::time::timeout_at(deadline, transport.next()).await {
            Err(_) => return Err(Error::Timeout),
            Ok(None) => return Err(Error::Disconnected),
            Ok(Some(Err(CodecError::Io(source)))) => return Err(connect_error(source)),
            Ok(Some(Err(err))) => return Err(Error::Codec(err)),
            Ok(Some(Ok(envelope))) => envelope,
        };
        match envelope.body {
            Some(Body::RegisterOk(ok)) => {
                if ok.protocol_version > PROTOCOL_VERSION {
                    warn!(%addr, gateway = ok.protocol_version, ours = PROTOCOL_VERSION, "the gateway speaks a newer protocol version");
                }
                let limits = ok.limits.unwrap_or_default();
                // Read frames up to the larger of our default and the gateway's limit; what we
                // send is checked against the gateway's limit separately (see `peer_max`).
                let read_max = DEFAULT_MAX_FRAME_BYTES.max(limits.max_frame_bytes as usize);
                *transport.codec_mut() = WorkerCodec::new(read_max);
                return Ok(Established {
                    transport,
                    node_id: ok.node_id,
                    limits,
                });
            }
            Some(Body::Error(err)) => {
                return Err(Error::Rejected {
                    code: error::error_code(err.code),
                    message: error::describe(err.code, err.message),
                });
            }
            Some(Body::Ping(_)) => {
                let pong = Envelope {
                    request_id: envelope.request_id,
                    body: Some(Body::Pong(Pong {})),
                };
                transport.send(pong).await.map_err(|err| match err {
                    CodecError::Io(source) => connect_error(source),
                    other => Error::Codec(other),
                })?;
            }
            _ => debug!(%addr, "ignoring a frame received before RegisterOk"),
        }
    }
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// The client was shut down.
    Shutdown,
    /// The link failed; reconnect.
    Lost(String),
}

/// A registered session, ready to be driven.
#[derive(Debug)]
pub(crate) struct Session {
    transport: Transport,
    node_id: String,
    limits: Limits,
    commands: mpsc::Receiver<Outgoing>,
    /// The sending end of `commands`, for answers to the gateway's own requests (Authorize).
    /// Closing `commands` at the end of the session makes it refuse sends.
    answers: mpsc::Sender<Outgoing>,
}

/// The driver of one worker link.
#[derive(Debug)]
pub(crate) struct Link {
    config: Arc<Config>,
    shared: Arc<LinkShared>,
    events: EventSink,
    /// Cancelled when the last handle (`Client` or `Cluster`) is dropped.
    handles_gone: CancellationToken,
}

impl Link {
    pub(crate) fn new(
        config: Arc<Config>,
        shared: Arc<LinkShared>,
        events: EventSink,
        handles_gone: CancellationToken,
    ) -> Self {
        Self {
            config,
            shared,
            events,
            handles_gone,
        }
    }

    /// Resolves when the driver should stop: the link was shut down, or every handle and the
    /// events receiver were dropped. (With only the handles gone, events keep flowing; with
    /// only the events receiver gone, commands keep working.)
    async fn stopped(&self) {
        tokio::select! {
            _ = self.shared.shutdown.cancelled() => {}
            _ = async {
                self.handles_gone.cancelled().await;
                self.events.closed().await;
            } => {}
        }
    }

    /// Publishes a registered connection to the handles and emits [`Event::Connected`].
    pub(crate) fn activate(&self, established: Established) -> Session {
        let Established {
            transport,
            node_id,
            limits,
        } = established;
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        self.shared.set_session(Some(SessionHandle {
            tx: tx.clone(),
            node_id: node_id.clone(),
            limits: wsgate_proto::validate::Limits::of(&limits),
        }));
        self.shared.set_status(|status| {
            status.state = GatewayState::Up;
            status.node_id = Some(node_id.clone());
            status.last_error = None;
        });
        info!(addr = %self.shared.addr(), %node_id, name = %self.config.name, "registered with the gateway");
        self.emit(
            &node_id,
            Event::Connected {
                node_id: node_id.clone(),
            },
        );
        Session {
            transport,
            node_id,
            limits,
            commands,
            answers: tx,
        }
    }

    /// Drives sessions until the link shuts down, reconnecting after every lost link.
    pub(crate) async fn run(self, first: Session) {
        let mut backoff = self.config.backoff();
        self.run_from(first, &mut backoff).await;
    }

    /// Dials the gateway and then drives sessions like [`run`](Self::run). The outcome of the
    /// first attempt goes to `first_attempt` (a cluster's `connect()` waits for it); after a
    /// failed first attempt the link keeps retrying with the backoff, whatever the error.
    pub(crate) async fn dial(self, first_attempt: oneshot::Sender<Result<(), Error>>) {
        let mut backoff = self.config.backoff();
        let attempt = tokio::select! {
            _ = self.stopped() => {
                self.mark_down("shut down before the first attempt completed");
                return;
            }
            attempt = establish(&self.config, &self.shared) => attempt,
        };
        let session = match attempt {
            Ok(established) => {
                let session = self.activate(established);
                let _ = first_attempt.send(Ok(()));
                session
            }
            Err(err) => {
                warn!(addr = %self.shared.addr(), error = %err, "cannot register with the gateway; retrying in the background");
                self.mark_down(err.to_string());
                let _ = first_attempt.send(Err(err));
                match self.reconnect(&mut backoff).await {
                    Some(session) => session,
                    None => return,
                }
            }
        };
        self.run_from(session, &mut backoff).await;
    }

    async fn run_from(&self, first: Session, backoff: &mut Backoff) {
        let mut session = first;
        loop {
            let started = Instant::now();
            let node_id = session.node_id.clone();
            match self.drive(session).await {
                End::Shutdown => {
                    let reason = self
                        .shared
                        .shutdown_reason
                        .get()
                        .cloned()
                        .unwrap_or_else(|| "the client was shut down".to_owned());
                    info!(addr = %self.shared.addr(), %reason, "worker link closed");
                    self.mark_down(reason.clone());
                    self.emit(&node_id, Event::Disconnected { reason });
                    return;
                }
                End::Lost(reason) => {
                    warn!(addr = %self.shared.addr(), %reason, "worker link lost; reconnecting");
                    self.mark_down(reason.clone());
                    self.emit(&node_id, Event::Disconnected { reason });
                }
            }
            if started.elapsed() >= STABLE_SESSION {
                backoff.reset();
            }
            session = match self.reconnect(backoff).await {
                Some(session) => session,
                None => return,
            };
        }
    }

    /// Waits with the backoff and re-registers until it works; `None` once the link stops.
    async fn reconnect(&self, backoff: &mut Backoff) -> Option<Session> {
        loop {
            let delay = backoff.next_delay();
            debug!(addr = %self.shared.addr(), ?delay, "waiting before reconnecting");
            tokio::select! {
                _ = self.stopped() => return None,
                _ = tokio::time::sleep(delay) => {}
            }
            let attempt = tokio::select! {
                _ = self.stopped() => return None,
                attempt = establish(&self.config, &self.shared) => attempt,
            };
            match attempt {
                Ok(established) => return Some(self.activate(established)),
                Err(err) if err.is_retryable() => {
                    warn!(addr = %self.shared.addr(), error = %err, "reconnect failed; retrying");
                    self.mark_down(err.to_string());
                }
                Err(err) => {
                    // Keep trying: the operator may fix the gateway's configuration.
                    warn!(addr = %self.shared.addr(), error = %err, "the gateway refused the registration; retrying until it accepts");
                    self.mark_down(err.to_string());
                }
            }
        }
    }

    /// Records that the link is down and why.
    fn mark_down(&self, why: impl Into<String>) {
        let why = why.into();
        self.shared.set_status(|status| {
            status.state = GatewayState::Down;
            status.last_error = Some(why);
        });
    }

    /// Runs one registered session until it fails or the client shuts down, then fails
    /// everything that was waiting on it.
    async fn drive(&self, session: Session) -> End {
        let Session {
            transport,
            node_id,
            limits,
            mut commands,
            answers,
        } = session;
        let timing = Timing::new(&self.config, &limits);
        debug!(addr = %self.shared.addr(), ?timing, "worker link session started");

        let (control_tx, mut control_rx) = mpsc::unbounded_channel();
        let pending = Pending::default();
        let (mut sink, mut stream) = transport.split();

        let end = tokio::select! {
            _ = self.stopped() => End::Shutdown,
            end = self.read_loop(&mut stream, &control_tx, &pending, &answers, &node_id, timing.timeout) => end,
            end = write_loop(&mut sink, &mut commands, &mut control_rx, &pending, &timing) => end,
        };

        // Order matters: unpublish first so no new command gets in, then close the queue and
        // fail what is still in it, then fail what was already sent.
        self.shared.set_session(None);
        commands.close();
        let shutdown = matches!(end, End::Shutdown);
        let failure = || {
            if shutdown {
                Error::Closed
            } else {
                Error::Disconnected
            }
        };
        while let Ok(outgoing) = commands.try_recv() {
            if let Some(reply) = outgoing.reply {
                let _ = reply.send(Err(failure()));
            }
        }
        let waiting: Vec<_> = lock(&pending).drain().map(|(_, tx)| tx).collect();
        if !waiting.is_empty() {
            debug!(
                count = waiting.len(),
                "failing requests that were waiting for a reply"
            );
        }
        for reply in waiting {
            let _ = reply.send(Err(failure()));
        }
        if shutdown {
            // Flush what was already written; the gateway sees a clean close.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
        }
        end
    }

    /// Reads frames until the link fails: answers pings, forwards events (and the gateway's
    /// Authorize requests, which are answered through `answers`), resolves replies.
    async fn read_loop(
        &self,
        stream: &mut SplitStream<Transport>,
        control: &mpsc::UnboundedSender<Envelope>,
        pending: &Pending,
        answers: &mpsc::Sender<Outgoing>,
        node_id: &str,
        timeout: Duration,
    ) -> End {
        let mut last_error: Option<String> = None;
        loop {
            let envelope = match tokio::time::timeout(timeout, stream.next()).await {
                Err(_) => {
                    return End::Lost(format!(
                        "heartbeat timeout: the gateway sent nothing for {timeout:?}"
                    ));
                }
                Ok(None) => {
                    return End::Lost(match last_error {
                        Some(err) => format!("the gateway closed the link after an error: {err}"),
                        None => "the gateway closed the link".to_owned(),
                    });
                }
                Ok(Some(Err(err))) => {
                    return End::Lost(format!("cannot read from the gateway: {err}"));
                }
                Ok(Some(Ok(envelope))) => envelope,
            };
            let request_id = envelope.request_id;
            match envelope.body {
                Some(Body::Ping(_)) => {
                    let _ = control.send(Envelope {
                        request_id,
                        body: Some(Body::Pong(Pong {})),
                    });
                }
                Some(Body::Pong(_)) => {}
                Some(Body::ConnOpen(open)) => self.emit(node_id, Event::Open(open)),
                Some(Body::ConnMessage(message)) => self.emit(node_id, Event::Message(message)),
                Some(Body::ConnClose(close)) => self.emit(node_id, Event::Close(close)),
                Some(Body::Draining(draining)) => {
                    info!(
                        addr = %self.shared.addr(),
                        %node_id,
                        close_code = draining.close_code,
                        drain_timeout_ms = draining.drain_timeout_ms,
                        "the gateway is draining: it is shutting down and will close this link"
                    );
                    self.shared
                        .set_status(|status| status.state = GatewayState::Draining);
                    self.emit(
                        node_id,
                        Event::Draining {
                            close_code: draining.close_code,
                            drain_timeout_ms: draining.drain_timeout_ms,
                        },
                    );
                }
                Some(Body::Authorize(request)) if self.config.authorize => {
                    let responder = Responder {
                        request_id,
                        node_id: node_id.to_owned(),
                        commands: answers.clone(),
                        timeout: self.config.request_timeout,
                        shutdown: self.shared.shutdown.clone(),
                    };
                    self.emit(
                        node_id,
                        Event::Authorize(AuthorizeCall::new(request, responder)),
                    );
                }
                Some(Body::Authorize(_)) => {
                    warn!(addr = %self.shared.addr(), request_id, "the gateway sent an Authorize request although this process did not register with authorize(true); refusing it");
                    let _ = control.send(Envelope {
                        request_id,
                        body: Some(Body::Error(v1::Error {
                            code: ErrorCode::Unsupported as i32,
                            message: "this business process did not register with authorize = true and does not answer Authorize requests".to_owned(),
                        })),
                    });
                }
                Some(Body::Result(result)) => match take(pending, request_id) {
                    Some(reply) => {
                        let _ = reply.send(Ok(result));
                    }
                    None => debug!(
                        request_id,
                        "result for a request nobody waits for (timed out?)"
                    ),
                },
                Some(Body::Error(err)) => {
                    if let Some(reply) = take(pending, request_id) {
                        let _ = reply.send(Err(error::from_wire(err)));
                        continue;
                    }
                    let code = error::error_code(err.code);
                    warn!(addr = %self.shared.addr(), code = code.as_str_name(), message = %err.message, "the gateway reported an error on the worker link");
                    last_error = Some(format!("{}: {}", code.as_str_name(), err.message));
                }
                Some(Body::RegisterOk(_)) => {
                    warn!(addr = %self.shared.addr(), "ignoring an unexpected RegisterOk from the gateway");
                }
                // Bodies that only travel business -> gateway.
                Some(
                    Body::Register(_)
                    | Body::SingleCast(_)
                    | Body::Multicast(_)
                    | Body::Broadcast(_)
                    | Body::ForceOffline(_)
                    | Body::BindUser(_)
                    | Body::UnbindUser(_)
                    | Body::SendToUsers(_)
                    | Body::Subscribe(_)
                    | Body::Unsubscribe(_)
                    | Body::Publish(_)
                    | Body::DeleteTopics(_)
                    | Body::SetSession(_)
                    | Body::QueryOnline(_)
                    | Body::QueryConnInfo(_)
                    | Body::QueryCounts(_)
                    | Body::QueryList(_)
                    | Body::AuthorizeReply(_),
                )
                | None => {
                    debug!(
                        request_id,
                        "the gateway sent a frame this SDK does not accept"
                    );
                    let _ = control.send(Envelope {
                        request_id,
                        body: Some(Body::Error(v1::Error {
                            code: ErrorCode::Unsupported as i32,
                            message: "a business process does not accept this envelope body; update the SDK if the gateway is newer".to_owned(),
                        })),
                    });
                }
            }
        }
    }

    /// Hands an event of the session with `node_id` to the events receiver.
    fn emit(&self, node_id: &str, event: Event) {
        if !self.events.send(node_id, self.shared.addr(), event) {
            debug!("event dropped: the events receiver was dropped");
        }
    }
}

/// Heartbeat timing and frame limits of one session.
#[derive(Debug)]
struct Timing {
    interval: Duration,
    timeout: Duration,
    /// The largest frame the gateway accepts from us.
    peer_max: usize,
}

impl Timing {
    fn new(config: &Config, limits: &Limits) -> Self {
        let from_ms = |ms: u32| (ms > 0).then(|| Duration::from_millis(u64::from(ms)));
        let interval = config
            .heartbeat_interval
            .or_else(|| from_ms(limits.heartbeat_interval_ms))
            .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL)
            .max(MIN_DURATION);
        let timeout = config
            .heartbeat_timeout
            .or_else(|| from_ms(limits.heartbeat_timeout_ms))
            .unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT)
            .max(MIN_DURATION);
        if let Some(gateway_timeout) = from_ms(limits.heartbeat_timeout_ms)
            && interval >= gateway_timeout
        {
            warn!(
                ?interval,
                ?gateway_timeout,
                "heartbeat interval is not below the gateway's heartbeat timeout; the gateway will drop this link"
            );
        }
        let peer_max = match limits.max_frame_bytes {
            0 => DEFAULT_MAX_FRAME_BYTES,
            n => n as usize,
        };
        Self {
            interval,
            timeout,
            peer_max,
        }
    }
}

/// Something the writer sends.
enum Frame {
    /// Link housekeeping (ping, pong, error): no reply expected.
    Control(Envelope),
    /// A caller's command.
    Command(Outgoing),
}

/// Writes frames until the link fails: pings every interval, control frames first, commands in
/// order; feeds every frame that is ready and flushes once per burst.
async fn write_loop(
    sink: &mut SplitSink<Transport, Envelope>,
    commands: &mut mpsc::Receiver<Outgoing>,
    control: &mut mpsc::UnboundedReceiver<Envelope>,
    pending: &Pending,
    timing: &Timing,
) -> End {
    let mut ticker = tokio::time::interval_at(Instant::now() + timing.interval, timing.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            biased;
            Some(envelope) = control.recv() => Frame::Control(envelope),
            _ = ticker.tick() => {
                // Forget requests whose caller gave up (timed out) and got no reply.
                lock(pending).retain(|_, reply| !reply.is_closed());
                Frame::Control(Envelope { request_id: 0, body: Some(Body::Ping(Ping {})) })
            }
            outgoing = commands.recv() => match outgoing {
                Some(outgoing) => Frame::Command(outgoing),
                None => return End::Lost("the command queue closed".to_owned()),
            },
        };
        if let Err(end) = feed(sink, first, pending, timing.peer_max).await {
            return end;
        }
        for _ in 0..MAX_BURST {
            let next = if let Ok(envelope) = control.try_recv() {
                Frame::Control(envelope)
            } else if let Ok(outgoing) = commands.try_recv() {
                Frame::Command(outgoing)
            } else {
                break;
            };
            if let Err(end) = feed(sink, next, pending, timing.peer_max).await {
                return end;
            }
        }
        if let Err(err) = sink.flush().await {
            return End::Lost(format!("cannot write to the gateway: {err}"));
        }
    }
}

/// Feeds one frame to the sink (without flushing). A command that cannot be encoded fails on
/// its own; only an I/O error ends the session.
async fn feed(
    sink: &mut SplitSink<Transport, Envelope>,
    frame: Frame,
    pending: &Pending,
    peer_max: usize,
) -> Result<(), End> {
    let (envelope, reply) = match frame {
        Frame::Control(envelope) => (envelope, None),
        Frame::Command(Outgoing { envelope, reply }) => {
            let len = envelope.encoded_len();
            if len > peer_max {
                let err = CodecError::FrameTooLarge { len, max: peer_max };
                match reply {
                    Some(reply) => {
                        let _ = reply.send(Err(Error::Codec(err)));
                    }
                    None => warn!(error = %err, "fire-and-forget command not sent"),
                }
                return Ok(());
            }
            (envelope, reply)
        }
    };
    let request_id = envelope.request_id;
    if let Some(reply) = reply {
        if reply.is_closed() {
            // The caller timed out while the command was queued: do not send it late.
            return Ok(());
        }
        lock(pending).insert(request_id, reply);
    }
    match sink.feed(envelope).await {
        Ok(()) => Ok(()),
        Err(CodecError::Io(err)) => Err(End::Lost(format!("cannot write to the gateway: {err}"))),
        Err(err) => {
            match take(pending, request_id) {
                Some(reply) => {
                    let _ = reply.send(Err(Error::Codec(err)));
                }
                None => warn!(error = %err, "frame not sent"),
            }
            Ok(())
        }
    }
}

fn lock(pending: &Pending) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<Reply>>> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

fn take(pending: &Pending, request_id: u64) -> Option<oneshot::Sender<Reply>> {
    if request_id == 0 {
        return None;
    }
    lock(pending).remove(&request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::Client::builder("127.0.0.1:1").config_for_tests()
    }

    #[test]
    fn timing_prefers_the_builder_then_the_gateway() {
        let limits = Limits {
            max_frame_bytes: 1024,
            heartbeat_interval_ms: 2000,
            heartbeat_timeout_ms: 6000,
            ..Limits::default()
        };
        let t = Timing::new(&config(), &limits);
        assert_eq!(t.interval, Duration::from_secs(2));
        assert_eq!(t.timeout, Duration::from_secs(6));
        assert_eq!(t.peer_max, 1024);

        let mut c = config();
        c.heartbeat_interval = Some(Duration::from_millis(500));
        c.heartbeat_timeout = Some(Duration::from_secs(3));
        let t = Timing::new(&c, &limits);
        assert_eq!(t.interval, Duration::from_millis(500));
        assert_eq!(t.timeout, Duration::from_secs(3));
    }

    #[test]
    fn timing_defaults_when_the_gateway_sends_zeros() {
        let t = Timing::new(&config(), &Limits::default());
        assert_eq!(t.interval, DEFAULT_HEARTBEAT_INTERVAL);
        assert_eq!(t.timeout, DEFAULT_HEARTBEAT_TIMEOUT);
        assert_eq!(t.peer_max, DEFAULT_MAX_FRAME_BYTES);
    }

    #[test]
    fn request_ids_are_never_zero() {
        let shared = LinkShared::new("x:1".into(), CancellationToken::new());
        shared.next_request_id.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(shared.next_request_id(), u64::MAX);
        assert_eq!(shared.next_request_id(), 1);
    }

    #[test]
    fn replies_with_id_zero_match_nothing() {
        let pending = Pending::default();
        let (tx, _rx) = oneshot::channel();
        lock(&pending).insert(0, tx);
        assert!(take(&pending, 0).is_none());
    }
}
