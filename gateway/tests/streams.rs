//! Streams (docs/streams.md): real gateways, real WebSocket clients speaking the
//! `wsgate.stream.v1` subprotocol beside plain ones, real business processes through the SDK,
//! the HTTP API.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::http::Api;
use common::streams::*;
use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsgate_business::{Client, Event, Payload, Targets};
use wsgate_proto::v1::Delivery;
use wsgate_proto::v1::push_api_client::PushApiClient;

async fn send_to_user(biz: &Client, user: &str, text: &str) {
    biz.send_to_users([user], Payload::text(text), Vec::new())
        .await
        .expect("SendToUsers");
}

#[tokio::test]
async fn a_reconnecting_client_gets_what_it_missed_once_then_live() {
    let gw = gateway(&["users u-* history=100 age=10m"]).await;
    let (biz, _events) = gw.business("streams").await;

    let mut ws = stream_client(&gw, "u-1", &Value::Null).await;
    let joined = until_joined(&mut ws, "user:u-1").await;
    assert_eq!(joined.len(), 1, "nothing to replay: {joined:?}");
    assert_eq!(joined[0]["offset"], 0);
    assert!(joined[0].get("recovered").is_none(), "no position given");
    let epoch = joined[0]["epoch"].as_str().expect("an epoch").to_owned();

    for n in 1..=5 {
        send_to_user(&biz, "u-1", &n.to_string()).await;
    }
    let mut last = Value::Null;
    for n in 1..=5u64 {
        let p = next_json(&mut ws).await;
        assert_eq!(
            (
                p["type"].as_str(),
                p["stream"].as_str(),
                p["epoch"].as_str(),
                p["offset"].as_u64()
            ),
            (
                Some("publication"),
                Some("user:u-1"),
                Some(epoch.as_str()),
                Some(n)
            )
        );
        assert_eq!(p["data"], n.to_string());
        last = p;
    }
    drop(ws);
    wait_until("the client gone", || {
        gw.stat(|s| &s.connections_current) == 0
    })
    .await;

    // Published while it was away.
    for n in 6..=8 {
        send_to_user(&biz, "u-1", &n.to_string()).await;
    }
    let mut ws = stream_client(&gw, "u-1", &json!({"user:u-1": at(&last)})).await;
    let back = until_joined(&mut ws, "user:u-1").await;
    assert_eq!(
        datas(&back),
        ["6", "7", "8"],
        "replayed, in order: {back:?}"
    );
    let joined = back.last().expect("joined");
    assert_eq!(joined["recovered"], true);
    assert_eq!(joined["offset"], 8);

    // Then live, after the replay, with no duplicate; a plain client of the same user gets the
    // plain payload.
    let mut plain = plain_client(&gw, "u-1").await;
    wait_until("both connected", || {
        gw.stat(|s| &s.connections_current) == 2
    })
    .await;
    send_to_user(&biz, "u-1", "9").await;
    let p = next_json(&mut ws).await;
    assert_eq!(
        (p["offset"].as_u64(), p["data"].as_str()),
        (Some(9), Some("9"))
    );
    assert_eq!(recv_text(&mut plain).await, "9");
    assert_eq!(gw.stat(|s| &s.stream_recovered), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_cannot_be_given_everything_is_told_why() {
    let gw = gateway(&["users t-* history=3 age=10m"]).await;
    let (biz, _events) = gw.business("streams").await;
    let mut ws = stream_client(&gw, "t-1", &Value::Null).await;
    let joined = until_joined(&mut ws, "user:t-1").await;
    let epoch = joined[0]["epoch"].clone();
    drop(ws);
    for n in 1..=10 {
        send_to_user(&biz, "t-1", &n.to_string()).await;
    }
    for (position, gap) in [
        (json!({"epoch": epoch, "offset": 1}), "trimmed"),
        (json!({"epoch": "not-this-one", "offset": 10}), "epoch"),
        (json!({"epoch": epoch, "offset": 99}), "ahead"),
    ] {
        let mut ws = stream_client(&gw, "t-1", &json!({"user:t-1": position})).await;
        let back = until_joined(&mut ws, "user:t-1").await;
        assert_eq!(
            back.len(),
            1,
            "nothing replayed when a gap cannot be filled: {back:?}"
        );
        assert_eq!(back[0]["recovered"], false);
        assert_eq!(back[0]["gap"], gap);
        assert_eq!(
            back[0]["offset"], 10,
            "where the stream is, to start again from"
        );
    }
    // Within what is kept: recovered.
    let mut ws = stream_client(
        &gw,
        "t-1",
        &json!({"user:t-1": {"epoch": epoch, "offset": 7}}),
    )
    .await;
    let back = until_joined(&mut ws, "user:t-1").await;
    assert_eq!(datas(&back), ["8", "9", "10"]);
    assert_eq!(gw.stat(|s| &s.stream_not_recovered), 3);
    gw.stop().await;
}

/// The invariant of the streams module: publications keep coming while a client reconnects
/// again and again, joining the topic through a business process's Subscribe each time; it
/// gets every publication exactly once, in order.
#[tokio::test]
async fn publications_arrive_once_in_order_across_reconnects_while_publishing() {
    const TOTAL: u64 = 400;
    let gw = gateway(&["topics feed:* history=1000 age=10m"]).await;
    // One process subscribes every new connection to the topic.
    let (subscriber, mut events) = gw.business("subscriber").await;
    tokio::spawn(async move {
        loop {
            match events.0.recv().await {
                Some(Event::Open(open)) => {
                    let _ = subscriber
                        .subscribe(["feed:1"], Targets::conns([open.conn_id]))
                        .await;
                }
                Some(_) => {}
                None => return,
            }
        }
    });
    // The publisher wants no events: every ConnOpen goes to the subscriber.
    let (publisher, _p) = Client::builder(gw.worker_addr.to_string())
        .name("publisher")
        .events([wsgate_proto::v1::EventKind::None])
        .connect()
        .await
        .expect("the publisher connects");
    let mut ws = stream_client(&gw, "reader", &Value::Null).await;
    until_joined(&mut ws, "topic:feed:1").await;
    let publishing = tokio::spawn(async move {
        for n in 1..=TOTAL {
            publisher
                .publish(["feed:1"], Payload::text(n.to_string()), Vec::new())
                .await
                .expect("Publish");
            // Slow enough that the reconnects happen while it publishes.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });

    let mut got: Vec<u64> = Vec::new();
    let mut position = Value::Null;
    let mut reconnects = 0;
    while got.last() != Some(&TOTAL) {
        let frame = next_json(&mut ws).await;
        match frame["type"].as_str() {
            Some("publication") => {
                got.push(
                    frame["data"]
                        .as_str()
                        .and_then(|d| d.parse().ok())
                        .expect("a number"),
                );
                position = at(&frame);
            }
            Some("joined") => assert_eq!(frame["recovered"], true, "{frame}"),
            other => panic!("unexpected frame {other:?}: {frame}"),
        }
        // Every 50 messages the socket goes away and comes back where it was.
        if got.len().is_multiple_of(50) && got.len() as u64 != TOTAL && reconnects < got.len() / 50
        {
            reconnects += 1;
            drop(ws);
            ws = stream_client(&gw, "reader", &json!({"topic:feed:1": position})).await;
        }
    }
    publishing.await.expect("the publisher");
    let expected: Vec<u64> = (1..=TOTAL).collect();
    assert_eq!(got, expected, "every publication once, in order");
    assert!(reconnects >= 7, "the client reconnected {reconnects} times");
    gw.stop().await;
}

#[tokio::test]
async fn a_cache_mode_stream_gives_its_latest_message_to_every_joiner() {
    let gw = gateway(&["topics progress:* cache age=1h"]).await;
    let (biz, mut events) = gw.business("progress").await;
    for n in [10, 20, 30] {
        biz.publish(["progress:job"], Payload::text(format!("{n}%")), Vec::new())
            .await
            .expect("Publish");
    }
    // A client of the subprotocol, then a plain one, each subscribed by the business.
    let mut ws = stream_client(&gw, "viewer", &Value::Null).await;
    let open = events.open().await;
    biz.subscribe(["progress:job"], Targets::conns([open.conn_id]))
        .await
        .expect("Subscribe");
    let joined = until_joined(&mut ws, "topic:progress:job").await;
    assert_eq!(datas(&joined), ["30%"], "the latest first: {joined:?}");
    assert!(joined[1].get("recovered").is_none());
    assert_eq!(joined[1]["latest"], true, "{joined:?}");

    let mut plain = plain_client(&gw, "viewer").await;
    let open = events.open().await;
    assert_ne!(open.conn_id, "");
    biz.subscribe(["progress:job"], Targets::conns([open.conn_id]))
        .await
        .expect("Subscribe");
    assert_eq!(recv_text(&mut plain).await, "30%");

    // A client that comes back several updates later gets the latest, not a gap.
    let position = at(&joined[0]);
    for n in [40, 50] {
        biz.publish(["progress:job"], Payload::text(format!("{n}%")), Vec::new())
            .await
            .expect("Publish");
    }
    assert_eq!(datas(&[next_json(&mut ws).await]), ["40%"]);
    drop(ws);
    let _ = events.close().await;
    let mut ws = stream_client(&gw, "viewer", &json!({"topic:progress:job": position})).await;
    let open = events.open().await;
    biz.subscribe(["progress:job"], Targets::conns([open.conn_id]))
        .await
        .expect("Subscribe");
    let back = until_joined(&mut ws, "topic:progress:job").await;
    assert_eq!(datas(&back), ["50%"]);
    assert_eq!(back[1]["recovered"], false, "40% was not kept: {back:?}");
    assert_eq!(
        back[1]["latest"], true,
        "but the current value was given: {back:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn clients_of_the_subprotocol_and_plain_clients_side_by_side() {
    let gw = gateway(&[]).await;
    let (biz, mut events) = gw.business("both").await;
    let mut ws = stream_client(&gw, "s", &Value::Null).await;
    let streamed = events.open().await.conn_id;
    let mut plain = plain_client(&gw, "p").await;
    let _ = events.open().await;

    biz.broadcast(Payload::text("hello"), Vec::new())
        .await
        .expect("Broadcast");
    assert_eq!(
        recv_text(&mut plain).await,
        "hello",
        "plain clients see what they always saw"
    );
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "message", "data": "hello"})
    );
    biz.single_cast(&streamed, Payload::binary(vec![0u8, 255]))
        .await
        .expect("SingleCast");
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "message", "binary": "AP8="})
    );

    // What the client sends reaches the business as its payload.
    send_text(&mut ws, r#"{"type":"message","data":"hi"}"#).await;
    let m = events.message().await;
    assert_eq!(m.payload.expect("a payload").data, "hi".as_bytes());
    ws.send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    let m = events.message().await;
    assert_eq!(m.payload.expect("a payload").data, vec![1u8, 2, 3]);

    // Pings are answered; a frame that is not of the subprotocol gets an error, and the
    // connection stays.
    send_text(&mut ws, r#"{"type":"ping"}"#).await;
    assert_eq!(next_json(&mut ws).await, json!({"type": "pong"}));
    for bad in [
        "not json",
        r#"{"type":"shout"}"#,
        r#"{"type":"message","binary":"*"}"#,
    ] {
        send_text(&mut ws, bad).await;
        let e = next_json(&mut ws).await;
        assert_eq!(e["type"], "error", "{bad}");
        assert!(!e["message"].as_str().unwrap_or_default().is_empty());
    }
    assert_eq!(gw.stat(|s| &s.client_protocol_errors), 3);
    send_text(&mut ws, r#"{"type":"message","data":"still here"}"#).await;
    assert_eq!(
        events.message().await.payload.expect("payload").data,
        "still here".as_bytes()
    );

    // A position that cannot be read is refused at the handshake, with the reason.
    let mut request = format!("{}?wsgate_recover=***", gw.url())
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "wsgate.stream.v1".parse().expect("a header value"),
    );
    let body = refused(request, 400).await;
    assert!(body.contains("wsgate_recover"), "{body}");
    gw.stop().await;
}

/// Reads until a frame that asks for an acknowledgement and answers it (when `answer`); the
/// client back.
async fn answer_next_ack(mut ws: Ws, answer: bool) -> Ws {
    loop {
        let frame = next_json(&mut ws).await;
        if let Some(ack) = frame["ack"].as_u64() {
            if answer {
                let ack = json!({"type": "ack", "ids": [ack]}).to_string();
                ws.send(Message::text(ack)).await.expect("ack");
            }
            return ws;
        }
    }
}

/// The issue's case: a business sends to 100 clients; 10 never acknowledge, 10 are offline.
#[tokio::test]
async fn client_receipts_say_who_acknowledged_who_did_not_and_who_was_offline() {
    let gw = gateway(&[]).await;
    let (biz, mut events) = gw.business("receipts").await;
    let mut ids = Vec::new();
    let mut clients = Vec::new();
    for n in 0..100 {
        let ws = stream_client(&gw, &format!("r-{n}"), &Value::Null).await;
        ids.push(events.open().await.conn_id);
        clients.push(ws);
    }
    // 10 go offline before the cast.
    let offline: Vec<String> = ids[90..].to_vec();
    clients.truncate(90);
    wait_until("10 gone", || gw.stat(|s| &s.connections_current) == 90).await;
    // 80 acknowledge what asks for it; 10 read and never answer.
    let mut readers = Vec::new();
    for (n, ws) in clients.into_iter().enumerate() {
        readers.push(tokio::spawn(answer_next_ack(ws, n < 80)));
    }
    let report = biz
        .with_client_acks()
        .multicast(ids.clone(), Payload::text("your order is paid"))
        .await
        .expect("Multicast");
    let mut by: HashMap<Delivery, Vec<String>> = HashMap::new();
    for r in &report.receipts {
        by.entry(r.delivery()).or_default().push(r.conn_id.clone());
    }
    let count = |d| by.get(&d).map_or(0, Vec::len);
    assert_eq!(
        (
            count(Delivery::Acked),
            count(Delivery::Unacked),
            count(Delivery::Gone)
        ),
        (80, 10, 10),
        "{by:?}"
    );
    let mut gone = by.remove(&Delivery::Gone).unwrap_or_default();
    gone.sort();
    let mut expected = offline.clone();
    expected.sort();
    assert_eq!(gone, expected);
    let mut unacked = by.remove(&Delivery::Unacked).unwrap_or_default();
    unacked.sort();
    let mut silent = ids[80..90].to_vec();
    silent.sort();
    assert_eq!(unacked, silent, "the ten that never answered");
    let mut kept = Vec::new();
    for r in readers {
        kept.push(r.await.expect("a reader"));
    }

    // The same through HTTP: one client acknowledges, and the reply says so.
    let acker = ids[0].clone();
    let ws = kept.swap_remove(0);
    let reader = tokio::spawn(answer_next_ack(ws, true));
    let reply = Api::of(&gw)
        .ok(
            "/api/v1/send",
            json!({"conn_id": acker, "text": "again", "client_ack": true}),
        )
        .await;
    assert_eq!(
        reply["receipts"],
        json!([{"conn_id": acker, "delivery": "acked"}])
    );
    let ws = reader.await.expect("the reader");

    // And through gRPC, with `client-ack: true` metadata.
    let reader = tokio::spawn(answer_next_ack(ws, true));
    let mut grpc = PushApiClient::new(gw.grpc_channel().await);
    let mut request = tonic::Request::new(wsgate_proto::v1::SingleCast {
        conn_id: acker.clone(),
        payload: Some(Payload::text("grpc")),
    });
    request
        .metadata_mut()
        .insert("client-ack", "true".parse().expect("ASCII"));
    let reply = grpc
        .single_cast(request)
        .await
        .expect("SingleCast")
        .into_inner();
    let got: Vec<(String, Delivery)> = reply
        .receipts
        .iter()
        .map(|r| (r.conn_id.clone(), r.delivery()))
        .collect();
    assert_eq!(got, [(acker.clone(), Delivery::Acked)]);
    reader.await.expect("the reader");
    let mut bad = tonic::Request::new(wsgate_proto::v1::SingleCast {
        conn_id: acker.clone(),
        payload: Some(Payload::text("grpc")),
    });
    bad.metadata_mut()
        .insert("client-ack", "maybe".parse().expect("ASCII"));
    let status = grpc.single_cast(bad).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // Without receipts, client acknowledgements are refused with the reason.
    let (mut link, _) = raw_commander(gw.worker_addr, "raw").await;
    let result = raw_result(
        &mut link,
        wsgate_proto::v1::Envelope {
            request_id: 1,
            client_ack: true,
            body: Some(wsgate_proto::v1::envelope::Body::Broadcast(
                wsgate_proto::v1::Broadcast {
                    payload: Some(Payload::text("x")),
                    exclude: Vec::new(),
                },
            )),
            ..Default::default()
        },
    )
    .await;
    assert!(
        result.message.contains("Envelope.receipt"),
        "{}",
        result.message
    );
    gw.stop().await;
}
