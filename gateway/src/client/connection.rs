//! One client connection: a single task that reads the socket, writes the queue and keeps the
//! connection alive, so an idle connection costs one task and its buffers.
//!
//! Events go to the business process in order: ConnOpen, every ConnMessage, then exactly one
//! ConnClose, whoever closed. Queued frames are fed as a burst and flushed once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use wsgate_proto::v1::{
    ClosedBy, ConnClose, ConnMessage, ConnOpen, Payload, PayloadKind, envelope::Body,
};

use super::ClientStream;
use super::handshake::Admission;
use crate::links::Route;
use crate::registry::{CloseRequest, Conn, ConnHandle, ConnInfo, Outbound, close_code};
use crate::server::Shared;
use crate::stats::{CloseReason, Stats};

/// Frames written per burst before one flush; bounds the time a busy writer ignores reads.
const BURST: usize = 64;

/// How long to wait for the client's half of the closing handshake.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

pub(crate) async fn serve<S: ClientStream>(
    mut ws: WebSocketStream<S>,
    peer: SocketAddr,
    admission: Admission,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let config = &shared.config;
    let conn_id = shared.ids.next_id();
    let (tx, mut rx) = mpsc::channel(config.send_queue);
    let Admission {
        info,
        user_id,
        topics,
        session,
        first_message,
    } = admission;
    let connected_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let conn = Arc::new(Conn::new(ConnInfo {
        remote_addr: peer.to_string(),
        forwarded_for: info.forwarded_for.clone(),
        real_ip: info.real_ip.clone(),
        connected_at_ms,
    }));
    shared.registry.insert(
        &conn_id,
        ConnHandle {
            tx,
            conn: conn.clone(),
        },
    );
    // What authentication attached, in place before ConnOpen so commands see it at once.
    let attached = shared
        .indexes
        .admit(&conn_id, &conn.state, user_id, topics, session);
    Stats::incr(&shared.stats.connections_current);
    Stats::incr(&shared.stats.connections_total);
    tracing::debug!(%conn_id, %peer, "client connected");

    let mut route = Route::default();
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
    shared
        .links
        .dispatch(&mut route, Body::ConnOpen(open))
        .await;
    if let Some(first) = first_message {
        let _ = ws.send(first).await;
    }

    // Guests (no user bound) may be given a deadline.
    let guest_deadline =
        (!config.guest_timeout.is_zero()).then(|| tokio::time::sleep(config.guest_timeout));
    tokio::pin!(guest_deadline);

    let mut ping = tokio::time::interval_at(
        Instant::now() + config.client_ping_interval,
        config.client_ping_interval,
    );
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    let heartbeat = (!config.heartbeat_text.is_empty()).then_some(config.heartbeat_text.as_str());

    let end: End = loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let (code, reason) = config.shutdown_close();
                break End::gateway(code, reason);
            }
            req = conn.closed() => break End::Close(req),
            _ = async {
                if let Some(deadline) = guest_deadline.as_mut().as_pin_mut() {
                    deadline.await
                }
            }, if guest_deadline.is_some() =>
            {
                if !conn.state.has_user() {
                    break End::gateway(close_code::GUEST_TIMEOUT, "guest timeout: no user bound");
                }
                guest_deadline.set(None);
            }
            out = rx.recv() => {
                let Some(out) = out else { break End::gateway(close_code::INTERNAL_ERROR, "send queue closed") };
                // A client that stops reading blocks this write; a slow-consumer close or
                // shutdown must still get through.
                let written = tokio::select! {
                    r = write_burst(&mut ws, out, &mut rx, &shared.stats) => r,
                    req = conn.closed() => break End::Close(req),
                    _ = shutdown.cancelled() => {
                        let (code, reason) = config.shutdown_close();
                break End::gateway(code, reason);
                    }
                };
                match written {
                    Ok(None) => {}
                    Ok(Some(req)) => break End::Close(req),
                    Err(e) => break End::Lost(e.to_string()),
                }
            }
            msg = ws.next() => {
                last_seen = Instant::now();
                let payload = match msg {
                    None => break End::Lost("connection dropped".into()),
                    Some(Ok(Message::Text(text))) => {
                        if heartbeat == Some(text.as_str()) {
                            let reply = Message::text(config.heartbeat_reply.clone());
                            if let Err(e) = ws.send(reply).await {
                                break End::Lost(e.to_string());
                            }
                            continue;
                        }
                        Payload { data: Bytes::from(text), kind: PayloadKind::Text as i32 }
                    }
                    Some(Ok(Message::Binary(data))) => Payload::binary(data),
                    Some(Ok(Message::Close(frame))) => break End::ByClient(frame),
                    // Pings are answered by tungstenite; pongs only prove liveness.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Err(tungstenite::Error::Capacity(e))) => {
                        Stats::incr(&shared.stats.closed_too_big);
                        tracing::info!(%conn_id, %peer, error = %e, "client message too big; closing with 1009");
                        break End::TooBig(format!(
                            "message too big: the limit is {} bytes",
                            config.max_message_bytes
                        ));
                    }
                    Some(Err(tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ))) => break End::Lost("connection dropped without a close frame".into()),
                    Some(Err(tungstenite::Error::Protocol(e))) => {
                        break End::gateway(close_code::PROTOCOL_ERROR, &format!("protocol error: {e}"));
                    }
                    Some(Err(e)) => break End::Lost(e.to_string()),
                };
                Stats::incr(&shared.stats.messages_in);
                Stats::add(&shared.stats.bytes_in, payload.data.len() as u64);
                let (user_id, session) = conn.state.user_and_session();
                let event = ConnMessage { conn_id: conn_id.clone(), payload: Some(payload), user_id, session };
                shared.links.dispatch(&mut route, Body::ConnMessage(event)).await;
            }
            _ = ping.tick() => {
                if last_seen.elapsed() >= config.client_idle_timeout {
                    Stats::incr(&shared.stats.closed_idle);
                    break End::gateway(close_code::IDLE_TIMEOUT, "idle timeout");
                }
                if let Err(e) = ws.send(Message::Ping(Bytes::new())).await {
                    break End::Lost(e.to_string());
                }
            }
        }
    };

    // Stop new sends first, so nothing is queued for a connection that is going away.
    shared.registry.remove(&conn_id);
    drop(rx);
    let attached = shared.indexes.close(&conn_id, &conn.state);
    let (mut close, goodbye) = conclude(conn_id, end);
    shared
        .stats
        .closed(CloseReason::of(close.code, close.closed_by()));
    close.user_id = attached.user_id.unwrap_or_default();
    close.session = attached.session;
    close.topics = attached.topics;
    if close.code == close_code::SLOW_CONSUMER as u32 {
        Stats::incr(&shared.stats.closed_slow_consumer);
        tracing::info!(conn_id = %close.conn_id, %peer, "closed a slow consumer: its send queue was full");
    }
    tracing::debug!(conn_id = %close.conn_id, code = close.code, reason = %close.reason, "client closed");
    Stats::decr(&shared.stats.connections_current);
    // The event first: the closing handshake below may wait on a client that does not read.
    shared
        .links
        .dispatch(&mut route, Body::ConnClose(close))
        .await;
    say_goodbye(&mut ws, goodbye).await;
}

