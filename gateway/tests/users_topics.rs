//! Users, topics, session data and queries, end to end: real gateway, real clients, the SDK.

mod common;

use std::collections::HashMap;

use common::*;
use wsgate_business::{Client, Error, ListKind, Payload, SessionChange, Targets};

/// Opens `n` clients; returns them with their connection ids.
async fn open(gw: &TestGateway, events: &mut EventsExt, n: usize) -> Vec<(Ws, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let ws = gw.client().await;
        out.push((ws, events.open().await.conn_id));
    }
    out
}

/// Sends a marker to everyone, then checks each client's next messages are `want[i]` and the
/// marker: nothing else arrived.
async fn expect(client: &Client, conns: &mut [(Ws, String)], want: &[&[&str]]) {
    client
        .broadcast(Payload::text("marker"), Vec::<String>::new())
        .await
        .expect("marker");
    for ((ws, id), want) in conns.iter_mut().zip(want) {
        for w in *want {
            assert_eq!(recv_text(ws).await, *w, "client {id}");
        }
        assert_eq!(
            recv_text(ws).await,
            "marker",
            "client {id} got something extra"
        );
    }
}

#[tokio::test]
async fn users_bind_send_rebind_unbind_and_force_offline() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("users").await;
    let mut c = open(&gw, &mut events, 4).await;
    let ids: Vec<String> = c.iter().map(|x| x.1.clone()).collect();

    client.bind_user(ids[0].clone(), "alice").await.unwrap();
    client.bind_user(ids[1].clone(), "alice").await.unwrap();
    client.bind_user(ids[2].clone(), "bob").await.unwrap();
    match client.bind_user("test-gw-1-ffff", "carol").await {
        Err(Error::UnknownConnection { .. }) => {}
        other => panic!("expected UnknownConnection, got {other:?}"),
    }
    match client.bind_user(ids[3].clone(), "").await {
        Err(Error::Gateway { message, .. }) => assert!(message.contains("empty"), "{message}"),
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }

    let r = client
        .send_to_users(
            vec!["alice".to_string(), "dave".to_string()],
            Payload::text("hi alice"),
            Vec::<String>::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.delivered, 2);
    assert_eq!(r.unknown_user_ids, vec!["dave".to_string()]);
    expect(&client, &mut c, &[&["hi alice"], &["hi alice"], &[], &[]]).await;

    // Excluding the sender's own connection.
    client
        .send_to_users(
            vec!["alice".to_string()],
            Payload::text("from 0"),
            vec![ids[0].clone()],
        )
        .await
        .unwrap();
    expect(&client, &mut c, &[&[], &["from 0"], &[], &[]]).await;

    // Messages carry the user id; re-binding moves the connection to the new user.
    send_text(&mut c[2].0, "bob speaking").await;
    assert_eq!(events.message().await.user_id, "bob");
    client.bind_user(ids[2].clone(), "robert").await.unwrap();
    let online = client
        .online(Vec::<String>::new(), vec!["bob".into(), "robert".into()])
        .await
        .unwrap();
    assert_eq!(online.user_ids, vec!["robert".to_string()]);
    client.unbind_user(ids[2].clone()).await.unwrap();
    send_text(&mut c[2].0, "anonymous").await;
    assert_eq!(events.message().await.user_id, "");

    let users = client.list_all(ListKind::Users, "").await.unwrap();
    assert_eq!(users, vec!["alice".to_string()]);
    let alice = client
        .list_all(ListKind::UserConnections, "alice")
        .await
        .unwrap();
    let mut want = vec![ids[0].clone(), ids[1].clone()];
    want.sort();
    assert_eq!(alice, want);

    // Force a user offline: all of their connections close; ConnClose carries the user.
    let r = client
        .force_offline_users(vec!["alice".to_string()], 4100, "bye alice", None)
        .await
        .unwrap();
    assert_eq!(r.delivered, 2);
    for (ws, _) in c.iter_mut().take(2) {
        assert_eq!(u16::from(recv_close(ws).await.code), 4100);
    }
    for _ in 0..2 {
        let close = events.close().await;
        assert_eq!(close.user_id, "alice");
    }
    let counts = client.counts(Vec::<String>::new()).await.unwrap();
    assert_eq!((counts.connections, counts.users), (2, 0));
    gw.stop().await;
}

