//! The HTTP push API end to end: real gateways, real WebSocket clients, and a plain HTTP/1.1
//! client over TCP. Every endpoint's success and errors, the API key, /openapi.json, and the
//! API of one gateway acting on a two-gateway cluster.

mod common;

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::http::{Api, http};
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wsgate_business::GatewayState;

/// A command reply with these numbers and no failures.
fn report(delivered: u32, unknown_conn_ids: &[&str], unknown_user_ids: &[&str]) -> Value {
    json!({
        "delivered": delivered,
        "unknown_conn_ids": unknown_conn_ids,
        "unknown_user_ids": unknown_user_ids,
        "failed": [],
    })
}

/// The next data message a client receives.
async fn recv_message(ws: &mut Ws) -> Message {
    within("a client message", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    })
    .await
}

/// Opens a client and returns it with its connection id.
async fn open(gw: &TestGateway, events: &mut EventsExt) -> (Ws, String) {
    let ws = gw.client().await;
    (ws, events.open().await.conn_id)
}

#[tokio::test]
async fn casts_reach_clients_as_text_and_binary() {
    let gw = TestGateway::start().await;
    let api = Api::of(&gw);
    let (_business, mut events) = gw.business("app").await;
    let (mut a, id_a) = open(&gw, &mut events).await;
    let (mut b, id_b) = open(&gw, &mut events).await;

    let r = api
        .ok("/api/v1/send", json!({"conn_id": id_a, "text": "hello a"}))
        .await;
    assert_eq!(r, report(1, &[], &[]));
    assert_eq!(recv_text(&mut a).await, "hello a");

    let bytes = [0u8, 1, 2, 254, 255];
    api.ok(
        "/api/v1/send",
        json!({"conn_id": id_b, "binary": STANDARD.encode(bytes)}),
    )
    .await;
    match recv_message(&mut b).await {
        Message::Binary(data) => assert_eq!(&data[..], &bytes),
        other => panic!("expected a binary frame, got {other:?}"),
    }

    let r = api
        .ok(
            "/api/v1/multicast",
            json!({"conn_ids": [id_a, id_b, "nope"], "text": "to both"}),
        )
        .await;
    assert_eq!(r, report(2, &["nope"], &[]));
    assert_eq!(recv_text(&mut a).await, "to both");
    assert_eq!(recv_text(&mut b).await, "to both");

    let r = api
        .ok(
            "/api/v1/broadcast",
            json!({"text": "all but a", "exclude_conn_ids": [id_a]}),
        )
        .await;
    assert_eq!(r, report(1, &[], &[]));
    let r = api.ok("/api/v1/broadcast", json!({"text": "all"})).await;
    assert_eq!(r, report(2, &[], &[]));
    assert_eq!(recv_text(&mut a).await, "all", "a was excluded before");
    assert_eq!(recv_text(&mut b).await, "all but a");
    assert_eq!(recv_text(&mut b).await, "all");
    gw.stop().await;
}

