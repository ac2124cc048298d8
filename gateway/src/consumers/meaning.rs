//! What a broker's message means: pure, so every consumer kind reads messages by one rule and
//! the rule is tested without a broker.
//!
//! A message is either a JSON command in the HTTP API's shape (`{"method": "users/send",
//! "params": {…}, "id": "…"}`), or, for a consumer with a fixed `command`, that command's
//! payload, its target taken from the channel, subject or routing key through `from` / `to`.
//! Its id (for deduplicating redeliveries) is the JSON command's `id_field`, else what the
//! broker gave (a header, a message id, an entry id, a row id); the command id carried out is
//! the consumer's name, `:`, that id, so each gateway carries it out once.

use wsgate_proto::v1::{self, Payload, envelope::Body};
use wsgate_proto::validate::MAX_COMMAND_ID_BYTES;

use super::spec::{Method, Spec};
use crate::api::commands::body_of;

pub use crate::stats::BadReason as Reason;

/// A refused message: the reason and what to fix, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub detail: String,
}

impl Refusal {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// A message as a command to carry out.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub body: Body,
    /// The command id (`<consumer>:<message id>`), when the message has an id.
    pub command_id: Option<String>,
}

/// A message as a consumer received it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub data: &'a [u8],
    /// The channel, subject, routing key or outbox row's `channel` it came by.
    pub channel: &'a str,
    /// The id the broker gave (a configured header, a message id, an entry id, a row id).
    pub id: Option<&'a str>,
}

/// How one consumer reads its messages.
#[derive(Debug, Clone)]
pub struct Meaning {
    name: String,
    max_bytes: usize,
    id_field: String,
    fixed: Option<(Method, Pattern, String)>,
}

impl Meaning {
    /// The reading of a checked spec.
    pub fn of(spec: &Spec) -> Self {
        let fixed = spec.command.map(|method| {
            // Spec::check parsed both already.
            let pattern = Pattern::parse(spec.from.as_deref().unwrap_or("")).unwrap_or_default();
            (method, pattern, spec.to.clone().unwrap_or_default())
        });
        Self {
            name: spec.name.clone(),
            max_bytes: spec.max_bytes(),
            id_field: spec.id_field().to_owned(),
            fixed,
        }
    }

    /// The command a message stands for, or why it stands for none.
    pub fn read(&self, m: Received<'_>) -> Result<Command, Refusal> {
        if m.data.len() > self.max_bytes {
            return Err(Refusal::new(
                Reason::TooLarge,
                format!(
                    "{} bytes, more than max_bytes ({}); send smaller messages or raise max_bytes",
                    m.data.len(),
                    self.max_bytes
                ),
            ));
        }
        let (body, json_id) = match &self.fixed {
            Some((method, pattern, to)) => (fixed(*method, pattern, to, m)?, None),
            None => self.json(m.data)?,
        };
        let command_id = match json_id.as_deref().or(m.id) {
            Some(id) => Some(self.command_id(id)?),
            None => None,
        };
        Ok(Command { body, command_id })
    }

    fn command_id(&self, id: &str) -> Result<String, Refusal> {
        let command_id = format!("{}:{id}", self.name);
        if id.is_empty()
            || command_id.len() > MAX_COMMAND_ID_BYTES
            || !command_id.bytes().all(|b| (b' '..=b'~').contains(&b))
        {
            return Err(Refusal::new(
                Reason::BadId,
                format!(
                    "message id {id:?} must be 1 to {} bytes of printable ASCII (it becomes the command id {}:<id>)",
                    MAX_COMMAND_ID_BYTES - self.name.len() - 1,
                    self.name
                ),
            ));
        }
        Ok(command_id)
    }

    /// A JSON command and its id field, if it has one.
    fn json(&self, data: &[u8]) -> Result<(Body, Option<String>), Refusal> {
        let value: serde_json::Value = serde_json::from_slice(data).map_err(|e| {
            Refusal::new(
                Reason::NotJson,
                format!("not JSON ({e}); send {{\"method\": …, \"params\": {{…}}}} or configure a fixed command"),
            )
        })?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(Refusal::new(
                Reason::NotCommand,
                "a JSON command is an object {\"method\": …, \"params\": {…}}",
            ));
        };
        let method = match object.remove("method") {
            Some(serde_json::Value::String(m)) => m,
            _ => {
                return Err(Refusal::new(
                    Reason::NotCommand,
                    "the command has no \"method\" string (send, users/send, topics/publish, broadcast, force-offline, …)",
                ));
            }
        };
        let params = object
            .remove("params")
            .unwrap_or(serde_json::Value::Object(Default::default()));
        let id = match object.remove(&self.id_field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(Refusal::new(
                    Reason::BadId,
                    format!(
                        "\"{}\" must be a string or a number, not {other}",
                        self.id_field
                    ),
                ));
            }
        };
        if let Some(key) = object.keys().next() {
            return Err(Refusal::new(
                Reason::NotCommand,
                format!(
                    "unknown field {key:?}; a command has \"method\", \"params\" and \"{}\"",
                    self.id_field
                ),
            ));
        }
        let body = body_of(&method, params).map_err(|e| {
            let reason = if e.message.starts_with("unknown method") {
                Reason::UnknownMethod
            } else {
                Reason::Invalid
            };
            Refusal::new(reason, e.message)
        })?;
        Ok((body, id))
    }
}

