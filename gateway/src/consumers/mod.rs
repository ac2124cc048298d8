//! Consumers: the gateway reads the brokers backends already write to (RabbitMQ, Redis, NATS,
//! a PostgreSQL outbox) and carries out each message as a command, with no glue process.
//!
//! One file per broker reads its messages and acknowledges them; everything else is here and
//! shared: what a message means (`meaning.rs`, pure), carrying it out ([`Carrier::carry`]),
//! staying connected ([`Carrier::keep_reading`]). The rules every kind follows:
//!
//! - a message is acknowledged to its broker only once the command was accepted (a gateway
//!   answered it; with streams, it is stored), so a gateway killed in between leaves it to be
//!   delivered again, and the message id makes that redelivery a command id each gateway
//!   carries out once;
//! - a bad message is logged with its reason, counted, and acknowledged or dead-lettered at
//!   once: it never blocks the messages behind it;
//! - when the gateway cannot take a command (its cluster client is not connected, no gateway
//!   answered, the stream engine is down), the same message is tried again with backoff and
//!   not acknowledged: order is kept, and a gateway stopped meanwhile leaves it to the broker;
//! - work queues (RabbitMQ, Redis lists and stream groups, JetStream, the outbox) are shared by
//!   the gateways and each message is carried out cluster-wide; fan-out sources (Redis Pub/Sub,
//!   NATS core) reach every gateway and each carries a message out for its own connections
//!   only (`Cluster::only_gateway`), so a client gets it once.

pub(crate) mod meaning;
mod nats;
mod postgres;
mod rabbitmq;
mod redis;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wsgate_business::{Error, ErrorClass};
use wsgate_proto::backoff::{Backoff, DEFAULT_MAX, DEFAULT_MIN};

use self::meaning::{Command, Meaning};
pub(crate) use self::meaning::{Reason, Received, Refusal};
use self::spec::{Kind, Spec};
use crate::cluster::ClusterSlot;
use crate::stats::{ConsumerStats, Stats};
use crate::throttle::Throttle;

/// What every consumer needs of the gateway.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerContext {
    pub cluster: ClusterSlot,
    /// This gateway's node id: what a fan-out consumer restricts its commands to, and the
    /// name of its own place at a work queue (a Redis list's processing list, a stream
    /// group's consumer).
    pub node_id: String,
    pub stats: Arc<Stats>,
}

/// Starts every consumer of `specs` (checked by the config); each stops when `stop` fires,
/// leaving a message it had not finished unacknowledged.
pub(crate) fn start(
    specs: &[Spec],
    context: &ConsumerContext,
    stop: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    specs
        .iter()
        .map(|spec| {
            let carrier = Carrier {
                meaning: Meaning::of(spec),
                name: spec.name.clone(),
                fan_out: spec.kind.fan_out(),
                node_id: context.node_id.clone(),
                cluster: context.cluster.clone(),
                stats: context
                    .stats
                    .consumers
                    .add(spec.name.clone(), spec.kind.name()),
                stop: stop.clone(),
                warned: Arc::new(std::sync::Mutex::new(Throttle::new(WARN_EVERY))),
            };
            let spec = spec.clone();
            tokio::spawn(async move {
                match spec.kind {
                    Kind::Rabbitmq => carrier.keep_reading(|c| rabbitmq::read(c, &spec)).await,
                    Kind::RedisPubsub => carrier.keep_reading(|c| redis::subscribe(c, &spec)).await,
                    Kind::RedisList => carrier.keep_reading(|c| redis::pop(c, &spec)).await,
                    Kind::RedisStream => carrier.keep_reading(|c| redis::group(c, &spec)).await,
                    Kind::Nats => carrier.keep_reading(|c| nats::subscribe(c, &spec)).await,
                    Kind::Jetstream => carrier.keep_reading(|c| nats::durable(c, &spec)).await,
                    Kind::PostgresOutbox => {
                        carrier.keep_reading(|c| postgres::drain(c, &spec)).await
                    }
                }
            })
        })
        .collect()
}

/// How long a command that some gateways of the cluster did not take is tried again.
const PARTIAL_GRACE: Duration = Duration::from_secs(5);

/// How often a consumer repeats a warning about the same trouble.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What a broker's reader does with a message it was given.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Carried out: acknowledge it.
    Done,
    /// Refused (already logged and counted): acknowledge it or dead-letter it.
    Bad(Refusal),
}

/// The gateway stopped before the message was accepted: leave it unacknowledged.
#[derive(Debug)]
pub(crate) struct Stopped;

/// One consumer's way to carry out messages, shared by its broker's reader.
#[derive(Debug, Clone)]
pub(crate) struct Carrier {
    meaning: Meaning,
    pub name: String,
    fan_out: bool,
    pub node_id: String,
    cluster: ClusterSlot,
    pub stats: Arc<ConsumerStats>,
    pub stop: CancellationToken,
    warned: Arc<std::sync::Mutex<Throttle>>,
}

/// One try at a command.
enum Try {
    Done,
    /// Carried out, but some gateways did not answer (named).
    Partly(String),
    Refused(String),
    Again(String),
}

