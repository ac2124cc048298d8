//! Commands from a business process: casts reach exactly their targets, force-offline closes
//! with its code and last message, unknown ids and slow consumers are reported.

mod common;

use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use wsgate_business::{ClosedBy, Error, Payload};

/// Opens `n` clients and returns them with their connection ids.
async fn clients(gw: &TestGateway, events: &mut EventsExt, n: usize) -> Vec<(Ws, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let ws = gw.client().await;
        let id = events.open().await.conn_id;
        out.push((ws, id));
    }
    out
}

/// Broadcasts a marker and checks that each client's next message is `expected[i]` followed by
/// the marker: proof that nothing else arrived in between.
async fn expect_exactly(
    client: &wsgate_business::Client,
    conns: &mut [(Ws, String)],
    expected: &[Option<&str>],
) {
    client
        .broadcast(Payload::text("marker"), Vec::<String>::new())
        .await
        .expect("marker broadcast");
    for ((ws, id), want) in conns.iter_mut().zip(expected) {
        if let Some(want) = want {
            assert_eq!(recv_text(ws).await, *want, "client {id}");
        }
        assert_eq!(
            recv_text(ws).await,
            "marker",
            "client {id} got something extra"
        );
    }
}

#[tokio::test]
async fn single_multi_and_broadcast_reach_exactly_their_targets() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("casts").await;
    let mut conns = clients(&gw, &mut events, 4).await;
    let ids: Vec<String> = conns.iter().map(|c| c.1.clone()).collect();

    client
        .single_cast(ids[1].clone(), Payload::text("to one"))
        .await
        .unwrap();
    expect_exactly(&client, &mut conns, &[None, Some("to one"), None, None]).await;

    let report = client
        .multicast(
            vec![ids[0].clone(), ids[2].clone()],
            Payload::text("to two"),
        )
        .await
        .unwrap();
    assert_eq!(report.delivered, 2);
    assert!(report.unknown_conn_ids.is_empty());
    expect_exactly(
        &client,
        &mut conns,
        &[Some("to two"), None, Some("to two"), None],
    )
    .await;

    let report = client
        .broadcast(Payload::text("to all but 3"), vec![ids[3].clone()])
        .await
        .unwrap();
    assert_eq!(report.delivered, 3);
    expect_exactly(
        &client,
        &mut conns,
        &[
            Some("to all but 3"),
            Some("to all but 3"),
            Some("to all but 3"),
            None,
        ],
    )
    .await;

    // Binary payloads stay binary, byte for byte.
    client
        .single_cast(ids[0].clone(), Payload::binary(vec![0u8, 255, 1]))
        .await
        .unwrap();
    match within("binary", conns[0].0.next()).await {
        Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], &[0u8, 255, 1]),
        other => panic!("expected binary, got {other:?}"),
    }
    gw.stop().await;
}

#[tokio::test]
async fn unknown_connection_ids_are_reported() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("unknown").await;
    let mut conns = clients(&gw, &mut events, 1).await;
    let ghost = "test-gw-1-ffff".to_string();

    match client.single_cast(ghost.clone(), Payload::text("x")).await {
        Err(Error::UnknownConnection { conn_ids }) => assert_eq!(conn_ids, vec![ghost.clone()]),
        other => panic!("expected UnknownConnection, got {other:?}"),
    }
    let report = client
        .multicast(
            vec![conns[0].1.clone(), ghost.clone(), "not-even-an-id".into()],
            Payload::text("half"),
        )
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(
        report.unknown_conn_ids,
        vec![ghost.clone(), "not-even-an-id".to_string()]
    );
    assert_eq!(recv_text(&mut conns[0].0).await, "half");

    // A closed connection's id is unknown afterwards.
    let (mut ws, id) = conns.pop().unwrap();
    ws.close(None).await.unwrap();
    events.close().await;
    assert!(matches!(
        client.single_cast(id, Payload::text("late")).await,
        Err(Error::UnknownConnection { .. })
    ));
    gw.stop().await;
}

