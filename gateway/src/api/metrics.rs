//! `/metrics`: the gateway's counters in the Prometheus text exposition format (0.0.4).
//!
//! Everything is read from atomics and index sizes at scrape time; nothing here runs on the
//! hot path. Label sets are fixed (every close reason and command kind is always present, at
//! zero if need be), so dashboards and `rate()` see each series from the first scrape. No key
//! is needed: bind the API to a private address, as by default, to keep it private.

use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::context::ApiContext;
use crate::stats::{BOUNDS_SECONDS, BadReason, CloseReason, CommandKind, ConsumerStats, Stats};

/// The content type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics route.
pub(crate) fn routes() -> Router<ApiContext> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(context): State<ApiContext>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&context))
}

/// Builds the exposition text, one family after another.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition for one gateway.
pub(crate) fn render(context: &ApiContext) -> String {
    let mut out = Exposition(String::with_capacity(8 * 1024));
    gateway(&mut out, context);
    connections(&mut out, context);
    traffic(&mut out, &context.stats);
    links(&mut out, &context.stats);
    indexes(&mut out, context);
    dispatch_latency(&mut out, &context.stats);
    consumers(&mut out, &context.stats);
    out.0
}

/// Each consumer's counters and state (docs/consumers.md), labelled by its name and kind.
fn consumers(out: &mut Exposition, stats: &Stats) {
    let all = stats.consumers.all();
    type Read = fn(&ConsumerStats) -> u64;
    let families: [(&str, &str, &str, Read); 5] = [
        (
            "wsgate_consumer_up",
            "gauge",
            "1 while the consumer is connected to its broker and reading, else 0.",
            |c| u64::from(c.is_up()),
        ),
        (
            "wsgate_consumer_messages_total",
            "counter",
            "Messages the consumer carried out and acknowledged.",
            |c| Stats::get(&c.messages),
        ),
        (
            "wsgate_consumer_retries_total",
            "counter",
            "Tries that found the gateway unable to take a command; the message was kept and tried again.",
            |c| Stats::get(&c.retries),
        ),
        (
            "wsgate_consumer_disconnects_total",
            "counter",
            "Times the consumer lost its broker.",
            |c| Stats::get(&c.disconnects),
        ),
        (
            "wsgate_consumer_dropped_total",
            "counter",
            "Redis Pub/Sub and NATS core messages dropped because 10,000 were already waiting to be carried out.",
            |c| Stats::get(&c.dropped),
        ),
    ];
    for (name, kind, help, read) in families {
        out.family(name, kind, help);
        for c in &all {
            out.sample(name, &[("consumer", &c.name), ("kind", c.kind)], read(c));
        }
    }
    let name = "wsgate_consumer_bad_messages_total";
    out.family(
        name,
        "counter",
        "Messages the consumer refused (acknowledged or dead-lettered), by reason.",
    );
    for c in &all {
        for reason in BadReason::ALL {
            out.sample(
                name,
                &[
                    ("consumer", &c.name),
                    ("kind", c.kind),
                    ("reason", reason.name()),
                ],
                c.bad_count(reason),
            );
        }
    }
    let name = "wsgate_consumer_lag";
    out.family(
        name,
        "gauge",
        "Messages waiting at the broker for this consumer, where the broker reports it (RabbitMQ queue, Redis list length or group lag, JetStream pending, outbox rows).",
    );
    for c in &all {
        if let Some(lag) = c.lag() {
            out.sample(name, &[("consumer", &c.name), ("kind", c.kind)], lag);
        }
    }
}

