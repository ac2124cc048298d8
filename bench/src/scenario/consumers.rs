//! Scenario 9, consumers (the `[[consumer]]` tables of the gateway's config file): how many
//! broadcasts a second reach the same clients when they come through the HTTP API, through a
//! RabbitMQ queue the gateway consumes, and through a Redis list it consumes. wsgate only: the
//! peers have no consumers.
//!
//! One gateway, started with `--config` naming two consumers (`rabbitmq` on a fresh durable
//! queue, `prefetch = 200`; `redis-list` on a fresh key), and `--consumer-clients` plain
//! WebSocket clients that count what arrives. Then three phases on the same gateway and clients,
//! one after the other, each closed loop as the broadcast scenario's max phase (at most
//! `--window` messages per client published but not yet received, `--in-flight` producers):
//!
//! 1. **HTTP API**: `POST /api/v1/broadcast`, the baseline;
//! 2. **RabbitMQ**: each producer publishes `{"method": "broadcast", "params": {"text": …}}` to
//!    the queue through the default exchange and waits for the broker's confirmation;
//! 3. **Redis list**: each producer `LPUSH`es the same command to the key.
//!
//! The flow control bounds what waits at the broker to the window (32 messages by default),
//! so the figure is what the consumer carries out, not how fast a queue fills. Deliveries are
//! counted at the clients; the text is the bench's stamped message, so latency runs from the
//! producer to the client, through the broker. Around each broker phase the gateway's
//! `/metrics` give what the consumer counted (carried out, refused, retried).
//!
//! A broker that does not answer is left out of the config file and its row says skipped and
//! why. The queue and the key (and the consumer's processing list beside it) are deleted
//! afterwards, as is the config file.

use std::path::Path;
use std::time::Duration;

use crate::cli::Scenario;
use crate::client::Behaviour;
use crate::error::BenchError;
use crate::fleet::{self, FleetSpec};
use crate::progress::si;
use crate::publisher::{self, Action, Broker, Route};
use crate::resp;
use crate::results::{ConsumerRow, ConsumerSource, Failure, Phase, Results};
use crate::stamp;
use crate::target::{Running, TargetKind, metric};

use super::{Ctx, LoadPhase, wait_until};

/// The consumers' names in the config file (and the `consumer` label of their metrics).
const RABBITMQ: &str = "rabbit";
const REDIS_LIST: &str = "list";
/// Unacknowledged messages RabbitMQ may send the consumer ahead.
const PREFETCH: u16 = 200;
/// Longest wait for a consumer to say it is connected (`wsgate_consumer_up`).
const UP_LIMIT: Duration = Duration::from_secs(20);

