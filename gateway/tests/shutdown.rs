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
