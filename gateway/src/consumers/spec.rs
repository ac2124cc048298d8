//! A consumer as the config file declares it (`[[consumer]]` tables), checked once at start:
//! which broker and what to read there, what a message means (a JSON command, or a fixed
//! command whose target comes from the channel, subject or routing key), and what happens to
//! a bad one. docs/consumers.md is the reference; every key is there.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::render;

/// Where a consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A RabbitMQ queue (work queue).
    Rabbitmq,
    /// Redis Pub/Sub channels and patterns (fan-out: every gateway reads them).
    RedisPubsub,
    /// A Redis list that producers `LPUSH` into (work queue).
    RedisList,
    /// A Redis Stream read by a consumer group (work queue).
    RedisStream,
    /// NATS core subjects (fan-out).
    Nats,
    /// A NATS JetStream stream through a durable consumer (work queue).
    Jetstream,
    /// A PostgreSQL table that applications insert into in their own transactions (work queue).
    PostgresOutbox,
}

impl Kind {
    /// The name as the file writes it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rabbitmq => "rabbitmq",
            Kind::RedisPubsub => "redis-pubsub",
            Kind::RedisList => "redis-list",
            Kind::RedisStream => "redis-stream",
            Kind::Nats => "nats",
            Kind::Jetstream => "jetstream",
            Kind::PostgresOutbox => "postgres-outbox",
        }
    }

    /// True for the sources every gateway reads on its own: each then delivers to its own
    /// connections only. The others are work queues, each message taken by one gateway and
    /// carried out cluster-wide.
    pub fn fan_out(self) -> bool {
        matches!(self, Kind::RedisPubsub | Kind::Nats)
    }

    fn default_url(self) -> &'static str {
        match self {
            Kind::Rabbitmq => "amqp://guest:guest@127.0.0.1:5672/%2f",
            Kind::RedisPubsub | Kind::RedisList | Kind::RedisStream => "redis://127.0.0.1:6379/",
            Kind::Nats | Kind::Jetstream => "nats://127.0.0.1:4222",
            Kind::PostgresOutbox => "postgres://postgres@127.0.0.1:5432/postgres",
        }
    }
}

/// The fixed command of a consumer whose messages are payloads, not JSON commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Method {
    /// To one connection: `to` is its connection id.
    #[serde(rename = "send")]
    Send,
    /// To every connection of a user: `to` is the user id.
    #[serde(rename = "users/send")]
    UsersSend,
    /// To every member of a topic: `to` is the topic.
    #[serde(rename = "topics/publish")]
    Publish,
    /// To every connection; no `to`.
    #[serde(rename = "broadcast")]
    Broadcast,
}

/// What happens to a message that is not a command wsgate can carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bad {
    /// Logged, counted, acknowledged: gone.
    #[default]
    Drop,
    /// Logged, counted, and handed to the broker's dead-letter place (see docs/consumers.md).
    DeadLetter,
}

/// One `[[consumer]]` table. Keys that do not apply to its `kind` are refused.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Names it in logs, metrics, `/readyz` and the console: letters, digits, `-`, `_`.
    pub name: String,
    pub kind: Kind,
    /// The broker; each kind has a loopback default.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "url_without_password"
    )]
    pub url: Option<String>,
    /// rabbitmq: the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// rabbitmq: declare the queue (durable) when it does not exist; postgres-outbox: create
    /// the table, its dead-letter table and its trigger when they do not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declare: Option<bool>,
    /// rabbitmq: unacknowledged messages the broker may send ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<u16>,
    /// redis-pubsub: channels; a name with `*`, `?` or `[` is a pattern (`PSUBSCRIBE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// nats: subjects, with NATS wildcards (`orders.*.status`, `notice.>`); jetstream: the
    /// stream's subjects when wsgate creates it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// redis-list and redis-stream: the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// redis-stream: the consumer group (created when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// jetstream: the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// jetstream: the durable consumer's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable: Option<String>,
    /// postgres-outbox: the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// A fixed command: each message is its payload, not a JSON command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Method>,
    /// With `command`: the channel, subject or routing key a message came by, as a pattern
    /// whose `{name}` parts capture (`pub.user.{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// With `command`: the target, with the captures of `from` (`{id}`, `order:{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The JSON command's field holding the message id (default `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
    /// rabbitmq and NATS: a header holding the message id (instead of the broker's own id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_header: Option<String>,
    /// `drop` (default) or `dead-letter`.
    #[serde(default)]
    pub bad: Bad,
    /// redis-list and redis-stream: where `bad = "dead-letter"` puts a bad message (default:
    /// the key with `:dead` appended); jetstream: a subject it is also published to (it is
    /// terminated either way). The outbox moves bad rows to `<table>_dead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    /// A message longer than this is bad (default 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
    /// Messages taken at once from Redis Streams, JetStream and the outbox (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// redis-stream and jetstream: a message a gateway took and did not acknowledge (it died)
    /// is delivered again after this long (redis-stream: another gateway takes it over with
    /// `XAUTOCLAIM`; jetstream: the consumer's `ack_wait`); default "30s".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration"
    )]
    pub redeliver_after: Option<Duration>,
}

