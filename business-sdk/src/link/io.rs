//! One registered session of a link, from `RegisterOk` until it ends: the reader, the writer
//! and the timer, and failing whatever still waits when it ends.
//!
//! The three run concurrently (in one task), so a gateway that is slow to read commands never
//! stops us from reading its events, and the other way round. The writer feeds every frame
//! that is ready and flushes once per burst. The protocol's bookkeeping is the protocol
//! crate's: a [`Heartbeat`] says when to ping and when a silent gateway counts as gone, and a
//! [`Requests`] table gives each command its request id, matches the gateway's `Result` to
//! its waiter and gives up on it at its deadline. Both sit behind short-held locks; the timer
//! sleeps until the earlier of their deadlines. When the session ends every request still in
//! it fails with [`Error::Disconnected`] (or [`Error::Closed`] on shutdown).
//!
//! The gateway's own requests (Authorize, the handshake hook) go to the event consumer as
//! [`AuthorizeCall`]s holding this session's command queue, so each answer goes back on the
//! registration that was asked and is refused once that registration has ended.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};
use wsgate_proto::CodecError;
use wsgate_proto::link::body::BodyKind;
use wsgate_proto::link::heartbeat::{Beat, Heartbeat, SilenceCheck};
use wsgate_proto::link::register::{Registered, peer_max_frame};
use wsgate_proto::link::{frames, requests::Requests};
use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{Envelope, ErrorCode, Limits};

use crate::authorize::{AuthorizeCall, Responder};
use crate::config::{Config, MIN_DURATION};
use crate::error::{self, Error};
use crate::events::AckPoint;
use crate::events::{Event, EventSink};
use crate::link::acks::{AckRoute, SessionAcks, Taken};
use crate::link::dial::Transport;
use crate::link::handle::LinkShared;
use crate::link::status::GatewayState;
use crate::outgoing::{Outgoing, OutgoingKind, Waiter};

/// Heartbeat interval used when neither the builder nor the gateway set one.
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// Heartbeat timeout used when neither the builder nor the gateway set one.
const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames fed before a flush is forced, so one busy producer cannot delay a flush forever.
const MAX_BURST: usize = 256;
/// How long a shutdown waits to flush what was already written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The client was shut down.
    Shutdown,
    /// The link failed; reconnect.
    Lost(String),
}

/// A registered session, ready to be driven.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) transport: Transport,
    pub(crate) registered: Registered,
    pub(crate) commands: mpsc::Receiver<Outgoing>,
    /// The sending end of `commands`, for answers to the gateway's own requests (Authorize).
    /// Closing `commands` at the end of the session makes it refuse sends.
    pub(crate) answers: mpsc::Sender<Outgoing>,
}

/// What a session reads and reports to, besides its socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) config: &'a Config,
    pub(crate) shared: &'a LinkShared,
    pub(crate) events: &'a EventSink,
}

impl Context<'_> {
    /// Hands an event of the session with `node_id` to the events receiver.
    pub(crate) fn emit(&self, node_id: &str, event: Event) {
        self.emit_taken(node_id, event, (None, false));
    }

    /// The same, with what the receiver marks when the application takes it (acks), and the
    /// envelope's redelivered flag.
    fn emit_taken(&self, node_id: &str, event: Event, tags: (Option<Taken>, bool)) {
        if !self.events.send(node_id, self.shared.addr(), event, tags) {
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
        Self {
            interval,
            timeout,
            peer_max: peer_max_frame(limits),
        }
    }
}

/// The protocol state the reader, the writer and the timer share.
#[derive(Debug)]
struct Shared {
    heartbeat: Mutex<Heartbeat>,
    requests: Mutex<Requests<Waiter>>,
    /// Wakes the timer when a request with a (possibly) earlier deadline was started.
    rearm: Notify,
}

