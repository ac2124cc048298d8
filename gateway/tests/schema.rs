//! The HTTP API against its own OpenAPI document: schemathesis (PyPI) generates requests from
//! `/openapi.json` of a real gateway with an API key and a connected client, and checks every
//! answer both ways — no 5xx, every status and body as documented, every request the schema
//! allows accepted, every request it forbids refused. A bounded number of examples per
//! operation (`WSGATE_SCHEMA_EXAMPLES`, default 40) keeps it to a minute in CI.
//!
//! `.ci/run` installs schemathesis; elsewhere the test is skipped with a note when it is
//! missing (`pip install schemathesis`).

mod common;

use std::time::Duration;

use common::*;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_exactly_as_its_schema_says() {
    let found = std::process::Command::new("schemathesis")
        .arg("--version")
        .output();
    if !found.as_ref().is_ok_and(|o| o.status.success()) {
        if in_ci() {
            panic!("schemathesis is not installed (.ci/run installs it with pip)");
        }
        eprintln!(
            "skipping the schema test: schemathesis is not installed (pip install schemathesis)"
        );
        return;
    }
    let key = "schema-test-key";
    let gw = TestGateway::start_with(|c| c.api_key = Some(key.into())).await;
    gw.cluster
        .clone()
        .ready()
        .await
        .expect("the cluster client connects");
    // Something to act on: a business process and a client.
    let (_business, mut events) = gw.business("schema").await;
    let _client = gw.client().await;
    events.open().await;

    let examples = std::env::var("WSGATE_SCHEMA_EXAMPLES").unwrap_or_else(|_| "40".into());
    let run = tokio::process::Command::new("schemathesis")
        // Where a schema-valid request may still be refused: tests/data/schemathesis.toml.
        .args([
            "--config-file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schemathesis.toml"),
        ])
        .args(["run", &format!("http://{}/openapi.json", gw.api_addr)])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "all", "--max-examples", &examples])
        // One worker: with two, schemathesis 4.32 sometimes trips over itself (an internal
        // KeyError / "AST constructor recursion depth mismatch" in its coverage phase).
        .args(["--workers", "1", "--no-color", "--seed", "1"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(300), run).await {
        Ok(out) => out.expect("schemathesis runs"),
        Err(_) => panic!("schemathesis did not finish in 300 s"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found requests the API does not answer as documented ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!(
        "{}",
        stdout.lines().rev().take(12).collect::<Vec<_>>().join("\n")
    );
    gw.stop().await;
}