fn url_without_password<S: serde::Serializer>(
    value: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(url) => render::url_without_password(url, s),
        None => s.serialize_none(),
    }
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => crate::config::render::duration(d, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        crate::config::parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// The default longest message.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;
/// The default batch.
pub const DEFAULT_BATCH: usize = 100;
/// The default `redeliver_after`.
pub const DEFAULT_REDELIVER_AFTER: Duration = Duration::from_secs(30);

impl Spec {
    /// The broker's URL.
    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(self.kind.default_url())
    }

    /// Whether to create the queue or the tables when missing (rabbitmq, postgres-outbox).
    pub fn declare(&self) -> bool {
        self.declare.unwrap_or(true)
    }

    /// The longest message taken.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes.unwrap_or(DEFAULT_MAX_BYTES)
    }

    /// How long an unacknowledged message stays with a gateway that took it.
    pub fn redeliver_after(&self) -> Duration {
        self.redeliver_after.unwrap_or(DEFAULT_REDELIVER_AFTER)
    }

    /// Messages taken at once.
    pub fn batch(&self) -> usize {
        self.batch.unwrap_or(DEFAULT_BATCH)
    }

    /// The JSON command's id field.
    pub fn id_field(&self) -> &str {
        self.id_field.as_deref().unwrap_or("id")
    }

    /// Where a bad message goes with `bad = "dead-letter"` for the Redis kinds.
    pub fn dead_letter_key(&self) -> String {
        match (&self.dead_letter, &self.key) {
            (Some(d), _) => d.clone(),
            (None, Some(key)) => format!("{key}:dead"),
            (None, None) => format!("wsgate:{}:dead", self.name),
        }
    }

    /// Checks the table: what its kind needs is there, nothing of another kind is, and a
    /// fixed command has the target it needs. The error names the consumer and the key.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty()
            || name.len() > 40
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "consumer name {name:?} must be 1 to 40 letters, digits, '-' or '_'"
            ));
        }
        let kind = self.kind;
        let owner = |field: &str| -> &'static [Kind] {
            match field {
                "queue" | "prefetch" => &[Kind::Rabbitmq],
                "declare" => &[Kind::Rabbitmq, Kind::PostgresOutbox],
                "channels" => &[Kind::RedisPubsub],
                "subjects" => &[Kind::Nats, Kind::Jetstream],
                "key" => &[Kind::RedisList, Kind::RedisStream],
                "group" => &[Kind::RedisStream],
                "redeliver_after" => &[Kind::RedisStream, Kind::Jetstream],
                "stream" | "durable" => &[Kind::Jetstream],
                "table" => &[Kind::PostgresOutbox],
                "id_header" => &[Kind::Rabbitmq, Kind::Nats, Kind::Jetstream],
                "dead_letter" => &[Kind::RedisList, Kind::RedisStream, Kind::Jetstream],
                "batch" => &[Kind::RedisStream, Kind::Jetstream, Kind::PostgresOutbox],
                _ => &[],
            }
        };
        let set = [
            ("queue", self.queue.is_some()),
            ("declare", self.declare.is_some()),
            ("prefetch", self.prefetch.is_some()),
            ("channels", !self.channels.is_empty()),
            ("subjects", !self.subjects.is_empty()),
            ("key", self.key.is_some()),
            ("group", self.group.is_some()),
            ("redeliver_after", self.redeliver_after.is_some()),
            ("stream", self.stream.is_some()),
            ("durable", self.durable.is_some()),
            ("table", self.table.is_some()),
            ("id_header", self.id_header.is_some()),
            ("dead_letter", self.dead_letter.is_some()),
            ("batch", self.batch.is_some()),
        ];
        for (field, is_set) in set {
            let kinds = owner(field);
            if is_set && !kinds.contains(&kind) {
                let names: Vec<_> = kinds.iter().map(|k| k.name()).collect();
                return Err(format!(
                    "consumer {name}: `{field}` is a setting of {}, not of {}; remove it",
                    names.join(" and "),
                    kind.name()
                ));
            }
        }
        let needs = |field: &str, present: bool| {
            if present {
                Ok(())
            } else {
                Err(format!(
                    "consumer {name} ({}) needs `{field}`; see docs/consumers.md",
                    kind.name()
                ))
            }
        };
        match kind {
            Kind::Rabbitmq => needs("queue", self.queue.is_some())?,
            Kind::RedisPubsub => needs("channels", !self.channels.is_empty())?,
            Kind::RedisList | Kind::RedisStream => needs("key", self.key.is_some())?,
            Kind::Nats => needs("subjects", !self.subjects.is_empty())?,
            Kind::Jetstream => needs("stream", self.stream.is_some())?,
            Kind::PostgresOutbox => {}
        }
        if let Some(table) = &self.table
            && !is_sql_name(table)
        {
            return Err(format!(
                "consumer {name}: table {table:?} must be a plain SQL name (letters, digits, '_', optionally schema.table)"
            ));
        }
        if self.bad == Bad::DeadLetter && kind.fan_out() {
            return Err(format!(
                "consumer {name}: {} has nowhere to keep a bad message; use bad = \"drop\" (it is logged and counted)",
                kind.name()
            ));
        }
        if self.batch == Some(0) || self.max_bytes == Some(0) || self.prefetch == Some(0) {
            return Err(format!(
                "consumer {name}: batch, max_bytes and prefetch must be at least 1"
            ));
        }
        match (self.command, &self.from, &self.to) {
            (None, None, None) => {}
            (None, _, _) => {
                return Err(format!(
                    "consumer {name}: `from` and `to` need a fixed `command` (send, users/send, topics/publish or broadcast)"
                ));
            }
            (Some(Method::Broadcast), _, Some(_)) => {
                return Err(format!(
                    "consumer {name}: a broadcast has no target; remove `to`"
                ));
            }
            (Some(Method::Broadcast), _, None) => {}
            (Some(_), _, None) => {
                return Err(format!(
                    "consumer {name}: a fixed command needs `to`, the target (a connection id, user id or topic, with the captures of `from`: to = \"{{id}}\")"
                ));
            }
            (Some(_), from, Some(to)) => {
                let pattern = super::meaning::Pattern::parse(from.as_deref().unwrap_or(""))
                    .map_err(|e| format!("consumer {name}: `from`: {e}"))?;
                pattern
                    .check_template(to)
                    .map_err(|e| format!("consumer {name}: `to`: {e}"))?;
            }
        }
        Ok(())
    }
}