impl Carrier {
    /// Carries out one message: returns once a gateway accepted it or it was refused, trying
    /// again with backoff while the gateway cannot take it.
    pub(crate) async fn carry(&self, m: Received<'_>) -> Result<Outcome, Stopped> {
        let command = match self.meaning.read(m) {
            Ok(command) => command,
            Err(refusal) => return Ok(self.refuse(refusal)),
        };
        let mut backoff = Backoff::new(DEFAULT_MIN, DEFAULT_MAX);
        let started = tokio::time::Instant::now();
        loop {
            let tried = match self.try_once(&command).await {
                // A gateway starting (its peers not yet linked) or restarting: tried again,
                // the command id keeps the gateways that took it from taking it twice.
                Try::Partly(down) if started.elapsed() < PARTIAL_GRACE => {
                    Try::Again(format!("{down} did not answer"))
                }
                Try::Partly(down) => {
                    // Retrying longer would hold the queue for a gateway that may not come
                    // back; its clients reconnect to another and recover from a stream.
                    self.warn(&format!(
                        "carried out, but not on {down}, which did not answer for {PARTIAL_GRACE:?}; its clients get it only from a stream's history"
                    ));
                    Try::Done
                }
                other => other,
            };
            match tried {
                Try::Done | Try::Partly(_) => {
                    Stats::incr(&self.stats.messages);
                    return Ok(Outcome::Done);
                }
                Try::Refused(detail) => {
                    return Ok(self.refuse(Refusal::new(Reason::Invalid, detail)));
                }
                Try::Again(why) => {
                    Stats::incr(&self.stats.retries);
                    let delay = backoff.next_delay();
                    self.warn(&format!(
                        "the gateway cannot take the message now ({why}); it stays unacknowledged and is tried again in {delay:?}"
                    ));
                    tokio::select! {
                        _ = self.stop.cancelled() => return Err(Stopped),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    async fn try_once(&self, command: &Command) -> Try {
        let Some(cluster) = self.cluster.get() else {
            return Try::Again("its cluster client has not connected yet".into());
        };
        let mut handle = if self.fan_out {
            cluster.only_gateway(self.node_id.clone())
        } else {
            cluster.clone()
        };
        if let Some(id) = &command.command_id {
            handle = handle.with_command_id(id.clone());
        }
        match handle.command(command.body.clone()).await {
            Ok(report) if report.failed.is_empty() => Try::Done,
            Ok(report) => {
                let down: Vec<_> = report.failed.iter().map(|f| f.gateway.as_str()).collect();
                if self.fan_out || crate::cluster::none_answered(&cluster, &report.failed) {
                    Try::Again(format!("no gateway answered: {}", down.join(", ")))
                } else {
                    Try::Partly(down.join(", "))
                }
            }
            Err(e) => match e.class() {
                ErrorClass::Invalid | ErrorClass::TooLarge | ErrorClass::LimitExceeded => {
                    Try::Refused(e.to_string())
                }
                // Gone: nothing to do, as for the API.
                ErrorClass::UnknownConnection => Try::Done,
                ErrorClass::Unavailable | ErrorClass::Timeout => Try::Again(e.to_string()),
                // A bug, not a state that passes: refusing keeps the queue moving.
                _ if matches!(e, Error::Closed) => Try::Again(e.to_string()),
                _ => Try::Refused(e.to_string()),
            },
        }
    }

    /// Logs and counts a refused message.
    pub(crate) fn refuse(&self, refusal: Refusal) -> Outcome {
        self.stats.bad(refusal.reason);
        tracing::warn!(
            consumer = %self.name,
            reason = refusal.reason.name(),
            "bad message refused: {}",
            refusal.detail
        );
        Outcome::Bad(refusal)
    }

    /// A warning about lasting trouble, at most once per [`WARN_EVERY`].
    pub(crate) fn warn(&self, what: &str) {
        let due = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tick(std::time::Instant::now());
        if let Some(times) = due {
            tracing::warn!(consumer = %self.name, times, "{what}");
        }
    }

    /// Marks the consumer connected (logged when it had lost its broker).
    pub(crate) fn up(&self) {
        if !self.stats.is_up() {
            if Stats::get(&self.stats.disconnects) == 0 {
                tracing::info!(consumer = %self.name, kind = self.stats.kind, "consumer connected");
            } else {
                tracing::info!(consumer = %self.name, kind = self.stats.kind, "consumer reconnected to its broker");
            }
        }
        self.stats.connected();
    }

    /// Runs `session` (connect, then read until the connection fails) again and again with
    /// backoff until the gateway stops. A lost broker is logged once, when it goes (the next
    /// line is when it is back), and shown by `/readyz`, the metrics and the console meanwhile.
    async fn keep_reading<F, Fut>(self, mut session: F)
    where
        F: FnMut(Carrier) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let mut backoff = Backoff::new(DEFAULT_MIN, DEFAULT_MAX);
        loop {
            let result = tokio::select! {
                _ = self.stop.cancelled() => return,
                r = session(self.clone()) => r,
            };
            let why = match result {
                Ok(()) => return,
                Err(why) => why,
            };
            if self.stats.is_up() {
                backoff.reset();
                tracing::warn!(
                    consumer = %self.name,
                    kind = self.stats.kind,
                    "consumer lost its broker: {why}; reconnecting with backoff (messages not acknowledged are delivered again)"
                );
            } else if self.stats.error().as_deref() == Some("connecting") {
                tracing::warn!(
                    consumer = %self.name,
                    kind = self.stats.kind,
                    "consumer cannot reach its broker: {why}; retrying with backoff"
                );
            }
            self.stats.disconnected(why);
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }
}

/// Stops a helper task (a connection's driver, a forwarder) with the session that started it.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A broker error as one line for logs and `/readyz`.
pub(crate) fn why(context: &str, e: impl std::fmt::Display) -> String {
    format!("{context}: {e}")
}
