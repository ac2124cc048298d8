//! Hostile business processes: commands past every per-command limit, one connection given
//! tens of thousands of topics, a command large enough to take seconds, answers that would not
//! fit a frame, and a process that pipelines commands and never reads the answers.

use futures_util::{FutureExt, SinkExt, StreamExt};
use wsgate_business::{Error, ErrorCode, Payload, Targets};
use wsgate_proto::v1::{
    Envelope, EventKind, QueryConnInfo, Register, SingleCast, Subscribe, envelope::Body,
};

use super::common::raw_ws::Raw;
use super::common::*;
use super::{Neighbour, nothing_left};

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn limit_exceeded<T: std::fmt::Debug>(result: Result<T, Error>, words: &[&str]) {
    match result {
        Err(Error::Gateway {
            code: ErrorCode::LimitExceeded,
            message,
        }) => {
            for w in words {
                assert!(message.contains(w), "{message:?} should mention {w:?}");
            }
        }
        other => panic!("expected LIMIT_EXCEEDED, got {other:?}"),
    }
}

/// A raw link that registers for no events (so it takes no client from the neighbour).
async fn quiet_link(gw: &TestGateway) -> RawLink {
    let mut link = raw_link(gw.worker_addr).await;
    link.send(Envelope {
        request_id: 1,
        body: Some(Body::Register(Register {
            name: "hostile".into(),
            events: vec![EventKind::None as i32],
            protocol_version: 1,
            ..Register::default()
        })),
        ..Default::default()
    })
    .await
    .expect("register");
    assert!(matches!(
        raw_next(&mut link).await,
        Some(Envelope {
            body: Some(Body::RegisterOk(_)),
            ..
        })
    ));
    link
}

/// The Result answering `request_id` on a raw link (pings skipped).
async fn result_of(link: &mut RawLink, request_id: u64) -> wsgate_proto::v1::Result {
    loop {
        match raw_next(link).await {
            Some(Envelope {
                request_id: id,
                body: Some(Body::Result(r)),
                ..
            }) if id == request_id => return r,
            Some(Envelope {
                body: Some(Body::Ping(_)),
                ..
            }) => continue,
            other => panic!("expected the Result of {request_id}, got {other:?}"),
        }
    }
}

/// Every per-command limit refuses the whole command, names its setting and changes nothing.
#[tokio::test]
async fn commands_past_their_limits_are_refused_whole() {
    let gw = TestGateway::start().await;
    let mut neighbour = Neighbour::start(&gw).await;
    let conn = neighbour.conn_id.clone();
    let c = neighbour.client.clone();
    let text = || Payload::text("x");
    limit_exceeded(
        c.subscribe(names("t", 60_000), Targets::conn(conn.clone()))
            .await,
        &["Subscribe.topics", "60000", "--max-topics-per-command"],
    );
    limit_exceeded(
        c.unsubscribe(names("t", 1001), Targets::conn(conn.clone()))
            .await,
        &["Unsubscribe.topics", "1001"],
    );
    limit_exceeded(
        c.publish(names("t", 1001), text(), []).await,
        &["Publish.topics"],
    );
    limit_exceeded(
        c.delete_topics(names("t", 1001)).await,
        &["DeleteTopics.topics"],
    );
    limit_exceeded(c.counts(names("t", 1001)).await, &["QueryCounts.topics"]);
    limit_exceeded(
        c.multicast(names("gw-1-", 10_001), text()).await,
        &["Multicast.conn_ids", "10001", "--max-conn-ids-per-command"],
    );
    limit_exceeded(
        c.broadcast(text(), names("gw-1-", 10_001)).await,
        &["Broadcast.exclude"],
    );
    limit_exceeded(
        c.send_to_users(names("u", 10_001), text(), []).await,
        &["SendToUsers.user_ids", "--max-user-ids-per-command"],
    );
    limit_exceeded(
        c.force_offline_users(names("u", 10_001), 4000, "", None)
            .await,
        &["ForceOffline.user_ids"],
    );
    limit_exceeded(
        c.online(names("gw-1-", 10_001), vec![]).await,
        &["QueryOnline.conn_ids"],
    );
    limit_exceeded(
        c.subscribe(["t"], Targets::users(names("u", 10_001))).await,
        &["Subscribe.user_ids"],
    );
    // Nothing was done: the neighbour's connection is in no topic and still connected.
    let counts = c.counts([]).await.expect("counts");
    assert_eq!((counts.topics, counts.connections), (0, 1));
    // Exactly at the limits is fine.
    let sent = c
        .multicast(names("nope-1-", 10_000), text())
        .await
        .expect("at the limit");
    assert_eq!(sent.unknown_conn_ids.len(), 10_000);
    neighbour.check().await;
    gw.stop().await;
}

