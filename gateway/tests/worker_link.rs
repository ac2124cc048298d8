//! The worker link under abuse: wrong tokens, garbage, oversized frames, silence. Each closes
//! only the offending link, with an Error frame that says why.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use wsgate_business::{Client, Error, ErrorCode, Payload};
use wsgate_proto::v1::{Envelope, Ping, SingleCast, envelope::Body};

/// A healthy business and client, to show that abuse elsewhere leaves them alone.
async fn echo_works(gw: &TestGateway, client: &Client, events: &mut EventsExt, ws: &mut Ws) {
    send_text(ws, "still fine?").await;
    let m = events.message().await;
    client
        .single_cast(m.conn_id, m.payload.expect("a payload"))
        .await
        .expect("echo reply");
    assert_eq!(recv_text(ws).await, "still fine?");
    let _ = gw;
}

async fn healthy(gw: &TestGateway) -> (Client, EventsExt, Ws) {
    let (client, mut events) = gw.business("healthy").await;
    let ws = gw.client().await;
    events.open().await;
    (client, events, ws)
}

#[tokio::test]
async fn wrong_token_is_rejected_with_a_reason() {
    let gw = TestGateway::start_with(|c| c.worker_token = Some("right".into())).await;
    let err = Client::builder(gw.worker_addr.to_string())
        .token("wrong")
        .connect()
        .await
        .expect_err("a wrong token is refused");
    match err {
        Error::Rejected { code, message } => {
            assert_eq!(code, ErrorCode::Unauthenticated);
            assert!(message.contains("token"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // The raw view: an Error frame, then the link closes.
    let mut raw = raw_link(gw.worker_addr).await;
    raw.send(Envelope {
        request_id: 9,
        body: Some(Body::Register(wsgate_proto::v1::Register {
            token: "nope".into(),
            ..Default::default()
        })),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = expect_error_then_eof(&mut raw).await;
    assert_eq!(e.code, ErrorCode::Unauthenticated as i32);
    // The right token works.
    Client::builder(gw.worker_addr.to_string())
        .token("right")
        .connect()
        .await
        .expect("right token");
    gw.stop().await;
}

#[tokio::test]
async fn garbage_bytes_close_only_that_link() {
    let gw = TestGateway::start().await;
    let (client, mut events, mut ws) = healthy(&gw).await;

    // After registering.
    let mut raw = raw_register(gw.worker_addr, "").await;
    raw.get_mut()
        .write_all(&frame_bytes(6, b"\xff\xff\xff\xff\xff\xff"))
        .await
        .unwrap();
    let e = expect_error_then_eof(&mut raw).await;
    assert_eq!(e.code, ErrorCode::DecodeFailed as i32);

    // Before registering: not even a frame.
    let mut raw = raw_link(gw.worker_addr).await;
    raw.get_mut()
        .write_all(b"\x00\x00\x00\x03GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let e = expect_error_then_eof(&mut raw).await;
    assert_eq!(e.code, ErrorCode::DecodeFailed as i32);

    echo_works(&gw, &client, &mut events, &mut ws).await;
    gw.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_link() {
    // A small frame limit needs small limits around it (the gateway checks the arithmetic).
    let gw = TestGateway::start_with(|c| {
        c.max_frame_bytes = 256 * 1024;
        c.max_message_bytes = 16 * 1024;
        c.max_topics_per_conn = 100;
        c.max_topics_per_command = 100;
        c.max_conn_ids_per_command = 500;
        c.max_user_ids_per_command = 100;
    })
    .await;
    let (client, mut events, mut ws) = healthy(&gw).await;
    let mut raw = raw_register(gw.worker_addr, "").await;
    // Announce 1 GiB; the gateway must refuse without waiting for (or allocating) it.
    raw.get_mut()
        .write_all(&frame_bytes(1 << 30, b""))
        .await
        .unwrap();
    let e = expect_error_then_eof(&mut raw).await;
    assert_eq!(e.code, ErrorCode::FrameTooLarge as i32);
    assert!(e.message.contains("262144"), "{}", e.message);
    echo_works(&gw, &client, &mut events, &mut ws).await;
    gw.stop().await;
}

#[tokio::test]
async fn commands_before_register_are_refused() {
    let gw = TestGateway::start().await;
    let mut raw = raw_link(gw.worker_addr).await;
    raw.send(Envelope {
        request_id: 3,
        body: Some(Body::SingleCast(SingleCast {
            conn_id: "x-1-1".into(),
            payload: Some(Payload::text("x")),
        })),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = expect_error_then_eof(&mut raw).await;
    assert_eq!(e.code, ErrorCode::NotRegistered as i32);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_bodies_and_a_second_register_get_errors_but_keep_the_link() {
    let gw = TestGateway::start().await;
    let mut raw = raw_register(gw.worker_addr, "").await;
    raw.send(Envelope {
        request_id: 5,
        body: None,
        ..Default::default()
    })
    .await
    .unwrap();
    match raw_next(&mut raw).await {
        Some(Envelope {
            request_id: 5,
            body: Some(Body::Error(e)),
            ..
        }) => assert_eq!(e.code, ErrorCode::Unsupported as i32),
        other => panic!("expected Error UNSUPPORTED, got {other:?}"),
    }
    raw.send(Envelope {
        request_id: 6,
        body: Some(Body::Register(Default::default())),
        ..Default::default()
    })
    .await
    .unwrap();
    match raw_next(&mut raw).await {
        Some(Envelope {
            request_id: 6,
            body: Some(Body::Error(e)),
            ..
        }) => assert_eq!(e.code, ErrorCode::BadRequest as i32),
        other => panic!("expected Error BAD_REQUEST, got {other:?}"),
    }
    raw.send(Envelope {
        request_id: 7,
        body: Some(Body::Ping(Ping {})),
        ..Default::default()
    })
    .await
    .unwrap();
    match raw_next(&mut raw).await {
        Some(Envelope {
            request_id: 7,
            body: Some(Body::Pong(_)),
            ..
        }) => {}
        other => panic!("expected Pong, got {other:?}"),
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_silent_link_times_out() {
    let gw = TestGateway::start_with(|c| {
        c.worker_heartbeat_interval = Duration::from_millis(100);
        c.worker_heartbeat_timeout = Duration::from_millis(500);
    })
    .await;
    let mut raw = raw_register(gw.worker_addr, "").await;
    // Reading the gateway's pings without answering them.
    let e = expect_error_then_eof(&mut raw).await;
    assert_eq!(e.code, ErrorCode::HeartbeatTimeout as i32);
    wait_until("no links", || gw.stat(|s| &s.links_current) == 0).await;

    // An SDK business answers pings and stays registered well past the timeout.
    let (client, mut events) = gw.business("alive").await;
    let mut ws = gw.client().await;
    events.open().await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // three timeouts' worth of heartbeats
    assert_eq!(gw.stat(|s| &s.links_current), 1);
    echo_works(&gw, &client, &mut events, &mut ws).await;
    gw.stop().await;
}
