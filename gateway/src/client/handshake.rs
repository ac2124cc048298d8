//! The HTTP side of a client connection: reads the upgrade request, decides, and answers it.
//!
//! The gateway answers the handshake itself rather than through tungstenite's callback because
//! deciding may mean waiting: for the authorize hook, a business process answers over its worker
//! link. Every refusal is a plain HTTP response with a status and a body that says why and what
//! to do (404 wrong path, 400 not a WebSocket request, 403 origin not allowed, 401/403 refused,
//! 503 no decision or the gateway full, see [`limit`](crate::connections::limit)). An accepted request gets
//! its 101 and the socket, with any bytes read past the request, goes to its connection task.
//! The socket is plain TCP or TLS ([`ClientStream`]); with TLS this runs after the TLS
//! handshake.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use wsgate_proto::stream::Position;
use wsgate_proto::v1::Authorize;
use wsgate_proto::validate::Refused;

use super::ClientStream;
use super::context::Context;
use super::request::{Request, client_addr, parse_head};
use crate::auth::jwt::{self, JwtError};
use crate::auth::{Decision, Fallback};
use crate::connections::limit::Seat;
use crate::connections::state::{UserLimitExceeded, check_name};
use crate::connections::users::UserConnectionPolicy;
use crate::stats::Stats;
use crate::websocket::frame;
use crate::websocket::subprotocol as streams;

use crate::websocket::MAX_HEAD_BYTES;

const RETRY_AFTER_1: &str = "Retry-After: 1\r\n";

/// What the handshake request told us about the client.
#[derive(Debug, Default)]
pub(crate) struct RequestInfo {
    pub path: String,
    pub query: String,
    pub forwarded_for: String,
    pub real_ip: String,
    /// The configured subset of headers, for ConnOpen.
    pub headers: HashMap<String, String>,
}

impl RequestInfo {
    fn of(req: &Request, config: &crate::config::Config) -> Self {
        Self {
            path: req.path.clone(),
            query: req.query.clone(),
            forwarded_for: req.header("x-forwarded-for").unwrap_or_default().to_owned(),
            real_ip: req.header("x-real-ip").unwrap_or_default().to_owned(),
            headers: config
                .forward_headers
                .iter()
                .filter_map(|name| {
                    let name = name.to_ascii_lowercase();
                    req.headers.get(&name).map(|v| (name, v.clone()))
                })
                .collect(),
        }
    }
}

/// An accepted client: the request and what authentication attached to it.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pub info: RequestInfo,
    pub user_id: Option<String>,
    pub topics: Vec<String>,
    pub session: HashMap<String, String>,
    /// An encoded frame sent right after the 101.
    pub first_message: Option<Bytes>,
    /// The client negotiated the `wsgate.stream.v1` subprotocol.
    pub streams: bool,
    /// Where it was in the streams it named (`wsgate_recover`), by stream name.
    pub positions: HashMap<String, Position>,
}

/// A refusal, as the HTTP response the client gets.
struct Rejection {
    status: u16,
    body: String,
    extra_headers: &'static str,
}

