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
use std::time::Duration;

use common::brokers::{RABBITMQ, listening, unique};
use common::examples::{
    ExampleGateway, config_copy, example_dir, examples_dir, node_app, tools_here,
};

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
    let what = "the payment-progress example test";
    if !tools_here(what, false, &["playwright-core", "amqplib"], true)
        || !listening(what, 5672, "rabbitmq-server -detached")
    {
        return;
    }

    // The example's configuration as it is, with a queue of this run's own.
    let queue = unique("payment_notice");
    let config = config_copy(
        "payment-progress",
        &[("queue = \"ws.notice\"", &format!("queue = \"{queue}\""))],
        &queue,
    );
    let app = common::reserve_addrs(1)[0];
    let app_url = format!("http://{app}");
    let mut gateway = ExampleGateway::start(&config, &["--allowed-origins", &app_url]).await;
    let mut app_process = node_app(
        &example_dir("payment-progress").join("app.mjs"),
        &[
            "--listen",
            &app.to_string(),
            "--ws",
            &gateway.ws_url(),
            "--api",
            &gateway.api_url(),
        ],
        "payment-progress app on",
    )
    .await;

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
    common::run_node(&examples_dir(), &args, Duration::from_secs(170)).await;
    assert!(
        shots.join("both.png").exists(),
        "the screenshots were saved in {shots_dir}"
    );

    let _ = app_process.kill().await;
    let _ = gateway.child.kill().await;
    delete_queue(&queue).await;
    let _ = std::fs::remove_file(&config);
}
