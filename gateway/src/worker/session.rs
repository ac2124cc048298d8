//! One worker link, from Register to close.
//!
//! A single task owns the socket: it reads commands, writes queued events in bursts with one
//! flush, and keeps the heartbeat. The protocol's rules for the first frame and the heartbeat
//! are the state machines of `wsgate_proto::link` (the SDK's link uses the same ones); this
//! file owns the socket and the timers. When the link fails, the events still queued for it are
//! handed to the remaining business processes instead of being lost; on gateway shutdown they
//! are written out first.
//!
//! A link registered with acks (`Register.acks`) numbers each event it writes and keeps it in a
//! bounded window (`wsgate_proto::link::acks::Unacked`) until the business process acknowledges
//! it; while the window is full no more events are taken from the queue. When such a link fails,
//! or it acknowledges nothing for `--worker-ack-timeout` while an event waits, what it had not
//! acknowledged goes to
//! the other processes first, marked `redelivered`, then what was queued; the connections pinned
//! to it wait for that hand-over ([`Link::handed_over`]) so their events stay in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use prost::Message;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use wsgate_proto::link::acks::{AckError, Stalled, Unacked, Window};
use wsgate_proto::link::{
    AwaitRegister, Beat, BodyKind, FirstFrame, Heartbeat, Sender, SilenceCheck, frames,
};
use wsgate_proto::v1::{
    Envelope, ErrorCode, EventKind, Limits, Register, RegisterOk, envelope::Body,
};
use wsgate_proto::{CodecError, PROTOCOL_VERSION, WorkerCodec};

use super::commands::Asked;
use super::context::Context;
use super::deferred::{self, Later};
use super::report::refused;
use crate::links::{Link, event_kind};
use crate::stats::Stats;

/// What a worker link runs on: a TCP stream, or a TLS stream over one (`--worker-tls`).
pub(crate) trait LinkStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> LinkStream for T {}

type LinkIo<S> = Framed<S, WorkerCodec>;

/// The events a link with acks has written and not had acknowledged, each counted in the
/// `events_unacked` gauge from the moment it is written until it is acknowledged or leaves
/// with the link; without acks it holds nothing and is always open.
struct Held {
    window: Option<Unacked<Envelope>>,
    stats: Arc<Stats>,
}

impl Held {
    fn new(acks: bool, config: &crate::config::Config, stats: Arc<Stats>) -> Self {
        let window = acks.then(|| {
            Unacked::new(Window {
                events: config.worker_ack_window,
                bytes: config.worker_ack_window_bytes,
                timeout: config.worker_ack_timeout,
            })
        });
        Self { window, stats }
    }

    /// Whether another event may be written.
    fn has_room(&self) -> bool {
        self.window.as_ref().is_none_or(Unacked::has_room)
    }

    /// `env` (of `bytes`) is about to be written: an event gets its number and a copy is kept.
    fn keep(&mut self, env: &mut Envelope, bytes: usize) {
        if let Some(window) = self.window.as_mut()
            && env.body.as_ref().is_some_and(|b| event_kind(b).is_some())
        {
            env.event_seq = window.sent(env.clone(), bytes, std::time::Instant::now());
            Stats::incr(&self.stats.events_unacked);
        }
    }

    /// An `Ack`: releases what it covers. `None` on a link without acks.
    fn ack(&mut self, up_to: u64) -> Option<Result<(), AckError>> {
        let released = self.window.as_mut()?.ack(up_to, std::time::Instant::now());
        Some(released.map(|n| {
            Stats::incr(&self.stats.acks_received);
            self.stats
                .events_unacked
                .fetch_sub(n as u64, Ordering::Relaxed);
        }))
    }

    /// Nothing acknowledged for the ack timeout while an event waited.
    fn stalled(&self, now: std::time::Instant) -> Option<Stalled> {
        self.window.as_ref()?.handle_timeout(now)
    }

    /// What was never acknowledged, in the order written, ready to go to another link:
    /// marked redelivered, unnumbered (the link it goes to numbers it anew, if it acknowledges).
    fn into_redeliveries(self) -> impl Iterator<Item = Envelope> {
        let items = self.window.map(Unacked::into_items).into_iter().flatten();
        let items: Vec<Envelope> = items.map(|(_, env)| env).collect();
        self.stats
            .events_unacked
            .fetch_sub(items.len() as u64, Ordering::Relaxed);
        items.into_iter().map(|mut env| {
            env.event_seq = 0;
            env.redelivered = true;
            env
        })
    }
}

