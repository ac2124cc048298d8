//! Consumers (docs/consumers.md) against the real brokers of this machine: messages in through
//! RabbitMQ, Redis (list, Pub/Sub, Stream group), NATS (core, JetStream) and a PostgreSQL
//! outbox, out at real WebSocket clients, each exactly once and in order; bad messages refused
//! with their reason and counted; brokers restarted and a gateway killed mid-stream without a
//! message lost.
//!
//! Each test has its own keys, queues, subjects and tables. A test that restarts a shared
//! server (RabbitMQ, PostgreSQL) holds its lock alone; the others of that server share it.

mod common;

use std::time::Duration;

use common::brokers::*;
use common::http::Api;
use common::streams::{gateway_with, plain_client};
use common::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::RwLock;
use wsgate::BadReason;

static RABBITMQ_LOCK: RwLock<()> = RwLock::const_new(());
static POSTGRES_LOCK: RwLock<()> = RwLock::const_new(());

fn rabbit_here() -> bool {
    listening(
        "the RabbitMQ consumer tests",
        5672,
        "rabbitmq-server -detached",
    )
}

fn nats_here() -> bool {
    let installed = common::runs("nats-server");
    listening(
        "the NATS consumer tests",
        4222,
        "nats-server -a 127.0.0.1 -p 4222 -js",
    ) && can_run(
        "the NATS consumer tests",
        (!installed).then(|| "nats-server is not on the PATH (apt-get install nats-server)".into()),
    )
}

fn postgres_here() -> bool {
    listening(
        "the PostgreSQL outbox tests",
        5432,
        "pg_ctlcluster <version> main start",
    )
}

/// A gateway (JWT users, so clients name theirs) running these `[[consumer]]` tables.
async fn consuming(tables: &[String]) -> TestGateway {
    consuming_with(tables, |_| {}).await
}

async fn consuming_with(tables: &[String], tweak: impl FnOnce(&mut wsgate::Config)) -> TestGateway {
    let specs: Vec<wsgate::ConsumerSpec> = tables
        .iter()
        .map(|t| toml::from_str(t).unwrap_or_else(|e| panic!("a consumer table: {e}\n{t}")))
        .collect();
    gateway_with(&[], |c| {
        c.consumers = specs;
        tweak(c);
    })
    .await
}

/// A gateway running one consumer, once it is connected, and a client of that gateway.
async fn consumer_and_client(table: String, name: &str) -> (TestGateway, Ws) {
    let gw = consuming(&[table]).await;
    connected(&gw, name, true).await;
    let ws = plain_client(&gw, "u").await;
    (gw, ws)
}

/// Waits until the consumer is (or is not) connected to its broker.
async fn connected(gw: &TestGateway, name: &str, up: bool) {
    let stats = gw.stats.clone();
    wait_until(&format!("consumer {name} up={up}"), move || {
        stats.consumers.get(name).is_some_and(|c| c.is_up() == up)
    })
    .await;
}

fn counts(gw: &TestGateway, name: &str, reason: BadReason) -> u64 {
    gw.stats
        .consumers
        .get(name)
        .map_or(0, |c| c.bad_count(reason))
}

/// Message `i`: a JSON broadcast with its id.
fn cast(i: usize) -> String {
    json!({"method": "broadcast", "params": {"text": format!("m{i}")}, "id": format!("m{i}")})
        .to_string()
}

/// Reads `m{from}` … `m{to - 1}` in order, then `end`: nothing twice, nothing missing.
async fn expect_all(ws: &mut Ws, from: usize, to: usize) {
    for i in from..to {
        assert_eq!(recv_text(ws).await, format!("m{i}"), "message {i}");
    }
}

async fn clients(gw: &TestGateway, n: usize) -> Vec<Ws> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(plain_client(gw, &format!("u{i}")).await);
    }
    out
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connects")
}

/// Deletes a test's keys.
async fn delete(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: impl IntoIterator<Item = String>,
) {
    let mut del = redis::cmd("DEL");
    for key in keys {
        del.arg(key);
    }
    let _: () = del.query_async(conn).await.expect("DEL");
}

async fn lpush(conn: &mut redis::aio::MultiplexedConnection, key: &str, data: &[u8]) {
    let _: i64 = redis::cmd("LPUSH")
        .arg(key)
        .arg(data)
        .query_async(conn)
        .await
        .expect("LPUSH");
}

