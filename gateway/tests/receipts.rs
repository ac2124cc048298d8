//! Receipts: a cast that asks for them learns, per target connection, whether its message was
//! written to the client's socket, the connection was gone, or the message was dropped
//! unwritten — in its `Result` (waiting), in `Receipts` frames after it (later), through the
//! SDK, the HTTP API and the gRPC API.

mod common;

use std::collections::HashMap;

use common::http::Api;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tonic::Request;
use wsgate_business::{Delivery, Payload, Receipt, Report};
use wsgate_proto::v1::push_api_client::PushApiClient;
use wsgate_proto::v1::{
    BindUser, Broadcast, Envelope, ErrorCode, Multicast, ReceiptMode, envelope::Body,
};

fn outcomes(receipts: &[Receipt]) -> HashMap<String, Delivery> {
    receipts
        .iter()
        .map(|r| (r.conn_id.clone(), r.delivery()))
        .collect()
}

/// A ghost: a well-formed id of this gateway that was never issued.
fn ghost(gw: &TestGateway) -> String {
    format!("{}-0000000000000-zz", gw.node_id)
}

#[tokio::test]
async fn a_waiting_cast_lists_written_and_gone_connections() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("receipts").await;
    let mut ws = gw.client().await;
    let reader = events.open().await.conn_id;
    let ghost = ghost(&gw);

    let report = client
        .with_receipts()
        .multicast(
            [reader.clone(), ghost.clone()],
            Payload::text("order 1 paid"),
        )
        .await
        .expect("the cast answers");
    assert_eq!(report.delivered, 1);
    assert_eq!(
        outcomes(&report.receipts),
        HashMap::from([(reader, Delivery::Written), (ghost, Delivery::Gone)])
    );
    assert_eq!(recv_text(&mut ws).await, "order 1 paid");

    // Without receipts, none.
    let plain = client
        .broadcast(Payload::text("plain"), Vec::<String>::new())
        .await
        .expect("broadcast");
    assert!(plain.receipts.is_empty());
}

/// A client that never reads: its socket buffers fill, then its queue, and it is closed as a
/// slow consumer. Every cast waiting on it is answered — written while the socket took the
/// frames, dropped after — and never twice for one cast.
#[tokio::test]
async fn frames_of_a_slow_consumer_are_reported_dropped_and_every_wait_ends() {
    let gw = TestGateway::start_with(|c| c.send_queue_bytes = 64 * 1024).await;
    let (client, mut events) = gw.business("receipts").await;
    let _stalled = gw.client().await; // never reads
    let stalled = events.open().await.conn_id;
    let receipts = client.with_receipts();
    let chunk = Payload::binary(vec![0u8; 48 * 1024]);
    let mut casts = Vec::new();
    while gw.stat(|s| &s.closed_slow_consumer) == 0 {
        assert!(casts.len() < 4000, "the stalled client was never closed");
        let (receipts, stalled, chunk) = (receipts.clone(), stalled.clone(), chunk.clone());
        casts.push(tokio::spawn(async move {
            receipts.multicast([stalled], chunk).await
        }));
        tokio::task::yield_now().await;
    }
    let mut seen = Vec::new();
    for cast in casts {
        let report: Report = within("a waiting cast", cast)
            .await
            .expect("the task")
            .expect("every cast answers");
        assert_eq!(report.receipts.len(), 1, "{report:?}");
        assert_eq!(report.receipts[0].conn_id, stalled);
        seen.push(report.receipts[0].delivery());
    }
    // Written while the socket took them, dropped once it was full (queued, or refused as the
    // queue overflowed), gone for casts that came after the close.
    let written = seen.iter().take_while(|d| **d == Delivery::Written).count();
    let dropped = seen[written..]
        .iter()
        .take_while(|d| **d == Delivery::Dropped)
        .count();
    assert!(written > 0, "the socket took the first frames: {seen:?}");
    assert!(
        dropped > 0,
        "the frames behind the full socket were dropped: {seen:?}"
    );
    assert!(
        seen[written + dropped..]
            .iter()
            .all(|d| *d == Delivery::Gone),
        "then the connection was gone: {seen:?}"
    );
}