/// Frames queued for one link before event producers wait.
const LINK_QUEUE: usize = 8192;
/// Frames handled per wake-up before one flush.
const BURST: usize = 256;
/// Bytes of events written per wake-up at most (one event may take more), so that commands
/// are read between bursts of large events.
const BURST_BYTES: usize = 256 * 1024;
/// How long a closing link waits for its peer to read the last frames.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

pub(crate) async fn serve<S: LinkStream>(
    stream: S,
    peer: SocketAddr,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let config = &ctx.config;
    let mut io = Framed::new(stream, WorkerCodec::new(config.max_frame_bytes));

    // The protocol's rules for the first frame (wsgate_proto::link); this task owns the
    // socket and the clock.
    let admission = AwaitRegister::new(std::time::Instant::now(), config.register_timeout);
    let deadline = Instant::from_std(admission.poll_timeout());
    let first = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = tokio::time::timeout_at(deadline, io.next()) => r,
    };
    let (request_id, register) = match first {
        Ok(Some(Ok(env))) => match admission.handle_frame(env) {
            FirstFrame::Register {
                request_id,
                register,
            } => (request_id, register),
            FirstFrame::Reject(refusal) => {
                tracing::warn!(%peer, "worker link sent a command before Register; closed");
                return reject(io, *refusal).await;
            }
        },
        Ok(None) | Ok(Some(Err(CodecError::Io(_)))) => return,
        Ok(Some(Err(e))) => {
            tracing::warn!(%peer, error = %e, "worker link sent an unreadable first frame; closed");
            return reject(io, frames::unreadable(&e)).await;
        }
        Err(_) => {
            tracing::warn!(%peer, "worker link sent no Register in time; closed");
            return reject(io, admission.timed_out()).await;
        }
    };
    if let Err((code, message)) = check_register(&ctx, &register) {
        tracing::warn!(%peer, name = %register.name, %message, "worker link registration refused");
        return reject(io, frames::error(request_id, code, message)).await;
    }

    let (tx, rx) = mpsc::channel(LINK_QUEUE);
    let listed: Vec<EventKind> = register
        .events
        .iter()
        .filter_map(|e| EventKind::try_from(*e).ok())
        .filter(|e| *e != EventKind::Unspecified)
        .collect();
    // Nothing listed means everything; NONE alone means nothing.
    let wanted: Vec<EventKind> = if listed.is_empty() {
        vec![EventKind::Open, EventKind::Message, EventKind::Close]
    } else {
        listed
            .into_iter()
            .filter(|e| *e != EventKind::None)
            .collect()
    };
    let link = Arc::new(Link::new(
        ctx.links.next_id(),
        register.name,
        &wanted,
        register.authorize,
        register.acks,
        tx,
        config.link_queue_bytes,
    ));
    // However this session ends, the connections pinned to it are let go on.
    let _hand_over = link.hand_over_guard();
    let mut unacked = Held::new(link.acks, config, ctx.stats.clone());
    let ok = Envelope {
        request_id,
        body: Some(Body::RegisterOk(RegisterOk {
            node_id: config.node_id.clone(),
            protocol_version: PROTOCOL_VERSION,
            limits: Some(Limits {
                max_frame_bytes: config.max_frame_bytes as u32,
                max_client_message_bytes: config.max_message_bytes.min(u32::MAX as usize) as u32,
                heartbeat_interval_ms: config.worker_heartbeat_interval.as_millis() as u32,
                heartbeat_timeout_ms: config.worker_heartbeat_timeout.as_millis() as u32,
                client_send_queue: clamp(config.send_queue),
                client_send_queue_bytes: clamp(config.send_queue_bytes),
                max_topics_per_conn: clamp(config.max_topics_per_conn),
                max_topics_per_command: clamp(config.max_topics_per_command),
                max_conn_ids_per_command: clamp(config.max_conn_ids_per_command),
                max_user_ids_per_command: clamp(config.max_user_ids_per_command),
                ack_window: clamp(config.worker_ack_window),
                ack_window_bytes: clamp(config.worker_ack_window_bytes),
                ack_timeout_ms: millis(config.worker_ack_timeout),
                command_ids: clamp(config.command_ids),
                command_id_ttl_ms: millis(config.command_id_ttl),
            }),
        })),
        ..Default::default()
    };
    // Routed to before RegisterOk goes out: a business process that connects a client as soon
    // as it is registered must get that client's ConnOpen. Events queued meanwhile wait in the
    // link's queue and are written after RegisterOk.
    ctx.links.add(link.clone());
    if io.send(ok).await.is_err() {
        finish(io, rx, Ended::Failed, None, &link, unacked, &ctx).await;
        return;
    }
    tracing::info!(%peer, name = %link.name, link = link.id, "business process registered");

    let mut rx = rx;
    let mut later = FuturesUnordered::new();
    let (ended, farewell) = run(
        &mut io,
        &mut rx,
        &link,
        (&mut unacked, &mut later),
        &ctx,
        &shutdown,
    )
    .await;
    // Casts still waiting for receipts finish on their own: their command ids must end with
    // their Results, not be forgotten (see `deferred`). Their answers had nowhere to go.
    for answer in later {
        tokio::spawn(answer);
    }
    finish(io, rx, ended, farewell, &link, unacked, &ctx).await;
}

