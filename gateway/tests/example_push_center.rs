//! `examples/push-center/`, end to end with its real parts: the gateway binary started with the
//! example's `wsgate.toml` (a copy with a list key of this run's own), `node admin.mjs`, Debian's
//! `php lpush.php`, the shared Redis on 127.0.0.1:6379, and many real WebSocket clients. Messages
//! go in through the admin form (an urlencoded POST, as a browser submits it) and through
//! `LPUSH`, including a form submitted twice and a push retried with the same id; every client
//! gets every message exactly once. A second test opens the client page in Debian's Chromium
//! (playwright-core, never a downloaded browser) and sends through the form in the browser.
//!
//! Needs node, php-cli, redis-server on 6379, and for the page `npm ci` in `examples/` and
//! Chromium: in CI a missing part fails the test, elsewhere it is skipped with the reason.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::brokers::{free_port, unique};
use common::examples::{ExampleGateway, config_copy, example_dir, node_app, tools_here};
use common::http::{Reply, http};
use common::*;
use serde_json::Value;
use tokio::process::{Child, Command};

/// Connected clients in the many-clients test.
const CLIENTS: usize = 200;
/// Messages sent each way (the admin form, `php lpush.php`) before the closing pair.
const EACH: usize = 10;

fn example() -> PathBuf {
    example_dir("push-center")
}

/// Whether php, node (for the page also Chromium and playwright-core) and the Redis on 6379
/// are here.
fn ready(what: &str, browser: bool) -> bool {
    let packages: &[&str] = if browser { &["playwright-core"] } else { &[] };
    tools_here(what, true, packages, browser) && common::streams::redis_here(what)
}

/// The running example: gateway, admin app, and this run's list key.
struct PushCenter {
    gateway: ExampleGateway,
    admin_app: Child,
    ws_url: String,
    api: SocketAddr,
    admin: SocketAddr,
    key: String,
    node_id: String,
    config: PathBuf,
}

impl PushCenter {
    async fn start(test: &str) -> Self {
        let key = unique(test);
        let node_id = format!("{key}-gw");
        // The example's own config, with this run's list key.
        let config = config_copy(
            "push-center",
            &[("key = \"push:center\"", &format!("key = \"{key}\""))],
            &key,
        );
        let gateway = ExampleGateway::start(&config, &["--node-id", &node_id]).await;
        let admin = reserve_addrs(1)[0];
        let ws_url = gateway.ws_url();
        let admin_app = node_app(
            &example().join("admin.mjs"),
            &[
                "--listen",
                &admin.to_string(),
                "--api",
                &gateway.api_url(),
                "--ws",
                &ws_url,
            ],
            "push center on",
        )
        .await;
        Self {
            api: gateway.api,
            gateway,
            admin_app,
            ws_url,
            admin,
            key,
            node_id,
            config,
        }
    }

    /// What a browser does: load the form (it carries a fresh message id), submit it.
    async fn form(&self) -> String {
        let page = http(self.admin, "GET", "/admin", &[], None).await;
        assert_eq!(page.status, 200);
        let html = String::from_utf8_lossy(&page.body).into_owned();
        let at = html
            .find("name=\"id\" value=\"")
            .expect("the form's id field")
            + 17;
        html[at..].split('"').next().expect("an id").to_owned()
    }

    async fn submit(&self, id: &str, title: &str, text: &str) -> Reply {
        let body = format!(
            "id={}&title={}&text={}",
            urlencode(id),
            urlencode(title),
            urlencode(text)
        );
        http(
            self.admin,
            "POST",
            "/admin",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        )
        .await
    }