impl Rejection {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            extra_headers: "",
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Runs the HTTP handshake. `None` when the client was refused or went away (already answered
/// and logged).
pub(crate) async fn accept<S: ClientStream>(
    mut stream: S,
    peer: SocketAddr,
    ctx: &Context,
) -> Option<(S, BytesMut, Admission, Seat)> {
    let mut buf = BytesMut::with_capacity(1024);
    let head_len = loop {
        match parse_head(&buf) {
            Ok(Some(n)) => break n,
            Ok(None) if buf.len() >= MAX_HEAD_BYTES => {
                let refusal = Rejection::new(431, "request headers are larger than 16 KiB\n");
                return refuse(stream, peer, refusal).await;
            }
            Ok(None) => {}
            Err(e) => {
                let refusal = Rejection::new(400, format!("malformed HTTP request: {e}\n"));
                return refuse(stream, peer, refusal).await;
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    };
    let head = buf.split_to(head_len);
    let request = match Request::parse(&head) {
        Some(r) => r,
        None => {
            return refuse(
                stream,
                peer,
                Rejection::new(400, "malformed HTTP request\n"),
            )
            .await;
        }
    };
    match decide(&request, peer, ctx).await {
        Ok(Decided {
            admission,
            accept_key,
            subprotocol,
            seat,
        }) => {
            let mut response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
                derive_accept_key(accept_key.as_bytes())
            );
            if let Some(p) = subprotocol {
                response.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
            }
            response.push_str("\r\n");
            stream.write_all(response.as_bytes()).await.ok()?;
            // Frames the client sent right behind its request; usually none, then no buffer.
            let leftover = if buf.is_empty() {
                BytesMut::new()
            } else {
                BytesMut::from(&buf[..])
            };
            Some((stream, leftover, admission, seat))
        }
        Err(refusal) => refuse(stream, peer, refusal).await,
    }
}

/// The checks that need only the request and the settings: the path, that it is a WebSocket
/// upgrade of version 13, and its origin. Returns the client's key.
fn check_request(req: &Request, config: &crate::config::Config) -> Result<String, Rejection> {
    if req.path != config.ws_path {
        return Err(Rejection::new(
            404,
            format!(
                "no WebSocket endpoint at {}; connect to {}\n",
                req.path, config.ws_path
            ),
        ));
    }
    let key = req
        .header("sec-websocket-key")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let is_upgrade = req.method == "GET"
        && req.header_has_token("upgrade", "websocket")
        && req.header_has_token("connection", "upgrade")
        && !key.is_empty();
    if !is_upgrade {
        return Err(Rejection::new(
            400,
            format!(
                "{} is a WebSocket endpoint: open it with a WebSocket client (for example `new WebSocket(\"ws://host{}\")`)\n",
                config.ws_path, config.ws_path
            ),
        ));
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(Rejection {
            status: 400,
            body: "unsupported WebSocket version; this gateway speaks version 13 (RFC 6455)\n"
                .into(),
            extra_headers: "Sec-WebSocket-Version: 13\r\n",
        });
    }
    let origin = req.header("origin");
    if !super::origin::is_allowed(&config.allowed_origins, origin) {
        let origin = origin.unwrap_or_default().trim();
        return Err(Rejection::new(
            403,
            format!(
                "origin {origin:?} may not open WebSockets on this gateway; to allow it, add it to \
                 the gateway's --allowed-origins (WSGATE_ALLOWED_ORIGINS, or allowed_origins in its config file)\n"
            ),
        ));
    }
    Ok(key)
}

/// What a request head gets from the checks that need no gateway state: the status it would
/// be refused with, or 101 and the token a JWT check would read. For the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn inspect(
    head: &[u8],
    config: &crate::config::Config,
) -> Option<(u16, Option<String>)> {
    let n = parse_head(head).ok()??;
    let req = Request::parse(&head[..n])?;
    let token = jwt::find_token(
        &req.query,
        req.header("authorization"),
        req.header("sec-websocket-protocol"),
    )
    .map(|found| found.token);
    match check_request(&req, config) {
        Ok(_) => Some((101, token)),
        Err(refusal) => Some((refusal.status, token)),
    }
}

/// A handshake that passed every step: what to answer (`101`, the accept key, the
/// subprotocol) and what the connection starts with.
struct Decided {
    admission: Admission,
    accept_key: String,
    subprotocol: Option<&'static str>,
    seat: Seat,
}

/// Decides a handshake, one step after the other; the first that refuses answers.
async fn decide(req: &Request, peer: SocketAddr, ctx: &Context) -> Result<Decided, Rejection> {
    let config = &ctx.config;
    let accept_key = check_request(req, config)?;
    check_rate(req, peer, ctx)?;
    // Before authentication: a full gateway need not ask the hook about a client it refuses.
    let seat = take_seat(ctx)?;
    let mut admission = Admission {
        info: RequestInfo::of(req, config),
        ..Admission::default()
    };
    check_streams(req, &mut admission)?;
    let mut subprotocol = None;
    if let Some(verifier) = &ctx.jwt {
        subprotocol = check_jwt(req, peer, verifier, &mut admission)?;
    }
    if config.authorize_hook {
        ask_hook(req, peer, ctx, &mut admission).await?;
    }
    check_user_limit(&admission, ctx)?;
    // The stream subprotocol is the one answered when offered: it changes what the frames
    // are, and the client must know it was agreed. A client that offered our JWT
    // subprotocol gets it back even without JWT checks.
    if admission.streams {
        subprotocol = Some(streams::NAME);
    } else if subprotocol.is_none()
        && req.header_has_token("sec-websocket-protocol", crate::auth::SUBPROTOCOL)
    {
        subprotocol = Some(crate::auth::SUBPROTOCOL);
    }
    Ok(Decided {
        admission,
        accept_key,
        subprotocol,
        seat,
    })
}

/// The `wsgate.stream.v1` subprotocol, when offered, and the positions the client gives
/// (docs/streams.md): 400 when they cannot be read.
fn check_streams(req: &Request, admission: &mut Admission) -> Result<(), Rejection> {
    if !req.header_has_token("sec-websocket-protocol", streams::NAME) {
        return Ok(());
    }
    admission.positions =
        streams::positions(&req.query).map_err(|e| Rejection::new(400, format!("{e}\n")))?;
    admission.streams = true;
    Ok(())
}

/// `--handshake-rate-per-ip`: 429 past the client address's rate.
fn check_rate(req: &Request, peer: SocketAddr, ctx: &Context) -> Result<(), Rejection> {
    let Some(limit) = &ctx.handshake_rate else {
        return Ok(());
    };
    let client = client_addr(req, peer.ip(), &ctx.trusted_proxies);
    if ctx.rate_exempt.contains(client) || limit.take(client, std::time::Instant::now()) {
        return Ok(());
    }
    Stats::incr(&ctx.stats.handshakes_rate_limited);
    let retry = limit.rate().retry_after_secs();
    let config = &ctx.config;
    Err(Rejection {
        status: 429,
        body: format!(
            "too many handshakes from {client}: at most {} a second (burst {}) per address (--handshake-rate-per-ip); retry in {retry} s\n",
            config.handshake_rate_per_ip, config.handshake_burst_per_ip
        ),
        extra_headers: RETRY_AFTER_1,
    })
}

/// A seat under `--max-connections`: 503 when the gateway is full.
fn take_seat(ctx: &Context) -> Result<Seat, Rejection> {
    ctx.conns.limit.take().ok_or_else(|| Rejection {
        status: 503,
        body: format!(
            "this gateway holds its maximum of {} clients; retry later or connect to another gateway\n",
            ctx.conns.limit.max()
        ),
        extra_headers: "Retry-After: 5\r\n",
    })
}

/// The client's JWT: 401 without a valid one; its subject becomes the user. Returns the
/// subprotocol to answer with when the token came in one.
fn check_jwt(
    req: &Request,
    peer: SocketAddr,
    verifier: &jwt::JwtVerifier,
    admission: &mut Admission,
) -> Result<Option<&'static str>, Rejection> {
    let found = jwt::find_token(
        &req.query,
        req.header("authorization"),
        req.header("sec-websocket-protocol"),
    );
    let Some(found) = found else {
        return Err(Rejection::new(401, format!("{}\n", JwtError::Missing)));
    };
    match verifier.verify(&found.token) {
        Ok(sub) => admission.user_id = Some(sub),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "JWT refused");
            return Err(Rejection::new(401, format!("{e}\n")));
        }
    }
    Ok(found.subprotocol)
}