/// A duration in whole milliseconds, as a `Limits` field holds it (saturating).
fn millis(d: std::time::Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX)) as u32
}

/// A setting as a `Limits` field.
fn clamp(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

fn check_register(ctx: &Context, r: &Register) -> Result<(), (ErrorCode, String)> {
    if r.protocol_version > PROTOCOL_VERSION {
        return Err((
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {} is not supported; this gateway speaks version {PROTOCOL_VERSION}",
                r.protocol_version
            ),
        ));
    }
    if let Some(token) = ctx.config.worker_token.as_deref().filter(|t| !t.is_empty())
        && !bool::from(token.as_bytes().ct_eq(r.token.as_bytes()))
    {
        return Err((
            ErrorCode::Unauthenticated,
            "wrong worker token; use the gateway's --worker-token value".into(),
        ));
    }
    Ok(())
}

/// Sends one error frame and closes a link that never registered.
async fn reject<S: LinkStream>(mut io: LinkIo<S>, reply: Envelope) {
    let _ = tokio::time::timeout(CLOSE_LINGER, io.send(reply)).await;
    close_gracefully(io).await;
}

/// Half-closes and reads what the peer still sends, so our last frame is not destroyed by a
/// TCP reset caused by unread input.
async fn close_gracefully<S: LinkStream>(io: LinkIo<S>) {
    let mut stream = io.into_inner();
    let linger = async {
        let _ = stream.shutdown().await;
        let mut scratch = [0u8; 4096];
        while let Ok(n) = stream.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, linger).await;
}

/// How the link's main loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Shutdown,
    Failed,
}

