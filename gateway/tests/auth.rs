//! Authentication at the handshake: the authorize hook, guests, and (in jwt.rs) JWTs.

mod common;

use std::time::Duration;

use common::*;
use wsgate_business::{AuthorizeReply, Client, Event, Payload};

/// An authorizer that wants no connection events: `?user=NAME` is allowed as NAME with a topic,
/// session and first message, `?ban` gets 403, `?silent` is never answered, `?bad` gets an
/// invalid user id, anything else gets 401.
async fn authorizer(gw: &TestGateway) -> Client {
    let (client, mut events) = Client::builder(gw.worker_addr.to_string())
        .name("auth")
        .authorize(true)
        .events([wsgate_business::EventKind::None])
        .connect()
        .await
        .expect("authorizer connects");
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Event::Authorize(call) = event else {
                continue;
            };
            let query = call.request.query.clone();
            assert!(
                call.request.headers.contains_key("sec-websocket-key"),
                "all headers are passed"
            );
            if let Some(user) = query.strip_prefix("user=") {
                let reply = AuthorizeReply {
                    allow: true,
                    user_id: user.to_string(),
                    topics: vec!["lobby".into()],
                    session: [("plan".to_string(), "pro".to_string())].into(),
                    first_message: Some(Payload::text("welcome")),
                    ..Default::default()
                };
                call.reply(reply).await.expect("answer the hook");
            } else if query == "bad" {
                call.allow("x".repeat(200)).await.expect("answer the hook");
            } else if query == "ban" {
                call.deny(403, "banned").await.expect("answer the hook");
            } else if query == "silent" {
                drop(call); // never answered: the gateway times out
            } else {
                call.deny(401, "who are you?")
                    .await
                    .expect("answer the hook");
            }
        }
    });
    client
}

#[tokio::test]
async fn the_authorize_hook_allows_binds_and_denies() {
    let gw = TestGateway::start_with(|c| {
        c.authorize_hook = true;
        c.authorize_timeout = Duration::from_millis(500);
    })
    .await;
    // Nobody to ask yet: the default fallback refuses with 503 and says why.
    let body = refused(&gw.url(), 503).await;
    assert!(body.contains("no business process"), "{body}");

    let _auth = authorizer(&gw).await;
    let (client, mut events) = gw.business("app").await;

    let mut ws = connect(&format!("{}?user=ann", gw.url())).await;
    assert_eq!(
        recv_text(&mut ws).await,
        "welcome",
        "the first message comes right after the upgrade"
    );
    let open = events.open().await;
    assert_eq!(open.user_id, "ann");
    assert_eq!(open.topics, vec!["lobby".to_string()]);
    assert_eq!(open.session.get("plan").map(String::as_str), Some("pro"));
    // The hook's state is live: topic publish and user sends reach the connection.
    client
        .publish(
            vec!["lobby".to_string()],
            Payload::text("lobby news"),
            Vec::<String>::new(),
        )
        .await
        .unwrap();
    assert_eq!(recv_text(&mut ws).await, "lobby news");

    assert!(
        refused(&format!("{}?who", gw.url()), 401)
            .await
            .contains("who are you?")
    );
    assert!(
        refused(&format!("{}?ban", gw.url()), 403)
            .await
            .contains("banned")
    );
    let body = refused(&format!("{}?silent", gw.url()), 503).await;
    assert!(body.contains("within"), "{body}");
    gw.stop().await;
}

#[tokio::test]
async fn the_allow_fallback_lets_guests_in_when_the_hook_is_silent() {
    let gw = TestGateway::start_with(|c| {
        c.authorize_hook = true;
        c.authorize_timeout = Duration::from_millis(200);
        c.authorize_fallback = wsgate::Fallback::Allow;
    })
    .await;
    let (_client, mut events) = gw.business("app").await;
    let _ws = connect(&gw.url()).await;
    assert_eq!(events.open().await.user_id, "");
    gw.stop().await;
}

#[tokio::test]
async fn guests_without_a_user_are_closed_with_4002() {
    let gw = TestGateway::start_with(|c| c.guest_timeout = Duration::from_millis(400)).await;
    let (client, mut events) = gw.business("guests").await;
    let mut member = gw.client().await;
    let member_id = events.open().await.conn_id;
    let mut guest = gw.client().await;
    let guest_id = events.open().await.conn_id;
    client.bind_user(member_id.clone(), "m").await.unwrap();

    assert_eq!(u16::from(recv_close(&mut guest).await.code), 4002);
    let close = events.close().await;
    assert_eq!(
        (close.conn_id.as_str(), close.code),
        (guest_id.as_str(), 4002)
    );
    // The bound connection outlives the deadline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .single_cast(member_id, Payload::text("still here"))
        .await
        .unwrap();
    assert_eq!(recv_text(&mut member).await, "still here");
    gw.stop().await;
}

#[tokio::test]
async fn plain_http_requests_get_400_with_a_hint() {
    let gw = TestGateway::start().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(gw.ws_addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    within("the response", tcp.read_to_string(&mut response))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("WebSocket"), "{response}");
    gw.stop().await;
}
