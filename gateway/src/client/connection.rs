//! One client connection: a single task that reads the socket, writes the queue and keeps the
//! connection alive, so an idle connection costs one task and no buffers (see
//! [`frame`](crate::websocket::frame) and [`io`](crate::websocket::io)).
//!
//! Events go to the business process in order: ConnOpen, every ConnMessage, then exactly one
//! ConnClose, whoever closed. Whatever is queued is written as one burst: one `writev`, one
//! flush.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wsgate_proto::v1::{ClosedBy, ConnMessage, ConnOpen, Payload, PayloadKind, envelope::Body};

use super::ClientStream;
use super::acks::Awaiting;
use super::close::{End, Goodbye, conclude, say_goodbye};
use super::context::Context;
use super::handshake::Admission;
use super::rate::{Rate, RateLimitAction, TokenBucket};
use crate::connections::limit::Seat;
use crate::connections::message::Message;
use crate::connections::registry::{CloseRequest, Conn, Next, Outbound, PeerInfo};
use crate::connections::state::{AdmitLimits, Admitted};
use crate::connections::streams::rules::Kind;
use crate::connections::users::UserLimit;
use crate::links::Pinned;
use crate::stats::{CloseReason, Stats};
use crate::websocket::close_code;
use crate::websocket::frame::{self, Decoder, Incoming};
use crate::websocket::io::{read_into, write_frames};
use crate::websocket::subprotocol::{self, FromClient};

/// Serves one admitted client until it closes: [`open`] (registry, indexes, `ConnOpen`),
/// [`run`] (the loop), [`close`] (`ConnClose`, the closing handshake).
pub(crate) async fn serve<S: ClientStream>(
    mut stream: S,
    input: BytesMut,
    peer: SocketAddr,
    admission: Admission,
    // Held until the socket is done with, closing handshake included.
    _seat: Seat,
    ctx: Arc<Context>,
    // Checked once the connection is registered; afterwards the drain reaches it through
    // its `Conn`.
    shutdown: CancellationToken,
) {
    let mut pinned = Pinned::default();
    let conn = open(&ctx, peer, admission, &mut pinned).await;
    // The drain cancels `shutdown`, then asks every registered connection to close
    // (`Registry::close_all`); one it did not find yet was registered after, and sees the
    // token here.
    if shutdown.is_cancelled() {
        let (code, reason) = ctx.config.shutdown_close();
        conn.close(CloseRequest::gateway(code, reason));
    }
    let mut inbound = Inbound::new(&ctx.config, input, conn.streams());
    let end = run(&mut stream, &mut inbound, &conn, &ctx, &mut pinned, peer).await;
    let goodbye = close(&ctx, &conn, end, peer, &mut pinned).await;
    let Inbound { decoder, input, .. } = inbound;
    let linger = ctx.config.client_close_linger;
    say_goodbye(&mut stream, goodbye, decoder, input, linger).await;
}

