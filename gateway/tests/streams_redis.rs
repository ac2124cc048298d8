//! The Redis stream engine (docs/streams.md) against a real `redis-server`: two gateways
//! sharing one history, so a client recovers on the other gateway; the same offsets on both;
//! a gap filled from Redis; Redis going away and coming back (a server of the test's own, on a
//! free port: the shared one on 127.0.0.1:6379 is never stopped). Each test uses its own key
//! prefix. Outside CI a missing `redis-server` skips the tests; in CI it fails them (`.ci/run`
//! installs and starts Redis).

mod common;

use std::time::Duration;

use common::brokers::OwnServer;
use common::http::Api;
use common::streams::*;
use common::*;
use serde_json::{Value, json};
use wsgate_business::{
    Client, Cluster, ClusterEvents, ErrorClass, Event, Payload, StaticDiscovery,
};

async fn redis_gateway(node: &str, url: &str, prefix: &str, rules: &[&str]) -> TestGateway {
    let (node, url, prefix) = (node.to_owned(), url.to_owned(), prefix.to_owned());
    gateway_with(rules, move |c| {
        c.node_id = node;
        c.stream_engine = wsgate::StreamEngine::Redis;
        c.stream_redis_url = url;
        c.stream_redis_prefix = prefix;
    })
    .await
}

/// A cluster client of `gws`, once connected to every one (so each cast reaches them all).
async fn cluster_of(gws: &[&TestGateway]) -> (Cluster, ClusterEvents) {
    let addrs = gws.iter().map(|g| g.worker_addr.to_string()).collect();
    let (cluster, mut events) = Cluster::builder(StaticDiscovery::new(addrs))
        .name("publisher")
        .events([wsgate_proto::v1::EventKind::None])
        .connect()
        .await
        .expect("the cluster connects");
    let mut connected = std::collections::HashSet::new();
    within("every gateway connected", async {
        while connected.len() < gws.len() {
            let e = events.recv().await.expect("events open");
            if matches!(e.event, Event::Connected { .. }) {
                connected.insert(e.node_id);
            }
        }
    })
    .await;
    (cluster, events)
}

async fn publish(cluster: &Cluster, user: &str, text: &str) {
    cluster
        .send_to_users([user], Payload::text(text), Vec::new())
        .await
        .expect("SendToUsers");
}

#[tokio::test]
async fn a_client_recovers_on_the_other_gateway_with_the_same_offsets() {
    if !redis_here("the Redis stream tests") {
        return;
    }
    let prefix = redis_prefix("other-gateway");
    let rules = ["users k-* history=100 age=10m"];
    let gw0 = redis_gateway("gw0", REDIS, &prefix, &rules).await;
    let gw1 = redis_gateway("gw1", REDIS, &prefix, &rules).await;
    let (cluster, _events) = cluster_of(&[&gw0, &gw1]).await;

    let mut on0 = stream_client(&gw0, "k-1", &Value::Null).await;
    let joined = until_joined(&mut on0, "user:k-1").await;
    let epoch = joined[0]["epoch"].clone();
    // A second client of the same user on the other gateway sees the same publications.
    let mut on1 = stream_client(&gw1, "k-1", &Value::Null).await;
    let joined1 = until_joined(&mut on1, "user:k-1").await;
    assert_eq!(joined1[0]["epoch"], epoch, "one epoch for the cluster");

    for n in 1..=5 {
        publish(&cluster, "k-1", &n.to_string()).await;
    }
    let mut last = Value::Null;
    for n in 1..=5u64 {
        let a = next_json(&mut on0).await;
        let b = next_json(&mut on1).await;
        assert_eq!(
            (a["offset"].as_u64(), a["data"].as_str()),
            (Some(n), Some(&*n.to_string()))
        );
        assert_eq!(
            (b["offset"].clone(), b["epoch"].clone()),
            (a["offset"].clone(), a["epoch"].clone())
        );
        last = a;
    }
    drop(on0);
    for n in 6..=8 {
        publish(&cluster, "k-1", &n.to_string()).await;
    }
    // The client comes back on gw1 and gets what it missed there.
    let mut back = stream_client(&gw1, "k-1", &json!({"user:k-1": at(&last)})).await;
    let replay = until_joined(&mut back, "user:k-1").await;
    assert_eq!(datas(&replay), ["6", "7", "8"], "{replay:?}");
    assert_eq!(
        replay.last().map(|j| j["recovered"].clone()),
        Some(json!(true))
    );
    publish(&cluster, "k-1", "9").await;
    let live = next_json(&mut back).await;
    assert_eq!(
        (live["offset"].as_u64(), live["data"].as_str()),
        (Some(9), Some("9"))
    );
    gw0.stop().await;
    gw1.stop().await;
}