/// This gateway: who it is and whether it is ready.
fn gateway(out: &mut Exposition, context: &ApiContext) {
    out.family(
        "wsgate_info",
        "gauge",
        "This gateway: its node id and version.",
    );
    out.sample(
        "wsgate_info",
        &[
            ("node_id", &context.config.node_id),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1,
    );
    out.single(
        "wsgate_ready",
        "gauge",
        "1 while the gateway accepts clients and is not draining (what /readyz reports).",
        u64::from(context.lifecycle.ready()),
    );
}

/// Client connections: open, accepted, the limit, and how they closed.
fn connections(out: &mut Exposition, context: &ApiContext) {
    let stats = &context.stats;
    let get = Stats::get;
    out.single(
        "wsgate_connections",
        "gauge",
        "Client WebSocket connections open now.",
        get(&stats.connections_current),
    );
    out.single(
        "wsgate_connections_total",
        "counter",
        "Client WebSocket connections accepted since start.",
        get(&stats.connections_total),
    );
    out.single(
        "wsgate_connections_max",
        "gauge",
        "The most client connections this gateway holds (--max-connections, at most what the \
         open-file limit leaves room for).",
        u64::try_from(context.conns.limit.max()).unwrap_or(u64::MAX),
    );
    out.single(
        "wsgate_connections_refused_total",
        "counter",
        "Client handshakes answered with HTTP 503 because the gateway held wsgate_connections_max \
         clients.",
        context.conns.limit.refused(),
    );

    out.family(
        "wsgate_closes_total",
        "counter",
        "Client connections closed, by reason: client (close frame), lost (no close frame), \
         idle_timeout, slow_consumer, too_big, business (force-offline), shutdown, \
         guest_timeout, protocol_error, rate_limited (1008), replaced (4004: the user opened \
         more connections than allowed), internal.",
    );
    for reason in CloseReason::ALL {
        out.sample(
            "wsgate_closes_total",
            &[("reason", reason.label())],
            stats.closes(reason),
        );
    }
}

/// Messages and bytes in and out, what was dropped or refused, and why.
fn traffic(out: &mut Exposition, stats: &Stats) {
    let get = Stats::get;
    out.single(
        "wsgate_messages_in_total",
        "counter",
        "Data messages received from clients (heartbeats not included).",
        stats.messages_in.get(),
    );
    out.single(
        "wsgate_messages_out_total",
        "counter",
        "Data messages written to clients.",
        stats.messages_out.get(),
    );
    out.single(
        "wsgate_bytes_in_total",
        "counter",
        "Payload bytes of the data messages received from clients.",
        stats.bytes_in.get(),
    );
    out.single(
        "wsgate_bytes_out_total",
        "counter",
        "Payload bytes of the data messages written to clients.",
        stats.bytes_out.get(),
    );

    out.family(
        "wsgate_dropped_total",
        "counter",
        "Messages dropped, by reason: slow_consumer (a client's send queue was full; it is \
         closed with 4001), no_business (a client message no business process wants), \
         rate_limited (a client message over --client-message-rate, with \
         --client-rate-limit-action drop).",
    );
    for (reason, counter) in [
        ("slow_consumer", &stats.dropped_slow_consumer),
        ("no_business", &stats.dropped_no_business),
        ("rate_limited", &stats.dropped_rate_limited),
    ] {
        out.sample("wsgate_dropped_total", &[("reason", reason)], get(counter));
    }
    out.single(
        "wsgate_events_redelivered_total",
        "counter",
        "Events handed to another business process because the one they were written to did \
         not acknowledge them (its link died, or stalled past --worker-ack-timeout); only \
         links registered with acks keep events until acknowledged.",
        get(&stats.events_redelivered),
    );
    out.single(
        "wsgate_events_unacked",
        "gauge",
        "Events written to business processes registered with acks and not yet acknowledged \
         (each link at most --worker-ack-window).",
        get(&stats.events_unacked),
    );
    out.single(
        "wsgate_worker_acks_total",
        "counter",
        "Ack frames received from business processes registered with acks (each acknowledges \
         every event up to a number).",
        get(&stats.acks_received),
    );
    out.single(
        "wsgate_worker_ack_timeouts_total",
        "counter",
        "Worker links closed because their oldest event was not acknowledged within \
         --worker-ack-timeout (a stopped, paused or deadlocked business process).",
        get(&stats.links_ack_timeouts),
    );
    out.single(
        "wsgate_events_waited_for_business_total",
        "counter",
        "Client events that waited for a business process to register because none was \
         (--no-business-wait); those still without one at its end are dropped (no_business).",
        get(&stats.events_waited_for_business),
    );
    out.single(
        "wsgate_commands_deduplicated_total",
        "counter",
        "Commands answered from the command-id window instead of being carried out again: \
         retries (SDK after a lost link, Idempotency-Key) of a command already run.",
        get(&stats.commands_deduplicated),
    );
    out.single(
        "wsgate_stream_engine_up",
        "gauge",
        "1 while the stream engine keeps history (in memory: always; Redis: answering), 0 while \
         Redis cannot be reached (see --stream-redis-down).",
        get(&stats.stream_engine_up),
    );
    out.single(
        "wsgate_streams",
        "gauge",
        "Streams this gateway holds (topics and users configured by --stream).",
        get(&stats.streams_current),
    );
    out.single(
        "wsgate_stream_publications_total",
        "counter",
        "Messages published to streams: each got an offset and went into its stream's history.",
        get(&stats.stream_publications),
    );
    out.single(
        "wsgate_stream_history_refused_total",
        "counter",
        "Topics or users that would have been new streams while the gateway held --max-streams: \
         delivered live without history.",
        get(&stats.stream_history_refused),
    );
    out.family(
        "wsgate_stream_recoveries_total",
        "counter",
        "Joins of a stream by a client that said where it was: recovered (given everything \
         after it) or not (told recovered: false, with the gap).",
    );
    for (result, counter) in [
        ("recovered", &stats.stream_recovered),
        ("not_recovered", &stats.stream_not_recovered),
    ] {
        out.sample(
            "wsgate_stream_recoveries_total",
            &[("result", result)],
            get(counter),
        );
    }
    out.single(
        "wsgate_client_protocol_errors_total",
        "counter",
        "Text frames from wsgate.stream.v1 clients that were not frames of the subprotocol \
         (answered with an error frame, not forwarded).",
        get(&stats.client_protocol_errors),
    );
    out.single(
        "wsgate_client_acks_total",
        "counter",
        "Client acknowledgements that settled a receipt as acked.",
        get(&stats.client_acks),
    );
    out.single(
        "wsgate_client_queued_bytes",
        "gauge",
        "Bytes queued to clients now, being written included (each client at most \
         --send-queue-bytes, or one larger message).",
        stats.client_queued_bytes.get(),
    );
    out.family(
        "wsgate_handshakes_refused_total",
        "counter",
        "Client handshakes answered with HTTP 429, by reason: rate_limited (over \
         --handshake-rate-per-ip), user_limit (the user holds --max-connections-per-user).",
    );
    for (reason, counter) in [
        ("rate_limited", &stats.handshakes_rate_limited),
        ("user_limit", &stats.handshakes_user_limited),
    ] {
        out.sample(
            "wsgate_handshakes_refused_total",
            &[("reason", reason)],
            get(counter),
        );
    }
    out.single(
        "wsgate_frames_too_large_total",
        "counter",
        "Worker-link frames not sent because they would exceed --max-frame-bytes (an answer \
         is replaced by a LIMIT_EXCEEDED result, an event dropped); stays 0 with a valid \
         configuration.",
        get(&stats.frames_too_large),
    );
}

/// Business links and the commands they send.
fn links(out: &mut Exposition, stats: &Stats) {
    let get = Stats::get;
    out.single(
        "wsgate_business_links",
        "gauge",
        "Business processes registered on the worker link now (gateways' cluster clients not included).",
        get(&stats.links_current),
    );
    out.single(
        "wsgate_peer_links",
        "gauge",
        "Gateways' cluster clients registered on the worker link now (this gateway's own included).",
        get(&stats.peer_links_current),
    );

    out.family(
        "wsgate_commands_total",
        "counter",
        "Commands and queries received on the worker link (the HTTP and gRPC APIs included: \
         they go through the cluster client), by kind.",
    );
    for kind in CommandKind::ALL {
        out.sample(
            "wsgate_commands_total",
            &[("kind", kind.label())],
            stats.commands_of(kind),
        );
    }
    out.family(
        "wsgate_command_errors_total",
        "counter",
        "Commands and queries that failed (bad request, unknown connection, ...), by kind.",
    );
    for kind in CommandKind::ALL {
        out.sample(
            "wsgate_command_errors_total",
            &[("kind", kind.label())],
            stats.command_errors_of(kind),
        );
    }
}

/// Users and topics held now.
fn indexes(out: &mut Exposition, context: &ApiContext) {
    out.single(
        "wsgate_users",
        "gauge",
        "Distinct user ids bound to connections of this gateway now.",
        context.conns.indexes.user_count() as u64,
    );
    out.single(
        "wsgate_topics",
        "gauge",
        "Topics with at least one subscribed connection on this gateway now.",
        context.conns.indexes.topic_count() as u64,
    );
}

/// The event dispatch latency histogram.
fn dispatch_latency(out: &mut Exposition, stats: &Stats) {
    let name = "wsgate_event_dispatch_seconds";
    out.family(
        name,
        "histogram",
        "Time from a connection event (open, message, close) to its place in a business \
         process's link queue, waiting included when that queue is full.",
    );
    let histogram = stats.event_dispatch.snapshot();
    let bucket = format!("{name}_bucket");
    for (le, count) in BOUNDS_SECONDS
        .iter()
        .copied()
        .chain(["+Inf"])
        .zip(&histogram.cumulative)
    {
        out.sample(&bucket, &[("le", le)], count);
    }
    out.sample(
        &format!("{name}_sum"),
        &[],
        histogram.sum_nanos as f64 / 1e9,
    );
    out.sample(&format!("{name}_count"), &[], histogram.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }
}