#[tokio::test]
async fn redis_list_in_order_with_bad_messages_refused_and_dead_lettered() {
    if !streams_redis_here() {
        return;
    }
    let key = unique("list");
    let gw = consuming(&[format!(
        "name = \"push\"\nkind = \"redis-list\"\nkey = \"{key}\"\nmax_bytes = 2000\nbad = \"dead-letter\""
    )])
    .await;
    connected(&gw, "push", true).await;
    let mut ws = clients(&gw, 2).await;
    let mut conn = redis(common::streams::REDIS).await;
    for i in 0..100 {
        lpush(&mut conn, &key, cast(i).as_bytes()).await;
        match i {
            10 => lpush(&mut conn, &key, b"not json").await,
            20 => lpush(&mut conn, &key, br#"{"method":"explode","params":{}}"#).await,
            30 => lpush(&mut conn, &key, "x".repeat(3000).as_bytes()).await,
            40 => {
                lpush(
                    &mut conn,
                    &key,
                    br#"{"method":"send","params":{"text":"a"}}"#,
                )
                .await
            }
            // The same message again, as a redelivery would bring it: carried out once.
            50 => lpush(&mut conn, &key, cast(50).as_bytes()).await,
            _ => {}
        }
    }
    lpush(&mut conn, &key, cast(100).as_bytes()).await;
    for ws in &mut ws {
        expect_all(ws, 0, 101).await;
    }
    // Once the list is empty and a blocking read has waited, the lag is known: nothing waits, and
    // the last one has left the processing list.
    let stats = gw.stats.clone();
    wait_until("the list's lag", move || {
        stats.consumers.get("push").and_then(|c| c.lag()) == Some(0)
    })
    .await;
    for reason in [
        BadReason::NotJson,
        BadReason::UnknownMethod,
        BadReason::TooLarge,
        BadReason::Invalid,
    ] {
        assert_eq!(counts(&gw, "push", reason), 1, "{reason:?}");
    }
    let dead: i64 = redis::cmd("LLEN")
        .arg(format!("{key}:dead"))
        .query_async(&mut conn)
        .await
        .expect("LLEN");
    assert_eq!(dead, 4, "the bad messages are in the dead-letter list");
    let processing: i64 = redis::cmd("LLEN")
        .arg(format!("{key}:wsgate:{}", gw.node_id))
        .query_async(&mut conn)
        .await
        .expect("LLEN");
    assert_eq!(processing, 0, "nothing is left in the processing list");
    // The metrics and the console's source say it all.
    let metrics = String::from_utf8(Api::of(&gw).get("/metrics").await.body).expect("utf-8");
    assert!(
        metrics.contains("wsgate_consumer_up{consumer=\"push\",kind=\"redis-list\"} 1")
            && metrics.contains("wsgate_consumer_lag{consumer=\"push\",kind=\"redis-list\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "wsgate_consumer_bad_messages_total{consumer=\"push\",kind=\"redis-list\",reason=\"not_json\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("wsgate_consumer_messages_total{consumer=\"push\",kind=\"redis-list\"} 102"),
        "101 casts and the repeated one: {metrics}"
    );
    delete(&mut conn, [key.clone(), format!("{key}:dead")]).await;
}

fn streams_redis_here() -> bool {
    common::streams::redis_here("the Redis consumer tests")
}

/// Ten rounds of one message through each of the list, the channel and the stream, each read
/// at the client before the next is sent, so the client sees them in this order.
async fn through_each(conn: &mut redis::aio::MultiplexedConnection, ws: &mut Ws, next: &mut usize) {
    for _ in 0..10 {
        lpush(conn, "l", cast(*next).as_bytes()).await;
        assert_eq!(recv_text(ws).await, format!("m{next}"));
        *next += 1;
        // A careful publisher checks that someone heard it: Pub/Sub keeps nothing.
        let heard: i64 = redis::cmd("PUBLISH")
            .arg("pub.a")
            .arg(format!("m{next}"))
            .query_async(conn)
            .await
            .expect("PUBLISH");
        assert_eq!(heard, 1, "the gateway is subscribed");
        assert_eq!(recv_text(ws).await, format!("m{next}"));
        *next += 1;
        let _: String = redis::cmd("XADD")
            .arg("s")
            .arg("*")
            .arg("data")
            .arg(cast(*next))
            .query_async(conn)
            .await
            .expect("XADD");
        assert_eq!(recv_text(ws).await, format!("m{next}"));
        *next += 1;
    }
}

#[tokio::test]
async fn redis_restarted_mid_stream_loses_nothing_list_pubsub_and_stream() {
    if !streams_redis_here() {
        return;
    }
    let mut server = OwnServer::redis().await;
    let url = server.redis_url();
    let gw = consuming(&[
        format!("name = \"list\"\nkind = \"redis-list\"\nurl = \"{url}\"\nkey = \"l\""),
        format!(
            "name = \"pub\"\nkind = \"redis-pubsub\"\nurl = \"{url}\"\nchannels = [\"pub.*\"]\ncommand = \"broadcast\""
        ),
        format!("name = \"stream\"\nkind = \"redis-stream\"\nurl = \"{url}\"\nkey = \"s\""),
    ])
    .await;
    for name in ["list", "pub", "stream"] {
        connected(&gw, name, true).await;
    }
    let mut ws = plain_client(&gw, "u").await;
    let mut conn = redis(&url).await;
    let mut next = 0;
    through_each(&mut conn, &mut ws, &mut next).await;

    server.kill().await;
    for name in ["list", "pub", "stream"] {
        connected(&gw, name, false).await;
    }
    let ready = Api::of(&gw).get("/readyz").await;
    let body = String::from_utf8_lossy(&ready.body).into_owned();
    assert_eq!(ready.status, 200, "{body}");
    assert!(
        body.starts_with("degraded") && body.contains("consumer list (redis-list) is not reading"),
        "{body}"
    );
    server.restart().await;
    for name in ["list", "pub", "stream"] {
        connected(&gw, name, true).await;
    }
    let mut conn = redis(&url).await;
    through_each(&mut conn, &mut ws, &mut next).await;
    let disconnects = gw
        .stats
        .consumers
        .get("list")
        .map(|c| wsgate::Stats::get(&c.disconnects));
    assert_eq!(disconnects, Some(1));
}

#[tokio::test]
async fn redis_stream_group_in_order_with_bad_entries_dead_lettered() {
    if !streams_redis_here() {
        return;
    }
    let key = unique("stream");
    let (gw, mut ws) = consumer_and_client(
        format!("name = \"s\"\nkind = \"redis-stream\"\nkey = \"{key}\"\nbad = \"dead-letter\""),
        "s",
    )
    .await;
    let mut conn = redis(common::streams::REDIS).await;
    for i in 0..60 {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("data")
            .arg(cast(i))
            .query_async(&mut conn)
            .await
            .expect("XADD");
        if i == 30 {
            let _: String = redis::cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("other")
                .arg("no data field")
                .query_async(&mut conn)
                .await
                .expect("XADD");
        }
    }
    expect_all(&mut ws, 0, 60).await;
    assert_eq!(counts(&gw, "s", BadReason::NotCommand), 1);
    let dead: i64 = redis::cmd("XLEN")
        .arg(format!("{key}:dead"))
        .query_async(&mut conn)
        .await
        .expect("XLEN");
    assert_eq!(dead, 1);
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&key)
        .arg("wsgate")
        .query_async(&mut conn)
        .await
        .expect("XPENDING");
    let redis::Value::Array(parts) = pending else {
        panic!("XPENDING: {pending:?}")
    };
    assert_eq!(
        parts.first(),
        Some(&redis::Value::Int(0)),
        "all acknowledged"
    );
    delete(&mut conn, [key.clone(), format!("{key}:dead")]).await;
}

#[tokio::test]
async fn two_gateways_share_a_redis_pattern_and_a_rabbitmq_queue_each_client_once() {
    if !streams_redis_here() || !rabbit_here() {
        return;
    }
    let _shared = RABBITMQ_LOCK.read().await;
    let queue = unique("shared");
    let prefix = unique("pub");
    let tables = [
        format!("name = \"q\"\nkind = \"rabbitmq\"\nqueue = \"{queue}\"\nprefetch = 10"),
        format!(
            "name = \"p\"\nkind = \"redis-pubsub\"\nchannels = [\"{prefix}.user.*\"]\ncommand = \"users/send\"\nfrom = \"{prefix}.user.{{id}}\"\nto = \"{{id}}\""
        ),
    ];
    let addrs = reserve_addrs(2);
    let peers: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let mut gws = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let peers = peers.clone();
        let addr = *addr;
        gws.push(
            consuming_with(&tables, move |c| {
                c.node_id = format!("gw{i}");
                c.worker_addr = addr;
                c.peers = peers;
            })
            .await,
        );
    }
    for gw in &gws {
        connected(gw, "q", true).await;
        connected(gw, "p", true).await;
        let stats = gw.stats.clone();
        // Each gateway's cluster client has linked to both (its own link and the other's).
        wait_until("both gateways' cluster links", move || {
            wsgate::Stats::get(&stats.peer_links_current) == 2
        })
        .await;
    }
    // User u7 has a connection on each gateway, u8 one on the first.
    let mut a7 = plain_client(&gws[0], "u7").await;
    let mut b7 = plain_client(&gws[1], "u7").await;
    let mut a8 = plain_client(&gws[0], "u8").await;

    // RabbitMQ: each message taken by one gateway, carried out on both.
    let rabbit = lapin::Connection::connect(RABBITMQ, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ connects");
    let channel = rabbit.create_channel().await.expect("a channel");
    for i in 0..100 {
        let body = json!({"method": "users/send", "params": {"user_ids": ["u7"], "text": format!("m{i}")}, "id": format!("q{i}")});
        publish(&channel, &queue, body.to_string().as_bytes(), None).await;
    }
    for ws in [&mut a7, &mut b7] {
        let mut got: Vec<String> = Vec::new();
        for _ in 0..100 {
            got.push(recv_text(ws).await);
        }
        got.sort_by_key(|m| m[1..].parse::<usize>().unwrap_or(usize::MAX));
        let want: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        assert_eq!(got, want, "each message once on each connection of u7");
    }
    // Counted once each gateway's answer is in, which can be after the clients have it.
    let all: Vec<_> = gws.iter().map(|gw| gw.stats.clone()).collect();
    wait_until("each message counted once, by one gateway", move || {
        all.iter()
            .map(|s| {
                s.consumers
                    .get("q")
                    .map_or(0, |c| wsgate::Stats::get(&c.messages))
            })
            .sum::<u64>()
            == 100
    })
    .await;

    // Redis Pub/Sub: both gateways hear each message; each delivers to its own connections.
    let mut conn = redis(common::streams::REDIS).await;
    for i in 0..50 {
        let heard: i64 = redis::cmd("PUBLISH")
            .arg(format!("{prefix}.user.u7"))
            .arg(format!("p{i}"))
            .query_async(&mut conn)
            .await
            .expect("PUBLISH");
        assert_eq!(heard, 2, "both gateways subscribe");
    }
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("{prefix}.user.u8"))
        .arg("for u8")
        .query_async(&mut conn)
        .await
        .expect("PUBLISH");
    for ws in [&mut a7, &mut b7] {
        for i in 0..50 {
            assert_eq!(recv_text(ws).await, format!("p{i}"));
        }
    }
    assert_eq!(recv_text(&mut a8).await, "for u8", "u8 got only its own");
    // Nothing more reached u7 (u8's message, a second copy): a last one comes next.
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("{prefix}.user.u7"))
        .arg("last")
        .query_async(&mut conn)
        .await
        .expect("PUBLISH");
    assert_eq!(recv_text(&mut a7).await, "last");
    assert_eq!(recv_text(&mut b7).await, "last");
    delete_queue(&channel, &queue).await;
}

