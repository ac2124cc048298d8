//! Hostile clients: bad frames the framing tests do not already cover, floods of messages and
//! pings, clients that never read, hostile handshakes, and the per-address, per-user and
//! message-rate limits.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wsgate_business::{Payload, Targets};

use super::common::raw_ws::Raw;
use super::common::*;
use super::{Neighbour, nothing_left};

/// Sends raw bytes as one frame's header (masked, with a mask key) and nothing else.
async fn header_only(raw: &mut Raw, b0: u8, len: u64) {
    let mut out = vec![b0, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[1, 2, 3, 4]);
    raw.0.write_all(&out).await.expect("header");
}

/// Frames the framing tests do not cover, each closing only its own client, with its code.
#[tokio::test]
async fn more_bad_frames_close_only_their_client() {
    let gw = TestGateway::start().await;
    let mut neighbour = Neighbour::start(&gw).await;
    // (what the client sends: frames as (first byte, payload), the close code)
    type Case = (&'static str, Vec<(u8, Vec<u8>)>, u16);
    let cases: Vec<Case> = vec![
        (
            "a control frame over 125 bytes",
            vec![(0x89, vec![0; 126])],
            1002,
        ),
        (
            "a new message inside a fragmented one",
            vec![(0x01, b"par".to_vec()), (0x81, b"new".to_vec())],
            1002,
        ),
        ("a close frame with one byte", vec![(0x88, vec![3])], 1002),
        (
            "a close frame with code 1005 (never sent on the wire)",
            vec![(0x88, 1005u16.to_be_bytes().to_vec())],
            1002,
        ),
        (
            "a close frame with code 999",
            vec![(0x88, 999u16.to_be_bytes().to_vec())],
            1002,
        ),
        (
            "a close reason that is not UTF-8",
            vec![(0x88, vec![0x03, 0xe8, 0xff, 0xfe])],
            1007,
        ),
        (
            "fragments adding up past --max-message-bytes",
            vec![(0x02, vec![0; 700_000]), (0x80, vec![0; 400_000])],
            1009,
        ),
    ];
    for (what, frames, code) in cases {
        let mut raw = Raw::connect(&gw).await;
        for (b0, payload) in &frames {
            raw.frame(*b0, payload, true).await;
        }
        assert_eq!(raw.close_code().await, code, "{what}");
        neighbour.check().await;
    }
    nothing_left(&gw, 1).await;
    gw.stop().await;
}

/// A length of 2^62 is refused from the header alone: nothing is allocated or awaited.
#[tokio::test]
async fn an_announced_huge_message_is_refused_from_its_header() {
    let gw = TestGateway::start().await;
    let mut neighbour = Neighbour::start(&gw).await;
    let mut raw = Raw::connect(&gw).await;
    header_only(&mut raw, 0x82, 1 << 62).await;
    assert_eq!(raw.close_code().await, 1009);
    // Just over the limit, announced and never sent.
    let mut raw = Raw::connect(&gw).await;
    header_only(&mut raw, 0x82, (1 << 20) + 1).await;
    assert_eq!(raw.close_code().await, 1009);
    neighbour.check().await;
    assert_eq!(gw.stat(|s| &s.closed_too_big), 2);
    nothing_left(&gw, 1).await;
    gw.stop().await;
}

/// A client sending messages faster than --client-message-rate is closed with 1008.
#[tokio::test]
async fn a_message_flood_is_closed_with_1008() {
    let gw = TestGateway::start_with(|c| {
        c.client_message_rate = 50;
        c.client_message_burst = 100;
    })
    .await;
    let mut neighbour = Neighbour::start(&gw).await;
    let mut raw = Raw::connect(&gw).await;
    for i in 0..300 {
        raw.frame(0x81, format!("flood {i}").as_bytes(), true).await;
    }
    assert_eq!(raw.close_code().await, 1008);
    assert_eq!(gw.stat(|s| &s.closed_rate_limited), 1);
    neighbour.check().await;
    nothing_left(&gw, 1).await;
    gw.stop().await;
}

/// Pings count as messages: a ping flood is closed too, and its pongs never pile up.
#[tokio::test]
async fn a_ping_flood_is_closed_with_1008() {
    let gw = TestGateway::start_with(|c| {
        c.client_message_rate = 50;
        c.client_message_burst = 100;
    })
    .await;
    let mut neighbour = Neighbour::start(&gw).await;
    let mut raw = Raw::connect(&gw).await;
    let mut burst = Vec::new();
    for _ in 0..500 {
        burst.extend_from_slice(&[0x89, 0x80, 0, 0, 0, 0]);
    }
    raw.0.write_all(&burst).await.expect("pings");
    assert_eq!(raw.close_code().await, 1008);
    neighbour.check().await;
    nothing_left(&gw, 1).await;
    gw.stop().await;
}

/// With --client-rate-limit-action drop, messages over the rate are dropped and counted and
/// the client stays connected.
#[tokio::test]
async fn with_drop_a_flood_loses_its_excess_not_its_connection() {
    let gw = TestGateway::start_with(|c| {
        c.client_message_rate = 1;
        c.client_message_burst = 10;
        c.client_rate_limit_action = wsgate::config::RateLimitAction::Drop;
    })
    .await;
    let (_client, mut events) = gw.business("counts").await;
    let mut ws = gw.client().await;
    events.open().await;
    for i in 0..50 {
        send_text(&mut ws, &format!("m{i}")).await;
    }
    wait_until("the excess to be dropped", || {
        gw.stat(|s| &s.dropped_rate_limited) >= 39
    })
    .await;
    for i in 0..10 {
        assert_eq!(
            events.message().await.payload,
            Some(Payload::text(format!("m{i}")))
        );
    }
    assert_eq!(gw.stat(|s| &s.connections_current), 1, "still connected");
    gw.stop().await;
}

/// Clients that never read while broadcasts pile up: each is closed with 4001 once its bytes
/// pass --send-queue-bytes, long before --send-queue frames; nothing stays queued.
#[tokio::test]
async fn clients_that_never_read_are_closed_by_their_bytes() {
    let gw = TestGateway::start_with(|c| c.send_queue_bytes = 64 * 1024).await;
    let mut neighbour = Neighbour::start(&gw).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(Raw::connect(&gw).await);
    }
    let big = Payload::binary(vec![7u8; 100 * 1024]);
    // The neighbour reads; the raw clients do not.
    let mut closed = 0;
    for _ in 0..200 {
        neighbour
            .client
            .broadcast(big.clone(), [])
            .await
            .expect("broadcast");
        match recv_message_of(&mut neighbour.ws).await {
            Message::Binary(b) => assert_eq!(b.len(), 100 * 1024),
            other => panic!("expected the broadcast, got {other:?}"),
        }
        closed = gw.stat(|s| &s.closed_slow_consumer);
        if closed == 4 {
            break;
        }
    }
    assert_eq!(closed, 4, "every client that never reads is closed");
    // Far fewer than --send-queue (1024) messages were sent.
    neighbour.check().await;
    drop(idle);
    nothing_left(&gw, 1).await;
    gw.stop().await;
}