#[tokio::test]
async fn topics_subscribe_publish_unsubscribe_delete() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("topics").await;
    let mut c = open(&gw, &mut events, 4).await;
    let ids: Vec<String> = c.iter().map(|x| x.1.clone()).collect();
    client.bind_user(ids[3].clone(), "zoe").await.unwrap();

    let r = client
        .subscribe(
            vec!["news".to_string()],
            Targets::conns(vec![ids[0].clone(), ids[1].clone()]),
        )
        .await
        .unwrap();
    assert_eq!(r.delivered, 2);
    client
        .subscribe(vec!["sport".to_string()], Targets::conn(ids[1].clone()))
        .await
        .unwrap();
    // By user: every current connection of zoe.
    client
        .subscribe(vec!["sport".to_string()], Targets::user("zoe"))
        .await
        .unwrap();

    let r = client
        .publish(
            vec!["news".to_string(), "sport".to_string()],
            Payload::text("both"),
            Vec::<String>::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.delivered, 3, "conn 1 is in both topics and gets it once");
    expect(&client, &mut c, &[&["both"], &["both"], &[], &["both"]]).await;

    client
        .publish(
            vec!["sport".to_string()],
            Payload::text("goal"),
            vec![ids[1].clone()],
        )
        .await
        .unwrap();
    expect(&client, &mut c, &[&[], &[], &[], &["goal"]]).await;

    let counts = client
        .counts(vec![
            "news".to_string(),
            "sport".to_string(),
            "none".to_string(),
        ])
        .await
        .unwrap();
    assert_eq!(counts.topics, 2);
    let by_topic: HashMap<_, _> = counts
        .topic_counts
        .iter()
        .map(|t| (t.topic.as_str(), (t.connections, t.users)))
        .collect();
    assert_eq!(by_topic["news"], (2, 0));
    assert_eq!(by_topic["sport"], (2, 1));
    assert_eq!(by_topic["none"], (0, 0));
    assert_eq!(
        client
            .list_all(ListKind::TopicUsers, "sport")
            .await
            .unwrap(),
        vec!["zoe".to_string()]
    );
    let mut sport = vec![ids[1].clone(), ids[3].clone()];
    sport.sort();
    assert_eq!(
        client
            .list_all(ListKind::TopicConnections, "sport")
            .await
            .unwrap(),
        sport
    );
    assert_eq!(
        client.list_all(ListKind::Topics, "").await.unwrap(),
        vec!["news".to_string(), "sport".to_string()]
    );

    client
        .unsubscribe(vec!["news".to_string()], Targets::conn(ids[0].clone()))
        .await
        .unwrap();
    client
        .publish(
            vec!["news".to_string()],
            Payload::text("n2"),
            Vec::<String>::new(),
        )
        .await
        .unwrap();
    expect(&client, &mut c, &[&[], &["n2"], &[], &[]]).await;

    // Deleting a topic removes every member; an empty topic is gone from every list.
    let r = client
        .delete_topics(vec!["sport".to_string()])
        .await
        .unwrap();
    assert_eq!(r.delivered, 1);
    assert_eq!(
        client.list_all(ListKind::Topics, "").await.unwrap(),
        vec!["news".to_string()]
    );
    let info = client.conn_info(vec![ids[1].clone()]).await.unwrap();
    assert_eq!(info[0].topics, vec!["news".to_string()]);

    // ConnClose lists the topics the connection was in.
    c[1].0.close(None).await.unwrap();
    let close = events.close().await;
    assert_eq!(close.topics, vec!["news".to_string()]);
    assert_eq!(
        client.counts(Vec::<String>::new()).await.unwrap().topics,
        0,
        "news had one member left"
    );

    match client
        .publish(
            vec![String::new()],
            Payload::text("x"),
            Vec::<String>::new(),
        )
        .await
    {
        Err(Error::Gateway { message, .. }) => assert!(message.contains("empty")),
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }
    match client
        .subscribe(vec!["x".repeat(129)], Targets::conn(ids[0].clone()))
        .await
    {
        Err(Error::Gateway { message, .. }) => assert!(message.contains("128")),
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }
    gw.stop().await;
}

#[tokio::test]
async fn session_data_travels_with_events_and_respects_limits() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("session").await;
    let mut c = open(&gw, &mut events, 1).await;
    let id = c[0].1.clone();

    client
        .set_session(
            id.clone(),
            SessionChange::new().set("room", "7").set("role", "mod"),
        )
        .await
        .unwrap();
    send_text(&mut c[0].0, "hello").await;
    let m = events.message().await;
    assert_eq!(m.session.get("room").map(String::as_str), Some("7"));
    assert_eq!(m.session.len(), 2);

    client
        .set_session(
            id.clone(),
            SessionChange::new().delete("role").set("room", "8"),
        )
        .await
        .unwrap();
    let info = client
        .conn_info(vec![id.clone(), "test-gw-1-ffff".into()])
        .await
        .unwrap();
    assert_eq!(info.len(), 1, "unknown ids are left out");
    assert_eq!(
        info[0].session,
        HashMap::from([("room".to_string(), "8".to_string())])
    );
    assert!(info[0].remote_addr.starts_with("127.0.0.1:"));
    assert!(info[0].connected_at_ms > 0);

    match client
        .set_session(
            id.clone(),
            SessionChange::new().set("big", "x".repeat(17 * 1024)),
        )
        .await
    {
        Err(Error::Gateway { message, .. }) => assert!(message.contains("16384"), "{message}"),
        other => panic!("expected the size limit, got {other:?}"),
    }
    client
        .set_session(
            id.clone(),
            SessionChange::new().set("only", "this").replace_all(),
        )
        .await
        .unwrap();
    c[0].0.close(None).await.unwrap();
    let close = events.close().await;
    assert_eq!(
        close.session,
        HashMap::from([("only".to_string(), "this".to_string())])
    );
    match client
        .set_session(id, SessionChange::new().set("a", "b"))
        .await
    {
        Err(Error::UnknownConnection { .. }) => {}
        other => panic!("expected UnknownConnection, got {other:?}"),
    }
    gw.stop().await;
}

#[tokio::test]
async fn lists_page_with_cursors_and_online_checks_combine() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("lists").await;
    let c = open(&gw, &mut events, 25).await;
    let mut ids: Vec<String> = c.iter().map(|x| x.1.clone()).collect();
    ids.sort();

    let mut cursor = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = client
            .list(ListKind::Connections, "", &cursor, 10)
            .await
            .unwrap();
        assert!(page.items.len() <= 10);
        seen.extend(page.items);
        pages += 1;
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    match client.list(ListKind::Connections, "", "", 20_000).await {
        Err(Error::Gateway { message, .. }) => assert!(message.contains("10000")),
        other => panic!("expected BAD_REQUEST, got {other:?}"),
    }
    let online = client
        .online(
            vec![ids[0].clone(), "test-gw-1-ffff".into()],
            vec!["nobody".to_string()],
        )
        .await
        .unwrap();
    assert_eq!(online.conn_ids, vec![ids[0].clone()]);
    assert!(online.user_ids.is_empty());
    gw.stop().await;
}