async fn publish(channel: &lapin::Channel, queue: &str, body: &[u8], id: Option<&str>) {
    let mut props = lapin::BasicProperties::default().with_delivery_mode(2);
    if let Some(id) = id {
        props = props.with_message_id(id.into());
    }
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            lapin::options::BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .expect("publish")
        .await
        .expect("published");
}

async fn delete_queue(channel: &lapin::Channel, queue: &str) {
    let _ = channel
        .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
        .await;
}

async fn declare(channel: &lapin::Channel, queue: &str, args: lapin::types::FieldTable) {
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .expect("queue declared");
}

#[tokio::test]
async fn rabbitmq_in_order_ids_deduplicated_bad_ones_dead_lettered() {
    if !rabbit_here() {
        return;
    }
    let _shared = RABBITMQ_LOCK.read().await;
    let queue = unique("notice");
    let dead = format!("{queue}.dead");
    let rabbit = lapin::Connection::connect(RABBITMQ, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ connects");
    let channel = rabbit.create_channel().await.expect("a channel");
    // The operator's queue, with its dead-letter route; wsgate only checks that it exists.
    declare(&channel, &dead, Default::default()).await;
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        lapin::types::AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        lapin::types::AMQPValue::LongString(dead.as_str().into()),
    );
    declare(&channel, &queue, args).await;
    let gw = consuming(&[format!(
        "name = \"notice\"\nkind = \"rabbitmq\"\nqueue = \"{queue}\"\ndeclare = false\nbad = \"dead-letter\"\ncommand = \"broadcast\""
    )])
    .await;
    connected(&gw, "notice", true).await;
    let mut ws = clients(&gw, 2).await;
    for i in 0..100 {
        // A fixed command: the body is the message; the id is the message_id property.
        let id = format!("n{i}");
        publish(&channel, &queue, format!("m{i}").as_bytes(), Some(&id)).await;
        if i == 50 {
            // Published twice (a producer retrying after a lost confirm): carried out once.
            publish(&channel, &queue, b"m50", Some(&id)).await;
            // An id that cannot be a command id.
            publish(&channel, &queue, b"never", Some("\u{7f}")).await;
        }
    }
    for ws in &mut ws {
        expect_all(ws, 0, 100).await;
    }
    assert_eq!(counts(&gw, "notice", BadReason::BadId), 1);
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let dead_letters = async {
        loop {
            let q = channel
                .queue_declare(dead.as_str().into(), passive, Default::default())
                .await
                .expect("passive declare");
            if q.message_count() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    within("the bad message in the dead-letter queue", dead_letters).await;
    delete_queue(&channel, &queue).await;
    delete_queue(&channel, &dead).await;
}

#[tokio::test]
async fn rabbitmq_restarted_mid_stream_loses_nothing() {
    if !rabbit_here() {
        return;
    }
    // Stops the broker: no other RabbitMQ test runs meanwhile.
    let _alone = RABBITMQ_LOCK.write().await;
    let queue = unique("restart");
    let (gw, mut ws) = consumer_and_client(
        format!("name = \"r\"\nkind = \"rabbitmq\"\nqueue = \"{queue}\"\nprefetch = 20"),
        "r",
    )
    .await;
    {
        let rabbit = lapin::Connection::connect(RABBITMQ, lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ connects");
        let channel = rabbit.create_channel().await.expect("a channel");
        for i in 0..300 {
            publish(&channel, &queue, cast(i).as_bytes(), None).await;
        }
    }
    // Mid-stream: some carried out, some taken and not yet acknowledged, most still queued.
    for i in 0..20 {
        assert_eq!(recv_text(&mut ws).await, format!("m{i}"));
    }
    run("rabbitmqctl", &["stop_app"]).await;
    connected(&gw, "r", false).await;
    run("rabbitmqctl", &["start_app"]).await;
    connected(&gw, "r", true).await;
    {
        let rabbit = lapin::Connection::connect(RABBITMQ, lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ connects again");
        let channel = rabbit.create_channel().await.expect("a channel");
        publish(&channel, &queue, cast(300).as_bytes(), None).await;
        expect_all(&mut ws, 20, 301).await;
        delete_queue(&channel, &queue).await;
    }
}

/// A gateway process consuming `table`, in a cluster with `peers` (its worker address first).
async fn consumer_process(node: &str, table: &str, peers: &[String]) -> tokio::process::Child {
    let file = std::env::temp_dir().join(format!("{}.toml", unique(node)));
    std::fs::write(&file, format!("[[consumer]]\n{table}\n")).expect("config written");
    let path = file.display().to_string();
    let peers_list = peers.join(",");
    let args = [
        "--config",
        &path,
        "--node-id",
        node,
        "--worker-addr",
        &peers[0],
        "--peers",
        &peers_list,
    ];
    spawn_wsgate(&args).await.0
}

/// Kills the consuming gateway mid-stream and starts it again: the clients of the other
/// gateway get every message once, in order (`ordered`; else in any order, as a JetStream
/// redelivery comes after later messages).
async fn killed_mid_stream(table: &str, ordered: bool, mut push: impl AsyncFnMut(usize)) {
    let addrs = reserve_addrs(2);
    let peers = vec![addrs[0].to_string(), addrs[1].to_string()];
    let own = peers.clone();
    let gw = gateway_with(&[], move |c| {
        c.node_id = "stays".into();
        c.worker_addr = addrs[1];
        c.peers = own;
    })
    .await;
    let mut ws = plain_client(&gw, "u").await;
    let mut process = consumer_process("killed", table, &peers).await;
    let stats = gw.stats.clone();
    let linked = move || wsgate::Stats::get(&stats.peer_links_current) == 2;
    wait_until("the consuming gateway linked", linked.clone()).await;
    // Enough that most are still at the broker, or taken and not finished, at the kill.
    const BEFORE: usize = 1000;
    const ALL: usize = 1100;
    for i in 0..BEFORE {
        push(i).await;
    }
    let mut got = Vec::new();
    for _ in 0..40 {
        got.push(recv_text(&mut ws).await);
    }
    process.kill().await.expect("killed");
    let mut again = consumer_process("killed", table, &peers).await;
    for i in BEFORE..ALL {
        push(i).await;
    }
    for _ in 40..ALL {
        got.push(recv_text(&mut ws).await);
    }
    if !ordered {
        got.sort_by_key(|m| m[1..].parse::<usize>().unwrap_or(usize::MAX));
    }
    let want: Vec<String> = (0..ALL).map(|i| format!("m{i}")).collect();
    assert!(
        got == want,
        "every message once{}: got {} messages, first differing at {:?}",
        if ordered { ", in order" } else { "" },
        got.len(),
        got.iter().zip(&want).position(|(g, w)| g != w)
    );
    // And nothing after them: a duplicate would come before this one.
    push(ALL).await;
    assert_eq!(recv_text(&mut ws).await, format!("m{ALL}"));
    again.kill().await.expect("stopped");
}

#[tokio::test]
async fn rabbitmq_gateway_killed_mid_stream_loses_nothing() {
    if !rabbit_here() {
        return;
    }
    let _shared = RABBITMQ_LOCK.read().await;
    let queue = unique("killed");
    let rabbit = lapin::Connection::connect(RABBITMQ, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ connects");
    let channel = rabbit.create_channel().await.expect("a channel");
    declare(&channel, &queue, Default::default()).await;
    let table = format!("name = \"k\"\nkind = \"rabbitmq\"\nqueue = \"{queue}\"\nprefetch = 50");
    killed_mid_stream(&table, true, async |i| {
        publish(&channel, &queue, cast(i).as_bytes(), None).await;
    })
    .await;
    delete_queue(&channel, &queue).await;
}

#[tokio::test]
async fn redis_list_gateway_killed_mid_stream_loses_nothing() {
    if !streams_redis_here() {
        return;
    }
    let key = unique("killed");
    let mut conn = redis(common::streams::REDIS).await;
    let table = format!("name = \"k\"\nkind = \"redis-list\"\nkey = \"{key}\"");
    killed_mid_stream(&table, true, async |i| {
        lpush(&mut conn, &key, cast(i).as_bytes()).await;
    })
    .await;
    delete(&mut conn, [key.clone(), format!("{key}:wsgate:killed")]).await;
}

#[tokio::test]
async fn nats_subjects_mapped_to_users_and_a_restart_of_nats() {
    if !nats_here() {
        return;
    }
    let mut server = OwnServer::nats().await;
    let url = server.nats_url();
    let gw = consuming(&[format!(
        "name = \"n\"\nkind = \"nats\"\nurl = \"{url}\"\nsubjects = [\"user.*.notice\", \"misc.>\"]\ncommand = \"users/send\"\nfrom = \"user.{{id}}.notice\"\nto = \"{{id}}\""
    )])
    .await;
    connected(&gw, "n", true).await;
    let mut seven = plain_client(&gw, "7").await;
    let mut eight = plain_client(&gw, "8").await;
    let nats = async_nats::connect(&url).await.expect("NATS connects");
    for i in 0..50 {
        nats.publish("user.7.notice", format!("m{i}").into())
            .await
            .expect("publish");
        if i == 20 {
            // Heard, but `from` names no user in it: refused, and the rest go on.
            nats.publish("misc.x", "nobody".into())
                .await
                .expect("publish");
        }
    }
    nats.publish("user.8.notice", "eight".into())
        .await
        .expect("publish");
    nats.flush().await.expect("flush");
    expect_all(&mut seven, 0, 50).await;
    assert_eq!(recv_text(&mut eight).await, "eight", "8 got only its own");
    assert_eq!(counts(&gw, "n", BadReason::NoRoute), 1);

    server.kill().await;
    connected(&gw, "n", false).await;
    server.restart().await;
    connected(&gw, "n", true).await;
    let nats = async_nats::connect(&url)
        .await
        .expect("NATS connects again");
    for i in 50..100 {
        nats.publish("user.7.notice", format!("m{i}").into())
            .await
            .expect("publish");
    }
    nats.flush().await.expect("flush");
    expect_all(&mut seven, 50, 100).await;
}

#[tokio::test]
async fn jetstream_in_order_bad_ones_terminated_and_a_restart_of_nats() {
    if !nats_here() {
        return;
    }
    let mut server = OwnServer::nats().await;
    let url = server.nats_url();
    let (gw, mut ws) = consumer_and_client(format!(
        "name = \"js\"\nkind = \"jetstream\"\nurl = \"{url}\"\nstream = \"ORDERS\"\nsubjects = [\"orders.>\"]\nbad = \"dead-letter\"\ndead_letter = \"dead.orders\"\nredeliver_after = \"2s\""
    ), "js").await;
    let nats = async_nats::connect(&url).await.expect("NATS connects");
    let mut dead = nats.subscribe("dead.orders").await.expect("subscribe");
    let js = async_nats::jetstream::new(nats.clone());
    let send = async |i: usize| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("o{i}").as_str());
        js.publish_with_headers("orders.new", headers, cast(i).into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    };
    for i in 0..50 {
        send(i).await;
        if i == 25 {
            js.publish("orders.new", "not json".into())
                .await
                .expect("publish")
                .await
                .expect("stored");
        }
    }
    expect_all(&mut ws, 0, 50).await;
    let letter = within("the dead letter", dead.next()).await.expect("one");
    assert_eq!(&letter.payload[..], b"not json");
    assert_eq!(counts(&gw, "js", BadReason::NotJson), 1);

    // JetStream keeps its store on disk: what was published before the restart is there.
    server.kill().await;
    connected(&gw, "js", false).await;
    server.restart().await;
    connected(&gw, "js", true).await;
    let nats = async_nats::connect(&url)
        .await
        .expect("NATS connects again");
    let js = async_nats::jetstream::new(nats);
    for i in 50..80 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("o{i}").as_str());
        js.publish_with_headers("orders.new", headers, cast(i).into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    expect_all(&mut ws, 50, 80).await;
}

async fn postgres() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL connects");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn postgres_outbox_rows_in_order_bad_rows_kept_apart() {
    if !postgres_here() {
        return;
    }
    let _shared = POSTGRES_LOCK.read().await;
    let table = unique("outbox");
    let (gw, mut ws) = consumer_and_client(format!(
        "name = \"o\"\nkind = \"postgres-outbox\"\nurl = \"{POSTGRES}\"\ntable = \"{table}\"\nbad = \"dead-letter\""
    ), "o").await;
    let mut db = postgres().await;
    for i in 0..60 {
        // The application's own transaction: its change and the outbox row commit together.
        let tx = db.transaction().await.expect("BEGIN");
        tx.execute(
            &format!("INSERT INTO {table} (payload) VALUES ($1)"),
            &[&cast(i)],
        )
        .await
        .expect("INSERT");
        if i == 30 {
            tx.execute(
                &format!("INSERT INTO {table} (payload) VALUES ('{{\"method\":\"explode\"}}')"),
                &[],
            )
            .await
            .expect("INSERT");
        }
        tx.commit().await.expect("COMMIT");
    }
    // A transaction rolled back leaves nothing to send.
    let tx = db.transaction().await.expect("BEGIN");
    tx.execute(
        &format!("INSERT INTO {table} (payload) VALUES ('never')"),
        &[],
    )
    .await
    .expect("INSERT");
    tx.rollback().await.expect("ROLLBACK");
    db.execute(
        &format!("INSERT INTO {table} (payload) VALUES ($1)"),
        &[&cast(60)],
    )
    .await
    .expect("INSERT");
    expect_all(&mut ws, 0, 61).await;
    assert_eq!(counts(&gw, "o", BadReason::UnknownMethod), 1);
    // The batch commits (deleting its rows) once carried out: a moment after the clients.
    within("the carried-out rows deleted", async {
        loop {
            let left = db
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .expect("count");
            if left.get::<_, i64>(0) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let dead = db
        .query_one(&format!("SELECT reason FROM {table}_dead"), &[])
        .await
        .expect("one dead row");
    assert_eq!(dead.get::<_, String>(0), "unknown_method");
    db.batch_execute(&format!("DROP TABLE {table}; DROP TABLE {table}_dead"))
        .await
        .expect("DROP");
}

#[tokio::test]
async fn postgres_restarted_mid_stream_loses_nothing() {
    if !postgres_here() {
        return;
    }
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned());
    let Some(version) = version else {
        can_run(
            "the PostgreSQL restart test",
            Some("no cluster under /etc/postgresql to restart with pg_ctlcluster".into()),
        );
        return;
    };
    let _alone = POSTGRES_LOCK.write().await;
    let table = unique("restart");
    let (gw, mut ws) = consumer_and_client(
        format!(
            "name = \"o\"\nkind = \"postgres-outbox\"\nurl = \"{POSTGRES}\"\ntable = \"{table}\""
        ),
        "o",
    )
    .await;
    let db = postgres().await;
    for i in 0..200 {
        db.execute(
            &format!("INSERT INTO {table} (payload) VALUES ($1)"),
            &[&cast(i)],
        )
        .await
        .expect("INSERT");
    }
    for i in 0..20 {
        assert_eq!(recv_text(&mut ws).await, format!("m{i}"));
    }
    run(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "restart"],
    )
    .await;
    let db = within("PostgreSQL back", async {
        loop {
            if let Ok((client, connection)) =
                tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls).await
            {
                tokio::spawn(connection);
                return client;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    connected(&gw, "o", true).await;
    db.execute(
        &format!("INSERT INTO {table} (payload) VALUES ($1)"),
        &[&cast(200)],
    )
    .await
    .expect("INSERT");
    expect_all(&mut ws, 20, 201).await;
    assert!(
        gw.stats
            .consumers
            .get("o")
            .is_some_and(|c| wsgate::Stats::get(&c.disconnects) >= 1),
        "the restart was seen"
    );
    db.batch_execute(&format!("DROP TABLE {table}; DROP TABLE {table}_dead"))
        .await
        .expect("DROP");
}

#[tokio::test]
async fn bad_consumer_tables_stop_the_gateway_with_the_reason() {
    let spec: wsgate::ConsumerSpec =
        toml::from_str("name = \"x\"\nkind = \"rabbitmq\"").expect("parses");
    let config = wsgate::Config {
        consumers: vec![spec],
        ..common::test_config()
    };
    let err = wsgate::Gateway::bind(config).await.expect_err("refused");
    assert!(err.to_string().contains("needs `queue`"), "{err}");
    // From a file: the table, the key and what to write.
    let file = std::env::temp_dir().join(format!("{}.toml", unique("bad")));
    std::fs::write(&file, "[[consumer]]\nname = \"x\"\nkind = \"kafka\"\n").expect("written");
    let err = wsgate::Config::load(["wsgate", "--config", &file.display().to_string()])
        .expect_err("refused");
    assert!(
        err.to_string().contains("consumer #1") && err.to_string().contains("kafka"),
        "{err}"
    );
}

#[tokio::test]
async fn redis_stream_gateway_killed_mid_stream_loses_nothing() {
    if !streams_redis_here() {
        return;
    }
    let key = unique("killed_stream");
    let mut conn = redis(common::streams::REDIS).await;
    let table = format!("name = \"k\"\nkind = \"redis-stream\"\nkey = \"{key}\"");
    killed_mid_stream(&table, true, async |i| {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("data")
            .arg(cast(i))
            .query_async(&mut conn)
            .await
            .expect("XADD");
    })
    .await;
    delete(&mut conn, [key.clone()]).await;
}

#[tokio::test]
async fn jetstream_gateway_killed_mid_stream_loses_nothing() {
    if !nats_here() {
        return;
    }
    let server = OwnServer::nats().await;
    let url = server.nats_url();
    let table = format!(
        "name = \"k\"\nkind = \"jetstream\"\nurl = \"{url}\"\nstream = \"KILLED\"\nsubjects = [\"killed.>\"]\nredeliver_after = \"1s\""
    );
    let nats = async_nats::connect(&url).await.expect("NATS connects");
    let js = async_nats::jetstream::new(nats);
    // The stream exists before the first publish: the consumer creates it, but publishing
    // must not race it.
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "KILLED".into(),
        subjects: vec!["killed.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    killed_mid_stream(&table, false, async |i| {
        js.publish("killed.new", cast(i).into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    })
    .await;
}

#[tokio::test]
async fn postgres_outbox_gateway_killed_mid_stream_loses_nothing() {
    if !postgres_here() {
        return;
    }
    let _shared = POSTGRES_LOCK.read().await;
    let table = unique("killed");
    let db = postgres().await;
    // Created as the gateway would, so rows can be inserted before it starts.
    db.batch_execute(&format!(
        "CREATE TABLE {table} (id bigserial PRIMARY KEY, channel text NOT NULL DEFAULT '', payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await
    .expect("CREATE");
    let spec = format!(
        "name = \"k\"\nkind = \"postgres-outbox\"\nurl = \"{POSTGRES}\"\ntable = \"{table}\""
    );
    killed_mid_stream(&spec, true, async |i| {
        db.execute(
            &format!("INSERT INTO {table} (payload) VALUES ($1)"),
            &[&cast(i)],
        )
        .await
        .expect("INSERT");
    })
    .await;
    db.batch_execute(&format!("DROP TABLE {table}; DROP TABLE {table}_dead"))
        .await
        .expect("DROP");
}

#[tokio::test]
async fn a_fan_out_backlog_is_bounded_while_the_gateway_cannot_take_commands() {
    if !streams_redis_here() {
        return;
    }
    // Topic news:1 is a stream kept in a Redis that goes away: publications to it are refused
    // (--stream-redis-down fail), so the consumer keeps its message and tries again.
    let mut engine = OwnServer::redis().await;
    let channel = unique("flood");
    let table = format!(
        "name = \"p\"\nkind = \"redis-pubsub\"\nchannels = [\"{channel}\"]\ncommand = \"topics/publish\"\nto = \"news:1\""
    );
    let engine_url = engine.redis_url();
    let gw = consuming_with(&[table], move |c| {
        c.stream = vec!["topics news:* history=10".parse().expect("a rule")];
        c.stream_engine = wsgate::StreamEngine::Redis;
        c.stream_redis_url = engine_url;
    })
    .await;
    connected(&gw, "p", true).await;
    engine.kill().await;
    let mut conn = redis(common::streams::REDIS).await;
    let mut pipe = redis::pipe();
    for i in 0..10_200 {
        pipe.cmd("PUBLISH")
            .arg(&channel)
            .arg(format!("f{i}"))
            .ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.expect("PUBLISH");
    let stats = gw.stats.consumers.get("p").expect("the consumer");
    let seen = stats.clone();
    wait_until("the backlog past its bound dropped", move || {
        wsgate::Stats::get(&seen.dropped) >= 199
    })
    .await;
    let trying = stats.clone();
    wait_until("the consumer trying again", move || {
        wsgate::Stats::get(&trying.retries) >= 1
    })
    .await;
    assert!(
        wsgate::Stats::get(&stats.dropped) <= 200,
        "only what did not fit"
    );
    assert_eq!(wsgate::Stats::get(&stats.messages), 0);
    // Redis back: what waited is carried out.
    engine.restart().await;
    // 10,000 stream publications through Redis, after a backoff of up to 5 s: longer than
    // the usual wait on a loaded machine.
    let carried = async {
        while wsgate::Stats::get(&stats.messages) < 10_000 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), carried)
        .await
        .expect("the backlog carried out once Redis was back");
}
