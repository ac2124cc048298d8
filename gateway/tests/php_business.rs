//! `examples/php-netsvr/business.php`, a business process in plain PHP (Debian's php-cli, the
//! protobuf written by hand from docs/protocol.md), linked to two gateways at once: it answers
//! OnOpen, OnMessage and OnClose and single-casts by connection id across the gateways, as a
//! netsvr business does with `NetBus::singleCast`.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn php_here() -> bool {
    can_run("the PHP business test", common::examples::php_missing())
}

async fn json(ws: &mut Ws) -> Value {
    let text = recv_text(ws).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn php_business_single_casts_across_two_gateways() {
    if !php_here() {
        return;
    }
    let a = TestGateway::start_with(|c| c.node_id = "gw-a".into()).await;
    let b = TestGateway::start_with(|c| c.node_id = "gw-b".into()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/php-netsvr/business.php"
    );
    let mut php = Command::new("php")
        .arg(script)
        .args(["--gateway", &a.worker_addr.to_string()])
        .args(["--gateway", &b.worker_addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("php runs (CI installs php-cli)");
    let mut lines = BufReader::new(php.stdout.take().expect("piped stdout")).lines();
    let mut registered = Vec::new();
    for _ in 0..2 {
        let line = within("the PHP process to register", lines.next_line())
            .await
            .expect("readable stdout")
            .unwrap_or_default();
        registered.push(line);
    }
    registered.sort();
    assert_eq!(registered, ["registered gw-a", "registered gw-b"]);

    // OnOpen: each client is told its connection id, by the gateway it is on.
    let mut alice = a.client().await;
    let mut bob = b.client().await;
    let welcome = json(&mut alice).await;
    assert_eq!(welcome["type"], "welcome");
    let alice_id = welcome["conn_id"].as_str().expect("an id").to_owned();
    assert!(alice_id.starts_with("gw-a-"), "{alice_id}");
    let bob_id = json(&mut bob).await["conn_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert!(bob_id.starts_with("gw-b-"), "{bob_id}");

    // OnMessage: a single-cast by connection id reaches the other gateway's client, and only it.
    send_text(
        &mut alice,
        &json!({"to": bob_id, "text": "hello bob"}).to_string(),
    )
    .await;
    assert_eq!(
        json(&mut bob).await,
        json!({"type": "message", "from": alice_id, "text": "hello bob"})
    );
    assert_eq!(
        json(&mut alice).await,
        json!({"type": "sent", "to": bob_id})
    );
    send_text(
        &mut bob,
        &json!({"to": alice_id, "text": "hi alice"}).to_string(),
    )
    .await;
    assert_eq!(
        json(&mut alice).await,
        json!({"type": "message", "from": bob_id, "text": "hi alice"})
    );
    assert_eq!(json(&mut bob).await["type"], "sent");
    // Not a connection of this cluster: said so.
    send_text(
        &mut alice,
        &json!({"to": "gw-z-1-1", "text": "?"}).to_string(),
    )
    .await;
    assert_eq!(json(&mut alice).await["type"], "error");
    // Anything else comes back.
    send_text(&mut alice, "plain text").await;
    assert_eq!(recv_text(&mut alice).await, "plain text");

    // OnClose reaches it (its link stays up) and the other gateway's client is unaffected.
    drop(alice);
    let mut said = BufReader::new(php.stderr.take().expect("piped stderr")).lines();
    let closed = format!("connection {alice_id} closed");
    within("OnClose of the first client", async {
        while let Some(line) = said.next_line().await.expect("readable stderr") {
            if line.contains(&closed) {
                return;
            }
        }
        panic!("the PHP process ended before it saw the close");
    })
    .await;
    send_text(&mut bob, "still here").await;
    assert_eq!(recv_text(&mut bob).await, "still here");
    assert_eq!(
        a.stat(|s| &s.links_current),
        1,
        "the PHP link to gw-a is up"
    );

    php.kill().await.expect("stop php");
    a.stop().await;
    b.stop().await;
}
