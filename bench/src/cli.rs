//! The command line, and the [`Plan`] it resolves to: the full run's defaults, or the tiny
//! ones of `--smoke`, with any flag given explicitly winning over both.
//!
//! Counts and durations are `Option`s in [`Args`] so that `--smoke` can tell "not given" (take
//! the smoke value) from "given" (keep it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::error::BenchError;
use crate::target::TargetKind;

/// wsgate-bench: drives wsgate, a plain tokio-tungstenite hub and a Node `ws` hub over loopback
/// with many real WebSocket clients and writes JSON, Markdown and SVG results.
#[derive(Debug, Parser)]
#[command(name = "wsgate-bench", version, about, long_about = None)]
pub struct Args {
    /// A hidden mode (the fault scenario's business processes); without one, the benchmark.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// A few-second run of every scenario with tiny counts that checks that messages arrive
    /// (not speeds); writes to a temporary directory unless --out is given.
    #[arg(long)]
    pub smoke: bool,

    /// Output directory for results.json, results.md and the SVG charts
    /// [default: bench/results/ in the workspace].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Also write the Markdown report here (e.g. BENCHMARKS.md), with its chart links pointing
    /// into the --out directory.
    #[arg(long, value_name = "FILE")]
    pub benchmarks_md: Option<PathBuf>,