async fn run<S: LinkStream>(
    io: &mut LinkIo<S>,
    queue: &mut mpsc::Receiver<Envelope>,
    link: &Link,
    (unacked, later): (&mut Held, &mut FuturesUnordered<Later>),
    ctx: &Arc<Context>,
    shutdown: &CancellationToken,
) -> (Ended, Option<Envelope>) {
    let config = &ctx.config;
    // The gateway looks at the silence when a ping is due (docs/protocol.md section 8).
    let mut heartbeat = Heartbeat::new(
        config.worker_heartbeat_interval,
        config.worker_heartbeat_timeout,
        SilenceCheck::AtPing,
        std::time::Instant::now(),
    );
    // One timer, reset only when the heartbeat's deadline moves (after each ping), so the
    // per-frame path does not register a new one.
    let wake = |hb: &Heartbeat| hb.poll_timeout().map(Instant::from_std);
    let tick = tokio::time::sleep_until(wake(&heartbeat).unwrap_or_else(Instant::now));
    tokio::pin!(tick);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return (Ended::Shutdown, None),
            // With acks, a full window takes nothing more until the business process
            // acknowledges: the queue fills and the clients whose events wait are read no further.
            env = queue.recv(), if unacked.has_room() => {
                // The sender lives in `link`, which we hold: the queue cannot close here.
                let Some(env) = env else { return (Ended::Failed, None) };
                if let Err(e) = write_burst(io, env, queue, link, unacked, ctx).await {
                    // A business process that exits or restarts ends here too: not a warning.
                    let gone = matches!(
                        &e,
                        wsgate_proto::codec::CodecError::Io(io)
                            if matches!(io.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
                    );
                    if gone {
                        tracing::info!(name = %link.name, link = link.id, error = %e, "business process closed its link while events were being written");
                    } else {
                        tracing::warn!(name = %link.name, link = link.id, error = %e, "writing to a worker link failed");
                    }
                    return (Ended::Failed, None);
                }
            }
            frame = io.next() => {
                heartbeat.handle_frame(std::time::Instant::now());
                let mut frame = frame;
                let mut handled = 0;
                loop {
                    match frame {
                        None => {
                            tracing::info!(name = %link.name, link = link.id, "business process closed its link");
                            return (Ended::Failed, None);
                        }
                        Some(Err(CodecError::Io(e))) => {
                            tracing::info!(name = %link.name, link = link.id, error = %e, "worker link lost");
                            return (Ended::Failed, None);
                        }
                        Some(Err(e)) => {
                            tracing::warn!(name = %link.name, link = link.id, error = %e, "worker link sent a bad frame; closing it");
                            return (Ended::Failed, Some(frames::unreadable(&e)));
                        }
                        Some(Ok(Envelope { body: Some(Body::Ack(ack)), request_id, .. })) => {
                            if let Some(error) = acknowledged(ack.up_to, request_id, link, unacked) {
                                return (Ended::Failed, Some(error));
                            }
                        }
                        Some(Ok(env)) => {
                            if let Some(reply) = handle(env, link, ctx, later).await
                                && let Some(reply) = fits(reply, link, ctx)
                                && io.feed(reply).await.is_err() {
                                    return (Ended::Failed, None);
                                }
                        }
                    }
                    handled += 1;
                    if handled == BURST {
                        break;
                    }
                    // More frames already buffered? Handle them before one flush.
                    match io.next().now_or_never() {
                        Some(next) => frame = next,
                        None => break,
                    }
                }
                if io.flush().await.is_err() {
                    return (Ended::Failed, None);
                }
            }
            Some(answer) = later.next(), if !later.is_empty() => {
                for env in answer {
                    if let Some(env) = fits(env, link, ctx)
                        && io.feed(env).await.is_err()
                    {
                        return (Ended::Failed, None);
                    }
                }
                if io.flush().await.is_err() {
                    return (Ended::Failed, None);
                }
            }
            () = &mut tick => {
                // A stalled process is looked for when a ping is due, like a silent one: the
                // close comes up to one heartbeat interval after the ack timeout.
                if let Some(stalled) = unacked.stalled(std::time::Instant::now()) {
                    Stats::incr(&ctx.stats.links_ack_timeouts);
                    tracing::warn!(name = %link.name, link = link.id, unacked = stalled.unacked, waited = ?stalled.waited, "worker link acknowledged no event past --worker-ack-timeout; closing it and handing its events to other business processes");
                    let msg = format!(
                        "{} events not acknowledged, the oldest for {:?}, and no Ack for {:?}; acknowledge events with Ack more often than that",
                        stalled.unacked, stalled.waited, ctx.config.worker_ack_timeout
                    );
                    return (Ended::Failed, Some(frames::error(0, ErrorCode::AckTimeout, msg)));
                }
                match heartbeat.handle_timeout(std::time::Instant::now()) {
                    Some(Beat::Dead { .. }) => {
                        tracing::warn!(name = %link.name, link = link.id, "worker link silent past the heartbeat timeout; closing it");
                        let msg = format!(
                            "nothing received for {:?}; send Ping at least every {:?}",
                            heartbeat.timeout(), heartbeat.interval()
                        );
                        return (Ended::Failed, Some(frames::error(0, ErrorCode::HeartbeatTimeout, msg)));
                    }
                    Some(Beat::Ping) if io.send(frames::ping()).await.is_err() => {
                        return (Ended::Failed, None);
                    }
                    Some(Beat::Ping) | None => {}
                }
                if let Some(at) = wake(&heartbeat) {
                    tick.as_mut().reset(at);
                }
            }
        }
    }
}

