//! Command ids: a command sent again with the same id — on another link, through the SDK's
//! retry after a lost link, with the HTTP `Idempotency-Key` header or the gRPC
//! `idempotency-key` metadata — is carried out once and answered with the first `Result`.
//! Every test checks the client side too: after the retry, the next frame a client gets is a
//! marker sent afterwards, not a second copy.

mod common;

use std::time::Duration;

use common::cut::CutProxy;
use common::http::{Api, http};
use common::*;
use serde_json::json;
use tonic::Request;
use wsgate_business::{Client, Error, EventKind, Payload};
use wsgate_proto::v1::push_api_client::PushApiClient;
use wsgate_proto::v1::{
    Broadcast, Envelope, ErrorCode, Result as CmdResult, SingleCast, envelope::Body,
};

fn single_cast(conn_id: &str, text: &str) -> Body {
    Body::SingleCast(SingleCast {
        conn_id: conn_id.into(),
        payload: Some(Payload::text(text)),
    })
}

/// Sends `body` with `command_id` on a raw link and returns the gateway's `Result`.
async fn command(link: &mut RawLink, request_id: u64, command_id: &str, body: Body) -> CmdResult {
    let env = Envelope {
        request_id,
        command_id: command_id.into(),
        body: Some(body),
        ..Default::default()
    };
    raw_result(link, env).await
}

#[tokio::test]
async fn a_command_id_is_carried_out_once_whichever_link_sends_it() {
    let gw = TestGateway::start().await;
    let (_business, mut events) = gw.business("watcher").await;
    let mut ws = gw.client().await;
    let conn = events.open().await.conn_id;

    let (mut first, ok) = raw_commander(gw.worker_addr, "commander").await;
    let limits = ok.limits.expect("limits");
    assert_eq!(
        limits.command_ids, 100_000,
        "the default window is advertised"
    );
    assert_eq!(limits.command_id_ttl_ms, 600_000);

    let paid = single_cast(&conn, "order 42 paid");
    let answer = command(&mut first, 2, "order-42-paid", paid.clone()).await;
    assert_eq!((answer.code, answer.delivered), (ErrorCode::Ok as i32, 1));
    assert_eq!(recv_text(&mut ws).await, "order 42 paid");

    // The same command again, on the same link and on another one: the first answer, nothing
    // delivered again.
    let again = command(&mut first, 3, "order-42-paid", paid.clone()).await;
    assert_eq!(again, answer);
    let (mut second, _) = raw_commander(gw.worker_addr, "commander").await;
    assert_eq!(command(&mut second, 9, "order-42-paid", paid).await, answer);
    assert_eq!(gw.stat(|s| &s.commands_deduplicated), 2);

    // The id reused for another command is refused, and that command is not carried out.
    let refund = single_cast(&conn, "order 42 refunded");
    let reused = command(&mut second, 10, "order-42-paid", refund).await;
    assert_eq!(reused.code, ErrorCode::BadRequest as i32);
    assert!(
        reused.message.contains("different command"),
        "{}",
        reused.message
    );

    // An id that is not printable ASCII is refused with what to do.
    let bad = command(&mut second, 11, "order\n42", single_cast(&conn, "x")).await;
    assert_eq!(bad.code, ErrorCode::BadRequest as i32);
    assert!(bad.message.contains("printable ASCII"), "{}", bad.message);

    command(&mut second, 12, "", single_cast(&conn, "marker")).await;
    assert_eq!(
        recv_text(&mut ws).await,
        "marker",
        "nothing was delivered twice"
    );
}

#[tokio::test]
async fn with_command_ids_off_a_retry_is_carried_out_again() {
    let gw = TestGateway::start_with(|c| c.command_ids = 0).await;
    let mut ws = gw.client().await;
    let (mut link, ok) = raw_commander(gw.worker_addr, "commander").await;
    assert_eq!(
        ok.limits.expect("limits").command_ids,
        0,
        "retries are unsafe"
    );
    let hello = Body::Broadcast(Broadcast {
        payload: Some(Payload::text("hello")),
        ..Default::default()
    });
    command(&mut link, 2, "b-1", hello.clone()).await;
    command(&mut link, 3, "b-1", hello).await;
    assert_eq!(recv_text(&mut ws).await, "hello");
    assert_eq!(recv_text(&mut ws).await, "hello");
}

/// The SDK's client on a link through `proxy`, reconnecting fast.
async fn client_through(proxy: &CutProxy, retries: bool) -> Client {
    let (client, _events) = Client::builder(proxy.addr.to_string())
        .name("payments")
        .events([EventKind::None])
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .retries(retries)
        .connect()
        .await
        .expect("business connects");
    client
}