    /// Scenarios to run, comma-separated: idle, broadcast, topics, echo, churn, soak, fault,
    /// streams, consumers (soak is not in the default list: it runs for --duration, 10m for a
    /// real soak; nor is consumers: it needs a RabbitMQ and a Redis).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "idle,broadcast,topics,echo,churn,fault,streams"
    )]
    pub scenarios: Vec<Scenario>,

    /// Systems under test, comma-separated: wsgate, plain, node.
    #[arg(long, value_delimiter = ',', default_value = "wsgate,plain,node")]
    pub targets: Vec<TargetKind>,

    /// The wsgate binary [default: `wsgate` next to this executable].
    #[arg(long, value_name = "PATH")]
    pub wsgate_bin: Option<PathBuf>,

    /// The plain tokio-tungstenite hub [default: `plain-hub` next to this executable].
    #[arg(long, value_name = "PATH")]
    pub plain_bin: Option<PathBuf>,

    /// The Node.js hub script [default: bench/peers/node-hub/hub.js in the workspace].
    #[arg(long, value_name = "PATH")]
    pub node_hub: Option<PathBuf>,

    /// The Node.js executable.
    #[arg(long, value_name = "PATH", default_value = "node")]
    pub node: PathBuf,

    /// idle: connection counts to hold, comma-separated [default: 1000,5000,10000,18000;
    /// smoke: 200].
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub idle_counts: Option<Vec<usize>>,

    /// broadcast: clients receiving every broadcast [default: 10000; smoke: 200].
    #[arg(long, value_name = "N")]
    pub clients: Option<usize>,

    /// Measured time of each load phase (broadcast, topics, echo, churn, streams) [default: 10s; smoke:
    /// 1s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,

    /// Warm-up before each measured load phase; its latencies are discarded [default: 1s;
    /// smoke: 200ms].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Option<Duration>,

    /// broadcast: deliveries per second of the fixed-rate phase (= rate / clients broadcasts
    /// per second) [default: 1000000; smoke: 2000].
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<u64>,

    /// Flow control of the max-throughput phases: at most this many messages per client may
    /// be published but not yet received. Deeper queues let servers and clients batch writes
    /// and reads (throughput rises steeply from 8 to 32, then flattens while latency grows).
    #[arg(long, default_value_t = 32, value_name = "MESSAGES")]
    pub window: u64,

    /// Publish requests in flight at once (SDK commands, or HTTP connections with one request
    /// each).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub in_flight: usize,

    /// broadcast, backend phase: publishers, each sending its next request only once the last
    /// is answered (PHP-FPM workers, a Laravel queue worker, a Java consumer thread).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub publishers: usize,

    /// topics: publish requests in flight at once. Higher than --in-flight because a publish
    /// to one topic is small work and eight round trips at a time would measure the
    /// publisher's latency, not the target.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub topic_in_flight: usize,

    /// topics: number of topics [default: 1000; smoke: 20].
    #[arg(long, value_name = "N")]
    pub topics: Option<usize>,

    /// topics: subscribers per topic [default: 10; smoke: 5].
    #[arg(long, value_name = "N")]
    pub subscribers: Option<usize>,

    /// echo: clients, each with the --echo-in-flight messages in flight [default: 1000; smoke:
    /// 50].
    #[arg(long, value_name = "N")]
    pub echo_clients: Option<usize>,

    /// echo: messages each client keeps in flight, comma-separated, one measured phase per
    /// value: a client sends this many, then one more for each that comes back. 1 is strict
    /// ping-pong; more is a chattier client, and lets every hop batch its reads and writes
    /// [default: 1,8; smoke: 1,4].
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub echo_in_flight: Option<Vec<usize>>,

    /// churn: workers that connect and disconnect in a loop [default: 64; smoke: 8].
    #[arg(long, value_name = "N")]
    pub churn_concurrency: Option<usize>,

    /// Source addresses 127.0.0.1..127.0.0.N the client sockets are spread over, so that
    /// ephemeral ports do not run out.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=250), value_name = "N")]
    pub source_addrs: u8,

    /// Client handshakes in flight at once while connecting. Keep it below the targets' listen
    /// backlogs (wsgate: --listen-backlog, 4096; the peers: Tokio's 1024): beyond one the
    /// kernel drops SYNs, which are retried only after 1 s, and the connect rate collapses.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub connect_concurrency: usize,

    /// Worker threads of the clients' runtime [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    pub client_threads: Option<usize>,

    /// soak: steady clients, each sending a message every --soak-interval [default: 5000;
    /// smoke: 100].
    #[arg(long, value_name = "N")]
    pub soak_clients: Option<usize>,

    /// soak: workers connecting and closing in a loop beside the steady clients [default: 8;
    /// smoke: 2].
    #[arg(long, value_name = "N")]
    pub soak_churn: Option<usize>,

    /// soak: how often each steady client sends a message, and the broadcast's period.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub soak_interval: Duration,

    /// soak: how often the gateway's memory and open files are sampled [default: 10s; smoke:
    /// 500ms].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub soak_sample: Option<Duration>,

    /// fault: clients, each sending numbered messages at its share of --fault-rate [default:
    /// 200; smoke: 20].
    #[arg(long, value_name = "N")]
    pub fault_clients: Option<usize>,

    /// fault: messages per second over all clients, sent open loop [default: 2000; smoke:
    /// 400].
    #[arg(long, value_name = "PER_SEC")]
    pub fault_rate: Option<u64>,

    /// fault: wsgate's --worker-ack-timeout; the stopped process stays stopped this long plus
    /// 1 s (smoke: twice as long) before it is killed [default: 2s; smoke: 500ms].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub fault_ack_timeout: Option<Duration>,

    /// fault: how long the clients send before the first fault, after each fault, and after
    /// the replacement process starts [default: 3s; smoke: 500ms].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub fault_settle: Option<Duration>,

    /// streams: clients in topic s0 while publications are measured with history off, in
    /// memory and in Redis [default: 2000; smoke: 10].
    #[arg(long, value_name = "N")]
    pub stream_clients: Option<usize>,

    /// streams: clients that drop their sockets and reconnect all at once with their positions
    /// [default: 1000; smoke: 10].
    #[arg(long, value_name = "N")]
    pub recover_clients: Option<usize>,

    /// streams: publications the recovery clients receive before they drop, and again while
    /// they are away (what each must get back). The stream keeps at least this many.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub recover_messages: u64,

    /// streams: the Redis of the Redis-engine rows; nothing answering there skips them (and
    /// says why). Keys go under `wsgate-bench:<pid>:<n>:` and are deleted afterwards.
    #[arg(long, default_value = "redis://127.0.0.1:6379/", value_name = "URL")]
    pub stream_redis_url: String,

    /// consumers: clients receiving every broadcast, while it comes through the HTTP API, a
    /// RabbitMQ queue and a Redis list in turn [default: 10000; smoke: 100].
    #[arg(long, value_name = "N")]
    pub consumer_clients: Option<usize>,

    /// consumers: the RabbitMQ of the RabbitMQ consumer; nothing answering there skips it (and
    /// says why). Its queue is `wsgate-bench-<pid>-<time>`, deleted afterwards.
    #[arg(
        long,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        value_name = "URL"
    )]
    pub consumer_amqp_url: String,

    /// consumers: the Redis of the Redis list consumer; nothing answering there skips it (and
    /// says why). Its key is under `wsgate-bench:<pid>:<time>:`, deleted afterwards.
    #[arg(long, default_value = "redis://127.0.0.1:6379/", value_name = "URL")]
    pub consumer_redis_url: String,

    /// Longest wait for stragglers after a load phase stops publishing.
    #[arg(long, value_parser = parse_duration, default_value = "5s", value_name = "DURATION")]
    pub drain: Duration,
}

