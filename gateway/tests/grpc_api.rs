//! The gRPC API end to end: a real gateway, real WebSocket clients, and a tonic client
//! generated from the same `api.proto`. Every RPC with its successes and errors, the API key,
//! and the events stream (order, sharing with other business processes, removal of the
//! registration, the end of the stream when the gateway stops).

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tonic::codegen::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};
use wsgate_business::{Event, Payload};
use wsgate_proto::v1::gateway_event::Event as Item;
use wsgate_proto::v1::push_api_client::PushApiClient;
use wsgate_proto::v1::{
    BindUser, Broadcast, ClosedBy, DeleteTopics, EventKind, EventsRequest, ForceOffline,
    GatewayEvent, ListKind, Multicast, Publish, QueryConnInfo, QueryCounts, QueryList, QueryOnline,
    SendToUsers, SetSession, SingleCast, Subscribe, UnbindUser, Unsubscribe,
};

/// Adds `authorization: Bearer <key>` to every call when it has a key.
#[derive(Clone)]
struct Bearer(Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            let value = format!("Bearer {key}")
                .parse()
                .map_err(|_| Status::internal("key is not ASCII"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

type Api = PushApiClient<InterceptedService<Channel, Bearer>>;

/// A gRPC client of `gw`, sending `key` as the API key when given.
async fn api_with(gw: &TestGateway, key: Option<&str>) -> Api {
    PushApiClient::with_interceptor(gw.grpc_channel().await, Bearer(key.map(String::from)))
}

async fn api(gw: &TestGateway) -> Api {
    api_with(gw, None).await
}

fn text(s: &str) -> Option<Payload> {
    Some(Payload::text(s))
}

/// Asserts a call failed with `code` and a message containing `hint`.
#[track_caller]
fn expect_err<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, hint: &str) {
    match result {
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(
                status.message().contains(hint),
                "{:?} does not contain {hint:?}",
                status.message()
            );
        }
        Ok(v) => panic!("expected {code:?}, got {v:?}"),
    }
}

/// Opens `n` clients and learns their connection ids from a business process.
async fn clients(gw: &TestGateway, events: &mut EventsExt, n: usize) -> Vec<(Ws, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let ws = gw.client().await;
        out.push((ws, events.open().await.conn_id));
    }
    out
}

