//! Scenario 8, streams (docs/streams.md): what history costs a publisher, and whether a crowd
//! that drops and comes back at once gets back everything it missed. wsgate only: the peers
//! have no streams.
//!
//! **Throughput.** `--stream-clients` clients offer `wsgate.stream.v1` and upgrade with
//! `?topic=s0`; the bench's subscriber business process (the topics scenario's) puts each in
//! topic `s0` on its `ConnOpen`. The SDK publishes to `s0` closed loop, exactly as the
//! broadcast scenario's max phase (`--window` messages per client outstanding, `--in-flight`
//! requests), for `--duration`. Three gateways in turn, the same clients count: history off
//! (no `--stream` rule: `message` frames), history in memory (`--stream "topics s*
//! history=100 age=10m"`: `publication` frames, offsets, history) and history in Redis (the
//! same rule, `--stream-engine redis`, keys under a prefix of this run, deleted afterwards).
//! Every client parses every frame and counts publications; the latency stamp is the `data`.
//!
//! **Recovery.** With history on: `--recover-clients` clients join `s0` and receive
//! `--recover-messages` publications; all drop their sockets at once; once the gateway has seen
//! them go, as many again are published; then all reconnect at once (as many handshakes in
//! flight as clients), each giving its position in `wsgate_recover`. Each client's time runs
//! from the storm's start to its `joined` frame, which must say `"recovered": true` and come
//! after a gapless replay of exactly what it missed; anything else is a client not recovered.
//!
//! The Redis rows need a Redis at `--stream-redis-url`; when none answers `PING` they are
//! reported as skipped, with the reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wsgate_business::{Client, Payload};

use crate::business::{Registered, Role, Tally};
use crate::cli::Scenario;
use crate::client::Behaviour;
use crate::error::BenchError;
use crate::fleet::{self, Fleet, FleetSpec};
use crate::progress::si;
use crate::publisher::{Action, Route};
use crate::recorder::{Percentiles, new_histogram};
use crate::resp;
use crate::results::{Failure, Phase, RecoveryRow, Results, StreamHistory, StreamRow};
use crate::stamp;
use crate::streamwire::{self, Book, Slot};
use crate::target::{Running, TargetKind};

use super::{Ctx, LoadPhase, wait_until};

/// The topic every client is in, and its stream's name.
const TOPIC: &str = "s0";
const STREAM: &str = "topic:s0";
/// The history the rule keeps at least (docs/streams.md's example of a topic stream).
const HISTORY: u64 = 100;
/// Longest wait for the business process to subscribe every client.
const SUBSCRIBE_LIMIT: Duration = Duration::from_secs(60);
/// Longest wait for the clients to receive the first publications, and for the gateway to see
/// the dropped sockets go.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// Longest wait for every reconnected client's `joined`: past it, those without one count as
/// not recovered.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
/// Reasons kept for clients that were not recovered.
const KEEP_REASONS: usize = 5;

/// Redis runs of this process so far: each gets a key prefix of its own.
static REDIS_RUNS: AtomicU64 = AtomicU64::new(0);

pub async fn run(ctx: &Ctx, results: &mut Results) {
    let plan = &ctx.plan;
    ctx.progress.say(format!(
        "== streams: {} clients in topic {TOPIC}, published to through the SDK with history off, in memory and in Redis; then {} clients reconnecting at once after missing {} publications",
        plan.stream_clients, plan.recover_clients, plan.recover_messages
    ));
    for &kind in ctx.targets.iter().filter(|k| **k != TargetKind::Wsgate) {
        ctx.progress.say(format!(
            "  streams {kind}: not applicable: streams (offsets, history, recovery) are wsgate's (wsgate only)"
        ));
    }
    if !ctx.targets.contains(&TargetKind::Wsgate) {
        ctx.progress
            .say("  streams runs on wsgate only, which is not among --targets: skipped");
        return;
    }
    let redis = resp::ping(&plan.stream_redis_url)
        .await
        .map_err(|why| format!("no Redis at {}: {why}", plan.stream_redis_url));
    if let Err(why) = &redis {
        ctx.progress
            .say(format!("  {why}: the Redis rows are skipped"));
    }

    for history in [
        StreamHistory::Off,
        StreamHistory::Memory,
        StreamHistory::Redis,
    ] {
        let flags = match Flags::of(ctx, history, &redis) {
            Ok(flags) => flags,
            Err(why) => {
                results.streams.push(skipped_row(history, why));
                continue;
            }
        };
        let measured = throughput(ctx, results, history, &flags).await;
        flags.clean(ctx).await;
        match measured {
            Ok(row) => results.streams.push(row),
            Err(e) => fail(ctx, results, history, "throughput", &e),
        }
    }
    for history in [StreamHistory::Memory, StreamHistory::Redis] {
        let flags = match Flags::of(ctx, history, &redis) {
            Ok(flags) => flags,
            Err(why) => {
                results
                    .streams_recovery
                    .push(skipped_recovery(history, plan.recover_clients, why));
                continue;
            }
        };
        let measured = recovery(ctx, results, history, &flags).await;
        flags.clean(ctx).await;
        match measured {
            Ok(row) => results.streams_recovery.push(row),
            Err(e) => fail(ctx, results, history, "recovery", &e),
        }
    }
}

