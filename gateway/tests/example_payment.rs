//! `examples/payment-progress/`, the example system, end to end: the real `wsgate` binary
//! started with the example's own `wsgate.toml` (a copy with a queue of this run), the example's
//! application (`node app.mjs`), and its browser test in Debian's Chromium
//! (`test/browser.test.mjs`, playwright-core): a checkout page reaches "paid" also when its
//! socket was cut when the payment came, an import page follows 10,000 tasks to 100 % across a
//! cut and a reload, and a notice published to RabbitMQ reaches both pages.
//!
//! Needs node, Chromium, `npm ci` in examples/ (playwright-core, amqplib) and RabbitMQ on
//! 127.0.0.1:5672: in CI a missing part fails the test, elsewhere it is skipped with the reason.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::brokers::{RABBITMQ, listening, unique};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Waits until something accepts connections on `addr`, failing after `limit`.
async fn answers(what: &str, addr: std::net::SocketAddr, limit: Duration) {
    let waited = tokio::time::timeout(limit, async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{what} did not listen on {addr} within {limit:?}"
    );
}

async fn delete_queue(queue: &str) {
    let Ok(rabbit) =
        lapin::Connection::connect(RABBITMQ, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = rabbit.create_channel().await {
        let _ = channel
            .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
            .await;
    }
    let _ = rabbit.close(0, "done".into()).await;
}

#[tokio::test]
async fn payment_progress_pages_get_paid_progress_and_notices_in_chromium() {
    let examples = examples_dir();
    let example = examples.join("payment-progress");
    if !common::can_run(
        "the payment-progress example test",
        common::node_missing(&examples, &["playwright-core", "amqplib"], true),
    ) || !listening(
        "the payment-progress example test",
        5672,
        "rabbitmq-server -detached",
    ) {
        return;
    }

    // The example's configuration as it is, with a queue of this run's own.
    let queue = unique("payment_notice");
    let toml = std::fs::read_to_string(example.join("wsgate.toml")).expect("wsgate.toml");
    assert!(
        toml.contains("queue = \"ws.notice\""),
        "wsgate.toml consumes ws.notice"
    );
    let toml = toml.replace("queue = \"ws.notice\"", &format!("queue = \"{queue}\""));
    let config = std::env::temp_dir().join(format!("{queue}.toml"));
    std::fs::write(&config, toml).expect("write the config copy");

    let addrs = common::reserve_addrs(3);
    let (ws, api, app) = (addrs[0], addrs[1], addrs[2]);
    let app_url = format!("http://{app}");
    let config_path = config.to_string_lossy().into_owned();
    let (ws_addr, api_addr) = (ws.to_string(), api.to_string());
    let (mut gateway, up) = common::spawn_wsgate(&[
        "--config",
        &config_path,
        "--ws-addr",
        &ws_addr,
        "--api-addr",
        &api_addr,
        "--allowed-origins",
        &app_url,
    ])
    .await;
    assert_eq!(common::log_field(&up, "api="), format!("http://{api}/"));

    let mut app_process = tokio::process::Command::new("node")
        .arg(example.join("app.mjs"))
        .args(["--listen", &app.to_string()])
        .args(["--ws", &format!("ws://{ws}/ws")])
        .args(["--api", &format!("http://{api}")])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node app.mjs starts");
    answers("app.mjs", app, Duration::from_secs(15)).await;

    let mut args = vec![
        "payment-progress/test/browser.test.mjs",
        "--app",
        &app_url,
        "--amqp",
        RABBITMQ,
        "--queue",
        &queue,
    ];
    // WSGATE_EXAMPLE_SHOTS=DIR keeps the screenshots there (the README's is both.png).
    let shots = std::env::var("WSGATE_EXAMPLE_SHOTS")
        .map_or_else(|_| std::env::temp_dir().join(&queue), PathBuf::from);
    let shots_dir = shots.to_string_lossy().into_owned();
    args.extend(["--shots", &shots_dir]);
    common::run_node(&examples, &args, Duration::from_secs(170)).await;
    assert!(
        shots.join("both.png").exists(),
        "the screenshots were saved in {shots_dir}"
    );

    let _ = app_process.kill().await;
    let _ = gateway.kill().await;
    delete_queue(&queue).await;
    let _ = std::fs::remove_file(&config);
}
