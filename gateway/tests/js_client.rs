//! The JavaScript client (`clients/js/`) against a real gateway: its unit tests, its WeChat
//! adapter in Node over a small fake of `wx.connectSocket` that wraps a real WebSocket, and the
//! browser build in Debian's Chromium (playwright-core, never a downloaded browser). Each
//! script publishes numbered messages through the HTTP API while it cuts the client's
//! connection, and checks that every message arrives once, in order, and that a trimmed
//! history is reported as `recovered: false`.
//!
//! Needs node and `npm ci` in clients/js (`.ci/run` does both, and installs Chromium): in CI a
//! missing part fails the test, elsewhere it is skipped with the reason.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestGateway;

const SECRET: &str = "js-client-test-secret-0123456789abcdef";

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/js")
}

/// Whether the scripts can run here (the browser ones need Chromium and playwright-core).
fn can_run(what: &str, browser: bool) -> bool {
    let packages: &[&str] = if browser {
        &["playwright-core"]
    } else {
        &["ws"]
    };
    common::can_run(what, common::node_missing(&js_dir(), packages, browser))
}

async fn node(args: &[&str], limit: Duration) {
    common::run_node(&js_dir(), args, limit).await;
}

/// The gateway the end-to-end scripts expect: JWT, and two user-stream rules.
async fn gateway() -> TestGateway {
    TestGateway::start_with(|c| {
        c.jwt_secret = Some(SECRET.into());
        c.stream = vec![
            "users keep-* history=1000 age=10m".parse().expect("a rule"),
            "users trim-* history=3 age=10m".parse().expect("a rule"),
        ];
    })
    .await
}

async fn end_to_end(script: &str, extra: &[&str], limit: Duration) {
    let gw = gateway().await;
    gw.cluster
        .clone()
        .ready()
        .await
        .expect("the cluster client");
    let ws = gw.url();
    let api = format!("http://{}", gw.api_addr);
    let mut args = vec![script, "--ws", &ws, "--api", &api, "--secret", SECRET];
    args.extend_from_slice(extra);
    node(&args, limit).await;
    gw.stop().await;
}

#[tokio::test]
async fn the_js_client_unit_tests_pass() {
    if can_run("JS client unit tests", false) {
        node(&["--test", "test/unit.test.mjs"], Duration::from_secs(60)).await;
    }
}

#[tokio::test]
async fn the_wechat_adapter_recovers_every_message_across_cuts() {
    if can_run("wx adapter test", false) {
        end_to_end("test/wx.test.mjs", &[], Duration::from_secs(75)).await;
    }
}

#[tokio::test]
async fn the_browser_build_recovers_every_message_across_cuts_in_chromium() {
    if !can_run("browser test", true) {
        return;
    }
    let shots = std::env::temp_dir().join(format!("wsgate-js-client-{}", std::process::id()));
    let shots = shots.to_string_lossy().into_owned();
    end_to_end(
        "test/browser.test.mjs",
        &["--shots", &shots],
        Duration::from_secs(100),
    )
    .await;
    assert!(
        Path::new(&shots).join("js-client-browser.png").exists(),
        "a screenshot was saved"
    );
}

/// The cluster case: two gateways sharing the Redis engine; the page's client has both
/// URLs. Its connection is cut by the server, dropped by the page, and its gateway is stopped
/// and started again (the script asks for it on stdout, `RESTART-GATEWAY`, and waits for
/// `RESTARTED` on stdin); it reconnects to the other gateway and recovers there: every message
/// once, in order.
#[tokio::test]
async fn the_browser_build_recovers_on_the_other_gateway_and_across_a_restart_with_redis() {
    if !can_run("browser cluster test", true)
        || !common::streams::redis_here("the browser cluster test")
    {
        return;
    }
    let prefix = common::streams::redis_prefix("js-cluster");
    // Fixed addresses, so the restarted gateway is where the page and the peer look for it.
    let addrs = common::reserve_addrs(6);
    let peers = vec![addrs[1].to_string(), addrs[4].to_string()];
    let start = |i: usize| {
        let (peers, prefix) = (peers.clone(), prefix.clone());
        let (ws, worker, api) = (addrs[3 * i], addrs[3 * i + 1], addrs[3 * i + 2]);
        TestGateway::start_with(move |c| {
            c.node_id = format!("gw{i}");
            c.ws_addr = ws;
            c.worker_addr = worker;
            c.api_addr = api;
            c.peers = peers;
            c.jwt_secret = Some(SECRET.into());
            c.stream = vec![
                "users keep-* history=1000 age=10m".parse().expect("a rule"),
                "users trim-* history=3 age=10m".parse().expect("a rule"),
            ];
            c.stream_engine = wsgate::StreamEngine::Redis;
            c.stream_redis_prefix = prefix;
        })
    };
    let mut gw0 = Some(start(0).await);
    let gw1 = start(1).await;
    gw1.cluster
        .clone()
        .ready()
        .await
        .expect("gw1's cluster client");
    for gw in [gw0.as_ref().expect("gw0"), &gw1] {
        common::wait_until("both peer links", || {
            gw.stat(|s| &s.peer_links_current) == 2
        })
        .await;
    }
    let ws0 = format!("ws://{}/ws", addrs[0]);
    let ws1 = gw1.url();
    let api = format!("http://{}", gw1.api_addr);
    let shots = std::env::temp_dir().join(format!("wsgate-js-cluster-{}", std::process::id()));
    let shots = shots.to_string_lossy().into_owned();
    let mut node = tokio::process::Command::new("node")
        .args([
            "test/browser.test.mjs",
            "--ws",
            &ws0,
            "--ws2",
            &ws1,
            "--api",
            &api,
            "--secret",
            SECRET,
            "--restart",
            "--shots",
            &shots,
        ])
        .current_dir(js_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut stdin = node.stdin.take().expect("node's stdin");
    let stdout = node.stdout.take().expect("node's stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut restarts = 0;
    let mut output = String::new();
    let run = async {
        while let Some(line) = lines.next_line().await.expect("node's output") {
            println!("{line}");
            output.push_str(&line);
            output.push('\n');
            if line.trim() == "RESTART-GATEWAY" {
                if let Some(gw) = gw0.take() {
                    gw.stop().await;
                }
                gw0 = Some(start(0).await);
                restarts += 1;
                tokio::io::AsyncWriteExt::write_all(&mut stdin, b"RESTARTED\n")
                    .await
                    .expect("node reads");
            }
        }
        node.wait().await.expect("node ends")
    };
    let status = match tokio::time::timeout(Duration::from_secs(150), run).await {
        Ok(status) => status,
        Err(_) => panic!("the browser cluster test did not finish in 150 s:\n{output}"),
    };
    assert!(
        status.success(),
        "the browser cluster test failed ({status}):\n{output}"
    );
    assert_eq!(restarts, 1, "the gateway was restarted once");
    if let Some(gw) = gw0 {
        gw.stop().await;
    }
    gw1.stop().await;
}