/// Registers the connection, attaches what authentication gave it, and tells the business.
async fn open(
    ctx: &Context,
    peer: SocketAddr,
    admission: Admission,
    pinned: &mut Pinned,
) -> Arc<Conn> {
    let config = &ctx.config;
    let conn_id = ctx.conns.ids.next_id();
    let Admission {
        info,
        user_id,
        topics,
        session,
        first_message,
        streams,
        positions,
    } = admission;
    let connected_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.into());
    let conn = Arc::new(Conn::new(
        conn_id.as_str().into(),
        PeerInfo {
            remote_addr: peer,
            forwarded_for: non_empty(&info.forwarded_for),
            real_ip: non_empty(&info.real_ip),
            connected_at_ms,
        },
        streams,
    ));
    if !positions.is_empty() {
        conn.set_positions(positions);
    }
    ctx.conns.registry.insert(conn.clone());
    // What authentication attached, in place before ConnOpen so commands see it at once.
    let limits = AdmitLimits {
        topics: config.max_topics_per_conn,
        user: UserLimit::new(
            config.max_connections_per_user,
            config.user_connection_policy,
        ),
    };
    // The user's and the topics' streams are joined under their locks (what a client that
    // says where it was missed is queued first).
    let mut named = Vec::new();
    if ctx.conns.streams.configured() {
        named.extend(topics.iter().map(|t| (Kind::Topics, t.clone())));
        named.extend(user_id.iter().map(|u| (Kind::Users, u.clone())));
    }
    let candidates: Vec<(Kind, &str)> = named.iter().map(|(k, n)| (*k, n.as_str())).collect();
    let admitted = Admitted {
        user_id,
        topics,
        session,
    };
    let admit = || ctx.conns.indexes.admit(&conn.state, admitted, limits);
    let admitted = Box::pin(ctx.conns.streams.joining(
        &ctx.conns.registry,
        &conn,
        &candidates,
        admit,
    ))
    .await;
    let (attached, refused) = match admitted {
        Ok((attached, evicted)) => {
            for id in &evicted {
                ctx.conns.registry.close(id, None, CloseRequest::replaced());
            }
            (attached, None)
        }
        // Another handshake of the same user took the last place since this one was checked.
        Err(over) => (Default::default(), Some(over)),
    };
    Stats::incr(&ctx.stats.connections_current);
    Stats::incr(&ctx.stats.connections_total);
    tracing::debug!(%conn_id, %peer, "client connected");

    let open = ConnOpen {
        conn_id: conn_id.clone(),
        remote_addr: peer.to_string(),
        forwarded_for: info.forwarded_for,
        real_ip: info.real_ip,
        path: info.path,
        query: info.query,
        headers: info.headers,
        connected_at_ms,
        user_id: attached.user_id.unwrap_or_default(),
        topics: attached.topics,
        session: attached.session,
    };
    // Events are dispatched from boxed futures: an event is large, and anything held across
    // an await here would be part of every idle connection's task.
    Box::pin(ctx.links.dispatch(pinned, Body::ConnOpen(open))).await;
    if let Some(first) = first_message {
        let first = Message::new(first, None);
        ctx.conns.registry.offer_message(&conn, &first);
    }
    if let Some(over) = refused {
        Stats::incr(&ctx.stats.handshakes_user_limited);
        tracing::info!(%conn_id, %peer, "{over}; closing with 1008");
        conn.close(CloseRequest {
            code: close_code::POLICY_VIOLATION,
            reason: "too many connections for this user".into(),
            closed_by: ClosedBy::Gateway,
        });
    }
    conn
}

/// What comes from the client: the bytes read and not yet decoded, the decoder, and the
/// message rate it is held to.
struct Inbound {
    input: BytesMut,
    decoder: Decoder,
    rate: Option<Rate>,
    bucket: Option<TokenBucket>,
    /// Messages passed on so far: the next one's `ConnMessage.seq` is this plus one.
    messages: u64,
    /// The client speaks the `wsgate.stream.v1` subprotocol: its text frames are the
    /// subprotocol's.
    streams: bool,
}

impl Inbound {
    fn new(config: &crate::config::Config, input: BytesMut, streams: bool) -> Self {
        let rate = Rate::new(config.client_message_rate, config.client_message_burst);
        Self {
            input,
            decoder: Decoder::new(config.max_message_bytes),
            bucket: rate.map(|r| TokenBucket::full(&r, std::time::Instant::now())),
            rate,
            messages: 0,
            streams,
        }
    }

    /// Takes a token from the connection's message bucket; true without a limit.
    fn within_rate(&mut self) -> bool {
        match (&mut self.bucket, &self.rate) {
            (Some(bucket), Some(rate)) => bucket.take(rate, std::time::Instant::now()),
            _ => true,
        }
    }
}

