//! Acknowledged events on the worker link (`Register.acks`): numbered, held until
//! acknowledged, bounded by the window, and handed in order to another business process,
//! marked `redelivered`, when the link dies or stops acknowledging.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use wsgate_proto::v1::{Ack, Envelope, ErrorCode, Ping, Register, envelope::Body};

/// A raw link registered with acks.
async fn acking_link(gw: &TestGateway, name: &str) -> RawLink {
    let register = Register {
        name: name.into(),
        protocol_version: 1,
        acks: true,
        ..Default::default()
    };
    let (link, ok) = raw_register_with(gw.worker_addr, register).await;
    let limits = ok.limits.expect("RegisterOk carries the limits");
    assert!(
        limits.ack_window > 0 && limits.ack_timeout_ms > 0,
        "{limits:?}"
    );
    link
}

async fn ack(link: &mut RawLink, up_to: u64) {
    link.send(Envelope {
        body: Some(Body::Ack(Ack { up_to })),
        ..Default::default()
    })
    .await
    .expect("send Ack");
}

/// An event as a test sees it: (event number, redelivered, what it is).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    event_seq: u64,
    redelivered: bool,
    what: String,
}

/// The next event on a raw link (pings skipped).
async fn next_event(link: &mut RawLink) -> Seen {
    let env = raw_next_not_ping(link)
        .await
        .expect("the link stays open for the next event");
    let what = match env.body {
        Some(Body::ConnOpen(_)) => "open".to_owned(),
        Some(Body::ConnMessage(m)) => format!(
            "{}#{}",
            String::from_utf8_lossy(&m.payload.expect("a payload").data),
            m.seq
        ),
        Some(Body::ConnClose(_)) => "close".to_owned(),
        other => panic!("expected an event, got {other:?}"),
    };
    Seen {
        event_seq: env.event_seq,
        redelivered: env.redelivered,
        what,
    }
}

fn seen(event_seq: u64, redelivered: bool, what: &str) -> Seen {
    Seen {
        event_seq,
        redelivered,
        what: what.into(),
    }
}