#[tokio::test]
async fn a_later_cast_answers_at_once_then_sends_its_receipts() {
    let gw = TestGateway::start_with(|c| c.max_conn_ids_per_command = 1).await;
    let (_business, mut events) = gw.business("watcher").await;
    let mut ws = gw.client().await;
    let reader = events.open().await.conn_id;
    let _other = gw.client().await;
    events.open().await;
    let (mut link, _) = raw_commander(gw.worker_addr, "raw").await;

    // Later: the Result, then two Receipts frames of one receipt each (the per-command limit
    // is 1), the last one marked.
    let broadcast = Body::Broadcast(Broadcast {
        payload: Some(Payload::text("sale")),
        ..Default::default()
    });
    link.send(Envelope {
        request_id: 5,
        command_id: "sale-1".into(),
        receipt: ReceiptMode::Later as i32,
        body: Some(broadcast.clone()),
        ..Default::default()
    })
    .await
    .expect("send");
    let mut got = Vec::new();
    let mut answered = false;
    loop {
        match raw_next_not_ping(&mut link).await {
            Some(Envelope {
                request_id: 5,
                body: Some(Body::Result(r)),
                ..
            }) => {
                assert!(!answered && got.is_empty(), "the Result comes first, once");
                assert_eq!((r.code, r.delivered), (ErrorCode::Ok as i32, 2));
                assert!(r.receipts.is_empty(), "later: not in the Result");
                answered = true;
            }
            Some(Envelope {
                request_id: 5,
                command_id,
                body: Some(Body::Receipts(r)),
                ..
            }) => {
                assert_eq!(command_id, "sale-1");
                assert_eq!(r.receipts.len(), 1, "one per frame");
                got.extend(r.receipts);
                if r.last {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(answered);
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|r| r.delivery() == Delivery::Written),
        "{got:?}"
    );
    assert!(got.iter().any(|r| r.conn_id == reader));
    assert_eq!(recv_text(&mut ws).await, "sale");

    // Waiting for two receipts past a limit of one is refused, with what to do.
    let r = raw_result(
        &mut link,
        Envelope {
            request_id: 6,
            receipt: ReceiptMode::Wait as i32,
            body: Some(broadcast),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.code, ErrorCode::BadRequest as i32);
    assert!(r.message.contains("RECEIPT_MODE_LATER"), "{}", r.message);
    // Receipts are for casts.
    let r = raw_result(
        &mut link,
        Envelope {
            request_id: 7,
            receipt: ReceiptMode::Wait as i32,
            body: Some(Body::BindUser(BindUser {
                conn_id: reader.clone(),
                user_id: "alice".into(),
            })),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.code, ErrorCode::BadRequest as i32);
    assert!(r.message.contains("for casts"), "{}", r.message);
}

#[tokio::test]
async fn http_and_grpc_casts_answer_with_receipts_when_asked() {
    let gw = TestGateway::start().await;
    let (_business, mut events) = gw.business("watcher").await;
    let mut ws = gw.client().await;
    let reader = events.open().await.conn_id;
    let ghost = ghost(&gw);
    let api = Api::of(&gw);

    let reply = api
        .ok(
            "/api/v1/multicast",
            json!({ "conn_ids": [reader, ghost], "text": "paid", "receipts": true }),
        )
        .await;
    let mut listed: Vec<(String, String)> = reply["receipts"]
        .as_array()
        .expect("receipts listed")
        .iter()
        .map(|r| {
            (
                r["conn_id"].as_str().unwrap().to_owned(),
                r["delivery"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (reader.clone(), "written".to_owned()),
        (ghost.clone(), "gone".to_owned()),
    ];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(recv_text(&mut ws).await, "paid");
    let one = api
        .ok(
            "/api/v1/send",
            json!({ "conn_id": reader, "text": "receipt", "receipts": true }),
        )
        .await;
    assert_eq!(
        one["receipts"],
        json!([{ "conn_id": reader, "delivery": "written" }])
    );
    assert_eq!(recv_text(&mut ws).await, "receipt");
    api.post(
        "/api/v1/send",
        json!({ "conn_id": ghost, "text": "x", "receipts": true }),
    )
    .await
    .expect_error(404, "unknown_connection", &[]);
    let plain = api
        .ok("/api/v1/broadcast", json!({ "text": "plain" }))
        .await;
    assert!(plain.get("receipts").is_none(), "only when asked: {plain}");
    assert_eq!(recv_text(&mut ws).await, "plain");

    let mut grpc = PushApiClient::new(gw.grpc_channel().await);
    let mut request = Request::new(Multicast {
        conn_ids: vec![reader.clone(), ghost.clone()],
        payload: Some(Payload::text("shipped")),
    });
    request
        .metadata_mut()
        .insert("receipts", "wait".parse().expect("ASCII"));
    let reply = grpc
        .multicast(request)
        .await
        .expect("multicast")
        .into_inner();
    assert_eq!(
        outcomes(&reply.receipts),
        HashMap::from([(reader.clone(), Delivery::Written), (ghost, Delivery::Gone)])
    );
    assert_eq!(recv_text(&mut ws).await, "shipped");
    let mut single = Request::new(wsgate_proto::v1::SingleCast {
        conn_id: reader.clone(),
        payload: Some(Payload::text("single")),
    });
    single
        .metadata_mut()
        .insert("receipts", "wait".parse().expect("ASCII"));
    let reply = grpc
        .single_cast(single)
        .await
        .expect("single cast")
        .into_inner();
    assert_eq!(
        outcomes(&reply.receipts),
        HashMap::from([(reader.clone(), Delivery::Written)])
    );
    assert_eq!(recv_text(&mut ws).await, "single");
    let mut bad = Request::new(Broadcast {
        payload: Some(Payload::text("x")),
        ..Default::default()
    });
    bad.metadata_mut()
        .insert("receipts", "yes".parse().expect("ASCII"));
    let status = grpc.broadcast(bad).await.expect_err("an unknown value");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("receipts: wait"), "{status:?}");
    // The stream still works after the refusal.
    ws.send(Message::Ping(Vec::new().into()))
        .await
        .expect("ping");
    assert!(ws.next().await.is_some());
}

#[tokio::test]
async fn the_sdk_gets_later_receipts_as_events() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("receipts").await;
    let mut ws = gw.client().await;
    let reader = events.open().await.conn_id;
    let report = client
        .with_command_id("sale-7")
        .with_receipts_later()
        .broadcast(Payload::text("sale"), Vec::<String>::new())
        .await
        .expect("the broadcast answers at once");
    assert_eq!(report.delivered, 1);
    assert!(report.receipts.is_empty(), "they come later");
    assert_eq!(recv_text(&mut ws).await, "sale");
    loop {
        match events.next().await {
            wsgate_business::Event::Receipts {
                command_id,
                receipts,
                last,
            } => {
                assert_eq!(command_id, "sale-7");
                assert!(last);
                assert_eq!(
                    outcomes(&receipts),
                    HashMap::from([(reader, Delivery::Written)])
                );
                break;
            }
            _ => continue,
        }
    }
}

/// What a business process may get wrong about receipts, each answered with what to do, the
/// link kept.
#[tokio::test]
async fn bad_receipt_requests_are_refused_and_the_link_stays() {
    let gw = TestGateway::start().await;
    let (mut link, _) = raw_commander(gw.worker_addr, "raw").await;
    let broadcast = Body::Broadcast(Broadcast {
        payload: Some(Payload::text("x")),
        ..Default::default()
    });
    // A receipt mode this gateway does not know.
    let r = raw_result(
        &mut link,
        Envelope {
            request_id: 1,
            receipt: 7,
            body: Some(broadcast.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.code, ErrorCode::BadRequest as i32);
    assert!(r.message.contains("ReceiptMode"), "{}", r.message);
    // Receipts are the gateway's to send.
    let e = match raw_ask(
        &mut link,
        Envelope {
            request_id: 2,
            body: Some(Body::Receipts(wsgate_proto::v1::Receipts::default())),
            ..Default::default()
        },
    )
    .await
    .body
    {
        Some(Body::Error(e)) => e,
        other => panic!("expected an Error, got {other:?}"),
    };
    assert_eq!(e.code, ErrorCode::Unsupported as i32);
    assert!(e.message.contains("sent by the gateway"), "{}", e.message);
    // The link still works.
    let r = raw_result(
        &mut link,
        Envelope {
            request_id: 3,
            body: Some(broadcast),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(r.code, ErrorCode::Ok as i32);
}
