//! The four front doors (the worker link, the SDK's cluster client, the HTTP API and the gRPC
//! API) follow one rule: the same command gets the same answer at each, in each door's words
//! for the protocol's code (docs/protocol.md, "One rule at every door").

mod common;

use common::http::Api as Http;
use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;
use wsgate_business::{Cluster, ErrorClass, Payload};
use wsgate_proto::v1::push_api_client::PushApiClient;
use wsgate_proto::v1::{
    self, BindUser, Envelope, ErrorCode, ForceOffline, Multicast, QueryConnInfo, SingleCast,
    envelope::Body,
};

type Grpc = PushApiClient<Channel>;

/// One gateway with small limits, and a client of each door.
struct Doors {
    gw: TestGateway,
    link: RawLink,
    next_id: u64,
    cluster: Cluster,
    http: Http,
    grpc: Grpc,
}

const FRAME: usize = 128 * 1024;

impl Doors {
    async fn open() -> Self {
        let gw = TestGateway::start_with(|c| {
            // A small frame needs small messages and few topics per connection.
            c.max_frame_bytes = FRAME;
            c.max_message_bytes = 8 * 1024;
            c.max_topics_per_conn = 64;
            c.max_user_ids_per_command = 64;
            c.max_topics_per_command = 64;
            c.max_conn_ids_per_command = 4;
        })
        .await;
        let link = raw_register(gw.worker_addr, "").await;
        let cluster = within("the cluster client", gw.cluster.clone().ready())
            .await
            .expect("the gateway's cluster client connects");
        let http = Http::of(&gw);
        let grpc = PushApiClient::new(gw.grpc_channel().await);
        Self {
            gw,
            link,
            next_id: 100,
            cluster,
            http,
            grpc,
        }
    }

    /// The worker link's answer to `body`.
    async fn worker(&mut self, body: Body) -> v1::Result {
        self.next_id += 1;
        let id = self.next_id;
        self.link
            .send(Envelope {
                request_id: id,
                body: Some(body),
                ..Default::default()
            })
            .await
            .expect("send a command");
        match raw_next_not_ping(&mut self.link).await {
            Some(Envelope {
                request_id,
                body: Some(Body::Result(r)),
                ..
            }) if request_id == id => r,
            other => panic!("expected the Result of request {id}, got {other:?}"),
        }
    }
}

fn code_of(r: &v1::Result) -> ErrorCode {
    ErrorCode::try_from(r.code).expect("a known code")
}