/// How one of the gateways is run: its stream flags, and the Redis prefix to clean up.
struct Flags {
    args: Vec<String>,
    redis_prefix: Option<String>,
}

impl Flags {
    /// The flags of `history`; `Err` (why) when it cannot run: Redis did not answer.
    fn of(ctx: &Ctx, history: StreamHistory, redis: &Result<(), String>) -> Result<Flags, String> {
        let plan = &ctx.plan;
        // The stream must keep what a client misses, or recovery cannot be asked of it.
        let rule = format!(
            "topics s* history={} age=10m",
            plan.recover_messages.max(HISTORY)
        );
        let args = vec!["--stream".to_owned(), rule];
        match history {
            StreamHistory::Off => Ok(Flags {
                args: Vec::new(),
                redis_prefix: None,
            }),
            StreamHistory::Memory => Ok(Flags {
                args,
                redis_prefix: None,
            }),
            StreamHistory::Redis => {
                redis.clone()?;
                let n = REDIS_RUNS.fetch_add(1, Ordering::Relaxed);
                // Of this process and this run: several benches can share one Redis, and no
                // run finds another's stream (or its own earlier one) under its keys.
                let prefix = format!("wsgate-bench:{}:{n}:", std::process::id());
                let mut args = args;
                args.extend([
                    "--stream-engine".to_owned(),
                    "redis".to_owned(),
                    "--stream-redis-url".to_owned(),
                    plan.stream_redis_url.clone(),
                    "--stream-redis-prefix".to_owned(),
                    prefix.clone(),
                ]);
                Ok(Flags {
                    args,
                    redis_prefix: Some(prefix),
                })
            }
        }
    }

    /// As the report shows them (the Redis URL left out: it may hold a password).
    fn shown(&self) -> String {
        let mut shown = Vec::new();
        let mut args = self.args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().map_or("", String::as_str);
            if flag == "--stream-redis-url" {
                continue;
            }
            if value.contains(' ') {
                shown.push(format!("{flag} \"{value}\""));
            } else {
                shown.push(format!("{flag} {value}"));
            }
        }
        if shown.is_empty() {
            "(no --stream rule)".to_owned()
        } else {
            shown.join(" ")
        }
    }

    /// Deletes the keys the run left in Redis.
    async fn clean(&self, ctx: &Ctx) {
        let Some(prefix) = &self.redis_prefix else {
            return;
        };
        let cleaned = async {
            resp::Redis::connect(&ctx.plan.stream_redis_url)
                .await?
                .delete_prefixed(prefix)
                .await
        };
        match cleaned.await {
            Ok(n) => ctx
                .progress
                .say(format!("  deleted the run's {n} Redis keys ({prefix}*)")),
            Err(e) => ctx.progress.say(format!(
                "  could not delete the run's Redis keys ({prefix}*): {e}; they expire by themselves within about an hour"
            )),
        }
    }
}

fn skipped_row(history: StreamHistory, why: String) -> StreamRow {
    StreamRow {
        history,
        flags: String::new(),
        load: None,
        gaps: 0,
        duplicates: 0,
        bad_frames: 0,
        first_bad: None,
        vs_off: None,
        skipped: Some(why),
    }
}

fn skipped_recovery(history: StreamHistory, clients: usize, why: String) -> RecoveryRow {
    RecoveryRow {
        history,
        flags: String::new(),
        clients,
        before: 0,
        missed: 0,
        recovered: 0,
        not_recovered: 0,
        reasons: Vec::new(),
        replayed: 0,
        time: Percentiles::default(),
        handshakes_ms: 0.0,
        total_ms: 0.0,
        clients_lost: 0,
        skipped: Some(why),
    }
}

/// Records that one row of the scenario failed.
fn fail(ctx: &Ctx, results: &mut Results, history: StreamHistory, what: &str, e: &BenchError) {
    let what = format!("{what}, {}", history.label());
    ctx.progress
        .say(format!("  streams wsgate, {what} FAILED: {e}"));
    results.failures.push(Failure {
        scenario: Scenario::Streams,
        target: TargetKind::Wsgate,
        error: format!("{what}: {e}"),
    });
}