/// A publication that reached only one gateway (its link to the other was down) is filled in
/// from Redis by the other before it delivers what came after: in order, nothing missing.
#[tokio::test]
async fn a_gateway_fills_a_gap_from_redis_before_delivering_what_follows() {
    if !redis_here("the Redis stream tests") {
        return;
    }
    let prefix = redis_prefix("gap");
    let rules = ["users g-* history=100 age=10m"];
    let gw0 = redis_gateway("gw0", REDIS, &prefix, &rules).await;
    let gw1 = redis_gateway("gw1", REDIS, &prefix, &rules).await;
    let (to0, _e0) = Client::builder(gw0.worker_addr.to_string())
        .name("to0")
        .connect()
        .await
        .expect("connects");
    let (to1, _e1) = Client::builder(gw1.worker_addr.to_string())
        .name("to1")
        .connect()
        .await
        .expect("connects");
    let mut on1 = stream_client(&gw1, "g-1", &Value::Null).await;
    until_joined(&mut on1, "user:g-1").await;
    // Each command goes to both gateways under one command id, as the cluster client sends it.
    let both = async |id: &str, text: &str| {
        for c in [&to0, &to1] {
            c.with_command_id(id)
                .send_to_users(["g-1"], Payload::text(text), Vec::new())
                .await
                .expect("SendToUsers");
        }
    };
    both("gap-1", "one").await;
    to0.with_command_id("gap-2")
        .send_to_users(["g-1"], Payload::text("two"), Vec::new())
        .await
        .expect("SendToUsers");
    both("gap-3", "three").await;
    let got: Vec<(u64, String)> = [
        next_json(&mut on1).await,
        next_json(&mut on1).await,
        next_json(&mut on1).await,
    ]
    .iter()
    .map(|f| {
        (
            f["offset"].as_u64().unwrap_or(0),
            f["data"].as_str().unwrap_or("").to_owned(),
        )
    })
    .collect();
    assert_eq!(
        got,
        [(1, "one".into()), (2, "two".into()), (3, "three".into())]
    );
    gw0.stop().await;
    gw1.stop().await;
}