/// The hidden modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The fault scenario's echo business process: registers with wsgate at --worker, sends
    /// every client message back to its sender, and exits when its standard input closes (the
    /// bench that started it ended).
    #[command(hide = true)]
    BusinessEcho {
        /// wsgate's worker address.
        #[arg(long, value_name = "ADDR")]
        worker: SocketAddr,
        /// Register with acks and acknowledge each event once received.
        #[arg(long)]
        acks: bool,
    },
}

/// One benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Hold connections; memory per connection and connect rate.
    Idle,
    /// One publisher, every client receives every message.
    Broadcast,
    /// Many topics with a few subscribers each.
    Topics,
    /// Clients send, the server (or a business process) answers.
    Echo,
    /// Connect and disconnect continuously.
    Churn,
    /// Long steady mixed traffic: memory and open-file drift.
    Soak,
    /// Business processes killed and hung mid-stream: lost, duplicated and late messages.
    Fault,
    /// Stream history off, in memory and in Redis: publish throughput, and a reconnect storm
    /// that must recover everything it missed.
    Streams,
    /// Broadcasts through the HTTP API, then through the gateway's own consumers of a
    /// RabbitMQ queue and a Redis list: what each source carries out to the same clients.
    Consumers,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Broadcast => "broadcast",
            Scenario::Topics => "topics",
            Scenario::Echo => "echo",
            Scenario::Churn => "churn",
            Scenario::Soak => "soak",
            Scenario::Fault => "fault",
            Scenario::Streams => "streams",
            Scenario::Consumers => "consumers",
        }
    }

    /// The order scenarios run in, whatever order they were named in.
    pub const ALL: [Scenario; 9] = [
        Scenario::Idle,
        Scenario::Broadcast,
        Scenario::Topics,
        Scenario::Echo,
        Scenario::Churn,
        Scenario::Soak,
        Scenario::Fault,
        Scenario::Streams,
        Scenario::Consumers,
    ];
}

/// What one run does: every setting resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub smoke: bool,
    pub scenarios: Vec<Scenario>,
    pub targets: Vec<TargetKind>,
    pub idle_counts: Vec<usize>,
    pub clients: usize,
    #[serde(with = "secs")]
    pub duration: Duration,
    #[serde(with = "secs")]
    pub warmup: Duration,
    #[serde(with = "secs")]
    pub drain: Duration,
    pub rate: u64,
    pub window: u64,
    pub in_flight: usize,
    pub topic_in_flight: usize,
    pub publishers: usize,
    pub topics: usize,
    pub subscribers: usize,
    pub echo_clients: usize,
    /// Ascending, no duplicates.
    pub echo_in_flight: Vec<usize>,
    pub churn_concurrency: usize,
    pub soak_clients: usize,
    pub soak_churn: usize,
    #[serde(with = "secs")]
    pub soak_interval: Duration,
    #[serde(with = "secs")]
    pub soak_sample: Duration,
    pub fault_clients: usize,
    pub fault_rate: u64,
    #[serde(with = "secs")]
    pub fault_ack_timeout: Duration,
    /// How long the stopped process stays stopped: past the ack timeout.
    #[serde(with = "secs")]
    pub fault_stop: Duration,
    #[serde(with = "secs")]
    pub fault_settle: Duration,
    pub stream_clients: usize,
    pub recover_clients: usize,
    pub recover_messages: u64,
    pub stream_redis_url: String,
    pub consumer_clients: usize,
    /// Shown without its password.
    #[serde(serialize_with = "url_without_password")]
    pub consumer_amqp_url: String,
    #[serde(serialize_with = "url_without_password")]
    pub consumer_redis_url: String,
    pub source_addrs: u8,
    pub connect_concurrency: usize,
    pub client_threads: usize,
}