/// The authorize hook (`--authorize-hook`): its answer attaches a user, topics, a session and
/// a first message, or refuses with its status; no (valid) answer is `--authorize-fallback`'s.
async fn ask_hook(
    req: &Request,
    peer: SocketAddr,
    ctx: &Context,
    admission: &mut Admission,
) -> Result<(), Rejection> {
    let config = &ctx.config;
    let ask = Authorize {
        remote_addr: peer.to_string(),
        forwarded_for: admission.info.forwarded_for.clone(),
        real_ip: admission.info.real_ip.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        headers: req.headers.clone(),
        jwt_user_id: admission.user_id.clone().unwrap_or_default(),
    };
    match ctx
        .hook
        .ask(&ctx.links, ask, config.authorize_timeout)
        .await
    {
        Decision::Allow(reply) => match allowed(reply) {
            Ok(allowed) => {
                if allowed.user_id.is_some() {
                    admission.user_id = allowed.user_id;
                }
                admission.topics = allowed.topics;
                admission.session = allowed.session;
                admission.first_message = allowed.first_message;
                Ok(())
            }
            Err(why) => {
                let why = why.message;
                tracing::warn!(%peer, %why, "authorize hook answered with invalid values; treating it as no answer");
                fallback(config, peer, why)
            }
        },
        Decision::Deny { status, reason } => Err(Rejection::new(status, format!("{reason}\n"))),
        Decision::NoAnswer(why) => fallback(config, peer, why),
    }
}