/// The frame as it may be sent: one that would exceed --max-frame-bytes is never written
/// (the peer would have to drop the link): an answer is replaced by a LIMIT_EXCEEDED
/// `Result` for the same request, anything else is dropped with an error in the log. The
/// command limits make this unreachable with a valid configuration (see `limits.rs`); this
/// is the net under them.
fn fits(env: Envelope, link: &Link, ctx: &Context) -> Option<Envelope> {
    let len = env.encoded_len();
    let max = ctx.config.max_frame_bytes;
    if len <= max {
        return Some(env);
    }
    Stats::incr(&ctx.stats.frames_too_large);
    match env.body {
        Some(Body::Result(_)) => Some(Envelope {
            request_id: env.request_id,
            body: Some(Body::Result(wsgate_proto::v1::Result {
                code: ErrorCode::LimitExceeded as i32,
                message: format!(
                    "the answer would take {len} bytes, more than one frame holds (--max-frame-bytes {max}); ask about fewer items at once"
                ),
                ..Default::default()
            })),
            ..Default::default()
        }),
        body => {
            let kind = body.as_ref().and_then(event_kind);
            tracing::error!(name = %link.name, link = link.id, len, max, ?kind, "a frame for this worker link would exceed --max-frame-bytes and was dropped; raise --max-frame-bytes or lower the limits that size it");
            None
        }
    }
}

/// An `Ack` from the business process: releases what it covers. Returns the `Error` that
/// closes the link when it acknowledges events never sent. On a link without acks it is
/// ignored.
fn acknowledged(up_to: u64, request_id: u64, link: &Link, unacked: &mut Held) -> Option<Envelope> {
    let e = match unacked.ack(up_to) {
        None => {
            tracing::debug!(name = %link.name, link = link.id, "Ack on a link without acks ignored");
            return None;
        }
        Some(Ok(())) => return None,
        Some(Err(e)) => e,
    };
    tracing::warn!(name = %link.name, link = link.id, error = %e, "worker link acknowledged events never sent; closing it");
    Some(frames::error(
        request_id,
        ErrorCode::BadRequest,
        e.to_string(),
    ))
}

/// Answers one frame from the business process; returns the reply to send, if any.
async fn handle(
    env: Envelope,
    link: &Link,
    ctx: &Arc<Context>,
    later: &mut FuturesUnordered<Later>,
) -> Option<Envelope> {
    let request_id = env.request_id;
    let Some(body) = env.body else {
        let msg =
            "envelope has no body, or one this gateway does not know; check the protocol version";
        return Some(frames::error(request_id, ErrorCode::Unsupported, msg));
    };
    match &body {
        Body::Ping(_) => return Some(frames::pong(request_id)),
        Body::Pong(_) => return None,
        Body::Error(e) => {
            // An error in answer to an Authorize question: no decision, the fallback applies now.
            if request_id != 0 && ctx.hook.answer(request_id, Err(e.message.clone())) {
                return None;
            }
            tracing::warn!(name = %link.name, link = link.id, code = e.code, message = %e.message, "business process reported an error");
            return None;
        }
        Body::Register(_) => {
            let msg = "this link is already registered; open a new link to register again";
            return Some(frames::error(request_id, ErrorCode::BadRequest, msg));
        }
        Body::AuthorizeReply(reply) => {
            if !ctx.hook.answer(request_id, Ok(reply.clone())) {
                tracing::debug!(name = %link.name, request_id, "late or unknown AuthorizeReply ignored");
            }
            return None;
        }
        _ => {}
    }
    // What is left is a command or a query, or a body only the gateway sends (the protocol's
    // table, wsgate_proto::link::body).
    let what = BodyKind::of(&body);
    if what.sender() == Sender::Gateway {
        let msg = match what {
            BodyKind::Event => "an event is sent by the gateway, not to it".to_owned(),
            other => format!("{other:?} is sent by the gateway, not to it"),
        };
        return Some(frames::error(request_id, ErrorCode::Unsupported, msg));
    }
    let asked = match Asked::of(env.receipt, env.client_ack, &body) {
        Ok(asked) => asked,
        Err(refusal) => {
            return (request_id != 0).then(|| Envelope {
                request_id,
                body: Some(Body::Result(refused(refusal))),
                ..Default::default()
            });
        }
    };
    if let Some(asked) = asked {
        let (now, answer) =
            deferred::start(ctx.clone(), request_id, env.command_id, body, asked).await;
        if let Some(answer) = answer {
            later.push(answer);
        }
        return now;
    }
    let result = ctx
        .command_ids
        .carry_out(&env.command_id, body, |body| {
            ctx.carry_out(body, None, &env.command_id)
        })
        .await?;
    if result.code != ErrorCode::Ok as i32 && request_id == 0 {
        tracing::debug!(name = %link.name, message = %result.message, "command without request id failed");
    }
    (request_id != 0).then(|| Envelope {
        request_id,
        body: Some(Body::Result(result)),
        ..Default::default()
    })
}

