//! Observability on a real gateway: the Prometheus exposition at /metrics moves as traffic
//! flows, /healthz and /readyz answer (readiness false during a drain), and the console page
//! works end to end in headless Chromium (gateway/tests/console/console.test.mjs).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use wsgate_business::{Payload, Targets};

/// One HTTP response, read to the end.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// A plain HTTP/1.1 request with `Connection: close`; enough for these endpoints.
async fn http(addr: SocketAddr, method: &str, path: &str) -> Response {
    within(&format!("{method} {path}"), async {
        let mut stream = TcpStream::connect(addr).await.expect("the API accepts");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).expect("a UTF-8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let body = if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Response {
            status,
            headers,
            body,
        }
    })
    .await
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// A scrape of /metrics: every sample by its series (`name` or `name{labels}`).
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    /// The value of one series; a missing series fails the test.
    fn get(&self, series: &str) -> f64 {
        match self.samples.get(series) {
            Some(v) => *v,
            None => panic!("no series {series} in\n{}", self.text),
        }
    }
}

async fn scrape(gw: &TestGateway) -> Scrape {
    let response = http(gw.api_addr, "GET", "/metrics").await;
    assert_eq!(response.status, 200);
    let samples = response
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect();
    Scrape {
        text: response.body,
        samples,
    }
}

/// Scrapes until `cond` holds (counters move right after the traffic, not with it).
async fn scrape_until(gw: &TestGateway, what: &str, cond: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = None;
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let s = scrape(gw).await;
            if cond(&s) {
                return s;
            }
            last = Some(s.text);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    match found {
        Ok(s) => s,
        Err(_) => panic!(
            "timed out waiting for {what}; last scrape:\n{}",
            last.unwrap_or_default()
        ),
    }
}

const FAMILIES: [(&str, &str); 19] = [
    ("wsgate_info", "gauge"),
    ("wsgate_ready", "gauge"),
    ("wsgate_connections", "gauge"),
    ("wsgate_connections_total", "counter"),
    ("wsgate_connections_max", "gauge"),
    ("wsgate_connections_refused_total", "counter"),
    ("wsgate_closes_total", "counter"),
    ("wsgate_messages_in_total", "counter"),
    ("wsgate_messages_out_total", "counter"),
    ("wsgate_bytes_in_total", "counter"),
    ("wsgate_bytes_out_total", "counter"),
    ("wsgate_dropped_total", "counter"),
    ("wsgate_business_links", "gauge"),
    ("wsgate_peer_links", "gauge"),
    ("wsgate_commands_total", "counter"),
    ("wsgate_command_errors_total", "counter"),
    ("wsgate_users", "gauge"),
    ("wsgate_topics", "gauge"),
    ("wsgate_event_dispatch_seconds", "histogram"),
];