/// The fixed command for a payload.
fn fixed(method: Method, pattern: &Pattern, to: &str, m: Received<'_>) -> Result<Body, Refusal> {
    let captures = pattern.matches(m.channel).ok_or_else(|| {
        Refusal::new(
            Reason::NoRoute,
            format!(
                "{:?} does not match from = {:?}, so it names no target",
                m.channel,
                pattern.to_string()
            ),
        )
    })?;
    let target = Pattern::fill(to, &captures);
    let payload = match std::str::from_utf8(m.data) {
        Ok(text) => Payload::text(text),
        Err(_) => Payload::binary(m.data.to_vec()),
    };
    Ok(match method {
        Method::Send => Body::SingleCast(v1::SingleCast {
            conn_id: target,
            payload: Some(payload),
        }),
        Method::UsersSend => Body::SendToUsers(v1::SendToUsers {
            user_ids: vec![target],
            payload: Some(payload),
            exclude_conn_ids: Vec::new(),
        }),
        Method::Publish => Body::Publish(v1::Publish {
            topics: vec![target],
            payload: Some(payload),
            exclude_conn_ids: Vec::new(),
        }),
        Method::Broadcast => Body::Broadcast(v1::Broadcast {
            payload: Some(payload),
            exclude: Vec::new(),
        }),
    })
}

/// One part of a `from` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Capture(String),
}

/// A `from` pattern: text with `{name}` captures, each matching one or more characters up to
/// the text that follows it (the first place it appears), the last one matching the rest. An
/// empty pattern matches anything and captures nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pattern(Vec<Part>);

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for part in &self.0 {
            match part {
                Part::Text(t) => f.write_str(t)?,
                Part::Capture(c) => write!(f, "{{{c}}}")?,
            }
        }
        Ok(())
    }
}

