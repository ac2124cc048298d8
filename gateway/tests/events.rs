//! Connection events: what a business process learns about clients, and in what order.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsgate_business::{ClosedBy, EventKind, Payload};

#[tokio::test]
async fn open_messages_close_arrive_in_order_with_ids_and_request_details() {
    let gw = TestGateway::start_with(|c| {
        c.forward_headers = vec!["user-agent".into(), "x-tenant".into()]
    })
    .await;
    let (_client, mut events) = gw.business("order").await;

    let mut req = format!("{}?room=7&lang=en", gw.url())
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.1".parse().unwrap());
    h.insert("x-real-ip", "203.0.113.9".parse().unwrap());
    h.insert("user-agent", "wsgate-test/1".parse().unwrap());
    h.insert("x-tenant", "acme".parse().unwrap());
    h.insert("cookie", "secret=1".parse().unwrap());
    let (mut ws, _) = within("handshake", tokio_tungstenite::connect_async(req))
        .await
        .unwrap();

    let open = events.open().await;
    assert!(open.conn_id.starts_with("test-gw-"), "{}", open.conn_id);
    assert_eq!(
        wsgate_proto::conn_id::node_of(&open.conn_id),
        Some("test-gw")
    );
    assert_eq!(open.path, "/ws");
    assert_eq!(open.query, "room=7&lang=en");
    assert_eq!(open.forwarded_for, "203.0.113.9, 10.0.0.1");
    assert_eq!(open.real_ip, "203.0.113.9");
    assert!(
        open.remote_addr.starts_with("127.0.0.1:"),
        "{}",
        open.remote_addr
    );
    assert_eq!(
        open.headers.get("user-agent").map(String::as_str),
        Some("wsgate-test/1")
    );
    assert_eq!(
        open.headers.get("x-tenant").map(String::as_str),
        Some("acme")
    );
    assert!(
        !open.headers.contains_key("cookie"),
        "only configured headers are forwarded"
    );
    assert!(open.connected_at_ms > 1_600_000_000_000);

    for i in 0..20 {
        send_text(&mut ws, &format!("m{i}")).await;
    }
    ws.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    for i in 0..20 {
        let m = events.message().await;
        assert_eq!(m.conn_id, open.conn_id);
        let p = m.payload.unwrap();
        assert_eq!(p.as_text(), Some(format!("m{i}").as_str()));
    }
    let bin = events.message().await.payload.unwrap();
    assert!(!bin.is_text());
    assert_eq!(&bin.data[..], &[0u8, 159, 146, 150]);

    ws.close(None).await.unwrap();
    let close = events.close().await;
    assert_eq!(close.conn_id, open.conn_id);
    assert_eq!(close.closed_by, ClosedBy::Client as i32);
    assert_eq!(close.code, 1005, "a close frame without a code");
    gw.stop().await;
}