/// A Subscribe that would take a connection past --max-topics-per-conn leaves that connection
/// as it was; the others named in the same command are served.
#[tokio::test]
async fn a_connection_at_its_topic_limit_is_left_unchanged() {
    let gw = TestGateway::start_with(|c| c.max_topics_per_conn = 100).await;
    let (client, mut events) = gw.business("topics").await;
    let _full = gw.client().await;
    let full = events.open().await.conn_id;
    let _empty = gw.client().await;
    let empty = events.open().await.conn_id;
    client
        .subscribe(names("a", 95), Targets::conn(full.clone()))
        .await
        .expect("within the limit");
    let mut link = quiet_link(&gw).await;
    link.send(Envelope {
        request_id: 7,
        body: Some(Body::Subscribe(Subscribe {
            topics: names("b", 10),
            conn_ids: vec![full.clone(), empty.clone()],
            user_ids: vec![],
        })),
        ..Default::default()
    })
    .await
    .expect("send");
    let result = result_of(&mut link, 7).await;
    assert_eq!(result.code, ErrorCode::LimitExceeded as i32, "{result:?}");
    assert_eq!(result.limited_conn_ids, std::slice::from_ref(&full));
    assert_eq!(result.delivered, 1, "the other connection was served");
    assert!(
        result.message.contains("--max-topics-per-conn"),
        "{}",
        result.message
    );
    let info = client.conn_info([full, empty]).await.expect("info");
    assert_eq!(info[0].topics.len(), 95, "all or nothing per connection");
    assert_eq!(info[1].topics.len(), 10);
    gw.stop().await;
}

/// One command that takes a while never holds the gateway: while a single Subscribe of
/// 60,000 topics on one connection runs, a neighbour's message goes to a business process and
/// back, so the command's Result is still on its way when the echo arrives. (Before commands
/// gave their thread back, everything waited for it, heartbeats and /healthz included.)
/// The connection then closes holding 60,000 topics: its ConnClose, about 8 MB, reaches the
/// business process and the link stays up.
#[tokio::test]
async fn a_huge_subscribe_stalls_nobody_and_its_close_event_fits() {
    // A frame large enough for 100,000 topics of up to 128 characters (4 bytes each).
    let gw = TestGateway::start_with(|c| {
        c.max_topics_per_conn = 100_000;
        c.max_topics_per_command = 60_000;
        c.max_frame_bytes = 64 * 1024 * 1024;
    })
    .await;
    let mut neighbour = Neighbour::start(&gw).await;
    let mut victim = Raw::connect(&gw).await;
    let victim_id = neighbour
        .client
        .list_all(wsgate_business::ListKind::Connections, "")
        .await
        .expect("list")
        .into_iter()
        .find(|id| *id != neighbour.conn_id)
        .expect("the victim's id");
    let mut link = quiet_link(&gw).await;
    let topics: Vec<String> = (0..60_000).map(|i| format!("{i:x>100}")).collect();
    link.send(Envelope {
        request_id: 9,
        body: Some(Body::Subscribe(Subscribe {
            topics,
            conn_ids: vec![victim_id.clone()],
            user_ids: vec![],
        })),
        ..Default::default()
    })
    .await
    .expect("send the big command");
    neighbour.check().await;
    assert!(
        link.next().now_or_never().is_none(),
        "the neighbour was served while the command ran"
    );
    let result = result_of(&mut link, 9).await;
    assert_eq!(
        (result.code, result.delivered),
        (0, 1),
        "{}",
        result.message
    );
    // 25,000 more, as the independent run added them: the batch costs what it names,
    // whatever the connection already holds.
    let more: Vec<String> = (0..25_000).map(|i| format!("more-{i}")).collect();
    let report = neighbour
        .client
        .subscribe(more, Targets::conn(victim_id.clone()))
        .await
        .expect("another batch");
    assert_eq!(report.delivered, 1);
    neighbour.check().await;
    victim.frame(0x88, &1000u16.to_be_bytes(), true).await;
    let close = neighbour.next_close().await;
    assert_eq!(close.conn_id, victim_id);
    assert_eq!(close.topics.len(), 85_000);
    assert_eq!(gw.stat(|s| &s.frames_too_large), 0);
    // The link that carried it is still up.
    neighbour.check().await;
    gw.stop().await;
}

