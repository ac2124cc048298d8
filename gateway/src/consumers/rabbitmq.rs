//! The RabbitMQ consumer: one queue, manual acknowledgements, `prefetch` messages ahead.
//!
//! A message is acknowledged once carried out; a bad one is acknowledged (`bad = "drop"`) or
//! rejected without requeueing (`bad = "dead-letter"`: the queue's own dead-letter exchange,
//! `x-dead-letter-exchange`, gets it, when the queue has one). The gateways share the queue,
//! RabbitMQ handing each message to one of them. A gateway killed before acknowledging leaves
//! its messages to be delivered again, marked redelivered; the message id (the `message_id`
//! property, or the header `id_header`, or the JSON command's id) makes the second delivery a
//! command each gateway carries out once.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

use super::spec::{Bad, Spec};
use super::{Carrier, Outcome, Received, why};

/// Unacknowledged messages RabbitMQ sends ahead by default.
const DEFAULT_PREFETCH: u16 = 100;

pub(super) async fn read(c: Carrier, spec: &Spec) -> Result<(), String> {
    let queue = spec.queue.clone().unwrap_or_default();
    let props = ConnectionProperties::default()
        .with_connection_name(format!("wsgate {} consumer {}", c.node_id, c.name).into());
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(spec.url(), props),
    )
    .await
    .map_err(|_| "cannot connect to RabbitMQ: no answer within 5s".to_owned())?
    .map_err(|e| why("cannot connect to RabbitMQ", e))?;
    let channel = conn
        .create_channel()
        .await
        .map_err(|e| why("cannot open a channel", e))?;
    let declare = QueueDeclareOptions {
        durable: true,
        // Without `declare` the queue must exist: a passive declare checks it.
        passive: !spec.declare(),
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.clone().into(), declare, FieldTable::default())
        .await
        .map_err(|e| {
            why(
                &format!(
                    "cannot declare queue {queue} (it must exist when declare = false; a queue declared with other arguments must be declared the same way)"
                ),
                e,
            )
        })?;
    c.stats.set_lag(u64::from(declared.message_count()));
    channel
        .basic_qos(
            spec.prefetch.unwrap_or(DEFAULT_PREFETCH),
            BasicQosOptions::default(),
        )
        .await
        .map_err(|e| why("basic.qos failed", e))?;
    let mut consumer = channel
        .basic_consume(
            queue.clone().into(),
            format!("wsgate-{}-{}", c.node_id, c.name).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| why(&format!("cannot consume queue {queue}"), e))?;
    c.up();
    let mut lag = tokio::time::interval(Duration::from_secs(5));
    loop {
        let delivery = tokio::select! {
            d = consumer.next() => d,
            _ = lag.tick() => {
                let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
                let q = channel
                    .queue_declare(queue.clone().into(), passive, FieldTable::default())
                    .await
                    .map_err(|e| why("queue.declare (passive) failed", e))?;
                c.stats.set_lag(u64::from(q.message_count()));
                continue;
            }
        };
        let Some(delivery) = delivery else {
            return Err("RabbitMQ cancelled the consumer".into());
        };
        let delivery = delivery.map_err(|e| why("RabbitMQ connection failed", e))?;
        let id = message_id(&delivery.properties, spec.id_header.as_deref());
        let received = Received {
            data: &delivery.data,
            channel: delivery.routing_key.as_str(),
            id: id.as_deref(),
        };
        let outcome = match c.carry(received).await {
            Ok(outcome) => outcome,
            // Left unacknowledged: RabbitMQ delivers it again when this connection closes.
            Err(_stopped) => return Ok(()),
        };
        let settled = match outcome {
            Outcome::Bad(_) if spec.bad == Bad::DeadLetter => {
                delivery.reject(BasicRejectOptions { requeue: false }).await
            }
            _ => delivery.ack(BasicAckOptions::default()).await,
        };
        settled.map_err(|e| why("acknowledging a message failed", e))?;
    }
}

/// The message's id: the header `id_header` when configured, else the `message_id` property.
fn message_id(properties: &lapin::BasicProperties, header: Option<&str>) -> Option<String> {
    match header {
        Some(name) => {
            let headers = properties.headers().as_ref()?;
            let value = headers.inner().iter().find(|(k, _)| k.as_str() == name)?.1;
            match value {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
                AMQPValue::LongLongInt(n) => Some(n.to_string()),
                AMQPValue::LongInt(n) => Some(n.to_string()),
                AMQPValue::LongUInt(n) => Some(n.to_string()),
                _ => None,
            }
        }
        None => properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_owned()),
    }
}
