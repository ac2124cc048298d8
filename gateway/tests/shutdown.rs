//! Graceful shutdown: clients get 1001, business processes get every ConnClose, then the
//! gateway returns.

mod common;

use common::*;
use wsgate_business::ClosedBy;

#[tokio::test]
async fn shutdown_closes_clients_with_1001_and_delivers_their_close_events() {
    let mut gw = TestGateway::start().await;
    let (_client, mut events) = gw.business("drain").await;
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        clients.push(gw.client().await);
        ids.push(events.open().await.conn_id);
    }
    gw.begin_shutdown();
    for ws in &mut clients {
        let frame = recv_close(ws).await;
        assert_eq!(u16::from(frame.code), 1001);
    }
    let mut closed = Vec::new();
    for _ in 0..5 {
        let c = events.close().await;
        assert_eq!(c.code, 1001);
        assert_eq!(c.closed_by, ClosedBy::Gateway as i32);
        closed.push(c.conn_id);
    }
    closed.sort();
    ids.sort();
    assert_eq!(closed, ids);
    gw.finished().await;
}

#[tokio::test]
async fn shutdown_with_no_clients_or_links_returns_promptly() {
    let gw = TestGateway::start().await;
    let started = std::time::Instant::now();
    gw.stop().await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[tokio::test]
async fn business_processes_hear_draining_before_the_closes() {
    use wsgate_proto::v1::{Envelope, envelope::Body};
    let mut gw = TestGateway::start().await;
    let mut raw = raw_register(gw.worker_addr, "").await;
    let _ws = gw.client().await;
    match raw_next(&mut raw).await {
        Some(Envelope {
            body: Some(Body::ConnOpen(_)),
            ..
        }) => {}
        other => panic!("expected ConnOpen, got {other:?}"),
    }
    gw.begin_shutdown();
    let mut seen = Vec::new();
    while let Some(env) = raw_next(&mut raw).await {
        match env.body {
            Some(Body::Draining(d)) => {
                assert_eq!(d.close_code, 1001);
                assert_eq!(d.drain_timeout_ms, 5000);
                seen.push("draining");
            }
            Some(Body::ConnClose(c)) => {
                assert_eq!(c.code, 1001);
                seen.push("close");
            }
            Some(Body::Ping(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["draining", "close"]);
    gw.finished().await;
}

#[tokio::test]
async fn in_a_cluster_clients_are_told_to_reconnect_elsewhere_with_1012() {
    let mut gw = TestGateway::start_with(|c| c.peers = vec!["127.0.0.1:9".into()]).await;
    let mut ws = gw.client().await;
    gw.begin_shutdown();
    let frame = recv_close(&mut ws).await;
    assert_eq!(u16::from(frame.code), 1012);
    assert_eq!(frame.reason.as_str(), "gateway restarting");
    gw.finished().await;
}

/// A handshake still waiting for the authorize hook when the drain closes the clients is
/// closed as soon as it completes: it was not registered when the drain asked every connection
/// to close, and sees the drain itself once it is.
#[tokio::test]
async fn a_handshake_that_completes_during_the_drain_is_closed_with_1001() {
    use wsgate_business::{Client, Event, EventKind};
    let mut gw = TestGateway::start_with(|c| {
        c.authorize_hook = true;
        c.authorize_timeout = std::time::Duration::from_secs(5);
    })
    .await;
    let (_auth, mut hook) = Client::builder(gw.worker_addr.to_string())
        .name("auth")
        .authorize(true)
        .events([EventKind::None])
        .connect()
        .await
        .expect("the authorizer connects");
    let mut next_call = async || loop {
        if let Event::Authorize(call) = within("an authorize call", hook.recv())
            .await
            .expect("the authorizer's link stays up")
        {
            return call;
        }
    };

    let url = gw.url();
    let early = tokio::spawn({
        let url = format!("{url}?early");
        async move { connect(&url).await }
    });
    next_call()
        .await
        .allow("early")
        .await
        .expect("answer the hook");
    let mut early = within("the early client's upgrade", early)
        .await
        .expect("the early client connects");
    let late = tokio::spawn({
        let url = format!("{url}?late");
        async move { connect(&url).await }
    });
    let held = next_call().await;

    gw.begin_shutdown();
    // The early client's close comes from the drain asking every registered connection.
    assert_eq!(u16::from(recv_close(&mut early).await.code), 1001);
    held.allow("late").await.expect("answer the hook");
    let mut late = within("the late client's upgrade", late)
        .await
        .expect("the late client is upgraded during the drain");
    assert_eq!(u16::from(recv_close(&mut late).await.code), 1001);
    gw.finished().await;
}