#[tokio::test]
async fn users_topics_sessions_and_queries() {
    let gw = TestGateway::start().await;
    let api = Api::of(&gw);
    let (_business, mut events) = gw.business("app").await;
    let (mut a, id_a) = open(&gw, &mut events).await;
    let (mut b, id_b) = open(&gw, &mut events).await;

    // Users.
    let r = api
        .ok(
            "/api/v1/users/bind",
            json!({"conn_id": id_a, "user_id": "alice"}),
        )
        .await;
    assert_eq!(r, report(1, &[], &[]));
    let r = api
        .ok(
            "/api/v1/users/send",
            json!({"user_ids": ["alice", "bob"], "text": "hi alice"}),
        )
        .await;
    assert_eq!(r, report(1, &[], &["bob"]));
    assert_eq!(recv_text(&mut a).await, "hi alice");
    let online = api
        .query(&format!(
            "/api/v1/online?conn_ids={id_a},nope&user_ids=alice,bob"
        ))
        .await;
    assert_eq!(
        online,
        json!({"conn_ids": [id_a], "user_ids": ["alice"], "failed": []})
    );

    // Topics.
    let r = api
        .ok(
            "/api/v1/topics/subscribe",
            json!({"topics": ["room", "lobby"], "conn_ids": [id_b], "user_ids": ["alice"]}),
        )
        .await;
    assert_eq!(r["unknown_conn_ids"], json!([]));
    let r = api
        .ok(
            "/api/v1/topics/publish",
            json!({"topics": ["room"], "text": "in room", "exclude_conn_ids": [id_a]}),
        )
        .await;
    assert_eq!(r, report(1, &[], &[]));
    assert_eq!(recv_text(&mut b).await, "in room");
    let counts = api.query("/api/v1/counts?topics=room,empty").await;
    assert_eq!(
        counts,
        json!({
            "connections": 2, "users": 1, "topics": 2,
            "topic_counts": [
                {"topic": "room", "connections": 2, "users": 1},
                {"topic": "empty", "connections": 0, "users": 0},
            ],
            "failed": [],
        })
    );
    api.ok(
        "/api/v1/topics/unsubscribe",
        json!({"topics": ["room"], "conn_ids": [id_b]}),
    )
    .await;
    let members = api.query("/api/v1/list/topic-connections?key=room").await;
    assert_eq!(members["items"], json!([id_a]));
    let r = api
        .ok("/api/v1/topics/delete", json!({"topics": ["lobby"]}))
        .await;
    assert_eq!(r["delivered"], 1);

    // Session data and connection info.
    api.ok(
        "/api/v1/session",
        json!({"conn_id": id_a, "set": {"room": "lobby", "role": "admin"}}),
    )
    .await;
    api.ok(
        "/api/v1/session",
        json!({"conn_id": id_a, "delete": ["role"]}),
    )
    .await;
    let info = api.query(&format!("/api/v1/connections/{id_a}")).await;
    assert_eq!(info["conn_id"], id_a.as_str());
    assert_eq!(info["user_id"], "alice");
    assert_eq!(info["topics"], json!(["room"]));
    assert_eq!(info["session"], json!({"room": "lobby"}));
    assert!(
        info["remote_addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    );
    assert!(info["connected_at_ms"].as_u64().is_some_and(|t| t > 0));
    api.ok(
        "/api/v1/session",
        json!({"conn_id": id_a, "set": {"only": "this"}, "replace": true}),
    )
    .await;
    let info = api.query(&format!("/api/v1/connections/{id_a}")).await;
    assert_eq!(info["session"], json!({"only": "this"}));

    // Lists, paged.
    let mut sorted = vec![id_a.clone(), id_b.clone()];
    sorted.sort();
    let page = api.query("/api/v1/list/connections?limit=1").await;
    assert_eq!(page["items"], json!([sorted[0]]));
    let cursor = page["next_cursor"].as_str().expect("a cursor").to_owned();
    assert!(!cursor.is_empty());
    let page = api
        .query(&format!("/api/v1/list/connections?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(page["items"], json!([sorted[1]]));
    let all = api.query("/api/v1/list/connections").await;
    assert_eq!(
        all,
        json!({"items": sorted, "next_cursor": "", "failed": []})
    );
    let users = api.query("/api/v1/list/users").await;
    assert_eq!(users["items"], json!(["alice"]));
    let topics = api.query("/api/v1/list/topics").await;
    assert_eq!(topics["items"], json!(["room"]));
    let mine = api.query("/api/v1/list/user-connections?key=alice").await;
    assert_eq!(mine["items"], json!([id_a]));
    let topic_users = api.query("/api/v1/list/topic-users?key=room").await;
    assert_eq!(topic_users["items"], json!(["alice"]));

    // Unbind.
    api.ok("/api/v1/users/unbind", json!({"conn_id": id_a}))
        .await;
    let users = api.query("/api/v1/list/users").await;
    assert_eq!(users["items"], json!([]));

    // Force-offline with a last message, by connection and by user.
    api.ok(
        "/api/v1/users/bind",
        json!({"conn_id": id_a, "user_id": "alice"}),
    )
    .await;
    let r = api
        .ok(
            "/api/v1/force-offline",
            json!({"conn_ids": [id_b], "code": 4001, "reason": "bye", "last_text": "last words"}),
        )
        .await;
    assert_eq!(r, report(1, &[], &[]));
    assert_eq!(recv_text(&mut b).await, "last words");
    let close = recv_close(&mut b).await;
    assert_eq!(u16::from(close.code), 4001);
    assert_eq!(close.reason.as_str(), "bye");
    let r = api
        .ok(
            "/api/v1/force-offline",
            json!({"user_ids": ["alice", "bob"], "last_binary": STANDARD.encode([7u8])}),
        )
        .await;
    assert_eq!(r, report(1, &[], &["bob"]));
    match recv_message(&mut a).await {
        Message::Binary(data) => assert_eq!(&data[..], &[7]),
        other => panic!("expected the last binary message, got {other:?}"),
    }
    assert_eq!(u16::from(recv_close(&mut a).await.code), 1000);
    gw.stop().await;
}

#[tokio::test]
async fn bad_requests_are_400_and_say_what_to_fix() {
    let gw = TestGateway::start().await;
    let api = Api::of(&gw);
    let (_business, mut events) = gw.business("app").await;
    let (_a, id_a) = open(&gw, &mut events).await;
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "/api/v1/send",
            json!({"conn_id": id_a, "text": "a", "binary": "YQ=="}),
            &["exactly one"],
        ),
        (
            "/api/v1/send",
            json!({"conn_id": id_a}),
            &["text", "binary"],
        ),
        (
            "/api/v1/send",
            json!({"conn_id": id_a, "binary": "not base64!"}),
            &["base64"],
        ),
        ("/api/v1/send", json!({"text": "x"}), &["conn_id"]),
        (
            "/api/v1/send",
            json!({"conn_id": "", "text": "x"}),
            &["conn_id"],
        ),
        (
            "/api/v1/send",
            json!({"conn_id": id_a, "txt": "typo"}),
            &["unknown field", "txt"],
        ),
        (
            "/api/v1/multicast",
            json!({"conn_ids": [], "text": "x"}),
            &["conn_ids"],
        ),
        (
            "/api/v1/users/send",
            json!({"user_ids": [], "text": "x"}),
            &["user_ids"],
        ),
        (
            "/api/v1/topics/publish",
            json!({"topics": [], "text": "x"}),
            &["topics"],
        ),
        (
            "/api/v1/topics/subscribe",
            json!({"topics": ["t"]}),
            &["conn_ids", "user_ids"],
        ),
        ("/api/v1/topics/delete", json!({"topics": []}), &["topics"]),
        (
            "/api/v1/users/bind",
            json!({"conn_id": id_a, "user_id": ""}),
            &["user_id"],
        ),
        (
            "/api/v1/session",
            json!({"conn_id": id_a, "set": {"": "v"}}),
            &["session key"],
        ),
        (
            "/api/v1/force-offline",
            json!({}),
            &["conn_ids", "user_ids"],
        ),
        (
            "/api/v1/force-offline",
            json!({"conn_ids": [id_a], "last_text": "a", "last_binary": "YQ=="}),
            &["last_text", "last_binary"],
        ),
        // Refused by the gateway itself: its message comes through.
        (
            "/api/v1/force-offline",
            json!({"user_ids": ["alice"], "code": 1234}),
            &["1234", "3000"],
        ),
        (
            "/api/v1/force-offline",
            json!({"conn_ids": [id_a], "code": 70000}),
            &["code 70000", "3000 to 4999"],
        ),
    ];
    for (path, body, words) in cases {
        let reply = api.post(path, body.clone()).await;
        assert_eq!(reply.status, 400, "POST {path} {body}: {}", reply.json());
        reply.expect_error(400, "bad_request", words);
    }

    // Bodies that are no JSON object at all.
    let reply = api.call("POST", "/api/v1/broadcast", None).await;
    reply.expect_error(400, "bad_request", &["empty"]);
    let reply = api
        .call("POST", "/api/v1/broadcast", Some(b"{\"text\": "))
        .await;
    reply.expect_error(400, "bad_request", &["JSON"]);

    // Queries.
    let queries: [(&str, &[&str]); 5] = [
        ("/api/v1/online?conn_id=x", &["unknown field", "conn_id"]),
        ("/api/v1/list/rooms", &["rooms", "topic-connections"]),
        ("/api/v1/list/users?limit=10001", &["10001", "10000"]),
        ("/api/v1/list/users?limit=0", &["limit 0"]),
        ("/api/v1/list/users?limit=many", &["limit"]),
    ];
    for (path, words) in queries {
        api.get(path).await.expect_error(400, "bad_request", words);
    }
    // What the schema allows is answered: nobody asked about, the members of no topic, a key
    // the kind does not read.
    for path in [
        "/api/v1/online",
        "/api/v1/list/topic-users",
        "/api/v1/list/users?key=x",
    ] {
        assert_eq!(api.get(path).await.status, 200, "{path}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn single_target_commands_on_unknown_connections_are_404() {
    let gw = TestGateway::start().await;
    let api = Api::of(&gw);
    let (_business, mut events) = gw.business("app").await;
    let (mut a, id_a) = open(&gw, &mut events).await;
    a.close(None).await.expect("close");
    events.close().await;

    for gone in [id_a.as_str(), "test-gw-1-ffff", "nope"] {
        let bodies = [
            ("/api/v1/send", json!({"conn_id": gone, "text": "x"})),
            (
                "/api/v1/users/bind",
                json!({"conn_id": gone, "user_id": "alice"}),
            ),
            ("/api/v1/users/unbind", json!({"conn_id": gone})),
            (
                "/api/v1/session",
                json!({"conn_id": gone, "set": {"k": "v"}}),
            ),
        ];
        for (path, body) in bodies {
            api.post(path, body)
                .await
                .expect_error(404, "unknown_connection", &[gone]);
        }
        api.get(&format!("/api/v1/connections/{gone}"))
            .await
            .expect_error(404, "unknown_connection", &[gone]);
    }
    // Several targets: a partial success, not an error.
    let r = api
        .ok(
            "/api/v1/multicast",
            json!({"conn_ids": [id_a], "text": "x"}),
        )
        .await;
    assert_eq!(r, report(0, &[id_a.as_str()], &[]));
    gw.stop().await;
}

#[tokio::test]
async fn the_api_key_is_required_when_set() {
    let gw = TestGateway::start_with(|c| c.api_key = Some("s3cret".into())).await;
    let anonymous = Api::of(&gw);
    let wrong = Api::of(&gw).with_key("guess");
    let api = Api::of(&gw).with_key("s3cret");

    let reply = anonymous.get("/api/v1/counts").await;
    reply.expect_error(401, "unauthorized", &["Authorization: Bearer"]);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    wrong
        .post("/api/v1/broadcast", json!({"text": "x"}))
        .await
        .expect_error(401, "unauthorized", &["wrong", "Authorization: Bearer"]);
    let basic = http(
        gw.api_addr,
        "GET",
        "/api/v1/counts",
        &[("Authorization", "Basic czNjcmV0")],
        None,
    )
    .await;
    basic.expect_error(401, "unauthorized", &["Bearer <key>"]);
    // Unknown API paths need the key too; with it they are a JSON 404.
    anonymous
        .get("/api/v2/nothing")
        .await
        .expect_error(401, "unauthorized", &[]);
    api.get("/api/v2/nothing")
        .await
        .expect_error(404, "not_found", &["/openapi.json"]);

    let counts = api.query("/api/v1/counts").await;
    assert_eq!(counts["connections"], 0);
    // No key needed outside /api.
    let doc = http(gw.api_addr, "GET", "/openapi.json", &[], None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json()["openapi"], "3.0.3");
    gw.stop().await;
}

#[tokio::test]
async fn wrong_methods_get_a_json_405() {
    let gw = TestGateway::start().await;
    let api = Api::of(&gw);
    api.get("/api/v1/send")
        .await
        .expect_error(405, "method_not_allowed", &["POST"]);
    api.post("/api/v1/counts", json!({}))
        .await
        .expect_error(405, "method_not_allowed", &["GET"]);
    gw.stop().await;
}

/// Every path of the route list.
const SPEC_ROUTES: [(&str, &str); 16] = [
    ("post", "/api/v1/send"),
    ("post", "/api/v1/multicast"),
    ("post", "/api/v1/broadcast"),
    ("post", "/api/v1/users/send"),
    ("post", "/api/v1/topics/publish"),
    ("post", "/api/v1/users/bind"),
    ("post", "/api/v1/users/unbind"),
    ("post", "/api/v1/topics/subscribe"),
    ("post", "/api/v1/topics/unsubscribe"),
    ("post", "/api/v1/topics/delete"),
    ("post", "/api/v1/session"),
    ("post", "/api/v1/force-offline"),
    ("get", "/api/v1/online"),
    ("get", "/api/v1/connections/{conn_id}"),
    ("get", "/api/v1/counts"),
    ("get", "/api/v1/list/{kind}"),
];

#[tokio::test]
async fn openapi_documents_every_route_and_every_documented_route_exists() {
    let gw = TestGateway::start().await;
    let api = Api::of(&gw);
    let doc = http(gw.api_addr, "GET", "/openapi.json", &[], None)
        .await
        .json();
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Error"].is_object());
    for (method, path) in SPEC_ROUTES {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"]["200"]["content"]["application/json"]["schema"].is_object());
        assert!(op["responses"]["400"].is_object());
        assert!(op["responses"]["401"].is_object());
        if method == "post" {
            assert!(op["requestBody"]["content"]["application/json"]["schema"].is_object());
        }
    }
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), SPEC_ROUTES.len());
    // Each documented operation is routed: it answers neither 404 not_found nor 405.
    for (path, ops) in paths {
        for method in ops.as_object().expect("operations").keys() {
            let concrete = path.replace("{conn_id}", "nope").replace("{kind}", "users");
            let reply = match method.as_str() {
                "post" => api.post(&concrete, json!({})).await,
                _ => api.get(&concrete).await,
            };
            let code = reply.json()["error"].clone();
            assert!(
                ![404, 405].contains(&reply.status) || code == "unknown_connection",
                "{method} {path} is documented but not routed: {} {code}",
                reply.status
            );
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_api_is_unavailable_until_the_cluster_client_connects() {
    // A peer that never answers: the cluster client cannot connect.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("bound");
    let gw = TestGateway::start_with(|c| c.peers = vec![dead.to_string()]).await;
    let api = Api::of(&gw);
    let started = std::time::Instant::now();
    api.post("/api/v1/broadcast", json!({"text": "x"}))
        .await
        .expect_error(503, "unavailable", &["connected yet", "--peers"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Validation still comes first.
    api.post("/api/v1/broadcast", json!({}))
        .await
        .expect_error(400, "bad_request", &[]);
    gw.stop().await;
}

#[tokio::test]
async fn one_gateways_api_reaches_the_cluster_and_names_a_missing_gateway() {
    let addrs = reserve_addrs(2);
    let peers: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let start = |name: &'static str, addr: SocketAddr| {
        let peers = peers.clone();
        TestGateway::start_with(move |c| {
            c.node_id = name.into();
            c.worker_addr = addr;
            c.peers = peers;
        })
    };
    let gw_a = start("gw-a", addrs[0]).await;
    let gw_b = start("gw-b", addrs[1]).await;
    let mut slot = gw_a.cluster.clone();
    let cluster = within("gw-a's cluster client", slot.ready())
        .await
        .expect("connected");
    wait_until("gw-a's cluster client to reach both gateways", || {
        let gateways = cluster.gateways();
        gateways.len() == 2 && gateways.iter().all(|g| g.state == GatewayState::Up)
    })
    .await;

    let api = Api::of(&gw_a);
    let mut on_b = gw_b.client().await;
    // The client on B, as seen through A's API.
    let id_b = within("the client on gw-b in gw-a's list", async {
        loop {
            let list = api.query("/api/v1/list/connections").await;
            if let Some(id) = list["items"][0].as_str() {
                return id.to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(id_b.starts_with("gw-b-"), "{id_b}");

    let r = api
        .ok("/api/v1/send", json!({"conn_id": id_b, "text": "from a"}))
        .await;
    assert_eq!(r, report(1, &[], &[]));
    assert_eq!(recv_text(&mut on_b).await, "from a");
    let r = api
        .ok("/api/v1/broadcast", json!({"text": "everyone"}))
        .await;
    assert_eq!(r, report(1, &[], &[]));
    assert_eq!(recv_text(&mut on_b).await, "everyone");
    let info = api.query(&format!("/api/v1/connections/{id_b}")).await;
    assert_eq!(info["conn_id"], id_b.as_str());

    gw_b.stop().await;
    wait_until("gw-a's cluster client to see gw-b down", || {
        cluster
            .gateways()
            .iter()
            .any(|g| g.node_id.as_deref() == Some("gw-b") && g.state != GatewayState::Up)
    })
    .await;

    let reply = api
        .post("/api/v1/broadcast", json!({"text": "anyone?"}))
        .await;
    let body = reply.json();
    assert_eq!(reply.status, 200, "{body}");
    assert_eq!(body["delivered"], 0);
    let failed = body["failed"].as_array().expect("failed");
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(failed[0]["gateway"], "gw-b", "{body}");
    assert!(failed[0]["error"].as_str().is_some_and(|e| !e.is_empty()));

    let counts = api.get("/api/v1/counts").await.json();
    assert_eq!(counts["failed"][0]["gateway"], "gw-b", "{counts}");
    api.post("/api/v1/send", json!({"conn_id": id_b, "text": "x"}))
        .await
        .expect_error(503, "unavailable", &["gw-b"]);
    gw_a.stop().await;
}