async fn recv_message_of(ws: &mut Ws) -> Message {
    within("a message", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    })
    .await
}

/// The status line a raw handshake request gets, and the whole response.
async fn handshake_answer(gw: &TestGateway, request: &[u8]) -> String {
    let mut s = TcpStream::connect(gw.ws_addr).await.expect("connect");
    s.write_all(request).await.expect("request");
    let mut out = Vec::new();
    within("the handshake answer", s.read_to_end(&mut out))
        .await
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Malformed and oversized handshakes get their status and a reason; none takes a seat.
#[tokio::test]
async fn hostile_handshakes_get_an_answer_and_hold_nothing() {
    let gw = TestGateway::start().await;
    let mut neighbour = Neighbour::start(&gw).await;
    let huge = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"\x16\x03\x01 not http at all\r\n\r\n".to_vec(), "400"),
        ("a head over 16 KiB", huge.into_bytes(), "431"),
        (
            "no Sec-WebSocket-Key",
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "WebSocket version 8",
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "a POST",
            b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "another path",
            b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "404",
        ),
        (
            "65 headers",
            {
                let mut r = b"GET /ws HTTP/1.1\r\n".to_vec();
                for i in 0..65 {
                    r.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
                }
                r.extend_from_slice(b"\r\n");
                r
            },
            "400",
        ),
    ];
    for (what, request, status) in cases {
        let answer = handshake_answer(&gw, &request).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer:.200}"
        );
        neighbour.check().await;
    }
    nothing_left(&gw, 1).await;
    gw.stop().await;
}