/// `scheme://user:password@host/...` as `scheme://user:***@host/...` (results.json is shared).
pub fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((auth, host)) => {
            let user = auth.split_once(':').map_or(auth, |(user, _)| user);
            let hidden = if auth.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{scheme}://{hidden}@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

fn url_without_password<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hide_password(url))
}

/// Durations as seconds (a float) in results.json.
mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Plan {
    /// Resolves the flags against the full-run or smoke defaults.
    pub fn from_args(args: &Args) -> Result<Plan, BenchError> {
        let smoke = args.smoke;
        let pick = |given: Option<usize>, full: usize, small: usize| {
            given.unwrap_or(if smoke { small } else { full })
        };
        let mut scenarios: Vec<Scenario> = Scenario::ALL
            .into_iter()
            .filter(|s| args.scenarios.contains(s))
            .collect();
        scenarios.dedup();
        let mut targets: Vec<TargetKind> = TargetKind::ALL
            .into_iter()
            .filter(|t| args.targets.contains(t))
            .collect();
        targets.dedup();
        // Whole milliseconds: that is how wsgate is told.
        let fault_ack_timeout = args
            .fault_ack_timeout
            .unwrap_or(if smoke {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(2)
            })
            .max(Duration::from_millis(100));
        let fault_ack_timeout =
            Duration::from_millis(u64::try_from(fault_ack_timeout.as_millis()).unwrap_or(u64::MAX));
        if scenarios.is_empty() || targets.is_empty() {
            return Err(BenchError::Usage(
                "nothing to run: --scenarios and --targets must each name at least one".into(),
            ));
        }
        let plan = Plan {
            smoke,
            scenarios,
            targets,
            idle_counts: args.idle_counts.clone().unwrap_or_else(|| {
                if smoke {
                    vec![200]
                } else {
                    vec![1000, 5000, 10_000, 18_000]
                }
            }),
            clients: pick(args.clients, 10_000, 200),
            duration: args.duration.unwrap_or(if smoke {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(10)
            }),
            warmup: args.warmup.unwrap_or(if smoke {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            }),
            drain: args.drain,
            rate: args.rate.unwrap_or(if smoke { 2_000 } else { 1_000_000 }),
            window: args.window.max(1),
            in_flight: args.in_flight.max(1),
            topic_in_flight: args.topic_in_flight.max(1),
            publishers: args.publishers.max(1),
            topics: pick(args.topics, 1000, 20),
            subscribers: pick(args.subscribers, 10, 5),
            echo_clients: pick(args.echo_clients, 1000, 50),
            echo_in_flight: {
                let mut values = args
                    .echo_in_flight
                    .clone()
                    .unwrap_or_else(|| if smoke { vec![1, 4] } else { vec![1, 8] });
                values.sort_unstable();
                values.dedup();
                values
            },
            churn_concurrency: pick(args.churn_concurrency, 64, 8),
            soak_clients: pick(args.soak_clients, 5000, 100),
            soak_churn: pick(args.soak_churn, 8, 2),
            soak_interval: args.soak_interval.max(Duration::from_millis(1)),
            soak_sample: args
                .soak_sample
                .unwrap_or(if smoke {
                    Duration::from_millis(500)
                } else {
                    Duration::from_secs(10)
                })
                .max(Duration::from_millis(10)),
            fault_clients: pick(args.fault_clients, 200, 20),
            fault_rate: args.fault_rate.unwrap_or(if smoke { 400 } else { 2_000 }),
            fault_ack_timeout,
            fault_stop: fault_ack_timeout
                + if smoke {
                    fault_ack_timeout
                } else {
                    Duration::from_secs(1)
                },
            fault_settle: args
                .fault_settle
                .unwrap_or(if smoke {
                    Duration::from_millis(500)
                } else {
                    Duration::from_secs(3)
                })
                .max(Duration::from_millis(100)),
            stream_clients: pick(args.stream_clients, 2000, 10),
            recover_clients: pick(args.recover_clients, 1000, 10),
            recover_messages: args.recover_messages,
            stream_redis_url: args.stream_redis_url.clone(),
            consumer_clients: pick(args.consumer_clients, 10_000, 100),
            consumer_amqp_url: args.consumer_amqp_url.clone(),
            consumer_redis_url: args.consumer_redis_url.clone(),
            source_addrs: args.source_addrs,
            connect_concurrency: args.connect_concurrency.max(1),
            client_threads: args.client_threads.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
            }),
        };
        let zero = [
            ("--clients", plan.clients),
            ("--topics", plan.topics),
            ("--subscribers", plan.subscribers),
            ("--echo-clients", plan.echo_clients),
            ("--churn-concurrency", plan.churn_concurrency),
            ("--soak-clients", plan.soak_clients),
            ("--fault-clients", plan.fault_clients),
            ("--stream-clients", plan.stream_clients),
            ("--recover-clients", plan.recover_clients),
            ("--consumer-clients", plan.consumer_clients),
            ("--client-threads", plan.client_threads),
        ];
        if let Some((flag, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(BenchError::Usage(format!(
                "{flag} is 0; give a positive number"
            )));
        }
        if plan.idle_counts.is_empty() || plan.idle_counts.contains(&0) {
            return Err(BenchError::Usage(
                "--idle-counts needs positive counts, e.g. 1000,5000".into(),
            ));
        }
        if plan.echo_in_flight.is_empty() || plan.echo_in_flight.contains(&0) {
            return Err(BenchError::Usage(
                "--echo-in-flight needs positive counts, e.g. 1,8".into(),
            ));
        }
        if plan.rate == 0 || plan.duration.is_zero() {
            return Err(BenchError::Usage(
                "--rate and --duration must be greater than 0".into(),
            ));
        }
        if plan.recover_messages == 0 {
            return Err(BenchError::Usage(
                "--recover-messages must be greater than 0".into(),
            ));
        }
        if plan.fault_rate == 0 {
            return Err(BenchError::Usage(
                "--fault-rate must be greater than 0".into(),
            ));
        }
        Ok(plan)
    }

    /// Clients of the topics scenario.
    pub fn topic_clients(&self) -> usize {
        self.topics.saturating_mul(self.subscribers)
    }

    /// fault: the time between two messages of one client.
    pub fn fault_interval(&self) -> Duration {
        Duration::from_secs_f64(self.fault_clients as f64 / self.fault_rate.max(1) as f64)
    }
}