/// Why the loop ended.
enum End {
    /// The gateway or a business process closes the connection.
    Close(CloseRequest),
    /// The client sent a close frame.
    ByClient(Option<CloseFrame>),
    /// The client sent a message over the limit.
    TooBig(String),
    /// The socket failed or the client vanished.
    Lost(String),
}

impl End {
    fn gateway(code: u16, reason: &str) -> Self {
        End::Close(CloseRequest {
            code,
            reason: reason.into(),
            closed_by: ClosedBy::Gateway,
        })
    }
}

/// Writes `first` and whatever else is queued, then flushes once. Returns a close request
/// found in the queue.
async fn write_burst<S: ClientStream>(
    ws: &mut WebSocketStream<S>,
    first: Outbound,
    rx: &mut mpsc::Receiver<Outbound>,
    stats: &Stats,
) -> Result<Option<CloseRequest>, tungstenite::Error> {
    let mut next = Some(first);
    let (mut written, mut bytes) = (0u64, 0u64);
    let mut close = None;
    while let Some(out) = next.take() {
        match out {
            Outbound::Message(msg) => {
                bytes += msg.len() as u64;
                ws.feed(msg).await?;
                written += 1;
            }
            Outbound::Close(req) => {
                close = Some(req);
                break;
            }
        }
        if written < BURST as u64 {
            next = rx.try_recv().ok();
        }
    }
    ws.flush().await?;
    Stats::add(&stats.messages_out, written);
    Stats::add(&stats.bytes_out, bytes);
    Ok(close)
}

/// The ConnClose event for how the loop ended, and the close frame the gateway still owes
/// the client (none when the client closed first or vanished).
fn conclude(conn_id: String, end: End) -> (ConnClose, Option<CloseFrame>) {
    let (code, reason, closed_by, send) = match end {
        End::Close(req) => (req.code, req.reason, req.closed_by, true),
        End::TooBig(reason) => (close_code::TOO_BIG, reason, ClosedBy::Gateway, true),
        End::ByClient(frame) => {
            let (code, reason) = frame
                .map(|f| (u16::from(f.code), f.reason.to_string()))
                .unwrap_or((1005, String::new()));
            (code, reason, ClosedBy::Client, false)
        }
        End::Lost(reason) => (close_code::ABNORMAL, reason, ClosedBy::Client, false),
    };
    let frame = send.then(|| CloseFrame {
        code: CloseCode::from(code),
        reason: reason.clone().into(),
    });
    let event = ConnClose {
        conn_id,
        code: code as u32,
        reason,
        closed_by: closed_by as i32,
        ..ConnClose::default()
    };
    (event, frame)
}

/// Completes the closing handshake, bounded in time: sends our close frame (or pushes out the
/// reply tungstenite queued to the client's) and waits briefly for the client's answer.
async fn say_goodbye<S: ClientStream>(ws: &mut WebSocketStream<S>, frame: Option<CloseFrame>) {
    let linger = async {
        match frame {
            Some(frame) => {
                if ws.close(Some(frame)).await.is_ok() {
                    drain(ws).await;
                }
            }
            None => {
                let _ = ws.flush().await;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, linger).await;
}

/// Reads until the client answers the close frame or the stream ends, so unread input does not
/// turn our close into a TCP reset that would destroy the close frame in flight.
async fn drain<S: ClientStream>(ws: &mut WebSocketStream<S>) {
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(_))) | None => return,
            Some(Ok(_)) => {}
            Some(Err(_)) => break,
        }
    }
    // The frame stream is unusable (for example after an oversized frame): discard raw bytes.
    let mut scratch = [0u8; 4096];
    while let Ok(n) = tokio::io::AsyncReadExt::read(ws.get_mut(), &mut scratch).await {
        if n == 0 {
            return;
        }
    }
}