#[tokio::test]
async fn connection_ids_are_unique_and_a_vanished_client_reports_1006() {
    let gw = TestGateway::start().await;
    let (_client, mut events) = gw.business("ids").await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..10 {
        let ws = gw.client().await;
        let open = events.open().await;
        assert!(
            ids.insert(open.conn_id.clone()),
            "duplicate id {}",
            open.conn_id
        );
        drop(ws); // TCP goes away without a close frame
        let close = events.close().await;
        assert_eq!(close.conn_id, open.conn_id);
        assert_eq!(close.code, 1006);
        assert_eq!(close.closed_by, ClosedBy::Client as i32);
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_business_gets_only_the_events_it_asked_for() {
    let gw = TestGateway::start().await;
    let (_c, events) = wsgate_business::Client::builder(gw.worker_addr.to_string())
        .name("messages-only")
        .events([EventKind::Message])
        .connect()
        .await
        .unwrap();
    let mut events = EventsExt(events);
    let mut ws = gw.client().await;
    send_text(&mut ws, "only this").await;
    let m = events.message().await; // no Open before it
    assert_eq!(m.payload.unwrap().as_text(), Some("only this"));
    ws.close(None).await.unwrap();
    // No Close either: the next event is the next connection's message.
    let mut ws2 = gw.client().await;
    send_text(&mut ws2, "second").await;
    assert_eq!(
        events.message().await.payload.unwrap().as_text(),
        Some("second")
    );
    gw.stop().await;
}

#[tokio::test]
async fn other_paths_get_404_before_the_upgrade() {
    let gw = TestGateway::start().await;
    let body = refused(format!("ws://{}/other", gw.ws_addr), 404).await;
    assert!(
        body.contains("/ws"),
        "the body says where to connect: {body}"
    );
    assert_eq!(gw.stat(|s| &s.connections_total), 0);
    gw.stop().await;
}

#[tokio::test]
async fn text_heartbeat_is_answered_and_not_forwarded() {
    let gw = TestGateway::start().await;
    let (_client, mut events) = gw.business("hb").await;
    let mut ws = gw.client().await;
    events.open().await;
    send_text(&mut ws, "ping").await;
    assert_eq!(recv_text(&mut ws).await, "pong");
    send_text(&mut ws, "after").await;
    // Had "ping" been forwarded it would come first.
    assert_eq!(
        events.message().await.payload.unwrap().as_text(),
        Some("after")
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_with_4000() {
    let gw = TestGateway::start_with(|c| {
        c.client_ping_interval = Duration::from_millis(50);
        c.client_idle_timeout = Duration::from_millis(300);
    })
    .await;
    let (_client, mut events) = gw.business("idle").await;
    let mut ws = gw.client().await;
    let open = events.open().await;
    // Not reading means not answering pings: the client is silent.
    let close = events.close().await;
    assert_eq!(close.conn_id, open.conn_id);
    assert_eq!(close.code, 4000);
    assert_eq!(close.closed_by, ClosedBy::Gateway as i32);
    let frame = recv_close(&mut ws).await;
    assert_eq!(u16::from(frame.code), 4000);
    assert_eq!(gw.stat(|s| &s.closed_idle), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let gw = TestGateway::start_with(|c| {
        c.client_ping_interval = Duration::from_millis(100);
        c.client_idle_timeout = Duration::from_millis(500);
    })
    .await;
    let (client, mut events) = gw.business("alive").await;
    let mut ws = gw.client().await;
    let open = events.open().await;
    // Reading makes tungstenite answer the pings; a message arrives well after the timeout.
    let id = open.conn_id.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client.single_cast(id, Payload::text("still here")).await
    });
    assert_eq!(recv_text(&mut ws).await, "still here");
    later.await.unwrap().expect("the connection was still open");
    gw.stop().await;
}

#[tokio::test]
async fn without_a_business_messages_are_dropped_and_counted() {
    let gw = TestGateway::start().await;
    let mut ws = gw.client().await;
    for _ in 0..3 {
        send_text(&mut ws, "nobody listens").await;
    }
    wait_until("3 drops counted", || {
        gw.stat(|s| &s.dropped_no_business) == 3
    })
    .await;
    // The gateway keeps working: a business arriving now gets the next messages.
    let (_client, mut events) = gw.business("late").await;
    send_text(&mut ws, "now").await;
    assert_eq!(
        events.message().await.payload.unwrap().as_text(),
        Some("now")
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_oversized_message_closes_only_that_client_with_1009() {
    let gw = TestGateway::start_with(|c| c.max_message_bytes = 64 * 1024).await;
    let (client, mut events) = gw.business("big").await;
    let mut big = gw.client().await;
    let big_open = events.open().await;
    let mut small = gw.client().await;
    let small_open = events.open().await;

    big.send(Message::binary(vec![7u8; 200 * 1024]))
        .await
        .unwrap();
    let frame = recv_close(&mut big).await;
    assert_eq!(u16::from(frame.code), 1009);
    let close = events.close().await;
    assert_eq!(close.conn_id, big_open.conn_id);
    assert_eq!(close.code, 1009);
    assert_eq!(close.closed_by, ClosedBy::Gateway as i32);

    // The other client is untouched, both ways.
    send_text(&mut small, "fine").await;
    let m = events.message().await;
    assert_eq!(m.conn_id, small_open.conn_id);
    client
        .single_cast(small_open.conn_id.clone(), Payload::text("ok"))
        .await
        .unwrap();
    assert_eq!(recv_text(&mut small).await, "ok");
    // A message right at the limit passes.
    small
        .send(Message::binary(vec![1u8; 64 * 1024]))
        .await
        .unwrap();
    assert_eq!(
        events.message().await.payload.unwrap().data.len(),
        64 * 1024
    );
    assert_eq!(gw.stat(|s| &s.closed_too_big), 1);
    gw.stop().await;
}