pub async fn run(ctx: &Ctx, results: &mut Results) {
    let plan = &ctx.plan;
    let n = plan.consumer_clients;
    ctx.progress.say(format!(
        "== consumers: {n} clients; broadcasts through the HTTP API, then through a RabbitMQ queue and a Redis list the gateway consumes; closed loop, {} messages per client outstanding, {} producers",
        plan.window, plan.in_flight
    ));
    for &kind in ctx.targets.iter().filter(|k| **k != TargetKind::Wsgate) {
        ctx.progress.say(format!(
            "  consumers {kind}: not applicable: consumers are wsgate's (wsgate only)"
        ));
    }
    if !ctx.targets.contains(&TargetKind::Wsgate) {
        ctx.progress
            .say("  consumers runs on wsgate only, which is not among --targets: skipped");
        return;
    }
    if let Err(e) = ctx.check_clients("consumers", n) {
        fail(ctx, results, "", &e.to_string());
        return;
    }

    // Names of this run only: a queue or list left by another run is never read.
    let run_id = format!("{}-{}", std::process::id(), stamp::now_nanos() / 1_000_000);
    let queue = format!("wsgate-bench-{run_id}");
    let redis_prefix = format!("wsgate-bench:{run_id}:");
    let key = format!("{redis_prefix}consumers");
    let amqp_url = plan.consumer_amqp_url.clone();
    let redis_url = plan.consumer_redis_url.clone();

    let rabbitmq = ctx
        .on_driver(async move {
            Ok(match publisher::rabbitmq_connect(&amqp_url).await {
                Ok(conn) => {
                    let _ = conn.close(200, "probed".into()).await;
                    Ok(())
                }
                Err(why) => Err(why),
            })
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
        .map(|()| Broker::Rabbitmq {
            url: plan.consumer_amqp_url.clone(),
            queue: queue.clone(),
        })
        .map_err(|why| {
            format!(
                "no RabbitMQ at {}: {why}",
                crate::cli::hide_password(&plan.consumer_amqp_url)
            )
        });
    let redis = resp::ping(&redis_url)
        .await
        .map(|()| Broker::RedisList {
            url: redis_url.clone(),
            key: key.clone(),
        })
        .map_err(|why| {
            format!(
                "no Redis at {}: {why}",
                crate::cli::hide_password(&redis_url)
            )
        });
    for why in [&rabbitmq, &redis]
        .into_iter()
        .filter_map(|b| b.as_ref().err())
    {
        ctx.progress.say(format!("  {why}: its row is skipped"));
    }

    let config = std::env::temp_dir().join(format!("wsgate-bench-consumers-{run_id}.toml"));
    let text = config_file(rabbitmq.as_ref().ok(), redis.as_ref().ok());
    let measured = match std::fs::write(&config, text) {
        Ok(()) => measure(ctx, results, &config, &rabbitmq, &redis).await,
        Err(e) => Err(BenchError::Output {
            path: config.clone(),
            source: e,
        }),
    };
    let _ = std::fs::remove_file(&config);
    clean(ctx, &rabbitmq, &redis, &queue, &redis_prefix).await;
    match measured {
        Ok((rows, failures)) => {
            results.consumers.extend(rows);
            for (source, why) in failures {
                fail(ctx, results, source.label(), &why);
            }
        }
        Err(e) => fail(ctx, results, "", &e.to_string()),
    }
}

/// Records that the scenario, or one of its rows, failed.
fn fail(ctx: &Ctx, results: &mut Results, what: &str, why: &str) {
    let error = if what.is_empty() {
        why.to_owned()
    } else {
        format!("{what}: {why}")
    };
    ctx.progress
        .say(format!("  consumers wsgate FAILED: {error}"));
    results.failures.push(Failure {
        scenario: Scenario::Consumers,
        target: TargetKind::Wsgate,
        error,
    });
}

/// The gateway's config file: a `[[consumer]]` table per broker that answered.
fn config_file(rabbitmq: Option<&Broker>, redis: Option<&Broker>) -> String {
    // A JSON string is a TOML basic string.
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let mut text = String::from(
        "# wsgate-bench, consumers scenario: this run's consumers; deleted after it.\n",
    );
    if let Some(Broker::Rabbitmq { url, queue }) = rabbitmq {
        text.push_str(&format!(
            "\n[[consumer]]\nname = \"{RABBITMQ}\"\nkind = \"rabbitmq\"\nurl = {}\nqueue = {}\nprefetch = {PREFETCH}\n",
            quote(url),
            quote(queue)
        ));
    }
    if let Some(Broker::RedisList { url, key }) = redis {
        text.push_str(&format!(
            "\n[[consumer]]\nname = \"{REDIS_LIST}\"\nkind = \"redis-list\"\nurl = {}\nkey = {}\n",
            quote(url),
            quote(key)
        ));
    }
    text
}

/// What a consumer counted, from `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct Counted {
    messages: u64,
    bad: u64,
    retries: u64,
}

impl Counted {
    async fn read(target: &Running, name: &str, kind: &str) -> Result<Counted, BenchError> {
        let text = target.metrics().await?;
        let labels = format!("{{consumer=\"{name}\",kind=\"{kind}\"}}");
        let bad_prefix = format!("wsgate_consumer_bad_messages_total{{consumer=\"{name}\",");
        Ok(Counted {
            messages: metric(&text, &format!("wsgate_consumer_messages_total{labels}")),
            bad: text
                .lines()
                .filter(|l| l.starts_with(&bad_prefix))
                .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
                .map(|v| v as u64)
                .sum(),
            retries: metric(&text, &format!("wsgate_consumer_retries_total{labels}")),
        })
    }

    fn since(self, before: Counted) -> Counted {
        Counted {
            messages: self.messages.saturating_sub(before.messages),
            bad: self.bad.saturating_sub(before.bad),
            retries: self.retries.saturating_sub(before.retries),
        }
    }
}

/// The gateway's consumer of `source`: its name and kind.
fn consumer_of(source: ConsumerSource) -> Option<(&'static str, &'static str)> {
    match source {
        ConsumerSource::Http => None,
        ConsumerSource::Rabbitmq => Some((RABBITMQ, "rabbitmq")),
        ConsumerSource::RedisList => Some((REDIS_LIST, "redis-list")),
    }
}

/// Runs the gateway and the three phases; the rows, and the rows that failed (the others still
/// ran).
async fn measure(
    ctx: &Ctx,
    results: &mut Results,
    config: &Path,
    rabbitmq: &Result<Broker, String>,
    redis: &Result<Broker, String>,
) -> Result<(Vec<ConsumerRow>, Vec<(ConsumerSource, String)>), BenchError> {
    let plan = &ctx.plan;
    let n = plan.consumer_clients;
    let mut extra = Vec::new();
    if rabbitmq.is_ok() || redis.is_ok() {
        extra = vec!["--config".to_owned(), path_arg(config)];
    }
    ctx.measure_with(TargetKind::Wsgate, &extra, results, async |target| {
        let fleet = fleet::connect(
            FleetSpec {
                label: "consumers wsgate".into(),
                target: "wsgate".into(),
                count: n,
                server: target.ws,
                path: fleet::same_path(target.client_path("")),
                behaviour: Behaviour::Receive,
                source_addrs: plan.source_addrs,
                concurrency: plan.connect_concurrency,
            },
            &ctx.progress,
        )
        .await?;
        let mut rows = Vec::new();
        let mut failures = Vec::new();
        for source in ConsumerSource::ALL {
            let (route, broker, how) = match source {
                ConsumerSource::Http => (
                    Route::WsgateHttp,
                    Ok(None),
                    format!(
                        "`POST /api/v1/broadcast`, {} keep-alive connections",
                        plan.in_flight
                    ),
                ),
                ConsumerSource::Rabbitmq => (
                    Route::Rabbitmq,
                    rabbitmq.as_ref().map(Some),
                    format!(
                        "`basic.publish` to a fresh durable queue, {} connections, each message confirmed; consumer `prefetch = {PREFETCH}`",
                        plan.in_flight
                    ),
                ),
                ConsumerSource::RedisList => (
                    Route::RedisList,
                    redis.as_ref().map(Some),
                    format!("`LPUSH` to a fresh key, {} connections", plan.in_flight),
                ),
            };
            let broker = match broker {
                Ok(broker) => broker,
                Err(why) => {
                    rows.push(skipped(source, how, why.clone()));
                    continue;
                }
            };
            let consumer = consumer_of(source);
            let measured = async {
                if let Some((name, kind)) = consumer {
                    let line = format!("wsgate_consumer_up{{consumer=\"{name}\",kind=\"{kind}\"}}");
                    wait_until(
                        format!("wsgate's {kind} consumer to connect ({line} 1)"),
                        UP_LIMIT,
                        async || Ok(metric(&target.metrics().await?, &line) == 1),
                    )
                    .await?;
                }
                let before = match consumer {
                    Some((name, kind)) => Counted::read(target, name, kind).await?,
                    None => Counted::default(),
                };
                let load = LoadPhase {
                    ctx,
                    target,
                    fleet: &fleet,
                    route,
                    sdk: None,
                    broker,
                    action: Action::Broadcast,
                    fanout: fleet.count,
                    phase: Phase::Max,
                    label: format!("consumers wsgate-{}", route.label()),
                }
                .run()
                .await?;
                let counted = match consumer {
                    Some((name, kind)) => Counted::read(target, name, kind).await?.since(before),
                    None => Counted::default(),
                };
                Ok::<_, BenchError>((load, counted))
            };
            match measured.await {
                Ok((load, counted)) => {
                    if consumer.is_some() {
                        ctx.progress.say(format!(
                            "  {}: the consumer carried out {} messages ({}/s while measured), refused {}, retried {}",
                            source.label(),
                            counted.messages,
                            si(load.deliveries_per_s / load.fanout.max(1) as f64),
                            counted.bad,
                            counted.retries
                        ));
                    }
                    rows.push(ConsumerRow {
                        source,
                        how,
                        load: Some(load),
                        consumed: counted.messages,
                        bad: counted.bad,
                        retries: counted.retries,
                        vs_http: None,
                        skipped: None,
                    });
                }
                Err(e) => {
                    rows.push(skipped(source, how, format!("failed: {e}")));
                    failures.push((source, e.to_string()));
                }
            }
        }
        fleet.close().await;
        Ok((rows, failures))
    })
    .await
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn skipped(source: ConsumerSource, how: String, why: String) -> ConsumerRow {
    ConsumerRow {
        source,
        how,
        load: None,
        consumed: 0,
        bad: 0,
        retries: 0,
        vs_http: None,
        skipped: Some(why),
    }
}

/// Deletes the run's queue and keys (the gateway is gone by now).
async fn clean(
    ctx: &Ctx,
    rabbitmq: &Result<Broker, String>,
    redis: &Result<Broker, String>,
    queue: &str,
    redis_prefix: &str,
) {
    if let Ok(Broker::Rabbitmq { url, .. }) = rabbitmq {
        let (url, name) = (url.clone(), queue.to_owned());
        let deleted = ctx
            .on_driver(async move {
                let conn = publisher::rabbitmq_connect(&url).await.map_err(|reason| {
                    BenchError::Driver {
                        what: "deleting the run's queue".into(),
                        reason,
                    }
                })?;
                let deleted = async {
                    let channel = conn.create_channel().await?;
                    channel
                        .queue_delete(name.as_str().into(), Default::default())
                        .await
                }
                .await;
                let _ = conn.close(200, "done".into()).await;
                deleted.map_err(|e| BenchError::Driver {
                    what: format!("deleting queue {name}"),
                    reason: e.to_string(),
                })
            })
            .await;
        match deleted {
            Ok(left) => ctx.progress.say(format!(
                "  deleted the run's RabbitMQ queue {queue} ({left} messages left in it)"
            )),
            Err(e) => ctx.progress.say(format!(
                "  could not delete the run's RabbitMQ queue {queue}: {e}; delete it by hand (rabbitmqctl delete_queue {queue})"
            )),
        }
    }
    if let Ok(Broker::RedisList { url, .. }) = redis {
        let cleaned = async {
            resp::Redis::connect(url)
                .await?
                .delete_prefixed(redis_prefix)
                .await
        };
        match cleaned.await {
            Ok(n) => ctx.progress.say(format!(
                "  deleted the run's {n} Redis keys ({redis_prefix}*)"
            )),
            Err(e) => ctx.progress.say(format!(
                "  could not delete the run's Redis keys ({redis_prefix}*): {e}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_names_each_broker_that_answered() {
        let rabbitmq = Broker::Rabbitmq {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            queue: "wsgate-bench-1-2".into(),
        };
        let redis = Broker::RedisList {
            url: "redis://127.0.0.1:6379/".into(),
            key: "wsgate-bench:1-2:consumers".into(),
        };
        let both = config_file(Some(&rabbitmq), Some(&redis));
        assert!(both.contains("kind = \"rabbitmq\""), "{both}");
        assert!(both.contains("queue = \"wsgate-bench-1-2\""), "{both}");
        assert!(both.contains("prefetch = 200"), "{both}");
        assert!(both.contains("kind = \"redis-list\""), "{both}");
        assert!(
            both.contains("key = \"wsgate-bench:1-2:consumers\""),
            "{both}"
        );
        assert_eq!(both.matches("[[consumer]]").count(), 2);
        let one = config_file(None, Some(&redis));
        assert_eq!(one.matches("[[consumer]]").count(), 1);
        assert!(!one.contains("rabbitmq"));
    }

    #[test]
    fn the_message_is_a_json_broadcast_command() {
        let text = stamp::message(7);
        let command: serde_json::Value =
            serde_json::from_str(&publisher::command(None, text.clone())).expect("JSON");
        assert_eq!(command["method"], "broadcast");
        assert_eq!(command["params"]["text"], text.as_str());
        assert!(command.get("id").is_none());
        let publish: serde_json::Value =
            serde_json::from_str(&publisher::command(Some("t1".into()), text)).expect("JSON");
        assert_eq!(publish["method"], "topics/publish");
        assert_eq!(publish["params"]["topics"][0], "t1");
    }
}