/// The connection's loop: writes what is queued for it, reads and forwards what it sends,
/// pings it, and ends on a close (asked for, by the client, or on shutdown) or a lost socket.
async fn run<S: ClientStream>(
    stream: &mut S,
    inbound: &mut Inbound,
    conn: &Conn,
    ctx: &Context,
    pinned: &mut Pinned,
    peer: SocketAddr,
) -> End {
    let config = &ctx.config;
    // Guests (no user bound) may be given a deadline.
    let guest_deadline =
        (!config.guest_timeout.is_zero()).then(|| tokio::time::sleep(config.guest_timeout));
    tokio::pin!(guest_deadline);
    let ping = tokio::time::sleep(config.client_ping_interval);
    tokio::pin!(ping);
    let mut last_seen = Instant::now();
    // Made on the first message the client is asked to acknowledge.
    let mut awaiting: Option<Box<Awaiting>> = None;

    // Shutdown arrives as a close request on `conn`, like a business process's: nothing
    // shared by every connection is polled on every turn.
    loop {
        tokio::select! {
            biased;
            next = conn.next() => {
                let queue = match next {
                    Next::Close(req) => return End::Close(req),
                    Next::Send(queue) => queue,
                };
                // A client that stops reading blocks this write; a slow-consumer close or
                // shutdown must still get through.
                let mut kept = Vec::new();
                let written = tokio::select! {
                    biased;
                    r = write_queue(stream, conn, queue, &mut kept, &ctx.stats) => r,
                    req = conn.closed() => return End::Close(req),
                };
                hold_acks(&mut awaiting, kept, config.client_ack_timeout);
                match written {
                    Ok(None) => {}
                    Ok(Some(req)) => return End::Close(req),
                    Err(e) => return End::Lost(e.to_string()),
                }
            }
            read = read_into(stream, &mut inbound.input) => {
                match read {
                    Ok(0) => return End::Lost("connection dropped".into()),
                    Ok(_) => last_seen = Instant::now(),
                    Err(e) => return End::Lost(e.to_string()),
                }
                if let Some(end) = forward(inbound, conn, ctx, pinned, peer, &mut awaiting).await {
                    return end;
                }
            }
            () = async {
                if let Some(a) = awaiting.as_mut() {
                    a.due().await
                }
            }, if awaiting.as_ref().is_some_and(|a| !a.is_empty()) => {
                if let Some(a) = awaiting.as_mut() {
                    a.expire(Instant::now());
                }
            }
            _ = async {
                if let Some(deadline) = guest_deadline.as_mut().as_pin_mut() {
                    deadline.await
                }
            }, if guest_deadline.is_some() =>
            {
                if !conn.state.has_user() {
                    return End::gateway(close_code::GUEST_TIMEOUT, "guest timeout: no user bound");
                }
                guest_deadline.set(None);
            }
            _ = &mut ping => {
                if last_seen.elapsed() >= config.client_idle_timeout {
                    Stats::incr(&ctx.stats.closed_idle);
                    return End::gateway(close_code::IDLE_TIMEOUT, "idle timeout");
                }
                ping.as_mut().reset(Instant::now() + config.client_ping_interval);
                ctx.conns.registry.offer(conn, &frame::ping());
            }
        }
    }
}

/// Written messages the client was asked to acknowledge: their slots wait for it.
fn hold_acks(awaiting: &mut Option<Box<Awaiting>>, kept: Vec<Outbound>, timeout: Duration) {
    let now = Instant::now();
    for item in kept {
        if let Outbound::Tracked(t) = item
            && let Some((ack, slot)) = t.awaiting()
        {
            awaiting
                .get_or_insert_with(|| Box::new(Awaiting::new(timeout)))
                .hold(ack, slot, now);
        }
    }
}

