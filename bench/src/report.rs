//! Turning [`Results`] into files: results.json, results.md (one table per scenario, the
//! targets table, notes) and the SVG charts the Markdown shows.
//!
//! The same Markdown is printed to stdout at the end of a run and is what BENCHMARKS.md is
//! made from, so it carries its own context: machine, commit, settings, and how the figures
//! were measured.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::error::BenchError;
use crate::progress::si;
use crate::results::{ConsumerSource, EchoRow, LoadRow, Phase, Results};
use crate::svg::{BarChart, PALETTE};
use crate::target::TargetKind;

/// Writes everything under `dir`; the paths written.
pub fn write(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BenchError::Output { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files: Vec<(String, String)> = Vec::new();
    let json = serde_json::to_string_pretty(results).map_err(|e| BenchError::Output {
        path: dir.join("results.json"),
        source: std::io::Error::other(e),
    })?;
    files.push(("results.json".into(), json + "\n"));
    files.push(("results.md".into(), markdown(results)));
    for (name, chart) in charts(results) {
        files.push((name, chart.render()));
    }
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the Markdown report to `path` too (BENCHMARKS.md), its chart links pointing into
/// `out_dir`, where [`write`] put the charts.
pub fn write_copy(results: &Results, path: &Path, out_dir: &Path) -> Result<(), BenchError> {
    let io = |source| BenchError::Output {
        path: path.to_owned(),
        source,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let from = parent.canonicalize().map_err(io)?;
    let to = out_dir.canonicalize().map_err(io)?;
    let mut charts = relative(&from, &to);
    if !charts.is_empty() {
        charts.push('/');
    }
    std::fs::write(path, markdown_with_charts(results, &charts)).map_err(io)
}

/// The path from directory `from` to directory `to` (both absolute), '/'-separated.
fn relative(from: &Path, to: &Path) -> String {
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let ups = std::iter::repeat_n("..".to_owned(), a.len() - common);
    let downs = b[common..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    ups.chain(downs).collect::<Vec<_>>().join("/")
}

fn colour(t: TargetKind) -> String {
    match t {
        TargetKind::Wsgate => PALETTE[0],
        TargetKind::Plain => PALETTE[1],
        TargetKind::Node => PALETTE[2],
    }
    .to_owned()
}

/// A row's name in tables and charts: "wsgate sdk", "plain http", ...
fn load_name(r: &LoadRow) -> String {
    format!("{} {}", r.target, r.route.label())
}

/// The charts that have data: file name and chart.
pub fn charts(results: &Results) -> Vec<(String, BarChart)> {
    let mut out = Vec::new();
    let targets: Vec<TargetKind> = TargetKind::ALL
        .into_iter()
        .filter(|t| {
            results.idle.iter().any(|r| r.target == *t)
                || results.broadcast.iter().any(|r| r.target == *t)
                || results.echo.iter().any(|r| r.target == *t)
                || results.churn.iter().any(|r| r.target == *t)
                || results.topics.iter().any(|r| r.target == *t)
        })
        .collect();

    if !results.idle.is_empty() {
        let counts = distinct(&results.idle, |r| r.connections);
        out.push((
            "idle-memory.svg".into(),
            BarChart {
                title: "Idle: resident memory per connection (lower is better)".into(),
                y_label: "KiB per connection".into(),
                groups: counts.iter().map(|n| format!("{n} connections")).collect(),
                series: targets
                    .iter()
                    .map(|t| (t.to_string(), colour(*t)))
                    .collect(),
                values: bars(
                    &results.idle,
                    &counts,
                    &targets,
                    |r| (r.target, r.connections),
                    |r| r.per_conn_kib,
                ),
                log: false,
                format: |v| {
                    if v >= 100.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.2}")
                    }
                },
                group_colours: Vec::new(),
                legend: Vec::new(),
            },
        ));
    }

    // One bar per row, coloured by its target, with the targets as the legend.
    let single = |title: &str, y_label: &str, rows: Vec<(String, TargetKind, f64)>| {
        let targets = TargetKind::ALL
            .into_iter()
            .filter(|t| rows.iter().any(|r| r.1 == *t));
        BarChart {
            title: title.into(),
            y_label: y_label.into(),
            groups: rows.iter().map(|(n, _, _)| n.clone()).collect(),
            series: vec![(String::new(), PALETTE[0].into())],
            values: rows.iter().map(|(_, _, v)| vec![Some(*v)]).collect(),
            log: false,
            format: si,
            group_colours: rows.iter().map(|(_, t, _)| colour(*t)).collect(),
            legend: targets.map(|t| (t.to_string(), colour(t))).collect(),
        }
    };

    let max_rows: Vec<(String, TargetKind, f64)> = results
        .broadcast
        .iter()
        .filter(|r| r.phase == Phase::Max)
        .map(|r| (load_name(r), r.target, r.deliveries_per_s))
        .collect();
    if !max_rows.is_empty() {
        let clients = results.broadcast.first().map_or(0, |r| r.clients);
        let chart = single(
            &format!("Broadcast to {clients} clients: deliveries per second (max throughput)"),
            "deliveries/s",
            max_rows,
        );
        out.push(("broadcast.svg".into(), chart));
    }

    let fixed: Vec<&LoadRow> = results
        .broadcast
        .iter()
        .filter(|r| r.phase == Phase::Fixed)
        .collect();
    if !fixed.is_empty() {
        let rate = fixed.first().and_then(|r| r.requested_rate).unwrap_or(0);
        out.push((
            "latency.svg".into(),
            BarChart {
                title: format!(
                    "Broadcast latency at {} deliveries/s (log scale, lower is better)",
                    si(rate as f64)
                ),
                y_label: "latency".into(),
                groups: fixed.iter().map(|r| load_name(r)).collect(),
                series: vec![
                    ("p50".into(), PALETTE[2].into()),
                    ("p99".into(), PALETTE[0].into()),
                    ("p99.9".into(), PALETTE[3].into()),
                ],
                values: fixed
                    .iter()
                    .map(|r| {
                        vec![
                            Some(r.latency.p50_us as f64),
                            Some(r.latency.p99_us as f64),
                            Some(r.latency.p999_us as f64),
                        ]
                    })
                    .collect(),
                log: true,
                format: |v| short_micros(v as u64),
                group_colours: Vec::new(),
                legend: Vec::new(),
            },
        ));
    }

    let topic_rows: Vec<(String, TargetKind, f64)> = results
        .topics
        .iter()
        .map(|r| (load_name(r), r.target, r.deliveries_per_s))
        .collect();
    if !topic_rows.is_empty() {
        let chart = single("Topics: deliveries per second", "deliveries/s", topic_rows);
        out.push(("topics.svg".into(), chart));
    }

    if !results.echo.is_empty() {
        // Grouped by messages in flight, one bar per target (wsgate via its business process,
        // without acks; the table has the rows with them).
        let echo: Vec<EchoRow> = results.echo.iter().filter(|r| !r.acks).cloned().collect();
        let in_flight = distinct(&echo, |r| r.in_flight);
        let echo_targets: Vec<TargetKind> = targets
            .iter()
            .copied()
            .filter(|t| echo.iter().any(|r| r.target == *t))
            .collect();
        out.push((
            "echo.svg".into(),
            BarChart {
                title: "Echo: round trips per second, by messages in flight per client".into(),
                y_label: "round trips/s".into(),
                groups: in_flight.iter().map(|n| format!("{n} in flight")).collect(),
                series: echo_targets
                    .iter()
                    .map(|t| {
                        let name = match echo.iter().find(|r| r.target == *t) {
                            Some(r) => format!("{t} ({})", r.via),
                            None => t.to_string(),
                        };
                        (name, colour(*t))
                    })
                    .collect(),
                values: bars(
                    &echo,
                    &in_flight,
                    &echo_targets,
                    |r| (r.target, r.in_flight),
                    |r| r.round_trips_per_s,
                ),
                log: false,
                format: si,
                group_colours: Vec::new(),
                legend: Vec::new(),
            },
        ));
    }

    let churn_rows: Vec<(String, TargetKind, f64)> = results
        .churn
        .iter()
        .map(|r| (r.target.to_string(), r.target, r.handshakes_per_s))
        .collect();
    if !churn_rows.is_empty() {
        let chart = single(
            "Churn: handshakes per second (connect, close, repeat)",
            "handshakes/s",
            churn_rows,
        );
        out.push(("churn.svg".into(), chart));
    }
    out
}

/// The distinct values of `key` over `rows`, sorted: the groups of a grouped chart.
fn distinct<R, K: Ord>(rows: &[R], key: impl Fn(&R) -> K) -> Vec<K> {
    let mut keys: Vec<K> = rows.iter().map(key).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// A grouped chart's values: for each of `keys`, one bar per target, the value of the row
/// with that target and key (`key` reads both off a row); none where no row has them.
fn bars<R, K: PartialEq>(
    rows: &[R],
    keys: &[K],
    targets: &[TargetKind],
    key: impl Fn(&R) -> (TargetKind, K),
    value: impl Fn(&R) -> f64,
) -> Vec<Vec<Option<f64>>> {
    keys.iter()
        .map(|k| {
            targets
                .iter()
                .map(|t| {
                    rows.iter()
                        .find(|r| {
                            let (target, rk) = key(r);
                            target == *t && rk == *k
                        })
                        .map(&value)
                })
                .collect()
        })
        .collect()
}

/// Microseconds, as µs or ms.
fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// Microseconds, compact enough for a bar label: "850µs", "2.2ms", "25ms", "1.1s".
fn short_micros(us: u64) -> String {
    let v = us as f64;
    if us >= 1_000_000 {
        format!("{:.1}s", v / 1e6)
    } else if us >= 10_000 {
        format!("{:.0}ms", v / 1e3)
    } else if us >= 1000 {
        format!("{:.1}ms", v / 1e3)
    } else {
        format!("{us}µs")
    }
}

fn times(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"))
}

/// The whole Markdown report, with the charts next to it.
pub fn markdown(results: &Results) -> String {
    markdown_with_charts(results, "")
}

/// The Markdown report with `charts` (a relative path ending in `/`, or empty) before every
/// chart's file name, for a copy kept elsewhere (BENCHMARKS.md).
pub fn markdown_with_charts(results: &Results, charts: &str) -> String {
    let plan = &results.plan;
    let mut md = String::new();
    let _ = writeln!(md, "# wsgate-bench results\n");
    if plan.smoke {
        let _ = writeln!(
            md,
            "> **Smoke run**: tiny counts to check that the tool works; these figures say nothing about speed.\n"
        );
    }
    let _ = writeln!(
        md,
        "- Date: {}; commit: {}; total time {:.0} s\n- Machine: {}\n- Command: `{}`\n- Load generator and targets run on the same machine over loopback and share its CPUs; each target runs alone, started fresh for every measurement.",
        results.date,
        results.git_commit.as_deref().unwrap_or("unknown"),
        results.total_secs,
        results.machine.summary(),
        results.command_line
    );
    let _ = writeln!(
        md,
        "- Ratio columns (`× plain`, `× node`) divide this row's headline figure by the peer's under the same conditions.\n"
    );

    let _ = writeln!(md, "## Targets\n");
    table(
        &mut md,
        &["target", "measured", "result", "note"],
        4,
        results.checks.iter().map(|c| {
            vec![
                c.target.to_string(),
                c.measured.to_string(),
                format!("**{}**", c.verdict.label()),
                c.note.to_string(),
            ]
        }),
    );
    md.push('\n');

    if !results.idle.is_empty() {
        let _ = writeln!(
            md,
            "## Idle: memory per connection\n\nEach target fresh; resident memory (VmRSS) read 1 s after start and again 1 s after it reports holding N connections; per connection = difference / N (lower is better; ratios too). wsgate runs without a business process.\n"
        );
        table(
            &mut md,
            &[
                "target",
                "connections",
                "KiB/connection",
                "RSS before → after",
                "connects/s",
                "× plain",
                "× node",
            ],
            1,
            results.idle.iter().map(|r| {
                vec![
                    r.target.to_string(),
                    r.connections.to_string(),
                    format!("{:.2}", r.per_conn_kib),
                    format!(
                        "{:.1} → {:.1} MiB",
                        r.baseline_rss_bytes as f64 / 1048576.0,
                        r.rss_bytes as f64 / 1048576.0
                    ),
                    si(r.connects_per_s),
                    times(r.vs_plain),
                    times(r.vs_node),
                ]
            }),
        );
        let _ = writeln!(md, "\n![idle memory]({charts}idle-memory.svg)\n");
    }

    if !results.broadcast.is_empty() {
        let clients = results
            .broadcast
            .first()
            .map_or(plan.clients, |r| r.clients);
        let _ = writeln!(
            md,
            "## Broadcast: {clients} clients, 100-byte messages\n\nRoutes: wsgate through the Rust SDK (`Client::broadcast`, {} in flight), the HTTP API (`POST /api/v1/broadcast`, {} keep-alive connections) and the gRPC API (`PushApi/Broadcast`, as many HTTP/2 connections); the peers through their `POST /broadcast`. Deliveries are counted at the clients; latency is receive time minus the send time stamped in each message.\n",
            plan.in_flight, plan.in_flight
        );
        let _ = writeln!(
            md,
            "### Max throughput\n\nClosed loop: at most {} messages per client published but not yet received, so nobody has to drop.\n",
            plan.window
        );
        load_table(&mut md, &results.broadcast, Phase::Max, "broadcasts/s");
        let _ = writeln!(md, "\n![broadcast]({charts}broadcast.svg)\n");
        let _ = writeln!(
            md,
            "### What a backend sees: {} publishers\n\nEach publisher sends its next broadcast only once the last one is answered, with no other flow control: a PHP-FPM worker, a Laravel job, a Java consumer thread. The round trip is the time from sending a request to reading its answer.\n",
            plan.publishers
        );
        load_table(&mut md, &results.broadcast, Phase::Backend, "broadcasts/s");
        let _ = writeln!(
            md,
            "### Fixed rate: {} deliveries/s\n\nOpen loop at {} broadcasts/s. Ratios here are of p99 latency (lower is better).\n",
            plan.rate,
            si(plan.rate as f64 / clients.max(1) as f64)
        );
        load_table(&mut md, &results.broadcast, Phase::Fixed, "broadcasts/s");
        let _ = writeln!(md, "\n![latency]({charts}latency.svg)\n");
    }

    if !results.topics.is_empty() {
        let _ = writeln!(
            md,
            "## Topics: {} topics × {} subscribers\n\nEach message goes to one random topic, closed loop as above, {} requests in flight. wsgate: a business process subscribes each connection on open (from `?topic=`) and the SDK publishes; the peers subscribe from the URL themselves and publish through `POST /publish?topic=`.\n",
            plan.topics, plan.subscribers, plan.topic_in_flight
        );
        load_table(&mut md, &results.topics, Phase::Max, "publishes/s");
        let _ = writeln!(md, "\n![topics]({charts}topics.svg)\n");
    }

    if !results.echo.is_empty() {
        let _ = writeln!(
            md,
            "## Echo: {} clients; messages in flight per client: {}\n\nEach client sends that many messages, then one more for each that comes back (1 is ping-pong); each value is a separate phase on a freshly started target, and ratios compare the same value. wsgate answers through a business process (fire-and-forget single cast back to the sender), once as is and once registered with acks (`via` \"business, acks\": every event acknowledged once received, what at-least-once delivery costs); the peers echo in the hub itself, so they are the floor.\n",
            plan.echo_clients,
            plan.echo_in_flight
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        table(
            &mut md,
            &[
                "target",
                "via",
                "in flight",
                "round trips/s",
                "p50",
                "p99",
                "p99.9",
                "× plain",
                "× node",
            ],
            2,
            results.echo.iter().map(|r| {
                vec![
                    r.target.to_string(),
                    r.via.to_string(),
                    r.in_flight.to_string(),
                    si(r.round_trips_per_s),
                    micros(r.latency.p50_us),
                    micros(r.latency.p99_us),
                    micros(r.latency.p999_us),
                    times(r.vs_plain),
                    times(r.vs_node),
                ]
            }),
        );
        let _ = writeln!(md, "\n![echo]({charts}echo.svg)\n");
    }

    if !results.churn.is_empty() {
        let _ = writeln!(
            md,
            "## Churn: {} workers\n\nEach worker connects, upgrades, sends a close frame, waits for the server's close and end of stream, and starts over.\n",
            plan.churn_concurrency
        );
        table(
            &mut md,
            &["target", "handshakes/s", "failures", "× plain", "× node"],
            1,
            results.churn.iter().map(|r| {
                vec![
                    r.target.to_string(),
                    si(r.handshakes_per_s),
                    r.failures.to_string(),
                    times(r.vs_plain),
                    times(r.vs_node),
                ]
            }),
        );
        let _ = writeln!(md, "\n![churn]({charts}churn.svg)\n");
    }

    if let Some(r) = results.soak.first() {
        let _ = writeln!(
            md,
            "## Soak: {} clients for {:.0} s\n\nwsgate only. Each steady client sends a message every {:?} that an echo business process sends back; a second business process broadcasts to everyone once a period; {} workers connect and close in a loop beside them. The gateway's resident memory (VmRSS), open files and connections are sampled every {:?}; drift compares the mean of the first three samples after the warm-up ({:.0} s) with the mean of the last three.\n",
            r.clients,
            r.seconds,
            plan.soak_interval,
            r.churn_workers,
            plan.soak_sample,
            r.warmup_secs
        );
        table(
            &mut md,
            &["figure", "value"],
            1,
            [
                (
                    "RSS after warm-up",
                    format!("{:.1} MiB", r.rss_after_warmup as f64 / 1048576.0),
                ),
                (
                    "RSS at the end",
                    format!("{:.1} MiB", r.rss_end as f64 / 1048576.0),
                ),
                ("RSS drift", format!("{:+.1} %", r.rss_drift_pct)),
                (
                    "RSS max after warm-up",
                    format!("{:.1} MiB", r.rss_max as f64 / 1048576.0),
                ),
                (
                    "open files after warm-up / at the end",
                    format!("{} / {}", r.open_files_after_warmup, r.open_files_end),
                ),
                (
                    "messages received by the steady clients",
                    si(r.messages as f64),
                ),
                ("broadcasts", r.broadcasts.to_string()),
                ("churn cycles", r.churn_cycles.to_string()),
                (
                    "errors",
                    r.error_kinds
                        .iter()
                        .map(|(k, n)| format!("{k}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ]
            .into_iter()
            .map(|(k, v)| vec![k.to_owned(), v]),
        );
        // At most about 20 sample rows.
        let step = r.samples.len().div_ceil(20).max(1);
        let _ = writeln!(md);
        table(
            &mut md,
            &["at (s)", "RSS (MiB)", "open files", "connections"],
            1,
            r.samples.iter().step_by(step).map(|s| {
                vec![
                    format!("{:.1}", s.at_secs),
                    format!("{:.1}", s.rss_bytes as f64 / 1048576.0),
                    s.open_files.to_string(),
                    s.connections.to_string(),
                ]
            }),
        );
        if let Some(e) = &r.first_error {
            let _ = writeln!(md, "\nFirst error: {}", e.replace('\n', " "));
        }
        let _ = writeln!(md);
    }

    if !results.fault.is_empty() {
        fault_section(&mut md, results);
    }

    if !results.streams.is_empty() || !results.streams_recovery.is_empty() {
        streams_section(&mut md, results);
    }

    if !results.consumers.is_empty() {
        consumers_section(&mut md, results);
    }

    let _ = writeln!(md, "## Notes\n");
    for s in &results.skipped {
        let _ = writeln!(md, "- **{} skipped**: {}", s.target, s.reason);
    }
    for f in &results.failures {
        let _ = writeln!(
            md,
            "- **{} failed for {}**: {}",
            f.scenario.name(),
            f.target,
            f.error.replace('\n', " ")
        );
    }
    for w in &results.warnings {
        let who = if w.target == TargetKind::Wsgate {
            "gateway"
        } else {
            w.target.name()
        };
        let _ = writeln!(md, "- {who} warnings: {}", w.lines);
        for line in &w.first {
            let _ = writeln!(md, "  - `{}`", line.replace('`', "'"));
        }
    }
    for r in results
        .fault
        .iter()
        .filter(|r| r.clients_lost > 0 || r.unexpected_answers > 0)
    {
        let _ = writeln!(
            md,
            "- fault {}: {} clients closed by the server, {} answers to messages never sent{}",
            r.fault.label(),
            r.clients_lost,
            r.unexpected_answers,
            r.first_error
                .as_ref()
                .map_or(String::new(), |e| format!("; first: {e}"))
        );
    }
    for r in &results.streams {
        load_trouble(&mut md, "streams", r.history.label(), r.load.as_ref());
        if let Some(bad) = &r.first_bad {
            let _ = writeln!(
                md,
                "- streams, {}: {} frames not of the protocol; first: {}",
                r.history.label(),
                r.bad_frames,
                bad.replace('`', "'")
            );
        }
    }
    for r in &results.consumers {
        load_trouble(&mut md, "consumers", r.source.label(), r.load.as_ref());
    }
    for rows in [&results.broadcast, &results.topics] {
        for r in rows
            .iter()
            .filter(|r| r.first_error.is_some() || r.clients_lost > 0)
        {
            let _ = writeln!(
                md,
                "- {} {}: {} publish errors, {} clients lost{}",
                load_name(r),
                r.phase.label(),
                r.publish_errors,
                r.clients_lost,
                r.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!("; first error: {e}"))
            );
        }
    }
    md
}

/// The fault scenario: how it ran, what each figure means, one row per fault.
fn fault_section(md: &mut String, results: &Results) {
    let plan = &results.plan;
    let interval = plan.fault_interval();
    let _ = writeln!(
        md,
        "## Fault: a business process killed, then one hung\n\nwsgate only (the peers have no business processes). wsgate runs with `--worker-ack-timeout {:?}` and a worker heartbeat of a quarter of it (a stalled link is looked for when a ping is due); two echo business processes, each an OS process of its own, register with acks (the SDK's `acks(true)`: each event acknowledged once the process has received it) and send every message back to its sender with a single cast. {} clients send numbered messages open loop, {} a second in all (one every {:?} each), and log every answer. {:?} after sending starts, one echo process is killed (SIGKILL); {:?} later a replacement is started; {:?} later the process that holds every connection by then (a connection stays with its process while that lives) is stopped (SIGSTOP) for {:?}, then killed; {:?} later sending stops and the last answers are waited for (at most {:?}).\n",
        plan.fault_ack_timeout,
        plan.fault_clients,
        plan.fault_rate,
        interval,
        plan.fault_settle,
        plan.fault_settle,
        plan.fault_settle,
        plan.fault_stop,
        plan.fault_settle,
        plan.drain
    );
    let _ = writeln!(
        md,
        "Each row counts the messages sent in its fault's window: the first from the start of sending to the replacement's registration, the second from then to the end of sending, so each holds the traffic that was in flight when its fault hit. Times are from the start of sending.\n\n- **lost**: sent and never answered (the goal is 0).\n- **duplicated**: answered more than once (redelivered after the failing process had already echoed it).\n- **out of order**: first answers that arrived after the first answer to a later message of the same connection.\n- **takeover**: from the fault until the last connection to recover got its first answer to a message it sent at or after the fault; it includes up to one send interval ({interval:?}) before that message left. \"never\": some connection got no such answer.\n- **longest gap**: the longest time between two answers in a row on one connection, the second after the fault and the first before the window's end. The send interval is the floor of both: a takeover and a gap of about {interval:?} mean that no client waited longer than usual.\n- **slowest answer**: the longest time from sending a message of the window to its first answer.\n- **redelivered**, **ack timeouts**: what the gateway counted over the window (`wsgate_events_redelivered_total`, `wsgate_worker_ack_timeouts_total`).\n"
    );
    table(
        md,
        &[
            "fault",
            "what was done",
            "at",
            "window",
            "sent",
            "answered",
            "lost",
            "duplicated",
            "out of order",
            "takeover",
            "longest gap",
            "slowest answer",
            "redelivered",
            "ack timeouts",
        ],
        2,
        results.fault.iter().map(|r| {
            vec![
                r.fault.label().to_owned(),
                r.action.clone(),
                format!("{:.1} s", r.fault_at_secs),
                format!("{:.1}–{:.1} s", r.from_secs, r.to_secs),
                r.sent.to_string(),
                r.answered.to_string(),
                format!("**{}**", r.lost),
                r.duplicated.to_string(),
                r.out_of_order.to_string(),
                r.takeover_ms.map_or_else(
                    || format!("never ({} connections)", r.never_answered_after),
                    millis,
                ),
                millis(r.longest_gap_ms),
                millis(r.slowest_answer_ms),
                r.redelivered.to_string(),
                r.ack_timeouts.to_string(),
            ]
        }),
    );
    let _ = writeln!(md);
}

/// The streams scenario: throughput with history off, in memory and in Redis; the reconnect
/// storm.
fn streams_section(md: &mut String, results: &Results) {
    let plan = &results.plan;
    let clients = results
        .streams
        .iter()
        .find_map(|r| r.load.as_ref())
        .map_or(plan.stream_clients, |l| l.clients);
    let _ = writeln!(
        md,
        "## Streams: history and recovery\n\nwsgate only (the peers have no streams). {clients} clients offer the `wsgate.stream.v1` subprotocol and upgrade with `?topic=s0`; the bench's business process subscribes each to topic `s0` on its `ConnOpen`, and the SDK publishes 100-byte stamped messages to `s0`, closed loop as in the broadcast max phase ({} messages per client outstanding, {} requests in flight), on three gateways in turn: no `--stream` rule (history off: clients get `message` frames), a rule keeping history in memory, and the same rule with the Redis engine. Every client parses every JSON frame and counts publications (history off: `message` frames); latency comes from the stamp in `data`. Gaps and duplicates are publications out of offset order at a client: the protocol promises none.\n",
        plan.window, plan.in_flight
    );
    table(
        md,
        &[
            "history",
            "gateway flags",
            "deliveries/s",
            "publishes/s",
            "p50",
            "p99",
            "publish round trip p50",
            "p99",
            "× history off",
            "gaps",
            "duplicates",
            "drops",
            "server drops",
        ],
        2,
        results.streams.iter().map(|r| match (&r.load, &r.skipped) {
            (Some(l), _) => vec![
                r.history.label().to_owned(),
                format!("`{}`", r.flags),
                si(l.deliveries_per_s),
                si(l.publishes_per_s),
                micros(l.latency.p50_us),
                micros(l.latency.p99_us),
                micros(l.round_trip.p50_us),
                micros(l.round_trip.p99_us),
                times(r.vs_off),
                r.gaps.to_string(),
                r.duplicates.to_string(),
                l.drops.to_string(),
                l.server_drops.to_string(),
            ],
            (None, why) => {
                let mut cells = vec![
                    r.history.label().to_owned(),
                    format!(
                        "skipped: {}",
                        why.as_deref().unwrap_or("not measured").replace('|', "/")
                    ),
                ];
                cells.extend(std::iter::repeat_n("–".to_owned(), 11));
                cells
            }
        }),
    );
    if let Some(r) = results.streams_recovery.first() {
        let _ = writeln!(
            md,
            "\n### Recovery: {} clients reconnecting at once\n\nWith history on: the clients join `s0` and receive {} publications; all drop their sockets (no close frame); once the gateway has seen them go, {} more are published; then all reconnect at once (every handshake in flight together), each giving its position in `wsgate_recover`. A client is recovered when its `joined` frame says `\"recovered\": true` after a gapless replay of exactly the {} it missed, ending at the stream's offset. Times run from the storm's start to each client's `joined`: the handshake, the `ConnOpen` to the business process, its `Subscribe`, and the replay. \"all recovered\" is when the last client was.\n",
            r.clients, r.before, r.missed, r.missed
        );
        table(
            md,
            &[
                "history",
                "clients",
                "recovered",
                "not recovered",
                "replayed",
                "p50",
                "p99",
                "max",
                "all handshakes",
                "all recovered",
            ],
            1,
            results.streams_recovery.iter().map(|r| match &r.skipped {
                None => vec![
                    r.history.label().to_owned(),
                    r.clients.to_string(),
                    r.recovered.to_string(),
                    format!("**{}**", r.not_recovered),
                    r.replayed.to_string(),
                    micros(r.time.p50_us),
                    micros(r.time.p99_us),
                    micros(r.time.max_us),
                    millis(r.handshakes_ms),
                    millis(r.total_ms),
                ],
                Some(why) => {
                    let mut cells = vec![
                        r.history.label().to_owned(),
                        format!("skipped: {}", why.replace('|', "/")),
                    ];
                    cells.extend(std::iter::repeat_n("–".to_owned(), 8));
                    cells
                }
            }),
        );
        for r in results
            .streams_recovery
            .iter()
            .filter(|r| !r.reasons.is_empty())
        {
            let _ = writeln!(
                md,
                "\n{} not recovered ({}): {}",
                r.not_recovered,
                r.history.label(),
                r.reasons.join("; ")
            );
        }
    }
    let _ = writeln!(md);
}

/// The consumers scenario: the HTTP route and the two broker routes, one gateway, the same
/// clients.
fn consumers_section(md: &mut String, results: &Results) {
    let plan = &results.plan;
    let clients = results
        .consumers
        .iter()
        .find_map(|r| r.load.as_ref())
        .map_or(plan.consumer_clients, |l| l.clients);
    let _ = writeln!(
        md,
        "## Consumers: broadcasts from RabbitMQ and Redis against the HTTP API\n\nwsgate only (the peers have no consumers). One gateway, started with `--config` holding two `[[consumer]]` tables (`rabbitmq` on a fresh durable queue with `prefetch = 200`, `redis-list` on a fresh key), and {clients} clients; three phases on them in turn, each closed loop as the broadcast max phase (at most {} messages per client published but not yet received, so at most that many wait at the broker; {} producers): `POST /api/v1/broadcast`, then the JSON command `{{\"method\": \"broadcast\", \"params\": {{\"text\": …}}}}` published to the queue (each message confirmed by RabbitMQ), then the same command `LPUSH`ed to the list. Messages/s published: what the producers got in (answered, confirmed, pushed); delivered: deliveries at the clients ÷ clients, the messages the route carried out. Latency runs from the producer to the client through the broker; the round trip is the producer's request. Ratios are deliveries/s against the HTTP row's. \"consumer counted\" is the gateway's `/metrics` over the phase: carried out / refused / retried.\n",
        plan.window, plan.in_flight
    );
    table(
        md,
        &[
            "source",
            "producer",
            "messages/s published",
            "delivered",
            "deliveries/s",
            "p50",
            "p99",
            "round trip p50",
            "p99",
            "× HTTP",
            "drops",
            "server drops",
            "consumer counted",
        ],
        2,
        results
            .consumers
            .iter()
            .map(|r| match (&r.load, &r.skipped) {
                (Some(l), _) => vec![
                    r.source.label().to_owned(),
                    r.how.clone(),
                    si(l.publishes_per_s),
                    si(l.deliveries_per_s / l.fanout.max(1) as f64),
                    si(l.deliveries_per_s),
                    micros(l.latency.p50_us),
                    micros(l.latency.p99_us),
                    micros(l.round_trip.p50_us),
                    micros(l.round_trip.p99_us),
                    times(r.vs_http),
                    l.drops.to_string(),
                    l.server_drops.to_string(),
                    if r.source == ConsumerSource::Http {
                        "–".to_owned()
                    } else {
                        format!("{} / {} / {}", r.consumed, r.bad, r.retries)
                    },
                ],
                (None, why) => {
                    let mut cells = vec![
                        r.source.label().to_owned(),
                        format!(
                            "skipped: {}",
                            why.as_deref()
                                .unwrap_or("not measured")
                                .replace('|', "/")
                                .replace('\n', " ")
                        ),
                    ];
                    cells.extend(std::iter::repeat_n("–".to_owned(), 11));
                    cells
                }
            }),
    );
    let _ = writeln!(md);
}

/// Milliseconds, as ms or s.
fn millis(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// A broadcast or topics table for one phase.
fn load_table(md: &mut String, rows: &[LoadRow], phase: Phase, per: &str) {
    let first = if phase == Phase::Fixed {
        "achieved deliveries/s"
    } else {
        "deliveries/s"
    };
    table(
        md,
        &[
            "target",
            "route",
            first,
            per,
            "p50",
            "p99",
            "p99.9",
            "publish round trip p50",
            "p99",
            "drops",
            "server drops",
            "× plain",
            "× node",
        ],
        2,
        rows.iter().filter(|r| r.phase == phase).map(|r| {
            let route = r.route.title();
            vec![
                r.target.to_string(),
                route.to_owned(),
                si(r.deliveries_per_s),
                si(r.publishes_per_s),
                micros(r.latency.p50_us),
                micros(r.latency.p99_us),
                micros(r.latency.p999_us),
                micros(r.round_trip.p50_us),
                micros(r.round_trip.p99_us),
                r.drops.to_string(),
                r.server_drops.to_string(),
                times(r.vs_plain),
                times(r.vs_node),
            ]
        }),
    );
}

/// Writes a Markdown table: the header naming `columns`, the first `left` of them
/// left-aligned and the rest (figures) right-aligned, then a line for each row of cells.
fn table(
    md: &mut String,
    columns: &[&str],
    left: usize,
    rows: impl IntoIterator<Item = Vec<String>>,
) {
    let align: Vec<&str> = (0..columns.len())
        .map(|i| if i < left { "---" } else { "---:" })
        .collect();
    let _ = writeln!(md, "| {} |", columns.join(" | "));
    let _ = writeln!(md, "| {} |", align.join(" | "));
    for row in rows {
        let _ = writeln!(md, "| {} |", row.join(" | "));
    }
}

/// A note on a load phase that had publish errors or lost clients, if it had.
fn load_trouble(md: &mut String, scenario: &str, label: &str, load: Option<&LoadRow>) {
    let Some(l) = load.filter(|l| l.first_error.is_some() || l.clients_lost > 0) else {
        return;
    };
    let _ = writeln!(
        md,
        "- {scenario}, {label}: {} publish errors, {} clients lost{}",
        l.publish_errors,
        l.clients_lost,
        l.first_error
            .as_ref()
            .map_or(String::new(), |e| format!("; first error: {e}"))
    );
}

#[cfg(test)]
mod tests {
    use super::{micros, millis, relative, short_micros};
    use std::path::Path;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/w"), Path::new("/w/bench/results")),
            "bench/results"
        );
        assert_eq!(
            relative(Path::new("/w/docs"), Path::new("/w/bench/results")),
            "../bench/results"
        );
        assert_eq!(relative(Path::new("/w"), Path::new("/w")), "");
    }

    #[test]
    fn latency_units() {
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(1250), "1.25 ms");
        assert_eq!(micros(25_000), "25.0 ms");
        assert_eq!(short_micros(850), "850µs");
        assert_eq!(short_micros(2_240), "2.2ms");
        assert_eq!(short_micros(151_400), "151ms");
        assert_eq!(short_micros(4_300_000), "4.3s");
        assert_eq!(millis(104.4), "104 ms");
        assert_eq!(millis(2_254.0), "2.25 s");
        assert_eq!(millis(12_500.0), "12.5 s");
    }
}