/// Connects `count` streams clients, client `i` upgrading `path(i)`; `all_at_once` puts every
/// handshake in flight together (the reconnect storm) instead of `--connect-concurrency`.
async fn connect(
    ctx: &Ctx,
    target: &Running,
    label: String,
    book: &Arc<Book>,
    path: fleet::PathFn,
    all_at_once: bool,
) -> Result<Fleet, BenchError> {
    let count = book.clients();
    fleet::connect(
        FleetSpec {
            label,
            target: "wsgate".into(),
            count,
            server: target.ws,
            path,
            behaviour: Behaviour::Streams(book.clone()),
            source_addrs: ctx.plan.source_addrs,
            concurrency: if all_at_once {
                count
            } else {
                ctx.plan.connect_concurrency
            },
        },
        &ctx.progress,
    )
    .await
}

/// The path of a client joining `s0` with no position.
fn fresh_path(target: &Running) -> fleet::PathFn {
    fleet::same_path(format!("{}?topic={TOPIC}", target.client_path("")))
}

/// Waits until the business process has subscribed `n` connections in all.
async fn subscribed(tally: &Tally, n: usize) -> Result<(), BenchError> {
    wait_until(
        format!("the bench business process to subscribe {n} connections to {TOPIC}"),
        SUBSCRIBE_LIMIT,
        async || {
            if tally.failed() > 0 {
                return Err(BenchError::Driver {
                    what: "the bench's streams business process".into(),
                    reason: tally.first_error().unwrap_or_default(),
                });
            }
            Ok(tally.done() >= n as u64)
        },
    )
    .await
}

/// What the clients' slots add up to.
struct Totals {
    gaps: u64,
    duplicates: u64,
    bad_frames: u64,
    first_bad: Option<String>,
}

fn totals(slots: &[Slot]) -> Totals {
    Totals {
        gaps: slots.iter().map(|s| s.gaps).sum(),
        duplicates: slots.iter().map(|s| s.duplicates).sum(),
        bad_frames: slots.iter().map(|s| s.bad_frames).sum(),
        first_bad: slots.iter().find_map(|s| s.first_bad.clone()),
    }
}

async fn throughput(
    ctx: &Ctx,
    results: &mut Results,
    history: StreamHistory,
    flags: &Flags,
) -> Result<StreamRow, BenchError> {
    let n = ctx.plan.stream_clients;
    ctx.check_clients("streams", n)?;
    ctx.measure_with(TargetKind::Wsgate, &flags.args, results, async |target| {
        // The subscriber must be registered before the clients open; it publishes too.
        let tally = Arc::new(Tally::default());
        let business: Registered = ctx
            .business(target, Role::Subscriber, tally.clone())
            .await?;
        let book = Arc::new(Book::new(n));
        let label = format!("streams wsgate, {}", history.label());
        let fleet = connect(ctx, target, label.clone(), &book, fresh_path(target), false).await?;
        subscribed(&tally, n).await?;
        let load = LoadPhase {
            ctx,
            target,
            fleet: &fleet,
            route: Route::Sdk,
            sdk: Some(&business.client),
            broker: None,
            action: Action::PublishTo(TOPIC),
            fanout: n,
            phase: Phase::Max,
            label,
        }
        .run()
        .await?;
        drop(business);
        fleet.close().await;
        let t = totals(&book.snapshot());
        if t.gaps + t.duplicates + t.bad_frames > 0 {
            ctx.progress.say(format!(
                "  {}: {} gaps, {} duplicates, {} bad frames{}",
                history.label(),
                t.gaps,
                t.duplicates,
                t.bad_frames,
                t.first_bad
                    .as_ref()
                    .map_or(String::new(), |b| format!(" (first: {b})"))
            ));
        }
        Ok(StreamRow {
            history,
            flags: flags.shown(),
            load: Some(load),
            gaps: t.gaps,
            duplicates: t.duplicates,
            bad_frames: t.bad_frames,
            first_bad: t.first_bad,
            vs_off: None,
            skipped: None,
        })
    })
    .await
}

/// Publishes `count` stamped messages to `s0`, one after the other (each answered before the
/// next: offsets in the order sent), numbered from `first`.
async fn publish(ctx: &Ctx, client: &Client, first: u64, count: u64) -> Result<(), BenchError> {
    let client = client.clone();
    ctx.on_driver(async move {
        for seq in first..first + count {
            client
                .publish([TOPIC], Payload::text(stamp::message(seq)), [])
                .await
                .map_err(|e| BenchError::Driver {
                    what: "the streams publisher".into(),
                    reason: format!("publication {seq} to {TOPIC} failed: {e}"),
                })?;
        }
        Ok(())
    })
    .await
}