/// Broadcasts `text` through `client` and loses its `Result` with the link: the proxy holds the
/// gateway's answers, `ws` gets the broadcast (so the gateway carried it out), then the link is
/// cut. What the broadcast call then returns.
async fn broadcast_across_a_cut(
    proxy: &CutProxy,
    client: &Client,
    ws: &mut Ws,
    text: &'static str,
) -> Result<wsgate_business::Report, Error> {
    proxy.hold();
    let send = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .broadcast(Payload::text(text), Vec::<String>::new())
                .await
        }
    });
    assert_eq!(recv_text(ws).await, text);
    proxy.cut();
    within("the broadcast's outcome", send)
        .await
        .expect("the task")
}

#[tokio::test]
async fn the_sdk_sends_a_command_again_after_a_lost_link_and_it_is_carried_out_once() {
    let gw = TestGateway::start().await;
    let proxy = CutProxy::start(gw.worker_addr).await;
    let client = client_through(&proxy, true).await;
    let mut ws = gw.client().await;
    let report = broadcast_across_a_cut(&proxy, &client, &mut ws, "order 7 paid")
        .await
        .expect("the retry answers instead of Disconnected");
    assert_eq!(report.delivered, 1, "the first try's Result");
    assert_eq!(gw.stat(|s| &s.commands_deduplicated), 1);
    client
        .broadcast(Payload::text("marker"), Vec::<String>::new())
        .await
        .expect("marker");
    assert_eq!(recv_text(&mut ws).await, "marker", "delivered once");
}

#[tokio::test]
async fn without_retries_a_lost_link_fails_the_command_with_disconnected() {
    let gw = TestGateway::start().await;
    let proxy = CutProxy::start(gw.worker_addr).await;
    let client = client_through(&proxy, false).await;
    let mut ws = gw.client().await;
    let outcome = broadcast_across_a_cut(&proxy, &client, &mut ws, "order 8 paid").await;
    assert!(matches!(outcome, Err(Error::Disconnected)), "{outcome:?}");
}

#[tokio::test]
async fn http_idempotency_key_carries_a_retried_request_out_once() {
    let gw = TestGateway::start().await;
    let api = Api::of(&gw);
    let mut ws = gw.client().await;
    let post = |key: &'static str, text: &'static str| {
        let addr = api.addr;
        async move {
            let body = json!({ "text": text }).to_string();
            let headers = [
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key),
            ];
            http(
                addr,
                "POST",
                "/api/v1/broadcast",
                &headers,
                Some(body.as_bytes()),
            )
            .await
        }
    };
    let first = post("pay-9", "order 9 paid").await;
    assert_eq!(first.status, 200, "{}", first.json());
    assert_eq!(first.json()["delivered"], 1);
    assert_eq!(recv_text(&mut ws).await, "order 9 paid");
    let retry = post("pay-9", "order 9 paid").await;
    assert_eq!((retry.status, retry.json()), (200, first.json()));
    assert_eq!(gw.stat(|s| &s.commands_deduplicated), 1);
    let metrics = api.get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines()
            .any(|l| l == "wsgate_commands_deduplicated_total 1"),
        "{text}"
    );

    post("pay-9", "order 9 refunded").await.expect_error(
        400,
        "bad_request",
        &["different command"],
    );
    post("pay-é", "x").await.expect_error(
        400,
        "bad_request",
        &["Idempotency-Key", "printable ASCII"],
    );
    api.ok("/api/v1/broadcast", json!({ "text": "marker" }))
        .await;
    assert_eq!(recv_text(&mut ws).await, "marker", "delivered once");
}

#[tokio::test]
async fn grpc_idempotency_key_carries_a_retried_call_out_once() {
    let gw = TestGateway::start().await;
    let mut api = PushApiClient::new(gw.grpc_channel().await);
    let mut ws = gw.client().await;
    let call = |key: &str, text: &str| {
        let mut request = Request::new(Broadcast {
            payload: Some(Payload::text(text)),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("idempotency-key", key.parse().expect("ASCII"));
        request
    };
    let first = api
        .broadcast(call("pay-10", "order 10 paid"))
        .await
        .expect("first");
    assert_eq!(recv_text(&mut ws).await, "order 10 paid");
    let retry = api
        .broadcast(call("pay-10", "order 10 paid"))
        .await
        .expect("retry");
    assert_eq!(first.into_inner(), retry.into_inner());
    let reused = api.broadcast(call("pay-10", "order 10 refunded")).await;
    let status = reused.expect_err("an id reused for another command");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("different command"), "{status:?}");
    let mut bad = Request::new(Broadcast {
        payload: Some(Payload::text("x")),
        ..Default::default()
    });
    bad.metadata_mut()
        .insert("idempotency-key", "pay\t12".parse().expect("ASCII"));
    let status = api.broadcast(bad).await.expect_err("a bad key");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("printable ASCII"), "{status:?}");
    api.broadcast(call("pay-11", "marker"))
        .await
        .expect("marker");
    assert_eq!(recv_text(&mut ws).await, "marker", "delivered once");
    assert_eq!(gw.stat(|s| &s.commands_deduplicated), 1);
}