/// Sockets that connect and say nothing are dropped after --handshake-timeout and never
/// reach a business process; clients behind them still get in.
#[tokio::test]
async fn silent_sockets_are_dropped_after_the_handshake_timeout() {
    let gw = TestGateway::start_with(|c| c.handshake_timeout = Duration::from_millis(300)).await;
    let mut neighbour = Neighbour::start(&gw).await;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(gw.ws_addr).await.expect("connect"));
    }
    for s in &mut silent {
        let mut b = [0u8; 1];
        let n = within("the gateway to drop a silent socket", s.read(&mut b))
            .await
            .unwrap_or(0);
        assert_eq!(n, 0, "dropped without an answer");
    }
    neighbour.check().await;
    assert_eq!(gw.stat(|s| &s.connections_total), 1, "only the neighbour");
    gw.stop().await;
}

/// Past --handshake-rate-per-ip an address gets 429 with Retry-After; others are not
/// affected, and after a pause it gets in again.
#[tokio::test]
async fn a_handshake_flood_from_one_address_gets_429() {
    let gw = TestGateway::start_with(|c| {
        c.handshake_rate_per_ip = 5;
        c.handshake_burst_per_ip = 5;
        // Loopback is exempt by default; count it here.
        c.handshake_rate_exempt = vec![];
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(gw.client().await);
    }
    let resp = refusal(gw.url()).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
    assert!(body.contains("--handshake-rate-per-ip"), "{body}");
    assert!(gw.stat(|s| &s.handshakes_rate_limited) >= 1);
    // The buckets refill at 5 a second.
    let again = connect_when_a_seat_is_free_or_429(&gw.url()).await;
    drop(again);
    gw.stop().await;
}

/// Retries a handshake refused with 429 (as its Retry-After says to); anything else fails.
async fn connect_when_a_seat_is_free_or_429(url: &str) -> Ws {
    within("a handshake after the Retry-After", async {
        loop {
            match tokio_tungstenite::connect_async(url).await {
                Ok((ws, _)) => return ws,
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 429 => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("expected 101 or 429, got {e}"),
            }
        }
    })
    .await
}

/// A trusted proxy's clients are counted by the address it forwards, not by the proxy's.
#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_counted_apart() {
    let gw = TestGateway::start_with(|c| {
        c.handshake_rate_per_ip = 1;
        c.handshake_burst_per_ip = 2;
        c.handshake_rate_exempt = vec![];
    })
    .await;
    let request = |client: &str| {
        let mut r = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            gw.url(),
        )
        .expect("request");
        r.headers_mut()
            .insert("x-forwarded-for", client.parse().expect("header"));
        r
    };
    for _ in 0..2 {
        let (ws, _) = tokio_tungstenite::connect_async(request("203.0.113.7"))
            .await
            .expect("within the burst");
        drop(ws);
    }
    assert_eq!(refusal(request("203.0.113.7")).await.status(), 429);
    // Another client behind the same proxy (127.0.0.1, trusted by default).
    let (_ws, _) = tokio_tungstenite::connect_async(request("203.0.113.8"))
        .await
        .expect("its own bucket");
    gw.stop().await;
}

const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

fn token(sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": sub, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("a token")
}