#[tokio::test]
async fn casts_and_users_through_grpc() {
    let gw = TestGateway::start().await;
    let (_business, mut events) = gw.business("ids").await;
    let mut c = clients(&gw, &mut events, 4).await;
    let ids: Vec<String> = c.iter().map(|x| x.1.clone()).collect();
    let gone = "test-gw-1-ffff".to_string();
    let mut api = api(&gw).await;

    // SingleCast.
    let r = api
        .single_cast(SingleCast {
            conn_id: ids[0].clone(),
            payload: text("one"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 1);
    assert!(r.failed.is_empty());
    assert_eq!(recv_text(&mut c[0].0).await, "one");
    let single = |conn_id: &str, payload| SingleCast {
        conn_id: conn_id.into(),
        payload,
    };
    expect_err(
        api.single_cast(single(&gone, text("x"))).await,
        Code::NotFound,
        &gone,
    );
    expect_err(
        api.single_cast(single("", text("x"))).await,
        Code::InvalidArgument,
        "SingleCast.conn_id is empty",
    );
    expect_err(
        api.single_cast(single(&ids[0], None)).await,
        Code::InvalidArgument,
        "SingleCast.payload is missing",
    );
    expect_err(
        api.single_cast(single(
            &ids[0],
            Some(Payload::text("x")).map(|mut p| {
                p.data = vec![0xff, 0xfe].into();
                p
            }),
        ))
        .await,
        Code::InvalidArgument,
        "not valid UTF-8",
    );
    // A connection of a gateway this cluster does not have: a wrong id, not an outage.
    expect_err(
        api.single_cast(single("elsewhere-1-1", text("x"))).await,
        Code::NotFound,
        "elsewhere",
    );

    // Multicast.
    let r = api
        .multicast(Multicast {
            conn_ids: vec![ids[0].clone(), ids[1].clone(), gone.clone()],
            payload: Some(Payload::binary(&b"multi"[..])),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.delivered, r.unknown_conn_ids.clone()),
        (2, vec![gone.clone()])
    );
    assert_eq!(recv_text(&mut c[0].0).await, "multi");
    assert_eq!(recv_text(&mut c[1].0).await, "multi");
    expect_err(
        api.multicast(Multicast {
            conn_ids: vec![],
            payload: text("x"),
        })
        .await,
        Code::InvalidArgument,
        "Multicast.conn_ids is empty",
    );

    // Broadcast.
    let r = api
        .broadcast(Broadcast {
            payload: text("all"),
            exclude: vec![ids[3].clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 3);
    for (ws, _) in &mut c[..3] {
        assert_eq!(recv_text(ws).await, "all");
    }
    expect_err(
        api.broadcast(Broadcast::default()).await,
        Code::InvalidArgument,
        "Broadcast.payload is missing",
    );

    // BindUser, SendToUsers, UnbindUser.
    for (id, user) in [(&ids[0], "alice"), (&ids[1], "alice"), (&ids[2], "bob")] {
        let r = api
            .bind_user(BindUser {
                conn_id: id.clone(),
                user_id: user.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.delivered, 1);
    }
    expect_err(
        api.bind_user(BindUser {
            conn_id: gone.clone(),
            user_id: "carol".into(),
        })
        .await,
        Code::NotFound,
        &gone,
    );
    expect_err(
        api.bind_user(BindUser {
            conn_id: ids[3].clone(),
            user_id: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "empty",
    );
    let r = api
        .send_to_users(SendToUsers {
            user_ids: vec!["alice".into(), "dave".into()],
            payload: text("to alice"),
            exclude_conn_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 2);
    assert_eq!(r.unknown_user_ids, ["dave"]);
    assert_eq!(recv_text(&mut c[0].0).await, "to alice");
    assert_eq!(recv_text(&mut c[1].0).await, "to alice");
    expect_err(
        api.send_to_users(SendToUsers {
            user_ids: vec![],
            payload: text("x"),
            exclude_conn_ids: vec![],
        })
        .await,
        Code::InvalidArgument,
        "user id",
    );
    api.unbind_user(UnbindUser {
        conn_id: ids[1].clone(),
    })
    .await
    .unwrap();
    expect_err(
        api.unbind_user(UnbindUser {
            conn_id: gone.clone(),
        })
        .await,
        Code::NotFound,
        &gone,
    );

    // ForceOffline: by connection with a last message, by user, and bad requests.
    let r = api
        .force_offline(ForceOffline {
            conn_ids: vec![ids[3].clone()],
            code: 4100,
            reason: "bye now".into(),
            last_message: text("last"),
            user_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 1);
    assert_eq!(recv_text(&mut c[3].0).await, "last");
    let frame = recv_close(&mut c[3].0).await;
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (4100, "bye now")
    );
    let r = api
        .force_offline(ForceOffline {
            user_ids: vec!["bob".into()],
            conn_ids: vec![gone.clone()],
            ..ForceOffline::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 1);
    assert_eq!(r.unknown_conn_ids, [gone.as_str()]);
    assert_eq!(u16::from(recv_close(&mut c[2].0).await.code), 1000);
    for (req, hint) in [
        (ForceOffline::default(), "names no connection"),
        (
            ForceOffline {
                conn_ids: vec![ids[0].clone()],
                code: 70_000,
                ..ForceOffline::default()
            },
            "not a WebSocket close code",
        ),
        (
            ForceOffline {
                conn_ids: vec![ids[0].clone()],
                code: 2000,
                ..ForceOffline::default()
            },
            "3000",
        ),
    ] {
        expect_err(api.force_offline(req).await, Code::InvalidArgument, hint);
    }
    // Still connected after the refused ones.
    api.single_cast(single(&ids[0], text("still here")))
        .await
        .unwrap();
    assert_eq!(recv_text(&mut c[0].0).await, "still here");
    gw.stop().await;
}

#[tokio::test]
async fn topics_sessions_and_queries_through_grpc() {
    let gw = TestGateway::start().await;
    let (_business, mut events) = gw.business("ids").await;
    let mut c = clients(&gw, &mut events, 3).await;
    let ids: Vec<String> = c.iter().map(|x| x.1.clone()).collect();
    let gone = "test-gw-1-ffff".to_string();
    let mut api = api(&gw).await;
    for (id, user) in [(&ids[0], "alice"), (&ids[1], "bob")] {
        api.bind_user(BindUser {
            conn_id: id.clone(),
            user_id: user.into(),
        })
        .await
        .unwrap();
    }

    // Subscribe by connection and by user; Publish; Unsubscribe.
    let r = api
        .subscribe(Subscribe {
            topics: vec!["news".into()],
            conn_ids: vec![ids[2].clone(), gone.clone()],
            user_ids: vec!["alice".into(), "nobody".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 2);
    assert_eq!(r.unknown_conn_ids, [gone.as_str()]);
    assert_eq!(r.unknown_user_ids, ["nobody"]);
    expect_err(
        api.subscribe(Subscribe {
            topics: vec!["news".into()],
            ..Subscribe::default()
        })
        .await,
        Code::InvalidArgument,
        "Subscribe names no connection",
    );
    expect_err(
        api.subscribe(Subscribe {
            conn_ids: vec![ids[0].clone()],
            ..Subscribe::default()
        })
        .await,
        Code::InvalidArgument,
        "topic",
    );
    let r = api
        .publish(Publish {
            topics: vec!["news".into()],
            payload: text("headline"),
            exclude_conn_ids: vec![ids[2].clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 1);
    assert_eq!(recv_text(&mut c[0].0).await, "headline");
    expect_err(
        api.publish(Publish {
            topics: vec!["news".into()],
            ..Publish::default()
        })
        .await,
        Code::InvalidArgument,
        "Publish.payload is missing",
    );
    api.subscribe(Subscribe {
        topics: vec!["sport".into()],
        conn_ids: vec![ids[1].clone()],
        user_ids: vec![],
    })
    .await
    .unwrap();
    let r = api
        .unsubscribe(Unsubscribe {
            topics: vec!["sport".into()],
            conn_ids: vec![],
            user_ids: vec!["bob".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 1);
    expect_err(
        api.unsubscribe(Unsubscribe {
            topics: vec!["sport".into()],
            ..Unsubscribe::default()
        })
        .await,
        Code::InvalidArgument,
        "Unsubscribe names no connection",
    );

    // SetSession.
    let r = api
        .set_session(SetSession {
            conn_id: ids[0].clone(),
            set: HashMap::from([("room".into(), "lobby".into()), ("x".into(), "1".into())]),
            delete: vec![],
            replace: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 1);
    api.set_session(SetSession {
        conn_id: ids[0].clone(),
        delete: vec!["x".into()],
        ..SetSession::default()
    })
    .await
    .unwrap();
    expect_err(
        api.set_session(SetSession {
            conn_id: gone.clone(),
            ..SetSession::default()
        })
        .await,
        Code::NotFound,
        &gone,
    );
    let too_many = (0..65)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    expect_err(
        api.set_session(SetSession {
            conn_id: ids[0].clone(),
            set: too_many,
            ..SetSession::default()
        })
        .await,
        Code::InvalidArgument,
        "SetSession refused",
    );

    // Online.
    let r = api
        .online(QueryOnline {
            conn_ids: vec![ids[0].clone(), gone.clone()],
            user_ids: vec!["alice".into(), "dave".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.conn_ids, r.user_ids),
        (vec![ids[0].clone()], vec!["alice".to_string()])
    );
    assert!(r.failed.is_empty());

    // ConnInfo.
    let r = api
        .conn_info(QueryConnInfo {
            conn_ids: vec![ids[0].clone(), gone.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.conns.len(), 1);
    let info = &r.conns[0];
    assert_eq!(
        (info.conn_id.as_str(), info.user_id.as_str()),
        (ids[0].as_str(), "alice")
    );
    assert_eq!(info.topics, ["news"]);
    assert_eq!(
        info.session,
        HashMap::from([("room".to_string(), "lobby".to_string())])
    );
    assert_eq!(r.unknown_conn_ids, [gone.as_str()]);
    // Asking about no connection answers nothing, as on the worker link and the HTTP API.
    let none = api
        .conn_info(QueryConnInfo::default())
        .await
        .unwrap()
        .into_inner();
    assert!(none.conns.is_empty() && none.unknown_conn_ids.is_empty());

    // Counts.
    let r = api
        .counts(QueryCounts {
            topics: vec!["news".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.connections, r.users, r.topics), (3, 2, 1));
    assert_eq!(r.topic_counts.len(), 1);
    assert_eq!(
        (r.topic_counts[0].connections, r.topic_counts[0].users),
        (2, 1)
    );

    // List, in pages of two.
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .list(QueryList {
                kind: ListKind::Connections as i32,
                key: String::new(),
                cursor: cursor.clone(),
                limit: 2,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.items.len() <= 2);
        all.extend(page.items);
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    let mut want = ids.clone();
    want.sort();
    assert_eq!(all, want);
    let users = api
        .list(QueryList {
            kind: ListKind::TopicUsers as i32,
            key: "news".into(),
            ..QueryList::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(users.items, ["alice"]);
    for kind in [0, 99] {
        expect_err(
            api.list(QueryList {
                kind,
                ..QueryList::default()
            })
            .await,
            Code::InvalidArgument,
            "is not a list kind",
        );
    }
    // The connections of the user named "" (nobody is): an empty list, as for any unknown user.
    let none = api
        .list(QueryList {
            kind: ListKind::UserConnections as i32,
            ..QueryList::default()
        })
        .await
        .expect("an empty list")
        .into_inner();
    assert!(none.items.is_empty() && none.next_cursor.is_empty());

    // DeleteTopics.
    let r = api
        .delete_topics(DeleteTopics {
            topics: vec!["news".into(), "none".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.delivered, 1);
    expect_err(
        api.delete_topics(DeleteTopics::default()).await,
        Code::InvalidArgument,
        "topic",
    );
    let r = api
        .counts(QueryCounts::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.topics, 0);

    // The clients got nothing they should not have.
    api.broadcast(Broadcast {
        payload: text("end"),
        exclude: vec![],
    })
    .await
    .unwrap();
    for (ws, _) in &mut c {
        assert_eq!(recv_text(ws).await, "end");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_api_key_is_required_on_every_rpc_when_configured() {
    let gw = TestGateway::start_with(|c| {
        c.api_key = Some("s3cret".into());
        c.worker_token = Some("worker-secret".into());
    })
    .await;
    for key in [None, Some("wrong"), Some("")] {
        let mut api = api_with(&gw, key).await;
        expect_err(
            api.counts(QueryCounts::default()).await,
            Code::Unauthenticated,
            "--api-key",
        );
        expect_err(
            api.single_cast(SingleCast::default()).await,
            Code::Unauthenticated,
            "--api-key",
        );
        expect_err(
            api.events(EventsRequest::default()).await,
            Code::Unauthenticated,
            "--api-key",
        );
    }
    assert_eq!(gw.stat(|s| &s.links_current), 0, "no registration was made");

    let mut api = api_with(&gw, Some("s3cret")).await;
    let r = api
        .counts(QueryCounts::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.connections, 0);
    // Validation comes after authentication.
    expect_err(
        api.single_cast(SingleCast::default()).await,
        Code::InvalidArgument,
        "conn_id",
    );
    // The events stream registers with the gateway's worker token.
    let mut stream = api
        .events(EventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        next(&mut stream).await.event,
        Some(Item::Connected(_))
    ));
    assert_eq!(gw.stat(|s| &s.links_current), 1);
    drop(stream);
    wait_until("the registration to go", || {
        gw.stat(|s| &s.links_current) == 0
    })
    .await;
    gw.stop().await;
}

/// The next item of an events stream.
async fn next(stream: &mut Streaming<GatewayEvent>) -> GatewayEvent {
    within("an events stream item", stream.message())
        .await
        .expect("the stream is healthy")
        .expect("the stream is open")
}

/// The next connection event of a stream, skipping link status items.
async fn next_conn_event(stream: &mut Streaming<GatewayEvent>) -> (String, Item) {
    loop {
        let item = next(stream).await;
        match item.event.expect("an event") {
            Item::Connected(_) | Item::Disconnected(_) | Item::Draining(_) => continue,
            event => return (item.node_id, event),
        }
    }
}

#[tokio::test]
async fn the_events_stream_yields_open_message_close_in_order_and_unregisters_when_dropped() {
    let gw = TestGateway::start().await;
    let mut api = api(&gw).await;
    let mut stream = api
        .events(EventsRequest {
            name: "grpc-test".into(),
            events: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await;
    assert_eq!(first.node_id, gw.node_id);
    assert_eq!(first.addr, gw.worker_addr.to_string());
    assert!(matches!(first.event, Some(Item::Connected(_))), "{first:?}");
    assert_eq!(gw.stat(|s| &s.links_current), 1);

    let mut ws = gw.client().await;
    send_text(&mut ws, "hello").await;
    ws.send(Message::binary(&b"\x00\x01"[..])).await.unwrap();
    ws.close(None).await.unwrap();

    let (node, open) = next_conn_event(&mut stream).await;
    assert_eq!(node, gw.node_id);
    let Item::Open(open) = open else {
        panic!("expected open first, got {open:?}")
    };
    assert!(open.conn_id.starts_with("test-gw-"), "{}", open.conn_id);
    assert_eq!(open.path, "/ws");
    let (_, message) = next_conn_event(&mut stream).await;
    let Item::Message(message) = message else {
        panic!("expected the text message, got {message:?}")
    };
    assert_eq!(message.conn_id, open.conn_id);
    let payload = message.payload.expect("a payload");
    assert_eq!(payload.as_text(), Some("hello"));
    let (_, message) = next_conn_event(&mut stream).await;
    let Item::Message(message) = message else {
        panic!("expected the binary message, got {message:?}")
    };
    let payload = message.payload.expect("a payload");
    assert!(!payload.is_text());
    assert_eq!(&payload.data[..], b"\x00\x01");
    let (_, close) = next_conn_event(&mut stream).await;
    let Item::Close(close) = close else {
        panic!("expected close, got {close:?}")
    };
    assert_eq!(close.conn_id, open.conn_id);
    assert_eq!(close.closed_by, ClosedBy::Client as i32);

    // Dropping the stream removes the registration.
    drop(stream);
    wait_until("the registration to go", || {
        gw.stat(|s| &s.links_current) == 0
    })
    .await;
    // The connection still works for later calls.
    let r = api
        .counts(QueryCounts::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.connections, 0);
    gw.stop().await;
}

#[tokio::test]
async fn an_events_stream_gets_only_the_kinds_it_asked_for() {
    let gw = TestGateway::start().await;
    let mut api = api(&gw).await;
    let mut stream = api
        .events(EventsRequest {
            name: "messages-only".into(),
            events: vec![EventKind::Message as i32],
        })
        .await
        .unwrap()
        .into_inner();
    let mut ws = gw.client().await;
    send_text(&mut ws, "one").await;
    ws.close(None).await.unwrap();
    let mut ws = gw.client().await;
    send_text(&mut ws, "two").await;
    for want in ["one", "two"] {
        match next_conn_event(&mut stream).await.1 {
            Item::Message(m) => assert_eq!(
                m.payload
                    .and_then(|p| p.as_text().map(String::from))
                    .as_deref(),
                Some(want)
            ),
            other => panic!("expected only messages, got {other:?}"),
        }
    }

    for (request, hint) in [
        (
            EventsRequest {
                name: "wsgate-peer".into(),
                events: vec![],
            },
            "reserved",
        ),
        (
            EventsRequest {
                name: "x".into(),
                events: vec![EventKind::None as i32],
            },
            "EVENT_KIND_OPEN",
        ),
        (
            EventsRequest {
                name: "x".into(),
                events: vec![1, 42],
            },
            "42",
        ),
    ] {
        expect_err(api.events(request).await, Code::InvalidArgument, hint);
    }
    assert_eq!(gw.stat(|s| &s.links_current), 1);
    gw.stop().await;
}

#[tokio::test]
async fn an_events_stream_shares_the_connections_with_other_business_processes() {
    let gw = TestGateway::start().await;
    let mut api = api(&gw).await;
    let mut stream = api
        .events(EventsRequest {
            name: "grpc-share".into(),
            events: vec![EventKind::Open as i32],
        })
        .await
        .unwrap()
        .into_inner();
    let (_business, mut events) = gw.business("sdk-share").await;
    wait_until("two business links", || gw.stat(|s| &s.links_current) == 2).await;

    const N: usize = 24;
    let mut conns = Vec::new();
    for _ in 0..N {
        conns.push(gw.client().await);
    }
    wait_until("every client", || {
        gw.stat(|s| &s.connections_current) == N as u64
    })
    .await;
    // Every open went to exactly one of the two.
    let mut by_grpc = HashSet::new();
    let mut by_sdk = HashSet::new();
    within("every open", async {
        while by_grpc.len() + by_sdk.len() < N {
            tokio::select! {
                item = next_conn_event(&mut stream) => match item.1 {
                    Item::Open(o) => assert!(by_grpc.insert(o.conn_id)),
                    other => panic!("only opens were asked for, got {other:?}"),
                },
                event = events.0.recv() => match event {
                    Some(Event::Open(o)) => assert!(by_sdk.insert(o.conn_id)),
                    Some(_) => {}
                    None => panic!("the SDK's events ended"),
                },
            }
        }
    })
    .await;
    assert!(by_grpc.is_disjoint(&by_sdk));
    assert!(
        !by_grpc.is_empty() && !by_sdk.is_empty(),
        "grpc {by_grpc:?}, sdk {by_sdk:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_events_stream_delivers_the_drain_and_ends_when_the_gateway_stops() {
    let mut gw = TestGateway::start().await;
    let mut api = api(&gw).await;
    let mut stream = api
        .events(EventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let _ws = gw.client().await;
    let Item::Open(open) = next_conn_event(&mut stream).await.1 else {
        panic!("expected an open")
    };
    gw.begin_shutdown();
    let mut drained = false;
    let mut closed = false;
    let end = within("the stream to end", async {
        loop {
            match stream.message().await {
                Ok(Some(GatewayEvent {
                    event: Some(Item::Draining(d)),
                    ..
                })) => {
                    assert_eq!(d.close_code, 1001);
                    drained = true;
                }
                Ok(Some(GatewayEvent {
                    event: Some(Item::Close(c)),
                    ..
                })) => {
                    assert!(drained, "Draining comes before the closes");
                    assert_eq!((c.conn_id.as_str(), c.code), (open.conn_id.as_str(), 1001));
                    closed = true;
                }
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await;
    let status = end.expect("the stream ends with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    assert!(
        drained && closed,
        "the drain's Draining and ConnClose came first"
    );
    gw.finished().await;
}

#[tokio::test]
async fn grpc_on_one_gateway_reaches_the_whole_cluster() {
    let addrs = reserve_addrs(2);
    let peers: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let mut gws = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        gws.push(
            TestGateway::start_with(|c| {
                c.node_id = format!("gw{i}");
                c.worker_addr = *addr;
                c.peers = peers.clone();
            })
            .await,
        );
    }
    for gw in &gws {
        wait_until("the peer links", || gw.stat(|s| &s.peer_links_current) == 2).await;
    }
    let mut api = api(&gws[0]).await;

    // One stream on gw0 is registered with both gateways.
    let mut stream = api
        .events(EventsRequest {
            name: "cluster-watch".into(),
            events: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let mut connected = HashSet::new();
    while connected.len() < 2 {
        let item = next(&mut stream).await;
        if let Some(Item::Connected(_)) = item.event {
            connected.insert(item.node_id);
        }
    }
    assert_eq!(connected, HashSet::from(["gw0".into(), "gw1".into()]));
    for gw in &gws {
        assert_eq!(gw.stat(|s| &s.links_current), 1);
    }

    // A client of gw1: its events come through gw0's stream, tagged gw1, and gw0's commands
    // reach it.
    let mut ws = gws[1].client().await;
    let (node, open) = next_conn_event(&mut stream).await;
    let Item::Open(open) = open else {
        panic!("expected an open, got {open:?}")
    };
    assert_eq!(node, "gw1");
    assert!(open.conn_id.starts_with("gw1-"), "{}", open.conn_id);
    api.single_cast(SingleCast {
        conn_id: open.conn_id.clone(),
        payload: text("via gw0"),
    })
    .await
    .unwrap();
    assert_eq!(recv_text(&mut ws).await, "via gw0");
    let r = api
        .counts(QueryCounts::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.connections, 1);
    assert!(r.failed.is_empty(), "{:?}", r.failed);

    // gw1 stops: its drain comes through the stream, then it is named in `failed`.
    let gw1 = gws.pop().expect("two gateways");
    gw1.stop().await;
    let (node, close) = next_conn_event(&mut stream).await;
    assert_eq!(node, "gw1");
    assert!(
        matches!(close, Item::Close(ref c) if c.conn_id == open.conn_id),
        "{close:?}"
    );
    let r = within("a partial answer", async {
        loop {
            let r = api
                .counts(QueryCounts::default())
                .await
                .unwrap()
                .into_inner();
            if !r.failed.is_empty() {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].gateway, "gw1");
    assert_eq!(r.connections, 0);
    expect_err(
        api.single_cast(SingleCast {
            conn_id: open.conn_id.clone(),
            payload: text("gone"),
        })
        .await,
        Code::Unavailable,
        "gw1",
    );

    drop(stream);
    let gw0 = gws.pop().expect("gw0");
    wait_until("the registration to go", || {
        gw0.stat(|s| &s.links_current) == 0
    })
    .await;
    gw0.stop().await;
}