impl Shared {
    fn heartbeat(&self) -> MutexGuard<'_, Heartbeat> {
        self.heartbeat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn requests(&self) -> MutexGuard<'_, Requests<Waiter>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs one registered session until it fails or `stopped` resolves, then fails everything
/// that was waiting on it.
pub(crate) async fn drive(
    ctx: Context<'_>,
    session: Session,
    stopped: impl Future<Output = ()>,
) -> End {
    let Session {
        transport,
        registered,
        mut commands,
        answers,
    } = session;
    let timing = Timing::new(ctx.config, &registered.limits);
    debug!(addr = %ctx.shared.addr(), ?timing, "link session started");

    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    let shared = Shared {
        heartbeat: Mutex::new(Heartbeat::new(
            timing.interval,
            timing.timeout,
            SilenceCheck::Exact,
            Instant::now(),
        )),
        requests: Mutex::new(Requests::new()),
        rearm: Notify::new(),
    };
    let acks = ctx.config.acks.then(|| {
        let route = match ctx.config.ack_point {
            AckPoint::Received => AckRoute::Ahead(control_tx.clone()),
            _ => AckRoute::Behind(answers.clone()),
        };
        SessionAcks::new(registered.limits.ack_window, route)
    });
    let (mut sink, mut stream) = transport.split();
    let node_id = registered.node_id.as_str();

    let end = tokio::select! {
        _ = stopped => End::Shutdown,
        end = read_loop(ctx, &mut stream, &control_tx, &shared, &answers, acks.as_ref(), node_id) => end,
        end = write_loop(&mut sink, &mut commands, &mut control_rx, &shared, timing.peer_max) => end,
        end = timer_loop(&shared, &control_tx, acks.as_deref()) => end,
    };

    // Order matters: unpublish first so no new command gets in, then close the queue and
    // fail what is still in it, then fail what was already sent.
    ctx.shared.set_session(None);
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
        if let OutgoingKind::Request { waiter, .. } = outgoing.kind {
            let _ = waiter.send(Err(failure()));
        }
    }
    let waiting = shared.requests().drain();
    if !waiting.is_empty() {
        debug!(
            count = waiting.len(),
            "failing requests that were waiting for a reply"
        );
    }
    for waiter in waiting {
        let _ = waiter.send(Err(failure()));
    }
    if shutdown {
        // Flush what was already written; the gateway sees a clean close.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    }
    end
}

/// Sleeps until the heartbeat or a request is due: queues the pings, gives up on requests
/// past their deadline, and ends the session when the gateway has been silent too long.
async fn timer_loop(
    shared: &Shared,
    control: &mpsc::UnboundedSender<Envelope>,
    acks: Option<&SessionAcks>,
) -> End {
    loop {
        let wake = {
            let heartbeat = shared.heartbeat().poll_timeout();
            let request = shared.requests().poll_timeout();
            let ack = acks.and_then(SessionAcks::poll_timeout);
            match [heartbeat, request, ack].into_iter().flatten().min() {
                Some(at) => at,
                // Unreachable: a heartbeat has a deadline until it reported `Dead`.
                None => return End::Lost("the heartbeat stopped".to_owned()),
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = shared.rearm.notified() => continue,
            // An acknowledgement was delayed: its deadline may be the earliest now.
            () = async {
                match acks {
                    Some(acks) => acks.rearm.notified().await,
                    None => std::future::pending().await,
                }
            } => continue,
        }
        let now = Instant::now();
        if let Some(acks) = acks {
            acks.handle_timeout(now);
        }
        while let Some((request_id, waiter)) = shared.requests().poll_expired(now) {
            debug!(request_id, "request timed out");
            let _ = waiter.send(Err(Error::Timeout));
        }
        let beat = shared.heartbeat().handle_timeout(now);
        match beat {
            Some(Beat::Ping) => {
                let _ = control.send(frames::ping());
            }
            Some(Beat::Dead { .. }) => {
                let timeout = shared.heartbeat().timeout();
                return End::Lost(format!(
                    "heartbeat timeout: the gateway sent nothing for {timeout:?}"
                ));
            }
            None => {}
        }
    }
}

/// Reads frames until the link fails: answers pings, forwards events (and the gateway's
/// Authorize requests, which are answered through `answers`), resolves replies.
async fn read_loop(
    ctx: Context<'_>,
    stream: &mut SplitStream<Transport>,
    control: &mpsc::UnboundedSender<Envelope>,
    shared: &Shared,
    answers: &mpsc::Sender<Outgoing>,
    acks: Option<&Arc<SessionAcks>>,
    node_id: &str,
) -> End {
    let addr = ctx.shared.addr();
    let mut last_error: Option<String> = None;
    loop {
        let envelope = match stream.next().await {
            None => {
                return End::Lost(match last_error {
                    Some(err) => format!("the gateway closed the link after an error: {err}"),
                    None => "the gateway closed the link".to_owned(),
                });
            }
            Some(Err(err)) => {
                return End::Lost(format!("cannot read from the gateway: {err}"));
            }
            Some(Ok(envelope)) => envelope,
        };
        shared.heartbeat().handle_frame(Instant::now());
        let request_id = envelope.request_id;
        // With acks, what the application will mark when it receives this event.
        let taken = || (Taken::of(acks, envelope.event_seq), envelope.redelivered);
        match envelope.body {
            Some(Body::Ping(_)) => {
                let _ = control.send(frames::pong(request_id));
            }
            Some(Body::Pong(_)) => {}
            Some(Body::ConnOpen(open)) => ctx.emit_taken(node_id, Event::Open(open), taken()),
            Some(Body::ConnMessage(message)) => {
                ctx.emit_taken(node_id, Event::Message(message), taken());
            }
            Some(Body::ConnClose(close)) => {
                ctx.emit_taken(node_id, Event::Close(close), taken());
            }
            Some(Body::Draining(draining)) => {
                info!(
                    %addr,
                    %node_id,
                    close_code = draining.close_code,
                    drain_timeout_ms = draining.drain_timeout_ms,
                    "the gateway is draining: it is shutting down and will close this link"
                );
                ctx.shared
                    .set_status(|status| status.state = GatewayState::Draining);
                ctx.emit(
                    node_id,
                    Event::Draining {
                        close_code: draining.close_code,
                        drain_timeout_ms: draining.drain_timeout_ms,
                    },
                );
            }
            Some(Body::Authorize(request)) if ctx.config.authorize => {
                let responder = Responder {
                    request_id,
                    node_id: node_id.to_owned(),
                    commands: answers.clone(),
                    timeout: ctx.config.request_timeout,
                    shutdown: ctx.shared.shutdown_token().clone(),
                };
                ctx.emit(
                    node_id,
                    Event::Authorize(AuthorizeCall::new(request, responder)),
                );
            }
            Some(Body::Authorize(_)) => {
                warn!(%addr, request_id, "the gateway sent an Authorize request although this process did not register with authorize(true); refusing it");
                let _ = control.send(frames::error(
                    request_id,
                    ErrorCode::Unsupported,
                    "this business process did not register with authorize = true and does not answer Authorize requests",
                ));
            }
            Some(Body::Result(result)) => match shared.requests().finish(request_id) {
                Some(waiter) => {
                    let _ = waiter.send(Ok(result));
                }
                None => debug!(
                    request_id,
                    "result for a request nobody waits for (timed out?)"
                ),
            },
            Some(Body::Error(err)) => {
                let waiter = shared.requests().finish(request_id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Err(error::from_wire(err)));
                    continue;
                }
                let code = error::error_code(err.code);
                warn!(%addr, code = code.as_str_name(), message = %err.message, "the gateway reported an error on the link");
                last_error = Some(format!("{}: {}", code.as_str_name(), err.message));
            }
            Some(Body::RegisterOk(_)) => {
                warn!(%addr, "ignoring an unexpected RegisterOk from the gateway");
            }
            Some(Body::Receipts(receipts)) => ctx.emit(
                node_id,
                Event::Receipts {
                    command_id: envelope.command_id,
                    receipts: receipts.receipts,
                    last: receipts.last,
                },
            ),
            // Bodies that only a business process sends, or one this SDK does not know.
            other => {
                let kind = other.as_ref().map(BodyKind::of);
                debug!(
                    request_id,
                    ?kind,
                    "the gateway sent a frame this SDK does not accept"
                );
                let _ = control.send(frames::error(
                    request_id,
                    ErrorCode::Unsupported,
                    "a business process does not accept this envelope body; update the SDK if the gateway is newer",
                ));
            }
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

/// Writes frames until the link fails: control frames first, commands in order; feeds every
/// frame that is ready and flushes once per burst.
async fn write_loop(
    sink: &mut SplitSink<Transport, Envelope>,
    commands: &mut mpsc::Receiver<Outgoing>,
    control: &mut mpsc::UnboundedReceiver<Envelope>,
    shared: &Shared,
    peer_max: usize,
) -> End {
    loop {
        let first = tokio::select! {
            biased;
            Some(envelope) = control.recv() => Frame::Control(envelope),
            outgoing = commands.recv() => match outgoing {
                Some(outgoing) => Frame::Command(outgoing),
                None => return End::Lost("the command queue closed".to_owned()),
            },
        };
        if let Err(end) = feed(sink, first, shared, peer_max).await {
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
            if let Err(end) = feed(sink, next, shared, peer_max).await {
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
    shared: &Shared,
    peer_max: usize,
) -> Result<(), End> {
    let (envelope, awaited) = match frame {
        Frame::Control(envelope) => (envelope, false),
        Frame::Command(Outgoing { body, meta, kind }) => {
            let (request_id, awaited) = match kind {
                OutgoingKind::Post => (0, false),
                OutgoingKind::AnswerTo(request_id) => (request_id, false),
                OutgoingKind::Request { waiter, deadline } => {
                    if waiter.is_closed() {
                        // The caller timed out while the command was queued: do not send it late.
                        return Ok(());
                    }
                    let request_id = shared.requests().start(waiter, deadline);
                    shared.rearm.notify_one();
                    (request_id, true)
                }
            };
            let envelope = Envelope {
                request_id,
                command_id: meta.command_id,
                receipt: meta.receipt as i32,
                client_ack: meta.client_ack,
                body: Some(body),
                ..Default::default()
            };
            let len = envelope.encoded_len();
            if len > peer_max {
                fail(
                    shared,
                    awaited.then_some(request_id),
                    CodecError::FrameTooLarge { len, max: peer_max },
                    "fire-and-forget command not sent",
                );
                return Ok(());
            }
            (envelope, awaited)
        }
    };
    let request_id = envelope.request_id;
    match sink.feed(envelope).await {
        Ok(()) => Ok(()),
        Err(CodecError::Io(err)) => Err(End::Lost(format!("cannot write to the gateway: {err}"))),
        Err(err) => {
            fail(shared, awaited.then_some(request_id), err, "frame not sent");
            Ok(())
        }
    }
}

/// A frame that cannot be sent: its request (if one waits) fails with `err`; anything else
/// is logged as `what`.
fn fail(shared: &Shared, request_id: Option<u64>, err: CodecError, what: &str) {
    let waiter = request_id.and_then(|id| shared.requests().finish(id));
    match waiter {
        Some(waiter) => {
            let _ = waiter.send(Err(Error::Codec(err)));
        }
        None => warn!(error = %err, "{what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new("127.0.0.1:1".to_owned())
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
        assert_eq!(t.peer_max, wsgate_proto::codec::DEFAULT_MAX_FRAME_BYTES);
    }
}