/// The same refusal at every door: `worker` is the code, the SDK's class, the HTTP status
/// and code, the gRPC code.
struct Refusal {
    worker: ErrorCode,
    sdk: ErrorClass,
    http: (u16, &'static str),
    grpc: Code,
}

const BAD: Refusal = Refusal {
    worker: ErrorCode::BadRequest,
    sdk: ErrorClass::Invalid,
    http: (400, "bad_request"),
    grpc: Code::InvalidArgument,
};

const LIMIT: Refusal = Refusal {
    worker: ErrorCode::LimitExceeded,
    sdk: ErrorClass::LimitExceeded,
    http: (422, "limit_exceeded"),
    grpc: Code::ResourceExhausted,
};

#[track_caller]
fn grpc_refused<T: std::fmt::Debug>(what: &str, got: Result<T, tonic::Status>, want: Code) {
    match got {
        Err(status) => assert_eq!(status.code(), want, "{what} over gRPC: {status:?}"),
        Ok(reply) => panic!("{what} over gRPC was accepted: {reply:?}"),
    }
}

#[track_caller]
fn sdk_refused<T: std::fmt::Debug>(
    what: &str,
    got: Result<T, wsgate_business::Error>,
    want: ErrorClass,
) {
    match got {
        Err(err) => assert_eq!(err.class(), want, "{what} over the SDK: {err:?}"),
        Ok(reply) => panic!("{what} over the SDK was accepted: {reply:?}"),
    }
}

async fn http_refused(http: &Http, what: &str, path: &str, body: Value, want: (u16, &str)) {
    let reply = http.post(path, body).await;
    assert_eq!(
        (reply.status, reply.json()["error"].as_str().unwrap_or("")),
        want,
        "{what} over HTTP: {}",
        reply.json()
    );
}

fn text(s: &str) -> Option<v1::Payload> {
    Some(Payload::text(s))
}

#[tokio::test]
async fn every_door_answers_a_command_alike() {
    let mut d = Doors::open().await;

    // A Multicast to no connection: refused, not an empty success.
    let what = "a Multicast naming no connection";
    let body = Multicast {
        conn_ids: vec![],
        payload: text("x"),
    };
    assert_eq!(
        code_of(&d.worker(Body::Multicast(body.clone())).await),
        BAD.worker,
        "{what}"
    );
    let none: [&str; 0] = [];
    sdk_refused(
        what,
        d.cluster.multicast(none, Payload::text("x")).await,
        BAD.sdk,
    );
    let path = "/api/v1/multicast";
    http_refused(
        &d.http,
        what,
        path,
        json!({"conn_ids": [], "text": "x"}),
        BAD.http,
    )
    .await;
    grpc_refused(what, d.grpc.multicast(body).await, BAD.grpc);

    // A ForceOffline naming no one.
    let what = "a ForceOffline naming no connection";
    let body = ForceOffline::default();
    assert_eq!(
        code_of(&d.worker(Body::ForceOffline(body.clone())).await),
        BAD.worker,
        "{what}"
    );
    let path = "/api/v1/force-offline";
    http_refused(&d.http, what, path, json!({}), BAD.http).await;
    grpc_refused(what, d.grpc.force_offline(body).await, BAD.grpc);

    // A payload kind this version does not know (HTTP has only text and binary).
    let what = "a SingleCast with payload kind 7";
    let body = SingleCast {
        conn_id: format!("{}-1-1", d.gw.node_id),
        payload: Some(v1::Payload {
            data: vec![1].into(),
            kind: 7,
        }),
    };
    assert_eq!(
        code_of(&d.worker(Body::SingleCast(body.clone())).await),
        BAD.worker,
        "{what}"
    );
    grpc_refused(what, d.grpc.single_cast(body).await, BAD.grpc);

    // An empty connection id: a missing field, whichever command it is in.
    let what = "a BindUser with an empty conn_id";
    let body = BindUser {
        conn_id: String::new(),
        user_id: "u".into(),
    };
    assert_eq!(
        code_of(&d.worker(Body::BindUser(body.clone())).await),
        BAD.worker,
        "{what}"
    );
    sdk_refused(what, d.cluster.bind_user("", "u").await, BAD.sdk);
    let path = "/api/v1/users/bind";
    http_refused(
        &d.http,
        what,
        path,
        json!({"conn_id": "", "user_id": "u"}),
        BAD.http,
    )
    .await;
    grpc_refused(what, d.grpc.bind_user(body).await, BAD.grpc);

    // More connection ids than one command may name.
    let what = "a Multicast naming 5 connections with a limit of 4";
    let ids: Vec<String> = (1..=5).map(|i| format!("{}-1-{i}", d.gw.node_id)).collect();
    let body = Multicast {
        conn_ids: ids.clone(),
        payload: text("x"),
    };
    let r = d.worker(Body::Multicast(body.clone())).await;
    assert_eq!(code_of(&r), LIMIT.worker, "{what}: {r:?}");
    sdk_refused(
        what,
        d.cluster.multicast(ids.clone(), Payload::text("x")).await,
        LIMIT.sdk,
    );
    let path = "/api/v1/multicast";
    http_refused(
        &d.http,
        what,
        path,
        json!({"conn_ids": ids, "text": "x"}),
        LIMIT.http,
    )
    .await;
    grpc_refused(what, d.grpc.multicast(body).await, LIMIT.grpc);

    // Asking about no connection answers nothing, at every door.
    let r = d
        .worker(Body::QueryConnInfo(QueryConnInfo::default()))
        .await;
    assert_eq!(code_of(&r), ErrorCode::Ok, "{r:?}");
    let none: [&str; 0] = [];
    let answer = d.cluster.conn_info(none).await.expect("an empty answer");
    assert!(answer.value.is_empty() && answer.failed.is_empty());
    let reply = d
        .grpc
        .conn_info(QueryConnInfo::default())
        .await
        .expect("an empty answer")
        .into_inner();
    assert!(reply.conns.is_empty() && reply.unknown_conn_ids.is_empty());

    d.gw.stop().await;
}

#[tokio::test]
async fn every_door_treats_an_unknown_node_as_an_unknown_connection() {
    let mut d = Doors::open().await;
    let id = "nowhere-1-1".to_string();

    // One connection: refused as unknown.
    let r = d
        .worker(Body::SingleCast(SingleCast {
            conn_id: id.clone(),
            payload: text("x"),
        }))
        .await;
    assert_eq!(code_of(&r), ErrorCode::UnknownConnection, "{r:?}");
    sdk_refused(
        "a SingleCast",
        d.cluster.single_cast(id.clone(), Payload::text("x")).await,
        ErrorClass::UnknownConnection,
    );
    let reply = d
        .http
        .post("/api/v1/send", json!({"conn_id": id, "text": "x"}))
        .await;
    reply.expect_error(404, "unknown_connection", &[&id]);
    let status = d
        .grpc
        .single_cast(SingleCast {
            conn_id: id.clone(),
            payload: text("x"),
        })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // Among several: listed as unknown, not as a failed gateway.
    let r = d
        .worker(Body::Multicast(Multicast {
            conn_ids: vec![id.clone()],
            payload: text("x"),
        }))
        .await;
    assert_eq!(r.unknown_conn_ids, [id.as_str()], "{r:?}");
    let report = d
        .cluster
        .multicast([id.clone()], Payload::text("x"))
        .await
        .expect("a report");
    assert_eq!(report.report.unknown_conn_ids, [id.as_str()], "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    let json = d
        .http
        .ok("/api/v1/multicast", json!({"conn_ids": [id], "text": "x"}))
        .await;
    assert_eq!(json["unknown_conn_ids"], json!([id]), "{json}");
    let reply = d
        .grpc
        .multicast(Multicast {
            conn_ids: vec![id.clone()],
            payload: text("x"),
        })
        .await
        .expect("a report")
        .into_inner();
    assert_eq!(reply.unknown_conn_ids, [id.as_str()], "{reply:?}");
    assert!(reply.failed.is_empty(), "{reply:?}");

    d.gw.stop().await;
}

#[tokio::test]
async fn every_door_refuses_a_request_larger_than_a_frame_as_too_large() {
    let mut d = Doors::open().await;
    let mut ws = d.gw.client().await;
    let open = match raw_next_not_ping(&mut d.link).await {
        Some(Envelope {
            body: Some(Body::ConnOpen(open)),
            ..
        }) => open,
        other => panic!("expected ConnOpen, got {other:?}"),
    };
    let big = "x".repeat(FRAME + 1024);

    // The SDK does not send it: the frame would be over the gateway's limit.
    sdk_refused(
        "a SingleCast larger than a frame",
        d.cluster
            .single_cast(open.conn_id.clone(), Payload::text(big.clone()))
            .await,
        ErrorClass::TooLarge,
    );
    // HTTP: under the body limit but over a frame, and over the body limit.
    for size in [FRAME + 1024, 2 * FRAME] {
        let reply = d
            .http
            .post(
                "/api/v1/send",
                json!({"conn_id": open.conn_id, "text": "x".repeat(size)}),
            )
            .await;
        reply.expect_error(413, "too_large", &["--max-frame-bytes"]);
    }
    // gRPC: refused while it is read.
    let status = d
        .grpc
        .single_cast(SingleCast {
            conn_id: open.conn_id.clone(),
            payload: Some(Payload::text(big.clone())),
        })
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("--max-frame-bytes"), "{status:?}");

    // Nothing reached the client: the next message it gets is the marker.
    d.cluster
        .single_cast(open.conn_id.clone(), Payload::text("marker"))
        .await
        .expect("a small one is sent");
    assert_eq!(recv_text(&mut ws).await, "marker");

    // The worker link: a frame over the limit is a protocol error that ends the link.
    d.link
        .send(Envelope {
            request_id: 7,
            body: Some(Body::SingleCast(SingleCast {
                conn_id: open.conn_id,
                payload: Some(Payload::text(big)),
            })),
            ..Default::default()
        })
        .await
        .expect("send");
    let err = expect_error_then_eof(&mut d.link).await;
    assert_eq!(err.code, ErrorCode::FrameTooLarge as i32, "{err:?}");

    d.gw.stop().await;
}