    /// Submits the form; expects "delivered to `delivered`" on the page it answers with.
    async fn submit_ok(&self, id: &str, title: &str, text: &str, delivered: usize) {
        let reply = self.submit(id, title, text).await;
        let html = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, 200, "{html}");
        assert!(
            html.contains(&format!("data-delivered=\"{delivered}\" data-id=\"{id}\"")),
            "the page says the gateway delivered {id} to {delivered}: {html}"
        );
    }

    /// `php lpush.php TEXT --title TITLE --key KEY [--id ID]`; returns the id it printed.
    async fn lpush(&self, title: &str, text: &str, id: Option<&str>) -> String {
        let out = lpush(&["--title", title, "--key", &self.key], text, id).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "php lpush.php failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = stdout
            .strip_prefix("pushed ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("lpush.php names the id it pushed: {stdout}"));
        id.to_owned()
    }

    async fn stop(mut self) {
        let _ = self.admin_app.kill().await;
        let _ = self.gateway.child.kill().await;
        let _ = std::fs::remove_file(&self.config);
        let mut conn = redis::Client::open(common::streams::REDIS)
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connects");
        let _: () = redis::cmd("DEL")
            .arg(&self.key)
            .arg(format!("{}:wsgate:{}", self.key, self.node_id))
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

async fn lpush(args: &[&str], text: &str, id: Option<&str>) -> std::process::Output {
    let mut php = Command::new("php");
    php.arg(example().join("lpush.php")).arg(text).args(args);
    if let Some(id) = id {
        php.args(["--id", id]);
    }
    within("php lpush.php", php.kill_on_drop(true).output())
        .await
        .expect("php runs")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The next message of a client, parsed (each is the JSON a push center message is).
async fn next_message(ws: &mut Ws) -> Value {
    let text = recv_text(ws).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn every_client_gets_each_message_once_from_the_form_and_from_lpush() {
    if !ready("the push-center example test", false) {
        return;
    }
    let started = std::time::Instant::now();
    let pc = PushCenter::start("push_center").await;

    // A backend that cannot reach Redis says so, and fails.
    let down = format!("127.0.0.1:{}", free_port());
    let out = lpush(&["--redis", &down], "lost", None).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach Redis at {down}")),
        "{stderr}"
    );

    let mut clients =
        futures_util::future::join_all((0..CLIENTS).map(|_| connect(&pc.ws_url))).await;
    within("the gateway to count every client", async {
        loop {
            let counts = http(pc.api, "GET", "/api/v1/counts", &[], None).await;
            if counts.json()["connections"] == CLIENTS {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // Interleaved: a form post, a push; once a form submitted twice (a reload) and a push
    // retried with the same id. Each is one message.
    let mut sent: Vec<(String, &str, String, String)> = Vec::new(); // id, from, title, text
    for i in 0..EACH {
        let id = pc.form().await;
        let (title, text) = (
            format!("Notice {i}"),
            format!("from the form #{i}: 维护 22:00 ✓"),
        );
        pc.submit_ok(&id, &title, &text, CLIENTS).await;
        if i == 3 {
            pc.submit_ok(&id, &title, &text, CLIENTS).await;
        }
        sent.push((id, "admin", title, text));

        let (title, text) = (
            format!("Push {i}"),
            format!("LPUSHed #{i}: \"quoted\" & 中文"),
        );
        let id = pc.lpush(&title, &text, None).await;
        if i == 5 {
            assert_eq!(pc.lpush(&title, &text, Some(&id)).await, id);
        }
        sent.push((id, "php", title, text));
    }

    let received = futures_util::future::join_all(clients.iter_mut().map(|ws| async move {
        let mut got = Vec::new();
        for _ in 0..2 * EACH {
            got.push(next_message(ws).await);
        }
        got
    }))
    .await;
    let want: HashSet<&str> = sent.iter().map(|(id, ..)| id.as_str()).collect();
    for (n, got) in received.iter().enumerate() {
        let ids: Vec<&str> = got.iter().map(|m| m["id"].as_str().unwrap_or("")).collect();
        let distinct: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "client {n} got a duplicate: {ids:?}"
        );
        assert_eq!(distinct, want, "client {n} got each message");
        for m in got {
            let (_, from, title, text) = sent
                .iter()
                .find(|(id, ..)| m["id"] == id.as_str())
                .expect("a sent message");
            assert_eq!(
                (m["from"].as_str(), m["title"].as_str(), m["text"].as_str()),
                (Some(*from), Some(title.as_str()), Some(text.as_str())),
                "client {n}: {m}"
            );
        }
    }

    // Nothing more is on its way: a duplicate of the twice-submitted form would have come
    // before its HTTP answer, one of the retried push before the next item of the list. So each
    // client's next two messages are these two.
    let last_form = pc.form().await;
    pc.submit_ok(&last_form, "Last", "the last form", CLIENTS)
        .await;
    let last_push = pc.lpush("Last", "the last push", None).await;
    let closing: HashSet<&str> = [last_form.as_str(), last_push.as_str()].into();
    let nexts = futures_util::future::join_all(
        clients
            .iter_mut()
            .map(|ws| async move { [next_message(ws).await, next_message(ws).await] }),
    )
    .await;
    for (n, pair) in nexts.iter().enumerate() {
        let ids: HashSet<&str> = pair
            .iter()
            .map(|m| m["id"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            ids, closing,
            "client {n}: nothing but the last two: {pair:?}"
        );
    }
    println!(
        "{CLIENTS} clients x {} messages (form + lpush.php), each once, in {:?}",
        2 * EACH + 2,
        started.elapsed()
    );
    drop(clients);
    pc.stop().await;
}

#[tokio::test]
async fn the_client_page_shows_form_and_lpush_messages_in_chromium() {
    if !ready("the push-center page test", true) {
        return;
    }
    let pc = PushCenter::start("push_center_page").await;
    let app = format!("http://{}", pc.admin);
    let shots = std::env::temp_dir().join(format!("{}-shots", pc.key));
    let shots = shots.display().to_string();
    run_node(
        &example(),
        &[
            "test/page.test.mjs",
            "--app",
            &app,
            "--key",
            &pc.key,
            "--shots",
            &shots,
        ],
        Duration::from_secs(90),
    )
    .await;
    assert!(
        std::path::Path::new(&shots)
            .join("push-center.png")
            .exists(),
        "a screenshot was saved"
    );
    pc.stop().await;
}