/// Past --max-connections-per-user (refuse-new): the handshake gets 429 and BindUser
/// LIMIT_EXCEEDED; other users are not affected.
#[tokio::test]
async fn a_user_past_its_connection_limit_is_refused() {
    let gw = TestGateway::start_with(|c| {
        c.jwt_secret = Some(SECRET.into());
        c.max_connections_per_user = 3;
    })
    .await;
    let (client, mut events) = gw.business("users").await;
    let url = |sub: &str| format!("{}?token={}", gw.url(), token(sub));
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(connect(&url("alice")).await);
        events.open().await;
    }
    let body = refused(url("alice"), 429).await;
    assert!(body.contains("--max-connections-per-user"), "{body}");
    assert_eq!(gw.stat(|s| &s.handshakes_user_limited), 1);
    // Bob is not affected; binding his connection to alice is refused.
    let _bob = connect(&url("bob")).await;
    let bob = events.open().await.conn_id;
    let err = client
        .bind_user(bob.clone(), "alice")
        .await
        .expect_err("alice is full");
    assert!(
        matches!(err, wsgate_business::Error::Gateway { code: wsgate_business::ErrorCode::LimitExceeded, ref message } if message.contains("--max-connections-per-user")),
        "{err:?}"
    );
    let info = client.conn_info([bob]).await.expect("info");
    assert_eq!(
        info[0].user_id, "bob",
        "a refused bind leaves the user as it was"
    );
    // One of alice's leaves: she gets in again.
    drop(mine.pop());
    events.close().await;
    let _again = connect(&url("alice")).await;
    gw.stop().await;
}

/// With close-oldest, the user's newest connection gets in and the oldest is closed with 4004.
#[tokio::test]
async fn close_oldest_lets_the_new_connection_in() {
    let gw = TestGateway::start_with(|c| {
        c.jwt_secret = Some(SECRET.into());
        c.max_connections_per_user = 2;
        c.user_connection_policy = wsgate::config::UserConnectionPolicy::CloseOldest;
    })
    .await;
    let (_client, mut events) = gw.business("users").await;
    let url = format!("{}?token={}", gw.url(), token("carol"));
    let mut first = connect(&url).await;
    let oldest = events.open().await.conn_id;
    let _second = connect(&url).await;
    events.open().await;
    let _third = connect(&url).await;
    events.open().await;
    let frame = recv_close(&mut first).await;
    assert_eq!(u16::from(frame.code), 4004);
    let close = events.close().await;
    assert_eq!((close.conn_id, close.code), (oldest, 4004));
    assert_eq!(gw.stat(|s| &s.closed_replaced), 1);
    gw.stop().await;
}

/// The authorize hook naming more topics than --max-topics-per-conn: the first ones are kept,
/// the connection is admitted.
#[tokio::test]
async fn a_hook_naming_too_many_topics_is_cut_to_the_limit() {
    let gw = TestGateway::start_with(|c| {
        c.authorize_hook = true;
        c.max_topics_per_conn = 10;
    })
    .await;
    let (client, mut events) = wsgate_business::Client::builder(gw.worker_addr.to_string())
        .name("hook")
        .authorize(true)
        .connect()
        .await
        .expect("business connects");
    let answer = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Some(wsgate_business::Event::Authorize(call)) => {
                    let topics: Vec<String> = (0..50).map(|i| format!("t{i:02}")).collect();
                    call.reply(wsgate_business::AuthorizeReply {
                        allow: true,
                        topics,
                        ..Default::default()
                    })
                    .await
                    .expect("answer");
                }
                Some(wsgate_business::Event::Open(open)) => return open,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    });
    let _ws = gw.client().await;
    let open = within("ConnOpen", answer).await.expect("hook task");
    assert_eq!(open.topics.len(), 10);
    let counts = client.counts([]).await.expect("counts");
    assert_eq!(counts.topics, 10);
    let _ = client
        .subscribe(["later"], Targets::conn(open.conn_id))
        .await;
    gw.stop().await;
}

/// Every listener asks the kernel for a backlog of --listen-backlog (4096): a burst of
/// connects waits in it instead of having its SYNs dropped. Read back with `ss`, capped as the
/// kernel caps it (net.core.somaxconn).
#[tokio::test]
async fn every_listener_has_a_backlog_fit_for_a_gateway() {
    let gw = TestGateway::start().await;
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("somaxconn")
        .trim()
        .parse()
        .expect("a number");
    let expected = somaxconn.min(4096);
    for addr in [gw.ws_addr, gw.worker_addr, gw.api_addr, gw.grpc_addr] {
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{}", addr.port())])
            .output()
            .expect("ss (iproute2) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let backlog: u32 = text
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no listener line for {addr}: {text:?}"));
        assert_eq!(backlog, expected, "{addr}: {text}");
    }
    gw.stop().await;
}