impl Pattern {
    /// Parses `pub.user.{id}`; two captures side by side cannot be told apart and are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("{text:?} opens {{ without closing it"))?;
                    let name = &rest[1..end];
                    if name.is_empty()
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(format!(
                            "{text:?}: a capture is {{name}} with letters, digits or '_'"
                        ));
                    }
                    if matches!(parts.last(), Some(Part::Capture(_))) {
                        return Err(format!(
                            "{text:?}: two captures side by side cannot be told apart; put text between them"
                        ));
                    }
                    parts.push(Part::Capture(name.to_owned()));
                    rest = &rest[end + 1..];
                }
                Some(i) => {
                    parts.push(Part::Text(rest[..i].to_owned()));
                    rest = &rest[i..];
                }
                None => {
                    parts.push(Part::Text(rest.to_owned()));
                    rest = "";
                }
            }
        }
        if parts
            .iter()
            .any(|p| matches!(p, Part::Text(t) if t.contains('}')))
        {
            return Err(format!("{text:?} closes }} without opening it"));
        }
        Ok(Self(parts))
    }

    /// Checks that a `to` template names only this pattern's captures.
    pub fn check_template(&self, to: &str) -> Result<(), String> {
        let template = Pattern::parse(to)?;
        for part in &template.0 {
            if let Part::Capture(name) = part
                && !self.0.contains(part)
            {
                return Err(format!(
                    "{{{name}}} is not captured by `from`; capture it there (from = \"pub.user.{{{name}}}\")"
                ));
            }
        }
        if to.is_empty() {
            return Err("the target is empty".into());
        }
        Ok(())
    }

    /// The captures when `channel` matches.
    fn matches(&self, channel: &str) -> Option<Vec<(String, String)>> {
        let mut captures = Vec::new();
        let mut rest = channel;
        let mut parts = self.0.iter().peekable();
        while let Some(part) = parts.next() {
            match part {
                Part::Text(t) => rest = rest.strip_prefix(t.as_str())?,
                Part::Capture(name) => {
                    let end = match parts.peek() {
                        // One character at least, up to the first place the next text starts.
                        Some(Part::Text(next)) => rest.get(1..)?.find(next.as_str())? + 1,
                        _ => rest.len(),
                    };
                    if end == 0 {
                        return None;
                    }
                    captures.push((name.clone(), rest[..end].to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        (self.0.is_empty() || rest.is_empty()).then_some(captures)
    }

    /// `to` with each `{name}` replaced by its capture.
    fn fill(to: &str, captures: &[(String, String)]) -> String {
        let mut out = to.to_owned();
        for (name, value) in captures {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meaning(extra: &str) -> Meaning {
        let spec: Spec = toml::from_str(&format!(
            "name = \"c\"\nkind = \"redis-pubsub\"\nchannels = [\"x\"]\n{extra}"
        ))
        .expect("spec");
        spec.check().expect("checked");
        Meaning::of(&spec)
    }

    fn read(m: &Meaning, data: &str, channel: &str) -> Result<Command, Refusal> {
        m.read(Received {
            data: data.as_bytes(),
            channel,
            id: None,
        })
    }

    #[test]
    fn json_commands_and_their_ids() {
        let m = meaning("");
        let c = read(
            &m,
            r#"{"method":"users/send","params":{"user_ids":["42"],"text":"paid"},"id":"o-1"}"#,
            "any",
        )
        .expect("a command");
        assert_eq!(c.command_id.as_deref(), Some("c:o-1"));
        assert!(matches!(c.body, Body::SendToUsers(ref s) if s.user_ids == ["42"]));
        let numbered = read(
            &m,
            r#"{"method":"broadcast","params":{"text":"a"},"id":7}"#,
            "",
        )
        .expect("numeric id");
        assert_eq!(numbered.command_id.as_deref(), Some("c:7"));
        let by_broker = m
            .read(Received {
                data: br#"{"method":"broadcast","params":{"text":"a"}}"#,
                channel: "",
                id: Some("m-9"),
            })
            .expect("broker id");
        assert_eq!(by_broker.command_id.as_deref(), Some("c:m-9"));
        let cases = [
            ("not json", Reason::NotJson),
            ("[1]", Reason::NotCommand),
            (r#"{"params":{}}"#, Reason::NotCommand),
            (r#"{"method":"explode","params":{}}"#, Reason::UnknownMethod),
            (
                r#"{"method":"send","params":{"text":"a"}}"#,
                Reason::Invalid,
            ),
            (
                r#"{"method":"broadcast","params":{"text":"a"},"x":1}"#,
                Reason::NotCommand,
            ),
            (
                r#"{"method":"broadcast","params":{"text":"a"},"id":[1]}"#,
                Reason::BadId,
            ),
            (
                r#"{"method":"broadcast","params":{"text":"a"},"id":"é"}"#,
                Reason::BadId,
            ),
        ];
        for (data, reason) in cases {
            let refused = read(&m, data, "").expect_err(data);
            assert_eq!(refused.reason, reason, "{data}: {}", refused.detail);
            assert!(!refused.detail.is_empty());
        }
        let small = meaning("max_bytes = 10");
        assert_eq!(
            read(&small, r#"{"method":"broadcast"}"#, "")
                .expect_err("big")
                .reason,
            Reason::TooLarge
        );
    }

    #[test]
    fn fixed_commands_take_their_target_from_the_channel() {
        let m = meaning("command = \"users/send\"\nfrom = \"pub.user.{id}\"\nto = \"{id}\"");
        let c = read(&m, "hello", "pub.user.42").expect("routed");
        let Body::SendToUsers(s) = c.body else {
            panic!("not users/send")
        };
        assert_eq!(s.user_ids, ["42"]);
        assert_eq!(s.payload.expect("payload").as_text(), Some("hello"));
        assert_eq!(
            read(&m, "x", "pub.topic.1").expect_err("no route").reason,
            Reason::NoRoute
        );
        assert_eq!(
            read(&m, "x", "pub.user.")
                .expect_err("empty capture")
                .reason,
            Reason::NoRoute
        );
        let orders = meaning(
            "command = \"topics/publish\"\nfrom = \"orders.{id}.status\"\nto = \"order:{id}\"",
        );
        let c = read(&orders, "{\"paid\":true}", "orders.7.status").expect("routed");
        assert!(matches!(c.body, Body::Publish(ref p) if p.topics == ["order:7"]));
        assert!(read(&orders, "x", "orders.7.status.extra").is_err());
        let all = meaning("command = \"broadcast\"");
        let binary = all
            .read(Received {
                data: &[0xff, 0],
                channel: "anything",
                id: None,
            })
            .expect("binary");
        assert!(
            matches!(binary.body, Body::Broadcast(ref b) if !b.payload.as_ref().is_some_and(Payload::is_text))
        );
    }

    #[test]
    fn patterns() {
        assert!(Pattern::parse("a.{x}{y}").is_err());
        assert!(Pattern::parse("a.{x").is_err());
        assert!(Pattern::parse("a.}").is_err());
        let p = Pattern::parse("{a}.{b}").expect("two");
        assert_eq!(
            p.matches("x.y.z"),
            Some(vec![("a".into(), "x".into()), ("b".into(), "y.z".into())])
        );
        assert!(p.check_template("{c}").is_err());
        assert_eq!(p.to_string(), "{a}.{b}");
        assert_eq!(Pattern::default().matches("anything"), Some(vec![]));
    }
}