#[tokio::test]
async fn redis_going_away_is_said_and_coming_back_starts_a_new_epoch() {
    if !redis_here("the Redis stream tests") {
        return;
    }
    let port = reserve_addrs(1)[0].port();
    let mut redis = OwnServer::redis_on(port).await;
    let rules = ["users o-* history=100 age=10m"];
    let gw = redis_gateway("gw", &redis.redis_url(), &redis_prefix("outage"), &rules).await;
    let (biz, _events) = gw.business("biz").await;
    let mut ws = stream_client(&gw, "o-1", &Value::Null).await;
    until_joined(&mut ws, "user:o-1").await;
    biz.send_to_users(["o-1"], Payload::text("before"), Vec::new())
        .await
        .expect("SendToUsers");
    let before = next_json(&mut ws).await;
    assert_eq!(before["offset"], 1);

    redis.kill().await;
    // Refused with the reason (--stream-redis-down fail, the default), through the SDK and HTTP.
    let err = biz
        .send_to_users(["o-1"], Payload::text("during"), Vec::new())
        .await
        .expect_err("refused while Redis is away");
    assert_eq!(err.class(), ErrorClass::Unavailable, "{err}");
    assert!(err.to_string().contains("Redis"), "{err}");
    let reply = Api::of(&gw)
        .post(
            "/api/v1/users/send",
            json!({"user_ids": ["o-1"], "text": "during"}),
        )
        .await;
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let ready = Api::of(&gw).get("/readyz").await;
    let body = String::from_utf8_lossy(&ready.body);
    assert_eq!(ready.status, 200);
    assert!(body.starts_with("degraded"), "{body}");
    assert_eq!(gw.stat(|s| &s.stream_engine_up), 0);

    // Back (empty, as a restart without persistence leaves it): a new epoch, and a client that
    // was at the old one is told so.
    let mut redis = OwnServer::redis_on(port).await;
    within("a publication once Redis is back", async {
        while biz
            .send_to_users(["o-1"], Payload::text("after"), Vec::new())
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let after = next_json(&mut ws).await;
    assert_eq!(
        (after["offset"].as_u64(), after["data"].as_str()),
        (Some(1), Some("after"))
    );
    assert_ne!(after["epoch"], before["epoch"], "a new epoch");
    assert_eq!(gw.stat(|s| &s.stream_engine_up), 1);
    let mut back = stream_client(&gw, "o-1", &json!({"user:o-1": at(&before)})).await;
    let joined = until_joined(&mut back, "user:o-1").await;
    assert_eq!(
        joined
            .last()
            .map(|j| (j["recovered"].clone(), j["gap"].clone())),
        Some((json!(false), json!("epoch")))
    );
    gw.stop().await;
    redis.kill().await;
}

#[tokio::test]
async fn with_redis_down_live_publications_are_delivered_without_history() {
    if !redis_here("the Redis stream tests") {
        return;
    }
    let port = reserve_addrs(1)[0].port();
    let mut redis = OwnServer::redis_on(port).await;
    let rules = ["users l-* history=100 age=10m"];
    let (url, prefix) = (redis.redis_url(), redis_prefix("live"));
    let gw = gateway_with(&rules, move |c| {
        c.stream_engine = wsgate::StreamEngine::Redis;
        c.stream_redis_url = url;
        c.stream_redis_prefix = prefix;
        c.stream_redis_down = wsgate::WhenRedisDown::Live;
    })
    .await;
    let (biz, _events) = gw.business("biz").await;
    let mut ws = stream_client(&gw, "l-1", &Value::Null).await;
    until_joined(&mut ws, "user:l-1").await;
    redis.kill().await;
    biz.send_to_users(["l-1"], Payload::text("still"), Vec::new())
        .await
        .expect("delivered without history");
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "message", "data": "still"})
    );
    // A client joining meanwhile is told it was not recovered.
    let mut other = stream_client(
        &gw,
        "l-1",
        &json!({"user:l-1": {"epoch": "x", "offset": 1}}),
    )
    .await;
    let joined = until_joined(&mut other, "user:l-1").await;
    assert_eq!(
        joined.last().map(|j| j["gap"].clone()),
        Some(json!("unavailable"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_cache_mode_stream_in_redis_gives_its_latest_message_on_any_gateway() {
    if !redis_here("the Redis stream tests") {
        return;
    }
    let prefix = redis_prefix("cache");
    let rules = ["users c-* cache age=10m"];
    let gw0 = redis_gateway("gw0", REDIS, &prefix, &rules).await;
    let gw1 = redis_gateway("gw1", REDIS, &prefix, &rules).await;
    let (cluster, _events) = cluster_of(&[&gw0, &gw1]).await;
    // A first client, so both gateways have delivered up to the latest.
    let mut first = stream_client(&gw0, "c-1", &Value::Null).await;
    until_joined(&mut first, "user:c-1").await;
    for n in [10, 20, 30] {
        publish(&cluster, "c-1", &format!("{n}%")).await;
    }
    for _ in 0..3 {
        next_json(&mut first).await;
    }
    for gw in [&gw0, &gw1] {
        let mut ws = stream_client(gw, "c-1", &Value::Null).await;
        let joined = until_joined(&mut ws, "user:c-1").await;
        assert_eq!(datas(&joined), ["30%"], "the latest first: {joined:?}");
    }
    gw0.stop().await;
    gw1.stop().await;
}
