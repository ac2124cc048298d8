//! `wsgate-bench`: the load tool. Drives a real wsgate over loopback with many real WebSocket
//! clients and a real publisher or business process, side by side with two peers (a plain
//! tokio-tungstenite hub and a Node.js `ws` hub), and writes JSON, Markdown and SVG results.
//!
//! Scenarios: idle (memory per connection), broadcast, topics, echo, churn, soak, fault,
//! streams and consumers; see `scenario/`. The clients run on one runtime (`--client-threads`
//! workers); publishers and the bench's business processes on a second, one-thread runtime, so
//! that neither starves the other of scheduling turns. `--smoke` runs everything tiny and
//! asserts that traffic arrived, for CI.

mod business;
mod checks;
mod cli;
mod client;
mod error;
mod fdlimit;
mod fleet;
mod frame;
mod gate;
mod handshake;
mod http;
mod ledger;
mod machine;
mod progress;
mod publisher;
mod recorder;
mod report;
mod resp;
mod results;
mod scenario;
mod smoke;
mod stamp;
mod streamwire;
mod svg;
mod target;
mod verdict;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;

use crate::cli::{Args, Command, Plan, Scenario};
use crate::error::BenchError;
use crate::progress::Progress;
use crate::results::{Results, Skip};
use crate::scenario::Ctx;
use crate::target::{Programs, TargetKind};

/// The workspace root, where the default output directory and the node hub live.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The fault scenario's business processes: this executable again, in a hidden mode.
    if let Some(Command::BusinessEcho { worker, acks }) = &args.command {
        return business::process(*worker, *acks);
    }
    let plan = match Plan::from_args(&args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("wsgate-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let fd_limit = fdlimit::raise();
    eprintln!(
        "wsgate-bench: open-file limit {fd_limit}: up to {} client sockets",
        fdlimit::max_clients(fd_limit)
    );
    let runtimes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.client_threads)
        .thread_name("bench-clients")
        .enable_all()
        .build()
        .and_then(|clients| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("bench-driver")
                .enable_all()
                .build()
                .map(|driver| (clients, driver))
        });
    let (clients, driver) = match runtimes {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wsgate-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = clients.block_on(run(&args, plan, driver.handle().clone(), fd_limit));
    // Stray tasks (SDK links winding down) must not hold the exit.
    driver.shutdown_background();
    clients.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsgate-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where the programs are, from the flags or next to this executable.
fn programs(args: &Args) -> Result<Programs, BenchError> {
    let here = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Programs {
        wsgate: args
            .wsgate_bin
            .clone()
            .unwrap_or_else(|| here.join("wsgate")),
        plain: args
            .plain_bin
            .clone()
            .unwrap_or_else(|| here.join("plain-hub")),
        node: args.node.clone(),
        node_hub: args
            .node_hub
            .clone()
            .unwrap_or_else(|| workspace_root().join("bench/peers/node-hub/hub.js")),
    })
}

/// True under CI (`CI` set to anything but empty or "false").
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

async fn run(
    args: &Args,
    plan: Plan,
    driver: tokio::runtime::Handle,
    fd_limit: u64,
) -> Result<(), BenchError> {
    let started = Instant::now();
    let programs = programs(args)?;
    let out_dir = match (&args.out, plan.smoke) {
        (Some(dir), _) => dir.clone(),
        (None, true) => {
            std::env::temp_dir().join(format!("wsgate-bench-smoke-{}", std::process::id()))
        }
        (None, false) => workspace_root().join("bench/results"),
    };

    // Targets that cannot run: node is optional (skipped, said so), the others are not.
    let mut skipped = Vec::new();
    let mut targets = Vec::new();
    for &kind in &plan.targets {
        match programs.check(kind) {
            Ok(()) => targets.push(kind),
            Err(e) if kind == TargetKind::Node && !(plan.smoke && in_ci()) => {
                eprintln!("wsgate-bench: skipped: node ({e})");
                skipped.push(Skip {
                    target: kind,
                    reason: e.to_string(),
                });
            }
            Err(e) => return Err(e),
        }
    }

    let progress = Arc::new(Progress::new());
    let printer = tokio::spawn(progress.clone().run());
    let ctx = Ctx {
        plan: plan.clone(),
        programs,
        targets: targets.clone(),
        driver,
        progress: progress.clone(),
        fd_limit,
        max_clients: fdlimit::max_clients(fd_limit),
    };
    let mut results = Results {
        tool: "wsgate-bench",
        version: env!("CARGO_PKG_VERSION"),
        date: machine::now_utc(),
        git_commit: machine::git_commit(&workspace_root()),
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine::Machine::read(fd_limit),
        plan: plan.clone(),
        idle: Vec::new(),
        broadcast: Vec::new(),
        topics: Vec::new(),
        echo: Vec::new(),
        churn: Vec::new(),
        soak: Vec::new(),
        fault: Vec::new(),
        streams: Vec::new(),
        streams_recovery: Vec::new(),
        consumers: Vec::new(),
        failures: Vec::new(),
        skipped,
        warnings: Vec::new(),
        checks: Vec::new(),
        total_secs: 0.0,
    };
    progress.say(format!(
        "wsgate-bench: {}; targets {}; results to {}",
        results.machine.summary(),
        targets
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", "),
        out_dir.display()
    ));

    for &scenario in &plan.scenarios {
        match scenario {
            Scenario::Idle => scenario::idle::run(&ctx, &mut results).await,
            Scenario::Broadcast => scenario::broadcast::run(&ctx, &mut results).await,
            Scenario::Topics => scenario::topics::run(&ctx, &mut results).await,
            Scenario::Echo => scenario::echo::run(&ctx, &mut results).await,
            Scenario::Churn => scenario::churn::run(&ctx, &mut results).await,
            Scenario::Soak => scenario::soak::run(&ctx, &mut results).await,
            Scenario::Fault => scenario::fault::run(&ctx, &mut results).await,
            Scenario::Streams => scenario::streams::run(&ctx, &mut results).await,
            Scenario::Consumers => scenario::consumers::run(&ctx, &mut results).await,
        }
    }
    printer.abort();

    results.total_secs = started.elapsed().as_secs_f64();
    results.compute_ratios();
    results.checks = checks::evaluate(&results);
    let written = report::write(&results, &out_dir)?;
    if let Some(path) = &args.benchmarks_md {
        report::write_copy(&results, path, &out_dir)?;
        eprintln!("wsgate-bench: wrote {}", path.display());
    }
    println!("{}", report::markdown(&results));
    eprintln!(
        "wsgate-bench: wrote {} files to {} in {:.0} s",
        written.len(),
        out_dir.display(),
        results.total_secs
    );

    if plan.smoke {
        let problems = smoke::problems(&plan, &targets, &results);
        if !problems.is_empty() {
            return Err(BenchError::Smoke(problems.join("; ")));
        }
        eprintln!("wsgate-bench: smoke run passed: traffic arrived for every target and scenario");
    } else if !results.failures.is_empty() {
        return Err(BenchError::Failed(results.failures.len()));
    }
    Ok(())
}
