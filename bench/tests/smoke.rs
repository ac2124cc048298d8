//! The load tool's smoke run, so it keeps working: `wsgate-bench --smoke` drives wsgate, the
//! plain hub and the Node hub with tiny counts for about a second per scenario (the soak and
//! the fault scenario on wsgate only) and must show that traffic arrived everywhere (not any
//! speed), the short soak that it saw no error, the fault scenario (an echo process
//! killed, then one stopped past a 500 ms ack timeout: about 5 s) that no message was lost,
//! and the streams scenario (history off, in memory and, when a Redis answers on
//! 127.0.0.1:6379, in Redis; then a reconnect storm) that publications arrived in order and
//! every reconnected client recovered what it missed.
//!
//! The wsgate binary is taken from next to `wsgate-bench`: `cargo test --workspace` builds it
//! there for the gateway's own tests. The Node hub needs `npm ci` in bench/peers/node-hub
//! (`.ci/run` does it); without it node is skipped locally, and under `CI=true` the run fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole smoke run must end by itself within this, in a debug build on 2 cores.
const LIMIT: Duration = Duration::from_secs(240);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the smoke run did not write {}: {e}", path.display()))
}

#[test]
fn smoke_run_delivers_for_every_target() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_wsgate-bench"));
    let bin_dir = bench.parent().expect("the bench binary has a directory");
    let wsgate = bin_dir.join("wsgate");
    assert!(
        wsgate.is_file(),
        "no wsgate binary at {}: run `cargo build -p wsgate` first (`cargo test --workspace` builds it)",
        wsgate.display()
    );
    let out = std::env::temp_dir().join(format!("wsgate-bench-smoke-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);

    let mut child = Command::new(&bench)
        .arg("--smoke")
        // Every scenario, soak included (it is not in the default list).
        .args([
            "--scenarios",
            "idle,broadcast,topics,echo,churn,soak,fault,streams",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wsgate-bench starts");
    // Collect stderr on a thread so a full pipe never blocks the bench.
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut text);
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for wsgate-bench") {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the smoke run did not finish within {} s; its output:\n{}",
                LIMIT.as_secs(),
                log.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = log.join().unwrap_or_default();
    assert!(
        status.success(),
        "the smoke run failed ({status}); its output:\n{log}"
    );
    eprintln!("smoke run took {:.0} s", start.elapsed().as_secs_f64());

    for file in [
        "results.md",
        "idle-memory.svg",
        "broadcast.svg",
        "latency.svg",
        "topics.svg",
        "echo.svg",
        "churn.svg",
    ] {
        assert!(!read(&out.join(file)).is_empty(), "{file} is empty");
    }
    let results: serde_json::Value =
        serde_json::from_str(&read(&out.join("results.json"))).expect("results.json is JSON");
    let skipped: Vec<&str> = results["skipped"]
        .as_array()
        .expect("skipped is a list")
        .iter()
        .filter_map(|s| s["target"].as_str())
        .collect();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        assert!(
            skipped.is_empty(),
            "CI must run every target, skipped: {skipped:?}"
        );
    }
    for target in ["wsgate", "plain", "node"] {
        if skipped.contains(&target) {
            eprintln!("{target} was skipped (see results.md)");
            continue;
        }
        let rows = results["broadcast"].as_array().expect("broadcast rows");
        let delivered: Vec<u64> = rows
            .iter()
            .filter(|r| r["target"] == target)
            .map(|r| r["deliveries"].as_u64().unwrap_or(0))
            .collect();
        assert!(
            !delivered.is_empty() && delivered.iter().all(|d| *d > 0),
            "{target}: broadcast deliveries {delivered:?}; results.md says:\n{}",
            read(&out.join("results.md"))
        );
        for (scenario, field) in [
            ("topics", "deliveries"),
            ("echo", "round_trips"),
            ("churn", "handshakes"),
        ] {
            let got = results[scenario]
                .as_array()
                .and_then(|rows| rows.iter().find(|r| r["target"] == target))
                .and_then(|r| r[field].as_u64())
                .unwrap_or(0);
            assert!(got > 0, "{target}: {scenario} {field} = {got}");
        }
    }
    if !skipped.contains(&"wsgate") {
        let rows = results["fault"].as_array().expect("fault rows");
        let kinds: Vec<&str> = rows.iter().filter_map(|r| r["fault"].as_str()).collect();
        assert_eq!(kinds, ["kill", "stop"], "one fault row per fault");
        for r in rows {
            assert!(r["answered"].as_u64().unwrap_or(0) > 0, "fault row: {r}");
            assert_eq!(r["lost"].as_u64(), Some(0), "fault row: {r}");
        }
        assert!(
            read(&out.join("results.md")).contains("## Fault"),
            "results.md has the fault table"
        );
    }
    if !skipped.contains(&"wsgate") {
        let rows = results["streams"].as_array().expect("streams rows");
        let histories: Vec<&str> = rows.iter().filter_map(|r| r["history"].as_str()).collect();
        assert_eq!(histories, ["off", "memory", "redis"], "one row per history");
        for r in rows {
            if r["history"] == "redis" && r["skipped"].is_string() {
                eprintln!("streams, Redis: {}", r["skipped"]);
                continue;
            }
            assert!(
                r["load"]["deliveries"].as_u64().unwrap_or(0) > 0,
                "streams row: {r}"
            );
            assert_eq!(r["gaps"].as_u64(), Some(0), "streams row: {r}");
            assert_eq!(r["duplicates"].as_u64(), Some(0), "streams row: {r}");
        }
        let rows = results["streams_recovery"]
            .as_array()
            .expect("streams recovery rows");
        assert_eq!(rows.len(), 2, "one recovery row per engine");
        for r in rows {
            if r["history"] == "redis" && r["skipped"].is_string() {
                continue;
            }
            assert!(r["clients"].as_u64().unwrap_or(0) > 0, "recovery row: {r}");
            assert_eq!(r["recovered"], r["clients"], "recovery row: {r}");
            assert_eq!(r["not_recovered"].as_u64(), Some(0), "recovery row: {r}");
        }
        assert!(
            read(&out.join("results.md")).contains("## Streams: history and recovery"),
            "results.md has the streams section"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