/// "10s", "500ms", "2m", "1.5s" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 10s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit {unit:?}; use ms, s or m"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{text:?} is not a usable duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn smoke_scales_down_unless_told() {
        let args = Args::parse_from(["wsgate-bench", "--smoke", "--clients", "300"]);
        let plan = Plan::from_args(&args).expect("plan");
        assert_eq!(plan.clients, 300);
        assert_eq!(plan.idle_counts, vec![200]);
        assert_eq!(plan.duration, Duration::from_secs(1));
        assert_eq!(plan.echo_in_flight, vec![1, 4]);
        let full = Plan::from_args(&Args::parse_from(["wsgate-bench"])).expect("plan");
        assert_eq!(full.idle_counts, vec![1000, 5000, 10_000, 18_000]);
        assert_eq!(full.rate, 1_000_000);
        assert_eq!(full.echo_in_flight, vec![1, 8]);
    }

    #[test]
    fn fault_settings() {
        let plan = Plan::from_args(&Args::parse_from(["wsgate-bench"])).expect("plan");
        assert!(plan.scenarios.contains(&Scenario::Fault));
        assert_eq!(plan.fault_clients, 200);
        assert_eq!(plan.fault_interval(), Duration::from_millis(100));
        assert_eq!(plan.fault_ack_timeout, Duration::from_secs(2));
        assert_eq!(plan.fault_stop, Duration::from_secs(3));
        let smoke = Plan::from_args(&Args::parse_from([
            "wsgate-bench",
            "--smoke",
            "--fault-ack-timeout",
            "0.75s",
        ]))
        .expect("plan");
        assert_eq!(smoke.fault_ack_timeout, Duration::from_millis(750));
        assert_eq!(smoke.fault_stop, Duration::from_millis(1500));
        assert_eq!(smoke.fault_interval(), Duration::from_millis(50));
        let zero = Args::parse_from(["wsgate-bench", "--fault-rate", "0"]);
        assert!(Plan::from_args(&zero).is_err());
    }

    #[test]
    fn streams_settings() {
        let full = Plan::from_args(&Args::parse_from(["wsgate-bench"])).expect("plan");
        assert!(full.scenarios.contains(&Scenario::Streams));
        assert_eq!(
            (
                full.stream_clients,
                full.recover_clients,
                full.recover_messages
            ),
            (2000, 1000, 100)
        );
        let smoke = Plan::from_args(&Args::parse_from(["wsgate-bench", "--smoke"])).expect("plan");
        assert_eq!((smoke.stream_clients, smoke.recover_clients), (10, 10));
        let zero = Args::parse_from(["wsgate-bench", "--recover-messages", "0"]);
        assert!(Plan::from_args(&zero).is_err());
    }

    #[test]
    fn consumers_settings() {
        let full = Plan::from_args(&Args::parse_from(["wsgate-bench"])).expect("plan");
        // Not in the default list: it needs brokers.
        assert!(!full.scenarios.contains(&Scenario::Consumers));
        assert_eq!(full.consumer_clients, 10_000);
        let smoke = Plan::from_args(&Args::parse_from([
            "wsgate-bench",
            "--smoke",
            "--scenarios",
            "consumers",
        ]))
        .expect("plan");
        assert_eq!(smoke.scenarios, vec![Scenario::Consumers]);
        assert_eq!(smoke.consumer_clients, 100);
        let json = serde_json::to_string(&full).expect("json");
        assert!(
            json.contains("amqp://guest:***@127.0.0.1:5672/%2f"),
            "{json}"
        );
        assert!(!json.contains("guest:guest"));
        assert_eq!(hide_password("redis://:pw@cache/2"), "redis://:***@cache/2");
        assert_eq!(hide_password("redis://cache:6379/"), "redis://cache:6379/");
        assert_eq!(hide_password("amqp://u@h/%2f"), "amqp://***@h/%2f");
    }

    #[test]
    fn the_hidden_business_mode() {
        let args = Args::parse_from([
            "wsgate-bench",
            "business-echo",
            "--worker",
            "127.0.0.1:8081",
            "--acks",
        ]);
        match args.command {
            Some(Command::BusinessEcho { worker, acks }) => {
                assert_eq!(worker.port(), 8081);
                assert!(acks);
            }
            None => panic!("business-echo is a mode"),
        }
        assert!(Args::parse_from(["wsgate-bench"]).command.is_none());
    }

    #[test]
    fn echo_in_flight_list() {
        let args = Args::parse_from(["wsgate-bench", "--echo-in-flight", "8,1,8"]);
        let plan = Plan::from_args(&args).expect("plan");
        assert_eq!(plan.echo_in_flight, vec![1, 8]);
        let zero = Args::parse_from(["wsgate-bench", "--echo-in-flight", "0,4"]);
        assert!(Plan::from_args(&zero).is_err());
    }
}
