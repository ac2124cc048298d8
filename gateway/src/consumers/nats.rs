//! The NATS consumers: core subjects with wildcards (fan-out: every gateway subscribes, each
//! delivers to its own connections) and a JetStream durable pull consumer (a work queue the
//! gateways share, each message acknowledged once carried out).
//!
//! The NATS client would reconnect by itself; a lost server is instead handled like every
//! other consumer's (`Carrier::keep_reading`): the session ends, the state is shown, and a new
//! connection is tried with backoff, so `/readyz` and the metrics tell the truth meanwhile.

use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use futures_util::StreamExt;

use super::spec::{Bad, Spec};
use super::{Carrier, Outcome, Received, why};

/// The header NATS itself uses for a message id (JetStream deduplicates publishes by it).
const MSG_ID: &str = "Nats-Msg-Id";

/// Core NATS messages that may wait to be carried out: past it the client drops them (NATS
/// calls that a slow consumer), counted in `wsgate_consumer_dropped_total`.
const BACKLOG: usize = 10_000;

async fn connect(c: &Carrier, spec: &Spec) -> Result<async_nats::Client, String> {
    let stats = c.stats.clone();
    async_nats::ConnectOptions::new()
        .name(format!("wsgate {} consumer {}", c.node_id, c.name))
        .connection_timeout(Duration::from_secs(2))
        .subscription_capacity(BACKLOG)
        .event_callback(move |event| {
            let stats = stats.clone();
            async move {
                if let async_nats::Event::SlowConsumer(_) = event {
                    crate::stats::Stats::incr(&stats.dropped);
                }
            }
        })
        .connect(spec.url())
        .await
        .map_err(|e| why("cannot connect to NATS", e))
}

/// The message's id: the header `id_header` (default `Nats-Msg-Id`), if it has one.
fn header_id(headers: Option<&async_nats::HeaderMap>, spec: &Spec) -> Option<String> {
    let name = spec.id_header.as_deref().unwrap_or(MSG_ID);
    headers?.get(name).map(|v| v.as_str().to_owned())
}

/// Core NATS: subscribe to every subject; nothing to acknowledge.
pub(super) async fn subscribe(c: Carrier, spec: &Spec) -> Result<(), String> {
    let client = connect(&c, spec).await?;
    let mut subscriptions = Vec::new();
    for subject in &spec.subjects {
        let sub = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| why(&format!("cannot subscribe to {subject}"), e))?;
        subscriptions.push(sub);
    }
    // Subscribed only once the server has it: a message published after this line is seen.
    client
        .flush()
        .await
        .map_err(|e| why("NATS flush failed", e))?;
    c.up();
    let mut messages = futures_util::stream::select_all(subscriptions);
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else {
                    return Err("NATS closed the subscriptions".into());
                };
                let id = header_id(msg.headers.as_ref(), spec);
                let received = Received {
                    data: &msg.payload,
                    channel: msg.subject.as_str(),
                    id: id.as_deref(),
                };
                if c.carry(received).await.is_err() {
                    return Ok(());
                }
            }
            _ = check.tick() => {
                if client.connection_state() == State::Disconnected {
                    return Err("lost the connection to NATS".into());
                }
            }
        }
    }
}

/// JetStream: a durable pull consumer on `stream` (created with `subjects` when missing);
/// each message acknowledged once carried out, a bad one acknowledged or terminated (and
/// published to `dead_letter`, when set).
pub(super) async fn durable(c: Carrier, spec: &Spec) -> Result<(), String> {
    let client = connect(&c, spec).await?;
    let js = jetstream::new(client.clone());
    let name = spec.stream.clone().unwrap_or_default();
    let stream = if spec.subjects.is_empty() {
        js.get_stream(&name).await.map_err(|e| {
            why(
                &format!("cannot find JetStream stream {name} (set `subjects` to have it created)"),
                e,
            )
        })?
    } else {
        js.get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: spec.subjects.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| why(&format!("cannot create JetStream stream {name}"), e))?
    };
    let durable = spec
        .durable
        .clone()
        .unwrap_or_else(|| format!("wsgate-{}", spec.name));
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: spec.redeliver_after(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| why(&format!("cannot create the durable consumer {durable}"), e))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(spec.batch())
        .messages()
        .await
        .map_err(|e| why("cannot pull messages", e))?;
    c.up();
    let mut check = tokio::time::interval(Duration::from_secs(5));
    loop {
        let msg = tokio::select! {
            msg = messages.next() => msg,
            _ = check.tick() => {
                if client.connection_state() == State::Disconnected {
                    return Err("lost the connection to NATS".into());
                }
                if let Ok(info) = consumer.get_info().await {
                    c.stats.set_lag(info.num_pending);
                }
                continue;
            }
        };
        let Some(msg) = msg else {
            return Err("JetStream ended the message stream".into());
        };
        let msg = msg.map_err(|e| why("JetStream pull failed", e))?;
        let id = header_id(msg.headers.as_ref(), spec).or_else(|| {
            msg.info()
                .ok()
                .map(|info| format!("{}-{}", info.stream, info.stream_sequence))
        });
        let received = Received {
            data: &msg.payload,
            channel: msg.subject.as_str(),
            id: id.as_deref(),
        };
        let outcome = match c.carry(received).await {
            Ok(outcome) => outcome,
            // Not acknowledged: redelivered after ack_wait, to this or another gateway.
            Err(_stopped) => return Ok(()),
        };
        let acked = match &outcome {
            Outcome::Bad(refusal) if spec.bad == Bad::DeadLetter => {
                if let Some(subject) = &spec.dead_letter {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Wsgate-Reason", refusal.reason.name());
                    headers.insert("Wsgate-Subject", msg.subject.as_str());
                    client
                        .publish_with_headers(subject.clone(), headers, msg.payload.clone())
                        .await
                        .map_err(|e| why("publishing to the dead-letter subject failed", e))?;
                }
                msg.ack_with(AckKind::Term).await
            }
            _ => msg.ack().await,
        };
        acked.map_err(|e| why("acknowledging a message failed", e))?;
    }
}
