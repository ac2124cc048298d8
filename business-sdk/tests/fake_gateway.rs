//! The SDK against a scripted gateway (raw frames over TCP), for what the real gateway never
//! sends: an Authorize to a process that did not ask for them, gateway-bound bodies, and an
//! answer after the link dropped. Everything else is tested against the real gateway in
//! gateway/tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use wsgate_business::proto::WorkerCodec;
use wsgate_business::proto::v1::envelope::Body;
use wsgate_business::proto::v1::{self, BindUser, Envelope, RegisterOk};
use wsgate_business::{Authorize, Client, ErrorCode, Event, Events};

type Peer = Framed<TcpStream, WorkerCodec>;

const WAIT: Duration = Duration::from_secs(5);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn recv(peer: &mut Peer) -> Envelope {
    within("a frame from the SDK", peer.next())
        .await
        .expect("link open")
        .expect("frame decodes")
}

/// Accepts the SDK's link and registers it; returns the peer and the Register it sent.
async fn accept(listener: &TcpListener) -> (Peer, v1::Register) {
    let (stream, _) = within("the SDK to dial", listener.accept())
        .await
        .expect("accept");
    let mut peer = Framed::new(stream, WorkerCodec::default());
    let first = recv(&mut peer).await;
    let Some(Body::Register(register)) = first.body else {
        panic!("expected Register first, got {first:?}");
    };
    peer.send(Envelope {
        request_id: first.request_id,
        body: Some(Body::RegisterOk(RegisterOk {
            node_id: "fake".into(),
            protocol_version: 1,
            limits: None,
        })),
        ..Default::default()
    })
    .await
    .expect("send RegisterOk");
    (peer, register)
}

async fn next_event(events: &mut Events) -> Event {
    loop {
        match within("an event", events.recv())
            .await
            .expect("events open")
        {
            Event::Connected { .. } => continue,
            other => return other,
        }
    }
}

async fn setup(authorize: bool) -> (Client, Events, Peer, v1::Register, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let connect = tokio::spawn(async move {
        Client::builder(addr)
            .authorize(authorize)
            .backoff(Duration::from_millis(10), Duration::from_millis(20))
            .connect()
            .await
    });
    let (peer, register) = accept(&listener).await;
    let (client, events) = connect.await.expect("join").expect("connect");
    (client, events, peer, register, listener)
}

#[tokio::test]
async fn an_answer_after_the_link_dropped_is_disconnected() {
    let (client, mut events, mut peer, _, listener) = setup(true).await;
    peer.send(Envelope {
        request_id: 5,
        body: Some(Body::Authorize(Authorize::default())),
        ..Default::default()
    })
    .await
    .expect("send Authorize");
    let Event::Authorize(call) = next_event(&mut events).await else {
        panic!("expected Event::Authorize");
    };
    drop(peer);
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected { .. }
    ));
    // The SDK reconnects; the old question must not be answered on the new registration.
    let (mut peer, _) = accept(&listener).await;
    assert!(matches!(
        call.deny(401, "late").await,
        Err(wsgate_business::Error::Disconnected)
    ));
    // The new link still works: a ping is answered, and nothing else arrives first.
    peer.send(Envelope {
        request_id: 9,
        body: Some(Body::Ping(v1::Ping {})),
        ..Default::default()
    })
    .await
    .expect("send Ping");
    let pong = recv(&mut peer).await;
    assert!(
        matches!(pong.body, Some(Body::Pong(_))) && pong.request_id == 9,
        "{pong:?}"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn authorize_without_registering_for_it_is_refused() {
    let (client, _events, mut peer, register, _listener) = setup(false).await;
    assert!(!register.authorize);
    peer.send(Envelope {
        request_id: 3,
        body: Some(Body::Authorize(Authorize::default())),
        ..Default::default()
    })
    .await
    .expect("send Authorize");
    let answer = recv(&mut peer).await;
    assert_eq!(answer.request_id, 3);
    assert!(
        matches!(answer.body, Some(Body::Error(ref e)) if e.code == ErrorCode::Unsupported as i32),
        "{answer:?}"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn business_only_bodies_from_the_gateway_are_unsupported() {
    let (client, _events, mut peer, _, _listener) = setup(false).await;
    peer.send(Envelope {
        request_id: 4,
        body: Some(Body::BindUser(BindUser::default())),
        ..Default::default()
    })
    .await
    .expect("send BindUser");
    let answer = recv(&mut peer).await;
    assert_eq!(answer.request_id, 4);
    assert!(
        matches!(answer.body, Some(Body::Error(ref e)) if e.code == ErrorCode::Unsupported as i32),
        "{answer:?}"
    );
    client.shutdown().await;
}
