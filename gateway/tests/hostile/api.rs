//! Hostile API callers: web pages and DNS rebinding against the key-less loopback API, bodies
//! that are not JSON, typos in connection ids, requests past the limits, over HTTP and gRPC.

use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;
use wsgate_proto::v1::push_api_client::PushApiClient;
use wsgate_proto::v1::{Multicast, QueryConnInfo, SingleCast, Subscribe};

use super::Neighbour;
use super::common::http::{Api, http};
use super::common::*;

/// The neighbour's next message must be this marker: whatever the hostile requests tried,
/// nothing reached the clients before it.
async fn only_the_marker_arrives(api: &Api, neighbour: &mut Neighbour, marker: &str) {
    let reply = api
        .post("/api/v1/broadcast", json!({ "text": marker }))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(recv_text(&mut neighbour.ws).await, marker);
}

/// A web page can post forms, text and multipart to any address without asking; none of
/// them may push through the API (415), whatever the body says.
#[tokio::test]
async fn bodies_that_are_not_json_get_415_and_push_nothing() {
    let gw = TestGateway::start().await;
    let mut neighbour = Neighbour::start(&gw).await;
    let api = Api::of(&gw);
    let body = br#"{"text":"pwned"}"#;
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let headers: Vec<(&str, &str)> =
            content_type.iter().map(|c| ("Content-Type", *c)).collect();
        let reply = http(api.addr, "POST", "/api/v1/broadcast", &headers, Some(body)).await;
        reply.expect_error(415, "unsupported_media_type", &["application/json"]);
    }
    only_the_marker_arrives(&api, &mut neighbour, "marker 1").await;
    neighbour.check().await;
    gw.stop().await;
}

/// Without an API key, a request must name this machine: a foreign Host (DNS rebinding) or
/// a page of another origin gets 403; the console's own origin passes.
#[tokio::test]
async fn foreign_hosts_and_origins_get_403_without_a_key() {
    let gw = TestGateway::start().await;
    let mut neighbour = Neighbour::start(&gw).await;
    let api = Api::of(&gw);
    let body = br#"{"text":"pwned"}"#;
    let json_type = ("Content-Type", "application/json");
    let own_origin = format!("http://{}", gw.api_addr);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![json_type, ("Host", "evil.example")], "Host"),
        (vec![json_type, ("Host", "evil.example:8082")], "Host"),
        (vec![json_type, ("Origin", "http://evil.example")], "origin"),
        (vec![json_type, ("Origin", "null")], "origin"),
        (
            vec![json_type, ("Origin", "http://127.0.0.1.evil.example")],
            "origin",
        ),
    ];
    for (headers, word) in cases {
        let reply = raw_request(api.addr, &headers, body).await;
        assert_eq!(reply.status, 403, "{headers:?}: {:?}", reply.json());
        reply.expect_error(403, "forbidden", &[word, "--api-allowed-hosts"]);
    }
    let reply = http(
        api.addr,
        "POST",
        "/api/v1/broadcast",
        &[json_type, ("Origin", &own_origin)],
        Some(br#"{"text":"from the console"}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(recv_text(&mut neighbour.ws).await, "from the console");
    only_the_marker_arrives(&api, &mut neighbour, "marker 2").await;
    gw.stop().await;
}

/// A request with exactly the given headers (its own Host included, when given).
async fn raw_request(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
    body: &[u8],
) -> super::common::http::Reply {
    let host = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host"));
    if host {
        super::common::http::http_exact(addr, "POST", "/api/v1/broadcast", headers, Some(body))
            .await
    } else {
        http(addr, "POST", "/api/v1/broadcast", headers, Some(body)).await
    }
}

/// With an API key the key is what protects the API: any Host may call with it.
#[tokio::test]
async fn with_a_key_any_host_may_call() {
    let gw = TestGateway::start_with(|c| c.api_key = Some("k3y".into())).await;
    let mut neighbour = Neighbour::start(&gw).await;
    let reply = super::common::http::http_exact(
        gw.api_addr,
        "POST",
        "/api/v1/broadcast",
        &[
            ("Host", "gateway.internal"),
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer k3y"),
        ],
        Some(br#"{"text":"keyed"}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(recv_text(&mut neighbour.ws).await, "keyed");
    gw.stop().await;
}

/// A well-formed id of a node that does not exist is a wrong id (404), never an outage (503)
/// a client would retry forever.
#[tokio::test]
async fn an_id_of_a_node_that_does_not_exist_is_404() {
    let gw = TestGateway::start().await;
    let mut neighbour = Neighbour::start(&gw).await;
    let api = Api::of(&gw);
    let reply = api
        .post(
            "/api/v1/send",
            json!({ "conn_id": "nope-1-1", "text": "x" }),
        )
        .await;
    reply.expect_error(404, "unknown_connection", &["nope-1-1"]);
    let reply = api.get("/api/v1/connections/nope-1-1").await;
    reply.expect_error(404, "unknown_connection", &["nope-1-1"]);
    let reply = api
        .post(
            "/api/v1/multicast",
            json!({ "conn_ids": ["nope-1-1", neighbour.conn_id], "text": "x" }),
        )
        .await;
    let body = reply.json();
    assert_eq!(reply.status, 200, "{body}");
    assert_eq!(body["unknown_conn_ids"], json!(["nope-1-1"]));
    assert_eq!(body["failed"], json!([]));
    assert_eq!(recv_text(&mut neighbour.ws).await, "x");

    let mut grpc = grpc(&gw).await;
    let status = grpc
        .single_cast(SingleCast {
            conn_id: "nope-1-1".into(),
            payload: Some(wsgate_business::Payload::text("x")),
        })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    neighbour.check().await;
    gw.stop().await;
}

async fn grpc(gw: &TestGateway) -> PushApiClient<Channel> {
    PushApiClient::new(gw.grpc_channel().await)
}

/// The limits hold on every door: HTTP answers 422 limit_exceeded, gRPC RESOURCE_EXHAUSTED.
#[tokio::test]
async fn requests_past_the_limits_are_422_and_resource_exhausted() {
    let gw = TestGateway::start().await;
    let mut neighbour = Neighbour::start(&gw).await;
    let api = Api::of(&gw);
    let topics: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    let ids: Vec<String> = (0..10_001).map(|i| format!("test-gw-1-{i:x}")).collect();
    let reply = api
        .post(
            "/api/v1/topics/subscribe",
            json!({ "topics": topics, "conn_ids": [neighbour.conn_id] }),
        )
        .await;
    reply.expect_error(422, "limit_exceeded", &["--max-topics-per-command"]);
    let reply = api
        .post("/api/v1/multicast", json!({ "conn_ids": ids, "text": "x" }))
        .await;
    reply.expect_error(422, "limit_exceeded", &["--max-conn-ids-per-command"]);

    let mut grpc = grpc(&gw).await;
    let status = grpc
        .multicast(Multicast {
            conn_ids: ids.clone(),
            payload: Some(wsgate_business::Payload::text("x")),
        })
        .await
        .expect_err("too many");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let status = grpc
        .subscribe(Subscribe {
            topics,
            conn_ids: vec![neighbour.conn_id.clone()],
            user_ids: vec![],
        })
        .await
        .expect_err("too many");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let status = grpc
        .conn_info(QueryConnInfo { conn_ids: ids })
        .await
        .expect_err("too many");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let counts = neighbour.client.counts([]).await.expect("counts");
    assert_eq!(counts.topics, 0, "nothing was done");
    neighbour.check().await;
    gw.stop().await;
}