/// Decodes what the client sent and forwards each message to the business; answers pings and
/// text heartbeats. `Some` when the connection ends (a close frame, a bad frame, the rate).
async fn forward(
    inbound: &mut Inbound,
    conn: &Conn,
    ctx: &Context,
    pinned: &mut Pinned,
    peer: SocketAddr,
    awaiting: &mut Option<Box<Awaiting>>,
) -> Option<End> {
    let streams = inbound.streams;
    let config = &ctx.config;
    let conn_id = conn.id();
    let heartbeat = (!config.heartbeat_text.is_empty()).then_some(config.heartbeat_text.as_bytes());
    loop {
        let incoming = match inbound.decoder.decode(&mut inbound.input) {
            Ok(None) => break,
            Ok(Some(incoming)) => incoming,
            Err(e @ frame::FrameError::TooBig { .. }) => {
                Stats::incr(&ctx.stats.closed_too_big);
                tracing::info!(%conn_id, %peer, error = %e, "client message too big; closing with 1009");
                return Some(End::gateway(e.close_code(), &e.to_string()));
            }
            Err(e) => return Some(End::gateway(e.close_code(), &e.to_string())),
        };
        // Every message and ping makes work, so each takes a token.
        let costs = matches!(
            incoming,
            Incoming::Text(_) | Incoming::Binary(_) | Incoming::Ping(_)
        );
        if costs && !inbound.within_rate() {
            match over_rate(config, &ctx.stats, conn_id, peer) {
                Some(end) => return Some(end),
                None => continue,
            }
        }
        let incoming = if streams {
            match from_streams_client(incoming, conn, ctx, awaiting) {
                Some(incoming) => incoming,
                None => continue,
            }
        } else {
            incoming
        };
        let payload = match incoming {
            Incoming::Text(text) if heartbeat == Some(&text[..]) && !streams => {
                // Through the queue: a client that never reads the answers fills it and is
                // closed like any slow consumer.
                ctx.conns.registry.offer(conn, &ctx.heartbeat_reply);
                continue;
            }
            Incoming::Text(text) => Payload {
                data: text,
                kind: PayloadKind::Text as i32,
            },
            Incoming::Binary(data) => Payload::binary(data),
            Incoming::Ping(data) => {
                ctx.conns
                    .registry
                    .offer(conn, &frame::encode(frame::PONG, &data));
                continue;
            }
            // Pongs only prove liveness.
            Incoming::Pong => continue,
            Incoming::Close(frame) => return Some(End::ByClient(frame)),
        };
        ctx.stats.messages_in.incr();
        ctx.stats.bytes_in.add(payload.data.len() as u64);
        let (user_id, session) = conn.state.user_and_session();
        inbound.messages += 1;
        let event = ConnMessage {
            conn_id: conn_id.to_string(),
            payload: Some(payload),
            user_id,
            session,
            seq: inbound.messages,
        };
        Box::pin(ctx.links.dispatch(pinned, Body::ConnMessage(event))).await;
    }
    // Nothing half received: hold no buffer while idle.
    if inbound.input.is_empty() && inbound.input.capacity() > 0 {
        inbound.input = BytesMut::new();
    }
    None
}

/// A frame from a `wsgate.stream.v1` client: its message, as a plain client would have sent
/// it, for the business; `None` when it was for the gateway (an ack, a ping) or not a frame
/// of the subprotocol (answered with an `error` frame). Control frames pass unchanged.
fn from_streams_client(
    incoming: Incoming,
    conn: &Conn,
    ctx: &Context,
    awaiting: &mut Option<Box<Awaiting>>,
) -> Option<Incoming> {
    if !matches!(incoming, Incoming::Text(_) | Incoming::Binary(_)) {
        return Some(incoming);
    }
    match subprotocol::read(&incoming) {
        Ok(FromClient::Message { data, text: true }) => Some(Incoming::Text(data)),
        Ok(FromClient::Message { data, text: false }) => Some(Incoming::Binary(data)),
        Ok(FromClient::Ack(ids)) => {
            let settled = awaiting.as_mut().map_or(0, |a| a.ack(&ids));
            ctx.stats
                .client_acks
                .fetch_add(settled, std::sync::atomic::Ordering::Relaxed);
            None
        }
        Ok(FromClient::Ping) => {
            ctx.conns.registry.offer(conn, &subprotocol::pong());
            None
        }
        Err(why) => {
            Stats::incr(&ctx.stats.client_protocol_errors);
            tracing::debug!(conn_id = %conn.id(), "client frame refused: {why}");
            ctx.conns.registry.offer(conn, &subprotocol::error(&why));
            None
        }
    }
}