#[tokio::test]
async fn bad_commands_get_a_reason_and_the_link_stays_up() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("bad").await;
    let mut conns = clients(&gw, &mut events, 1).await;
    let id = conns[0].1.clone();

    let not_utf8 = wsgate_business::Payload {
        data: vec![0xffu8, 0xfe].into(),
        kind: wsgate_business::PayloadKind::Text as i32,
    };
    match client.single_cast(id.clone(), not_utf8).await {
        Err(Error::Gateway { message, .. }) => assert!(message.contains("UTF-8"), "{message}"),
        other => panic!("expected a BAD_REQUEST, got {other:?}"),
    }
    match client
        .force_offline(vec![id.clone()], 2000, "bad code", None)
        .await
    {
        Err(Error::Gateway { message, .. }) => assert!(message.contains("3000"), "{message}"),
        other => panic!("expected a BAD_REQUEST, got {other:?}"),
    }
    // Still connected, still working.
    client
        .single_cast(id, Payload::text("after"))
        .await
        .unwrap();
    assert_eq!(recv_text(&mut conns[0].0).await, "after");
    assert_eq!(gw.stat(|s| &s.command_errors), 2);
    gw.stop().await;
}

#[tokio::test]
async fn force_offline_sends_the_last_message_then_closes_with_its_code() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("kick").await;
    let mut conns = clients(&gw, &mut events, 2).await;
    let (kicked, kept) = (conns[0].1.clone(), conns[1].1.clone());

    let report = client
        .force_offline(
            vec![kicked.clone()],
            4100,
            "logged in elsewhere",
            Some(Payload::text("bye")),
        )
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(recv_text(&mut conns[0].0).await, "bye");
    let frame = recv_close(&mut conns[0].0).await;
    assert_eq!(u16::from(frame.code), 4100);
    assert_eq!(frame.reason.as_str(), "logged in elsewhere");

    let close = events.close().await;
    assert_eq!(close.conn_id, kicked);
    assert_eq!(close.code, 4100);
    assert_eq!(close.reason, "logged in elsewhere");
    assert_eq!(close.closed_by, ClosedBy::Business as i32);

    // Default code is 1000; the other client is unaffected until then.
    client
        .single_cast(kept.clone(), Payload::text("still here"))
        .await
        .unwrap();
    assert_eq!(recv_text(&mut conns[1].0).await, "still here");
    client.force_offline(vec![kept], 0, "", None).await.unwrap();
    assert_eq!(u16::from(recv_close(&mut conns[1].0).await.code), 1000);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_as_a_slow_consumer() {
    let gw = TestGateway::start_with(|c| c.send_queue = 16).await;
    let (client, mut events) = gw.business("firehose").await;
    let _stalled = gw.client().await; // never reads
    let stalled_id = events.open().await.conn_id;
    let mut reader = gw.client().await;
    let reader_id = events.open().await.conn_id;

    let reading = tokio::spawn(async move {
        let mut got = 0usize;
        loop {
            match reader.next().await {
                Some(Ok(Message::Binary(b))) if b.len() == 1 => return got, // end marker
                Some(Ok(Message::Binary(_))) => got += 1,
                Some(Ok(_)) => {}
                other => panic!("reader lost its connection: {other:?}"),
            }
        }
    });

    // Big messages fill the stalled client's socket buffers, then its queue.
    let chunk = Payload::binary(vec![0u8; 64 * 1024]);
    let mut sent = 0usize;
    while gw.stat(|s| &s.closed_slow_consumer) == 0 {
        assert!(sent < 4000, "the stalled client was never closed");
        client
            .broadcast(chunk.clone(), Vec::<String>::new())
            .await
            .unwrap();
        sent += 1;
    }
    let close = events.close().await;
    assert_eq!(close.conn_id, stalled_id);
    assert_eq!(close.code, 4001);
    assert_eq!(close.closed_by, ClosedBy::Gateway as i32);

    client
        .single_cast(reader_id, Payload::binary(vec![1u8]))
        .await
        .unwrap();
    let got = within("the reader", reading).await.unwrap();
    assert_eq!(got, sent, "the reading client got every message");
    gw.stop().await;
}