/// A user at its connection limit, with refuse-new: told now, before the upgrade (429). The
/// bind itself checks again under the index lock; a race lost there closes with 1008.
fn check_user_limit(admission: &Admission, ctx: &Context) -> Result<(), Rejection> {
    let config = &ctx.config;
    let Some(user) = &admission.user_id else {
        return Ok(());
    };
    if config.max_connections_per_user == 0
        || config.user_connection_policy != UserConnectionPolicy::RefuseNew
    {
        return Ok(());
    }
    let held = ctx.conns.indexes.user_conn_count(user);
    if held < config.max_connections_per_user {
        return Ok(());
    }
    Stats::incr(&ctx.stats.handshakes_user_limited);
    let over = UserLimitExceeded {
        user_id: user.clone(),
        held,
        limit: config.max_connections_per_user,
    };
    Err(Rejection::new(429, format!("{over}\n")))
}

/// Applies --authorize-fallback when the hook gave no usable answer.
fn fallback(
    config: &crate::config::Config,
    peer: SocketAddr,
    why: String,
) -> Result<(), Rejection> {
    match config.authorize_fallback {
        Fallback::Allow => {
            tracing::warn!(%peer, %why, "authorize hook gave no answer; allowing by --authorize-fallback allow");
            Ok(())
        }
        Fallback::Deny => {
            tracing::warn!(%peer, %why, "authorize hook gave no answer; refusing by --authorize-fallback deny");
            Err(Rejection {
                status: 503,
                body: format!(
                    "cannot authorize this connection right now ({why}); retry shortly\n"
                ),
                extra_headers: RETRY_AFTER_1,
            })
        }
    }
}

/// What an allowing hook's answer attaches to the connection, checked.
struct Allowed {
    user_id: Option<String>,
    topics: Vec<String>,
    session: HashMap<String, String>,
    first_message: Option<Bytes>,
}

/// Checks an allowing AuthorizeReply: an invalid user id, topic or first message is the
/// business process's bug, and must not let the client in as something else.
fn allowed(reply: wsgate_proto::v1::AuthorizeReply) -> Result<Allowed, Refused> {
    let user_id = if reply.user_id.is_empty() {
        None
    } else {
        check_name("AuthorizeReply.user_id", &reply.user_id)?;
        Some(reply.user_id)
    };
    reply
        .topics
        .iter()
        .try_for_each(|t| check_name("AuthorizeReply topic", t))?;
    let first_message = match reply.first_message {
        Some(p) => Some(frame::outgoing(Some(p), "AuthorizeReply.first_message")?),
        None => None,
    };
    Ok(Allowed {
        user_id,
        topics: reply.topics,
        session: reply.session,
        first_message,
    })
}

async fn refuse<S: ClientStream, T>(
    mut stream: S,
    peer: SocketAddr,
    refusal: Rejection,
) -> Option<T> {
    tracing::debug!(%peer, status = refusal.status, reason = %refusal.body.trim_end(), "handshake refused");
    let response = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{}",
        refusal.status,
        reason_phrase(refusal.status),
        refusal.body.len(),
        refusal.extra_headers,
        refusal.body
    );
    if stream.write_all(response.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
    }
    None
}