/// QueryConnInfo of connections whose details outgrow a frame: the answer stops at the frame,
/// names the rest in more_conn_ids, and the SDK asks again until it has them all.
#[tokio::test]
async fn conn_info_too_big_for_one_frame_comes_in_parts() {
    let gw = TestGateway::start_with(|c| {
        c.max_frame_bytes = 2 * 1024 * 1024;
        c.max_conn_ids_per_command = 2000;
        c.max_user_ids_per_command = 2000;
    })
    .await;
    let (client, mut events) = gw.business("info").await;
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..24 {
        clients.push(gw.client().await);
        ids.push(events.open().await.conn_id);
    }
    let topics: Vec<String> = (0..1000).map(|i| format!("{i:t>120}")).collect();
    client
        .subscribe(topics, Targets::conns(ids.clone()))
        .await
        .expect("1000 topics each");
    let mut link = quiet_link(&gw).await;
    link.send(Envelope {
        request_id: 3,
        body: Some(Body::QueryConnInfo(QueryConnInfo {
            conn_ids: ids.clone(),
        })),
        ..Default::default()
    })
    .await
    .expect("send");
    let result = result_of(&mut link, 3).await;
    let Some(wsgate_proto::v1::result::Reply::ConnInfo(reply)) = result.reply else {
        panic!("expected a ConnInfoReply: {result:?}");
    };
    assert!(!reply.conns.is_empty() && !reply.more_conn_ids.is_empty());
    assert_eq!(reply.conns.len() + reply.more_conn_ids.len(), 24);
    let all = client
        .conn_info(ids)
        .await
        .expect("every connection, in parts");
    assert_eq!(all.len(), 24);
    assert!(all.iter().all(|c| c.topics.len() == 1000));
    assert_eq!(gw.stat(|s| &s.frames_too_large), 0);
    gw.stop().await;
}

/// A business process that pipelines 20,000 commands and never reads an answer stalls only
/// its own link: other business processes and clients are served, and once it goes away
/// nothing of it stays.
#[tokio::test]
async fn a_process_that_never_reads_its_answers_stalls_only_itself() {
    let gw = TestGateway::start().await;
    let mut neighbour = Neighbour::start(&gw).await;
    let mut link = quiet_link(&gw).await;
    for i in 0..20_000u64 {
        let env = Envelope {
            request_id: i + 10,
            body: Some(Body::SingleCast(SingleCast {
                conn_id: "test-gw-1-ffff".into(),
                payload: Some(Payload::text("x")),
            })),
            ..Default::default()
        };
        // The gateway stops reading once its answers back up; feed what fits.
        if link.feed(env).now_or_never().is_none() {
            break;
        }
    }
    let _ = link.flush().now_or_never();
    neighbour.check().await;
    drop(link);
    neighbour.check().await;
    nothing_left(&gw, 1).await;
    gw.stop().await;
}