async fn recovery(
    ctx: &Ctx,
    results: &mut Results,
    history: StreamHistory,
    flags: &Flags,
) -> Result<RecoveryRow, BenchError> {
    let plan = &ctx.plan;
    let (n, m) = (plan.recover_clients, plan.recover_messages);
    ctx.check_clients("streams", n)?;
    ctx.measure_with(TargetKind::Wsgate, &flags.args, results, async |target| {
        let tally = Arc::new(Tally::default());
        let business: Registered = ctx
            .business(target, Role::Subscriber, tally.clone())
            .await?;
        let book = Arc::new(Book::new(n));
        let label = format!("streams recovery, {}", history.label());

        // Join, receive m publications.
        let first = connect(
            ctx,
            target,
            format!("{label}: connecting"),
            &book,
            fresh_path(target),
            false,
        )
        .await?;
        subscribed(&tally, n).await?;
        publish(ctx, &business.client, 0, m).await?;
        wait_until(
            format!("every one of {n} clients to receive {m} publications"),
            SETTLE_LIMIT,
            async || Ok(book.received_at_least(m) == n),
        )
        .await?;
        let lost_first = first.recorder.closed_by_server();

        // Drop every socket (no close frame), and wait until the gateway has seen them go, so
        // that what follows is published to a stream with no member.
        first.close().await;
        wait_until(
            format!("wsgate to see the {n} dropped clients go"),
            SETTLE_LIMIT,
            async || Ok(target.connections().await? == 0),
        )
        .await?;
        publish(ctx, &business.client, m, m).await?;

        // Everyone back at once, each with its own position.
        let base = target.client_path("");
        let paths: Arc<Vec<String>> = Arc::new(
            book.snapshot()
                .iter()
                .map(|s| {
                    if s.epoch.is_empty() {
                        format!("{base}?topic={TOPIC}")
                    } else {
                        let recover = streamwire::recover_param(STREAM, &s.epoch, s.offset);
                        format!("{base}?topic={TOPIC}&{recover}")
                    }
                })
                .collect(),
        );
        let fallback = format!("{base}?topic={TOPIC}");
        let path: fleet::PathFn =
            Arc::new(move |i| paths.get(i).cloned().unwrap_or_else(|| fallback.clone()));
        ctx.progress.say(format!(
            "  {label}: {n} clients dropped after {m} publications, {m} more published; reconnecting all at once"
        ));
        let start_ns = stamp::now_nanos();
        let started = Instant::now();
        let storm = connect(ctx, target, format!("{label}: storm"), &book, path, true).await?;
        {
            let book = book.clone();
            ctx.progress.show(move || {
                format!(
                    "{label}: {:.1}s  joined {}/{n}",
                    started.elapsed().as_secs_f64(),
                    book.joined()
                )
            });
        }
        while book.joined() < n && started.elapsed() < RECOVERY_LIMIT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let waited_ms = started.elapsed().as_secs_f64() * 1e3;
        ctx.progress.clear();
        let slots = book.snapshot();
        let clients_lost = lost_first + storm.recorder.closed_by_server();
        storm.close().await;
        drop(business);

        let mut times = new_histogram();
        let mut reasons = Vec::new();
        let mut not_recovered = 0;
        let mut last_ns = 0;
        for (i, slot) in slots.iter().enumerate() {
            match slot.not_recovered(m) {
                None => {
                    let ns = slot.joined_at_ns.saturating_sub(start_ns);
                    last_ns = last_ns.max(ns);
                    times.saturating_record((ns / 1000).max(1));
                }
                Some(why) => {
                    not_recovered += 1;
                    if reasons.len() < KEEP_REASONS {
                        reasons.push(format!("client {i}: {why}"));
                    }
                }
            }
        }
        let time = Percentiles::of(&times);
        let row = RecoveryRow {
            history,
            flags: flags.shown(),
            clients: n,
            before: m,
            missed: m,
            recovered: n - not_recovered,
            not_recovered,
            reasons,
            replayed: slots.iter().map(|s| s.replayed).sum(),
            time,
            // Each client notes when its handshake was answered (the fleet's own figure is
            // polled every 20 ms).
            handshakes_ms: slots
                .iter()
                .map(|s| s.connected_ns.saturating_sub(start_ns))
                .max()
                .unwrap_or(0) as f64
                / 1e6,
            total_ms: if not_recovered == 0 {
                last_ns as f64 / 1e6
            } else {
                waited_ms
            },
            clients_lost,
            skipped: None,
        };
        ctx.progress.say(format!(
            "  {}: {} of {n} recovered, {} replayed; per client p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; all handshakes {:.0} ms, all recovered {:.0} ms{}",
            history.label(),
            row.recovered,
            si(row.replayed as f64),
            row.time.p50_us as f64 / 1e3,
            row.time.p99_us as f64 / 1e3,
            row.time.max_us as f64 / 1e3,
            row.handshakes_ms,
            row.total_ms,
            row.reasons
                .first()
                .map_or(String::new(), |r| format!("; not recovered: {r}"))
        ));
        Ok(row)
    })
    .await
}