/// Takes the connection out of the registry and the indexes, counts how it ended, and tells
/// the business (`ConnClose`). The closing handshake is the caller's, after this.
async fn close(
    ctx: &Context,
    conn: &Conn,
    end: End,
    peer: SocketAddr,
    pinned: &mut Pinned,
) -> Goodbye {
    let conn_id = conn.id();
    // Stop new sends first, so nothing is queued for a connection that is going away.
    ctx.conns.registry.remove(conn_id);
    conn.end(&ctx.stats);
    let attached = ctx.conns.indexes.close(&conn.state);
    let (mut close, goodbye) = conclude(conn_id.to_string(), end);
    ctx.stats
        .closed(CloseReason::of(close.code, close.closed_by()));
    close.user_id = attached.user_id.unwrap_or_default();
    close.session = attached.session;
    close.topics = attached.topics;
    if close.code == close_code::SLOW_CONSUMER as u32 {
        Stats::incr(&ctx.stats.closed_slow_consumer);
        tracing::info!(conn_id = %close.conn_id, %peer, "closed a slow consumer: its send queue was full");
    }
    if close.code == close_code::REPLACED as u32 {
        Stats::incr(&ctx.stats.closed_replaced);
    }
    tracing::debug!(conn_id = %close.conn_id, code = close.code, reason = %close.reason, "client closed");
    Stats::decr(&ctx.stats.connections_current);
    // The event first: the closing handshake may wait on a client that does not read.
    Box::pin(ctx.links.dispatch(pinned, Body::ConnClose(close))).await;
    goodbye
}

/// A message over the rate: the end of the connection (`close`), or `None` to drop it.
fn over_rate(
    config: &crate::config::Config,
    stats: &Stats,
    conn_id: &str,
    peer: SocketAddr,
) -> Option<End> {
    match config.client_rate_limit_action {
        RateLimitAction::Close => {
            Stats::incr(&stats.closed_rate_limited);
            tracing::info!(
                conn_id,
                %peer,
                rate = config.client_message_rate,
                burst = config.client_message_burst,
                "client sent messages faster than --client-message-rate; closing with 1008"
            );
            Some(End::gateway(
                close_code::POLICY_VIOLATION,
                "message rate limit exceeded",
            ))
        }
        RateLimitAction::Drop => {
            Stats::incr(&stats.dropped_rate_limited);
            None
        }
    }
}

/// Writes the queued frames up to a close request, which it returns; the emptied queue goes
/// back to the connection for the next burst.
async fn write_queue<S: ClientStream>(
    stream: &mut S,
    conn: &Conn,
    mut queue: VecDeque<Outbound>,
    kept: &mut Vec<Outbound>,
    stats: &Stats,
) -> std::io::Result<Option<CloseRequest>> {
    let mut close = None;
    if let Some(at) = queue.iter().position(|o| matches!(o, Outbound::Close(_)))
        && let Some(Outbound::Close(req)) = queue.drain(at..).next()
    {
        close = Some(req);
    }
    // Data messages for the counters; control frames (pongs, pings) travel the same queue.
    let (mut written, mut bytes, mut raw) = (0u64, 0u64, 0usize);
    for item in &queue {
        if let Some(f) = item.frame() {
            raw += f.len();
            if frame::is_data(f) {
                written += 1;
                bytes += frame::payload_len(f) as u64;
            }
        }
    }
    write_frames(stream, &mut queue, kept).await?;
    conn.written(queue, raw, stats);
    stats.messages_out.add(written);
    stats.bytes_out.add(bytes);
    Ok(close)
}
