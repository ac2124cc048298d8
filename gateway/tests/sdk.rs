//! The business SDK against a real gateway: reconnecting and registering again by itself,
//! failing fast while the link is down, and usable from many tasks at once.

mod common;

use std::time::Duration;

use common::*;
use wsgate_business::{Client, Error, Event, Payload};

#[tokio::test]
async fn the_sdk_reconnects_and_registers_again_after_a_gateway_restart() {
    let gw = TestGateway::start().await;
    let worker_addr = gw.worker_addr;
    let (client, events) = Client::builder(worker_addr.to_string())
        .name("phoenix")
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let mut events = events;
    assert!(matches!(
        within("Connected", events.recv()).await,
        Some(Event::Connected { .. })
    ));
    assert_eq!(client.node_id().as_deref(), Some("test-gw"));

    gw.stop().await;
    match within("Draining", events.recv()).await {
        Some(Event::Draining { close_code, .. }) => assert_eq!(close_code, 1001),
        other => panic!("expected Draining, got {other:?}"),
    }
    match within("Disconnected", events.recv()).await {
        Some(Event::Disconnected { reason }) => assert!(!reason.is_empty()),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // While down, commands fail at once instead of hanging.
    assert!(matches!(
        client.single_cast("test-gw-1-1", Payload::text("x")).await,
        Err(Error::NotConnected)
    ));

    // A new gateway on the same worker address; the SDK finds it without help.
    let gw = TestGateway::start_with(|c| {
        c.worker_addr = worker_addr;
        c.node_id = "test-gw-2".into();
    })
    .await;
    match within("Connected again", events.recv()).await {
        Some(Event::Connected { node_id }) => assert_eq!(node_id, "test-gw-2"),
        other => panic!("expected Connected, got {other:?}"),
    }
    let mut events = EventsExt(events);
    let mut ws = gw.client().await;
    let open = events.open().await;
    client
        .single_cast(open.conn_id, Payload::text("back"))
        .await
        .unwrap();
    assert_eq!(recv_text(&mut ws).await, "back");
    gw.stop().await;
}

#[tokio::test]
async fn connecting_to_a_gateway_that_is_not_there_fails_with_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = Client::builder(addr.to_string())
        .connect()
        .await
        .expect_err("nothing listens");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn one_client_serves_many_tasks() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("many").await;
    let mut ws = gw.client().await;
    let id = events.open().await.conn_id;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            let id = id.clone();
            tokio::spawn(async move { client.single_cast(id, Payload::text(format!("{i}"))).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut got: Vec<u32> = Vec::new();
    for _ in 0..50 {
        got.push(recv_text(&mut ws).await.parse().unwrap());
    }
    got.sort();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    gw.stop().await;
}