#[tokio::test]
async fn the_exposition_is_well_formed() {
    let gw = TestGateway::start().await;
    let response = http(gw.api_addr, "GET", "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    for (name, kind) in FAMILIES {
        assert!(
            response.body.contains(&format!("\n# HELP {name} "))
                || response.body.starts_with(&format!("# HELP {name} ")),
            "HELP for {name}"
        );
        assert!(
            response.body.contains(&format!("# TYPE {name} {kind}\n")),
            "TYPE {kind} for {name}"
        );
    }
    let s = scrape(&gw).await;
    assert_eq!(s.get("wsgate_connections"), 0.0);
    assert_eq!(s.get("wsgate_ready"), 1.0);
    assert_eq!(
        s.get(r#"wsgate_info{node_id="test-gw",version="0.1.0"}"#),
        1.0
    );
    // Every label value is there from the start, at zero.
    for reason in [
        "client",
        "idle_timeout",
        "slow_consumer",
        "too_big",
        "business",
        "shutdown",
    ] {
        assert_eq!(
            s.get(&format!(r#"wsgate_closes_total{{reason="{reason}"}}"#)),
            0.0
        );
    }
    assert_eq!(s.get(r#"wsgate_commands_total{kind="broadcast"}"#), 0.0);
    // Histogram buckets are cumulative and end with +Inf = count.
    let inf = s.get(r#"wsgate_event_dispatch_seconds_bucket{le="+Inf"}"#);
    assert_eq!(inf, s.get("wsgate_event_dispatch_seconds_count"));
    let mut previous = 0.0;
    for line in s.text.lines() {
        if line.starts_with("wsgate_event_dispatch_seconds_bucket") {
            let v: f64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
            assert!(v >= previous, "buckets are cumulative: {line}");
            previous = v;
        }
    }
    gw.stop().await;
}

#[tokio::test]
async fn metrics_move_as_traffic_flows() {
    let gw = TestGateway::start().await;
    let (business, mut events) = gw.business("metrics").await;
    scrape_until(&gw, "the business link", |s| {
        s.get("wsgate_business_links") == 1.0
    })
    .await;
    let before = scrape(&gw).await;
    assert_eq!(before.get("wsgate_connections_total"), 0.0);
    assert_eq!(before.get("wsgate_event_dispatch_seconds_count"), 0.0);

    // Connect, and send one 5-byte message.
    let mut ws = gw.client().await;
    let conn_id = events.open().await.conn_id;
    send_text(&mut ws, "hello").await;
    assert_eq!(events.message().await.conn_id, conn_id);
    // ConnOpen and ConnMessage were dispatched (timed just after the business could see them).
    let s = scrape_until(&gw, "a connection, a message in, two events", |s| {
        s.get("wsgate_bytes_in_total") == 5.0 && s.get("wsgate_event_dispatch_seconds_count") == 2.0
    })
    .await;
    assert_eq!(s.get("wsgate_connections"), 1.0);
    assert_eq!(s.get("wsgate_connections_total"), 1.0);
    assert_eq!(s.get("wsgate_messages_in_total"), 1.0);
    assert!(s.get("wsgate_event_dispatch_seconds_sum") > 0.0);

    // Commands: a cast (6 bytes out), a bind and a subscribe, and one that fails.
    business
        .single_cast(conn_id.clone(), Payload::text("world!"))
        .await
        .unwrap();
    assert_eq!(recv_text(&mut ws).await, "world!");
    business.bind_user(conn_id.clone(), "ada").await.unwrap();
    business
        .subscribe(["news"], Targets::conn(conn_id.clone()))
        .await
        .unwrap();
    assert!(
        business
            .single_cast("test-gw-1-ffff", Payload::text("x"))
            .await
            .is_err(),
        "an unknown connection is an error"
    );
    // Counters are separate atomics: wait for the one that moves last.
    let s = scrape_until(&gw, "a message out", |s| {
        s.get("wsgate_bytes_out_total") == 6.0
    })
    .await;
    assert_eq!(s.get("wsgate_messages_out_total"), 1.0);
    assert_eq!(s.get(r#"wsgate_commands_total{kind="single_cast"}"#), 2.0);
    assert_eq!(s.get(r#"wsgate_commands_total{kind="bind_user"}"#), 1.0);
    assert_eq!(s.get(r#"wsgate_commands_total{kind="subscribe"}"#), 1.0);
    assert_eq!(
        s.get(r#"wsgate_command_errors_total{kind="single_cast"}"#),
        1.0
    );
    assert_eq!(
        s.get(r#"wsgate_command_errors_total{kind="bind_user"}"#),
        0.0
    );
    assert_eq!(s.get("wsgate_users"), 1.0);
    assert_eq!(s.get("wsgate_topics"), 1.0);

    // Queries count too (the APIs' path: the cluster client sends them over the worker link).
    let cluster = gw.cluster.clone().ready().await.unwrap();
    cluster.counts(Vec::<String>::new()).await.unwrap();
    scrape_until(&gw, "a counted query", |s| {
        s.get(r#"wsgate_commands_total{kind="query_counts"}"#) == 1.0
    })
    .await;

    // The client closes: the close is counted by reason and the gauges fall back.
    ws.close(Some(CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    assert_eq!(events.close().await.conn_id, conn_id);
    let s = scrape_until(&gw, "the close", |s| {
        s.get(r#"wsgate_closes_total{reason="client"}"#) == 1.0
            && s.get("wsgate_connections") == 0.0
            && s.get("wsgate_event_dispatch_seconds_count") == 3.0
    })
    .await;
    assert_eq!(s.get("wsgate_connections_total"), 1.0);
    assert_eq!(s.get("wsgate_users"), 0.0);
    assert_eq!(s.get("wsgate_topics"), 0.0);

    // A forced close counts as "business"; the business process leaving drops the gauge.
    let _ws = gw.client().await;
    let second = events.open().await.conn_id;
    business
        .force_offline(vec![second], 4100, "kicked", None)
        .await
        .unwrap();
    events.close().await;
    scrape_until(&gw, "a business close", |s| {
        s.get(r#"wsgate_closes_total{reason="business"}"#) == 1.0
    })
    .await;
    drop(business);
    drop(events);
    scrape_until(&gw, "the business link to go", |s| {
        s.get("wsgate_business_links") == 0.0
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn drops_and_policy_closes_are_counted() {
    let gw = TestGateway::start_with(|c| {
        c.send_queue = 8;
        c.max_message_bytes = 1024;
    })
    .await;

    // No business process: client messages are dropped and counted as such.
    let mut ws = gw.client().await;
    for _ in 0..3 {
        send_text(&mut ws, "anyone?").await;
    }
    scrape_until(
        &gw,
        "messages dropped for lack of a business process",
        |s| s.get(r#"wsgate_dropped_total{reason="no_business"}"#) == 3.0,
    )
    .await;

    // Too big: closed with 1009, counted as too_big.
    ws.send(Message::binary(vec![0u8; 4096])).await.unwrap();
    assert_eq!(u16::from(recv_close(&mut ws).await.code), 1009);
    scrape_until(&gw, "a too_big close", |s| {
        s.get(r#"wsgate_closes_total{reason="too_big"}"#) == 1.0
    })
    .await;

    // A client that never reads: broadcasts fill its queue; the message that does not fit is
    // dropped and the client closed as a slow consumer.
    let _stalled = gw.client().await;
    let cluster = gw.cluster.clone().ready().await.unwrap();
    let chunk = Payload::binary(vec![0u8; 64 * 1024]);
    let mut sent = 0;
    loop {
        let s = scrape(&gw).await;
        if s.get(r#"wsgate_closes_total{reason="slow_consumer"}"#) == 1.0 {
            assert!(s.get(r#"wsgate_dropped_total{reason="slow_consumer"}"#) >= 1.0);
            break;
        }
        assert!(sent < 4000, "the stalled client was never closed");
        cluster
            .broadcast(chunk.clone(), Vec::<String>::new())
            .await
            .unwrap();
        sent += 1;
    }
    scrape_until(&gw, "no connection left", |s| {
        s.get("wsgate_connections") == 0.0
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn clients_past_max_connections_get_503_and_are_counted() {
    let gw = TestGateway::start_with(|c| c.max_connections = 2).await;
    let (_business, mut events) = gw.business("limit").await;
    let mut first = gw.client().await;
    let _second = gw.client().await;
    events.open().await;
    events.open().await;

    let resp = refusal(gw.url()).await;
    assert_eq!(resp.status(), 503);
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap());
    assert_eq!(retry_after, Some("5"));
    let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
    assert!(
        body.contains("maximum of 2 clients") && body.contains("another gateway"),
        "{body}"
    );
    let s = scrape(&gw).await;
    assert_eq!(s.get("wsgate_connections_max"), 2.0);
    assert_eq!(s.get("wsgate_connections_refused_total"), 1.0);
    assert_eq!(s.get("wsgate_connections"), 2.0);

    // A client that leaves gives its seat back: the next one gets in.
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    events.close().await;
    let mut third = connect_when_a_seat_is_free(&gw.url()).await;
    events.open().await;
    assert_eq!(refusal(gw.url()).await.status(), 503);
    // Refused clients never reached the business process.
    send_text(&mut third, "hello").await;
    assert_eq!(&events.message().await.payload.unwrap().data[..], b"hello");
    gw.stop().await;
}

#[tokio::test]
async fn health_and_readiness_through_a_drain() {
    let mut gw = TestGateway::start().await;
    gw.cluster.clone().ready().await.unwrap();
    let health = http(gw.api_addr, "GET", "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let ready = http(gw.api_addr, "GET", "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));

    // A client that never reads holds the drain open (the gateway waits for its close
    // handshake), long enough to look at the probes mid-drain.
    let _silent = gw.client().await;
    wait_until("the client", || gw.stat(|s| &s.connections_current) == 1).await;
    gw.begin_shutdown();
    let mut seen = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let r = http(gw.api_addr, "GET", "/readyz").await;
        if r.status != 200 {
            seen = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = seen.expect("/readyz turned unready during the drain");
    assert_eq!((r.status, r.body.as_str()), (503, "draining"));
    let health = http(gw.api_addr, "GET", "/healthz").await;
    assert_eq!(health.status, 200, "alive while draining");
    let s = scrape(&gw).await;
    assert_eq!(s.get("wsgate_ready"), 0.0);
    gw.finished().await;
}

#[tokio::test]
async fn the_console_works_in_chromium() {
    // With an API key, so the page's calls must carry the key typed into its form. The client
    // port is 0: the console advertises the port the gateway really bound.
    console_in_chromium(Some("console-test-key")).await;
}

/// Without a key the API answers only this machine by name: the console, served from the API's
/// own loopback address, is exactly that, so it must keep working.
#[tokio::test]
async fn the_console_works_in_chromium_without_an_api_key() {
    console_in_chromium(None).await;
}

/// A consumer's row: connected, and the messages it carried out (docs/consumers.md).
#[tokio::test]
async fn the_console_shows_the_consumers_in_chromium() {
    if !common::streams::redis_here("the console's consumers test") {
        return;
    }
    let key = format!("{}list", common::streams::redis_prefix("console"));
    let table = format!("name = \"push\"\nkind = \"redis-list\"\nkey = \"{key}\"");
    let spec: wsgate::ConsumerSpec = toml::from_str(&table).expect("a consumer table");
    console_in_chromium_with(None, Some(("push", key)), |c| c.consumers = vec![spec]).await;
}

async fn console_in_chromium(key: Option<&'static str>) {
    console_in_chromium_with(key, None, |c| c.api_key = key.map(String::from)).await;
}

/// The console test, on a gateway `tweak`ed; with a consumer (its name and Redis list), three
/// messages go through it first.
async fn console_in_chromium_with(
    key: Option<&'static str>,
    consumer: Option<(&str, String)>,
    tweak: impl FnOnce(&mut wsgate::Config),
) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    if !can_run(
        "the console test",
        node_missing(&dir, &["playwright-core"], true),
    ) {
        return;
    }
    let gw = TestGateway::start_with(tweak).await;
    gw.cluster.clone().ready().await.unwrap();
    if let Some((name, list)) = &consumer {
        let mut conn = redis::Client::open(common::streams::REDIS)
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connects");
        for i in 0..3 {
            let command = format!(r#"{{"method":"broadcast","params":{{"text":"c{i}"}}}}"#);
            let _: i64 = redis::cmd("LPUSH")
                .arg(list)
                .arg(command)
                .query_async(&mut conn)
                .await
                .expect("LPUSH");
        }
        let stats = gw.stats.clone();
        let name = name.to_string();
        wait_until("three carried out", move || {
            stats
                .consumers
                .get(&name)
                .is_some_and(|c| wsgate::Stats::get(&c.messages) == 3)
        })
        .await;
    }

    let shots = std::env::temp_dir().join(format!(
        "wsgate-console-{}-{}",
        std::process::id(),
        match (&consumer, key) {
            (Some(_), _) => "consumers",
            (None, Some(_)) => "key",
            (None, None) => "no-key",
        }
    ));
    let url = format!("http://{}/", gw.api_addr);
    let shots_arg = shots.to_string_lossy();
    run_node(
        &dir,
        &[
            "console.test.mjs",
            &url,
            &shots_arg,
            key.unwrap_or_default(),
            consumer.as_ref().map_or("", |(name, _)| name),
        ],
        Duration::from_secs(90),
    )
    .await;
    assert!(shots.join("console.png").exists(), "a screenshot was saved");

    // The page's work shows in the gateway's own counters.
    let s = scrape(&gw).await;
    assert!(s.get("wsgate_connections_total") >= 1.0);
    assert!(s.get("wsgate_messages_out_total") >= 1.0);
    gw.stop().await;
}