#[tokio::test]
async fn what_a_lost_link_did_not_acknowledge_goes_to_another_in_order_marked_redelivered() {
    let gw = TestGateway::start().await;
    let mut first = acking_link(&gw, "first").await;
    let mut ws = gw.client().await;
    for text in ["m1", "m2", "m3"] {
        send_text(&mut ws, text).await;
    }
    assert_eq!(next_event(&mut first).await, seen(1, false, "open"));
    assert_eq!(next_event(&mut first).await, seen(2, false, "m1#1"));
    assert_eq!(next_event(&mut first).await, seen(3, false, "m2#2"));
    assert_eq!(next_event(&mut first).await, seen(4, false, "m3#3"));
    ack(&mut first, 2).await;

    // A second process joins (new connections only), then the first dies.
    let mut second = acking_link(&gw, "second").await;
    drop(first);
    assert_eq!(next_event(&mut second).await, seen(1, true, "m2#2"));
    assert_eq!(next_event(&mut second).await, seen(2, true, "m3#3"));
    // The connection is now the second's; what the client sends next comes after.
    send_text(&mut ws, "m4").await;
    assert_eq!(next_event(&mut second).await, seen(3, false, "m4#4"));
    assert_eq!(
        gw.stat(|s| &s.events_redelivered),
        2,
        "the acknowledged events were not redelivered"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_link_that_stops_acknowledging_is_closed_and_its_events_move() {
    let gw = TestGateway::start_with(|c| {
        c.worker_ack_timeout = Duration::from_millis(300);
        c.worker_heartbeat_interval = Duration::from_millis(100);
    })
    .await;
    // Alone, it gets the connection; then it takes events and never acknowledges them (a
    // process stopped with SIGSTOP behind a socket that still accepts bytes).
    let mut stuck = acking_link(&gw, "stuck").await;
    let mut ws = gw.client().await;
    send_text(&mut ws, "paid").await;
    assert_eq!(next_event(&mut stuck).await, seen(1, false, "open"));
    assert_eq!(next_event(&mut stuck).await, seen(2, false, "paid#1"));
    let mut healthy = acking_link(&gw, "healthy").await;

    let err = expect_error_then_eof(&mut stuck).await;
    assert_eq!(err.code, ErrorCode::AckTimeout as i32);
    assert!(err.message.contains("acknowledge"), "{}", err.message);
    assert_eq!(next_event(&mut healthy).await, seen(1, true, "open"));
    assert_eq!(next_event(&mut healthy).await, seen(2, true, "paid#1"));
    ack(&mut healthy, 2).await;
    send_text(&mut ws, "shipped").await;
    assert_eq!(next_event(&mut healthy).await, seen(3, false, "shipped#2"));
    assert_eq!(gw.stat(|s| &s.links_ack_timeouts), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_full_window_holds_further_events_until_an_ack_opens_it() {
    let gw = TestGateway::start_with(|c| c.worker_ack_window = 2).await;
    let mut link = acking_link(&gw, "small").await;
    let mut ws = gw.client().await;
    for text in ["a", "b", "c", "d"] {
        send_text(&mut ws, text).await;
    }
    assert_eq!(next_event(&mut link).await, seen(1, false, "open"));
    assert_eq!(next_event(&mut link).await, seen(2, false, "a#1"));
    // The gateway has read all four messages; the window is full, so a Ping's Pong comes
    // back with no event before it.
    wait_until("the gateway read the four messages", || {
        gw.stats.messages_in.get() == 4
    })
    .await;
    for id in [7, 8] {
        link.send(Envelope {
            request_id: id,
            body: Some(Body::Ping(Ping {})),
            ..Default::default()
        })
        .await
        .expect("send Ping");
        match raw_next_not_ping(&mut link).await {
            Some(Envelope {
                request_id,
                body: Some(Body::Pong(_)),
                ..
            }) => assert_eq!(request_id, id),
            other => panic!("a full window writes no event; got {other:?}"),
        }
    }
    ack(&mut link, 1).await;
    assert_eq!(next_event(&mut link).await, seen(3, false, "b#2"));
    ack(&mut link, 3).await;
    assert_eq!(next_event(&mut link).await, seen(4, false, "c#3"));
    assert_eq!(next_event(&mut link).await, seen(5, false, "d#4"));
    gw.stop().await;
}

#[tokio::test]
async fn an_ack_for_events_never_sent_closes_the_link_with_bad_request() {
    let gw = TestGateway::start().await;
    let mut link = acking_link(&gw, "liar").await;
    ack(&mut link, 5).await;
    let err = expect_error_then_eof(&mut link).await;
    assert_eq!(err.code, ErrorCode::BadRequest as i32);
    assert!(err.message.contains("never sent"), "{}", err.message);
    gw.stop().await;
}

#[tokio::test]
async fn a_link_without_acks_gets_unnumbered_events_and_may_ignore_acks() {
    let gw = TestGateway::start().await;
    let mut link = raw_register(gw.worker_addr, "").await;
    ack(&mut link, 3).await;
    let mut ws = gw.client().await;
    send_text(&mut ws, "hi").await;
    assert_eq!(next_event(&mut link).await, seen(0, false, "open"));
    assert_eq!(next_event(&mut link).await, seen(0, false, "hi#1"));
    gw.stop().await;
}

/// The Rust SDK with `acks(true)`: an event counts as taken when the application receives it.
/// What a process had been given but not received when it went away goes to the next one.
#[tokio::test]
async fn the_sdk_acknowledges_what_the_application_received_and_no_more() {
    use wsgate_business::{AckPoint, Event};
    let gw = TestGateway::start().await;
    let (first, mut first_events) = sdk_acking(&gw, "first", AckPoint::Received).await;
    let mut ws = gw.client().await;
    send_text(&mut ws, "m1").await;
    let mut received = Vec::new();
    while received.len() < 2 {
        match within("an event", first_events.recv()).await {
            Some(Event::Open(_)) => received.push("open".to_owned()),
            Some(Event::Message(m)) => received.push(format!("m#{}", m.seq)),
            Some(_) => {}
            None => panic!("the first process's events ended"),
        }
        assert!(
            !first_events.redelivered(),
            "first deliveries are not flagged"
        );
    }
    assert_eq!(received, ["open", "m#1"]);
    wait_until("the two events received are acknowledged", || {
        gw.stat(|s| &s.events_unacked) == 0
    })
    .await;
    // Two more are written to the process, which never receives them.
    send_text(&mut ws, "m2").await;
    send_text(&mut ws, "m3").await;
    wait_until("the gateway holds the two events not received", || {
        gw.stat(|s| &s.events_unacked) == 2
    })
    .await;

    let (_second, mut second_events) = sdk_acking(&gw, "second", AckPoint::Received).await;
    drop(first);
    drop(first_events);
    let mut redelivered = Vec::new();
    while redelivered.len() < 2 {
        match within("a redelivered event", second_events.recv()).await {
            Some(Event::Message(m)) => {
                assert!(second_events.redelivered(), "message {} is flagged", m.seq);
                redelivered.push(m.seq);
            }
            Some(_) => {}
            None => panic!("the second process's events ended"),
        }
    }
    assert_eq!(redelivered, [2, 3], "the events not received, in order");
    wait_until("the second process acknowledged them", || {
        gw.stat(|s| &s.events_unacked) == 0
    })
    .await;
    assert_eq!(gw.stat(|s| &s.events_redelivered), 2);
    gw.stop().await;
}

/// With `--no-business-wait`, the events of a gateway left without any business process wait
/// for the next one to register: those the only process had not acknowledged when it died,
/// and those clients send meanwhile, in order.
#[tokio::test]
async fn with_no_business_wait_the_next_process_gets_what_came_while_there_was_none() {
    use wsgate_business::{AckPoint, Event};
    let gw =
        TestGateway::start_with(|c| c.no_business_wait = std::time::Duration::from_secs(10)).await;
    let (first, mut first_events) = sdk_acking(&gw, "only", AckPoint::Received).await;
    let mut ws = gw.client().await;
    send_text(&mut ws, "m1").await;
    let mut got = 0;
    while got < 2 {
        match within("an event", first_events.recv()).await {
            Some(Event::Open(_) | Event::Message(_)) => got += 1,
            Some(_) => {}
            None => panic!("the events ended"),
        }
    }
    // Written to the only process, never received by its application: it dies with them.
    send_text(&mut ws, "m2").await;
    wait_until("the gateway holds m2", || {
        gw.stat(|s| &s.events_unacked) == 1
    })
    .await;
    drop(first);
    drop(first_events);
    wait_until("no business process is left", || {
        gw.stat(|s| &s.links_current) == 0
    })
    .await;
    // Sent while there is none.
    send_text(&mut ws, "m3").await;
    wait_until("events wait for a process", || {
        gw.stat(|s| &s.events_waited_for_business) >= 1
    })
    .await;

    let (_next, mut next_events) = sdk_acking(&gw, "restarted", AckPoint::Received).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match within("a waiting event", next_events.recv()).await {
            Some(Event::Message(m)) => seen.push((m.seq, next_events.redelivered())),
            Some(_) => {}
            None => panic!("the events ended"),
        }
    }
    assert_eq!(
        seen,
        [(2, true), (3, false)],
        "m2 redelivered, then m3, in order"
    );
    assert_eq!(gw.stat(|s| &s.dropped_no_business), 0);
}

/// With `AckPoint::Handled`, an event counts as taken only once the application asks for the
/// next one: a process that dies while handling one gets it redelivered elsewhere.
#[tokio::test]
async fn with_ack_point_handled_an_event_being_handled_when_the_process_dies_is_redelivered() {
    use wsgate_business::{AckPoint, Event};
    let gw = TestGateway::start().await;
    let (first, mut first_events) = sdk_acking(&gw, "first", AckPoint::Handled).await;
    let mut ws = gw.client().await;
    send_text(&mut ws, "m1").await;
    loop {
        match within("m1", first_events.recv()).await {
            Some(Event::Message(m)) => {
                assert_eq!(m.seq, 1);
                break;
            }
            Some(_) => {}
            None => panic!("the events ended"),
        }
    }
    // ConnOpen was handled (the application asked for the next event); m1 is being handled.
    wait_until("only m1 is unacknowledged", || {
        gw.stat(|s| &s.events_unacked) == 1
    })
    .await;
    let (_second, mut second_events) = sdk_acking(&gw, "second", AckPoint::Handled).await;
    drop(first);
    drop(first_events); // dies while handling m1
    loop {
        match within("m1 again", second_events.recv()).await {
            Some(Event::Message(m)) => {
                assert_eq!(m.seq, 1);
                assert!(second_events.redelivered());
                break;
            }
            Some(_) => {}
            None => panic!("the events ended"),
        }
    }
    // Handled explicitly: acknowledged without asking for another event.
    second_events.handled();
    wait_until("m1 acknowledged by the second process", || {
        gw.stat(|s| &s.events_unacked) == 0
    })
    .await;
}

/// An SDK business process registered with acks, acknowledging at `point`.
async fn sdk_acking(
    gw: &TestGateway,
    name: &str,
    point: wsgate_business::AckPoint,
) -> (wsgate_business::Client, wsgate_business::Events) {
    wsgate_business::Client::builder(gw.worker_addr.to_string())
        .name(name)
        .acks(true)
        .ack_point(point)
        .connect()
        .await
        .expect("the business process connects")
}