async fn write_burst<S: LinkStream>(
    io: &mut LinkIo<S>,
    first: Envelope,
    rx: &mut mpsc::Receiver<Envelope>,
    link: &Link,
    unacked: &mut Held,
    ctx: &Context,
) -> Result<(), CodecError> {
    let mut bytes = feed(io, first, link, unacked, ctx).await?;
    for _ in 1..BURST {
        // A burst of large events ends early: the loop must come back to read commands (and,
        // with acks, the Acks that open the window again).
        if bytes >= BURST_BYTES || !unacked.has_room() {
            break;
        }
        match rx.try_recv() {
            Ok(env) => bytes += feed(io, env, link, unacked, ctx).await?,
            Err(_) => break,
        }
    }
    io.flush().await
}

/// Feeds one queued frame to the writer (if it fits) and frees its place in the queue;
/// returns its size. With acks, an event gets its number and a copy stays in the window.
async fn feed<S: LinkStream>(
    io: &mut LinkIo<S>,
    env: Envelope,
    link: &Link,
    unacked: &mut Held,
    ctx: &Context,
) -> Result<usize, CodecError> {
    let bytes = link.written(&env);
    let Some(mut env) = fits(env, link, ctx) else {
        return Ok(bytes);
    };
    unacked.keep(&mut env, bytes);
    io.feed(env).await.map(|()| bytes)
}

/// Takes the link out of routing and empties its queue: on shutdown everything is written out;
/// after a failure, events go to the remaining business processes.
async fn finish<S: LinkStream>(
    mut io: LinkIo<S>,
    mut rx: mpsc::Receiver<Envelope>,
    ended: Ended,
    farewell: Option<Envelope>,
    link: &Link,
    unacked: Held,
    ctx: &Context,
) {
    ctx.links.remove(link);
    rx.close();
    // What it was given and did not acknowledge first, in the order it was written; then
    // what was still queued. (At shutdown every link is closing: nobody to give them to.)
    let mut redelivered = 0u64;
    let unacknowledged = unacked.into_redeliveries();
    // With no business process left, they all wait for the next one together.
    let deadline = ctx.links.wait_deadline();
    if ended == Ended::Failed {
        for env in unacknowledged {
            if ctx.links.redispatch(env, deadline).await {
                redelivered += 1;
            }
        }
        ctx.stats
            .events_redelivered
            .fetch_add(redelivered, Ordering::Relaxed);
    }
    let mut moved = 0u64;
    while let Some(env) = rx.recv().await {
        let is_event = env.body.as_ref().is_some_and(|b| event_kind(b).is_some());
        if ended == Ended::Failed && is_event {
            if ctx.links.redispatch(env, deadline).await {
                moved += 1;
            }
        } else if ended == Ended::Shutdown
            && let Some(env) = fits(env, link, ctx)
        {
            let _ = io.feed(env).await;
        }
    }
    link.handed_over();
    if moved + redelivered > 0 {
        tracing::info!(name = %link.name, link = link.id, moved, redelivered, "events queued for a lost worker link, and those it had not acknowledged, went to other business processes");
    }
    if let Some(env) = farewell {
        let _ = io.feed(env).await;
    }
    let _ = tokio::time::timeout(CLOSE_LINGER, io.flush()).await;
    close_gracefully(io).await;
    tracing::info!(name = %link.name, link = link.id, "worker link closed");
}