/// A table name wsgate writes into its SQL as is.
fn is_sql_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && !p.starts_with(|c: char| c.is_ascii_digit())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match name.split_once('.') {
        Some((schema, table)) => part(schema) && part(table),
        None => part(name),
    }
}

/// Checks a list of consumers: each one, and names unique.
pub fn check_all(specs: &[Spec]) -> Result<(), String> {
    for (i, spec) in specs.iter().enumerate() {
        spec.check()?;
        if specs[..i].iter().any(|s| s.name == spec.name) {
            return Err(format!(
                "two consumers are named {}; give each its own name",
                spec.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> Result<Spec, String> {
        let spec: Spec = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        spec.check()?;
        Ok(spec)
    }

    #[test]
    fn tables_are_checked_for_their_kind() {
        let ok = spec("name = \"n\"\nkind = \"rabbitmq\"\nqueue = \"ws.notice\"").expect("ok");
        assert_eq!(ok.url(), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert!(ok.declare());
        let missing = spec("name = \"n\"\nkind = \"rabbitmq\"").expect_err("no queue");
        assert!(missing.contains("needs `queue`"), "{missing}");
        let foreign =
            spec("name = \"n\"\nkind = \"redis-list\"\nkey = \"k\"\nqueue = \"q\"").expect_err("q");
        assert!(
            foreign.contains("`queue` is a setting of rabbitmq"),
            "{foreign}"
        );
        let unknown = spec("name = \"n\"\nkind = \"nats\"\nsubject = \"a\"").expect_err("typo");
        assert!(unknown.contains("unknown field"), "{unknown}");
        let name = spec("name = \"a b\"\nkind = \"nats\"\nsubjects = [\"a\"]").expect_err("name");
        assert!(name.contains("letters"), "{name}");
        let table =
            spec("name = \"o\"\nkind = \"postgres-outbox\"\ntable = \"x; drop\"").expect_err("sql");
        assert!(table.contains("plain SQL name"), "{table}");
        assert!(spec("name = \"o\"\nkind = \"postgres-outbox\"\ntable = \"app.outbox\"").is_ok());
    }

    #[test]
    fn fixed_commands_need_their_target() {
        let base = "name = \"n\"\nkind = \"redis-pubsub\"\nchannels = [\"pub.*\"]\n";
        assert!(
            spec(&format!(
                "{base}command = \"users/send\"\nfrom = \"pub.user.{{id}}\"\nto = \"{{id}}\""
            ))
            .is_ok()
        );
        let no_to = spec(&format!("{base}command = \"users/send\"")).expect_err("to");
        assert!(no_to.contains("needs `to`"), "{no_to}");
        let stray = spec(&format!("{base}command = \"users/send\"\nto = \"{{x}}\""))
            .expect_err("capture not in from");
        assert!(stray.contains("{x}"), "{stray}");
        let cast = spec(&format!("{base}command = \"broadcast\"\nto = \"a\"")).expect_err("to");
        assert!(cast.contains("no target"), "{cast}");
        let dead = spec(&format!("{base}bad = \"dead-letter\"")).expect_err("nowhere");
        assert!(dead.contains("nowhere"), "{dead}");
    }

    #[test]
    fn names_are_unique_and_print_back() {
        let a =
            spec("name = \"a\"\nkind = \"redis-list\"\nkey = \"k\"\nurl = \"redis://:pw@h:1/\"")
                .expect("a");
        let twice = check_all(&[a.clone(), a.clone()]).expect_err("twice");
        assert!(twice.contains("two consumers"), "{twice}");
        let printed = toml::to_string(&a).expect("prints");
        assert!(!printed.contains("pw"), "{printed}");
        assert!(printed.contains("kind = \"redis-list\""), "{printed}");
    }
}
