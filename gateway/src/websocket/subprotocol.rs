//! The `wsgate.stream.v1` subprotocol's frames ([docs/streams.md](../../../docs/streams.md)):
//! what the gateway sends such a client (one JSON object per text frame) and what it reads
//! from one. A leaf: it knows JSON and WebSocket frames, nothing of streams or connections.
//!
//! A payload travels as `"data"` (text, a JSON string) or `"binary"` (base64 with padding), so
//! one text frame carries either kind. Every frame the gateway sends such a client is made
//! here, once per message, and shared by every recipient like any other frame.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::frame::{self, Incoming};
use std::collections::HashMap;
use wsgate_proto::stream::Position;

/// The subprotocol's name, as offered in `Sec-WebSocket-Protocol`.
pub(crate) const NAME: &str = "wsgate.stream.v1";

/// The query parameter holding a client's positions.
pub(crate) const RECOVER_PARAM: &str = "wsgate_recover";

/// Streams one `wsgate_recover` may name at most.
pub(crate) const MAX_POSITIONS: usize = 1024;

/// Ack ids one client frame may name at most.
pub(crate) const MAX_ACK_IDS: usize = 1024;

/// A payload as the subprotocol writes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl<'a> Body<'a> {
    /// The payload of an encoded data frame (as [`frame::outgoing`] makes them).
    pub(crate) fn of_frame(encoded: &'a [u8]) -> Self {
        let payload = &encoded[encoded.len() - frame::payload_len(encoded)..];
        let text = encoded.first().is_some_and(|b| b & 0x0f == frame::TEXT);
        match std::str::from_utf8(payload) {
            Ok(s) if text => Body::Text(s),
            _ => Body::Binary(payload),
        }
    }
}

#[derive(Serialize, Default)]
struct Out<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gap: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl<'a> Out<'a> {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    fn with_body(mut self, body: Body<'a>) -> Self {
        match body {
            Body::Text(s) => self.data = Some(s),
            Body::Binary(b) => self.binary = Some(STANDARD.encode(b)),
        }
        self
    }

    fn encode(&self) -> Bytes {
        // Serializing these fields cannot fail: strings, numbers and booleans only.
        let json = serde_json::to_vec(self).unwrap_or_default();
        frame::encode(frame::TEXT, &json)
    }
}

/// Where a publication is: its stream, the stream's epoch and the publication's offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'a> {
    pub stream: &'a str,
    pub epoch: &'a str,
    pub offset: u64,
}

/// `{"type":"message", …}`: a message that is not in a stream.
pub(crate) fn message(body: Body<'_>, ack: Option<u64>) -> Bytes {
    let mut out = Out::new("message").with_body(body);
    out.ack = ack;
    out.encode()
}

/// `{"type":"publication", …}`: a message of a stream.
pub(crate) fn publication(at: At<'_>, body: Body<'_>, ack: Option<u64>) -> Bytes {
    let mut out = Out::new("publication").with_body(body);
    out.stream = Some(at.stream);
    out.epoch = Some(at.epoch);
    out.offset = Some(at.offset);
    out.ack = ack;
    out.encode()
}

/// How a join went, for its `joined` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Joined {
    /// The client gave no position for the stream.
    Fresh,
    /// It gave one and got everything after it.
    Recovered,
    /// It gave one and could not be given everything after it: why.
    NotRecovered(&'static str),
}

/// `{"type":"joined", …}`: the connection joined a stream, at `at` (the stream's position).
/// `latest`: a cache-mode stream's latest message was sent just before, so the client holds
/// the stream's current value even when it could not be given everything it missed.
pub(crate) fn joined(at: At<'_>, how: Joined, latest: bool) -> Bytes {
    let mut out = Out::new("joined");
    out.stream = Some(at.stream);
    out.epoch = Some(at.epoch);
    out.offset = Some(at.offset);
    out.latest = latest.then_some(true);
    match how {
        Joined::Fresh => {}
        Joined::Recovered => out.recovered = Some(true),
        Joined::NotRecovered(gap) => {
            out.recovered = Some(false);
            out.gap = Some(gap);
        }
    }
    out.encode()
}

/// `{"type":"pong"}`.
pub(crate) fn pong() -> Bytes {
    Out::new("pong").encode()
}

/// `{"type":"error","message":…}`: why a client frame was not understood.
pub(crate) fn error(message: &str) -> Bytes {
    let mut out = Out::new("error");
    out.message = Some(message);
    out.encode()
}

#[derive(Deserialize)]
struct Named {
    epoch: String,
    offset: u64,
}

/// The positions in a handshake's query string (`wsgate_recover`: base64url of a JSON object
/// from stream name to `{"epoch", "offset"}`); empty without one. `Err` says what is wrong
/// with it, for the `400`.
pub(crate) fn positions(query: &str) -> Result<HashMap<String, Position>, String> {
    let Some(value) = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(key, value)| (key == RECOVER_PARAM).then_some(value))
    else {
        return Ok(HashMap::new());
    };
    let value = value.replace("%3D", "=").replace("%3d", "=");
    let json = URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('=').as_bytes())
        .map_err(|e| format!("{RECOVER_PARAM} is not base64url (RFC 4648 section 5): {e}"))?;
    let named: HashMap<String, Named> = serde_json::from_slice(&json).map_err(|e| {
        format!(
            "{RECOVER_PARAM} must hold a JSON object from stream name to {{\"epoch\": string, \"offset\": number}} (docs/streams.md): {e}"
        )
    })?;
    if named.len() > MAX_POSITIONS {
        return Err(format!(
            "{RECOVER_PARAM} names {} streams; at most {MAX_POSITIONS}",
            named.len()
        ));
    }
    Ok(named
        .into_iter()
        .map(|(stream, at)| {
            let position = Position {
                epoch: at.epoch,
                offset: at.offset,
            };
            (stream, position)
        })
        .collect())
}

/// What a client of the subprotocol sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FromClient {
    /// A message for the business (a binary WebSocket frame is one too, unchanged).
    Message {
        data: Bytes,
        text: bool,
    },
    Ack(Vec<u64>),
    Ping,
}

#[derive(Deserialize)]
struct In {
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<String>,
    binary: Option<String>,
    ids: Option<Vec<u64>>,
}

/// Reads one client message (text or binary); `Err` says why it is not one, for the client's
/// `error` frame.
pub(crate) fn read(incoming: &Incoming) -> Result<FromClient, String> {
    let text = match incoming {
        Incoming::Binary(data) => {
            return Ok(FromClient::Message {
                data: data.clone(),
                text: false,
            });
        }
        Incoming::Text(text) => text,
        _ => return Err("only text and binary messages carry the subprotocol".into()),
    };
    let frame: In = serde_json::from_slice(text).map_err(|e| {
        format!("a text frame must be one JSON object of wsgate.stream.v1 (docs/streams.md): {e}")
    })?;
    match frame.kind.as_deref() {
        Some("message") => match (frame.data, frame.binary) {
            (Some(data), None) => Ok(FromClient::Message {
                data: Bytes::from(data),
                text: true,
            }),
            (None, Some(b64)) => STANDARD
                .decode(b64.as_bytes())
                .map(|data| FromClient::Message {
                    data: data.into(),
                    text: false,
                })
                .map_err(|e| format!("\"binary\" is not base64 (RFC 4648, with padding): {e}")),
            _ => Err("a message has exactly one of \"data\" (text) and \"binary\" (base64)".into()),
        },
        Some("ack") => match frame.ids {
            Some(ids) if ids.len() <= MAX_ACK_IDS => Ok(FromClient::Ack(ids)),
            Some(ids) => Err(format!(
                "an ack names at most {MAX_ACK_IDS} ids, this one {}; send several",
                ids.len()
            )),
            None => Err("an ack lists the ids it acknowledges in \"ids\"".into()),
        },
        Some("ping") => Ok(FromClient::Ping),
        Some(other) => Err(format!(
            "unknown type {other:?}: a client sends \"message\", \"ack\" or \"ping\""
        )),
        None => Err("the frame has no \"type\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(frame: &Bytes) -> serde_json::Value {
        let body = &frame[frame.len() - frame::payload_len(frame)..];
        serde_json::from_slice(body).expect("JSON")
    }

    #[test]
    fn frames_are_the_documented_json() {
        let at = At {
            stream: "topic:order:7",
            epoch: "k7q2",
            offset: 13,
        };
        let p = publication(at, Body::Text("{\"s\":1}"), Some(9));
        assert_eq!(
            json(&p),
            serde_json::json!({"type":"publication","stream":"topic:order:7","epoch":"k7q2","offset":13,"data":"{\"s\":1}","ack":9})
        );
        let m = message(Body::Binary(&[0, 255]), None);
        assert_eq!(
            json(&m),
            serde_json::json!({"type":"message","binary":"AP8="})
        );
        let j = joined(at, Joined::NotRecovered("trimmed"), false);
        assert_eq!(
            json(&j),
            serde_json::json!({"type":"joined","stream":"topic:order:7","epoch":"k7q2","offset":13,"recovered":false,"gap":"trimmed"})
        );
        let fresh = json(&joined(at, Joined::Fresh, false));
        assert_eq!(fresh["recovered"], serde_json::Value::Null);
        assert_eq!(fresh["latest"], serde_json::Value::Null);
        assert_eq!(
            json(&joined(at, Joined::NotRecovered("trimmed"), true))["latest"],
            true
        );
        assert_eq!(json(&pong()), serde_json::json!({"type":"pong"}));
    }

    #[test]
    fn positions_come_from_the_query_or_are_refused_with_a_reason() {
        let json = r#"{"topic:order:7":{"epoch":"k7q2","offset":12}}"#;
        let b64 = URL_SAFE_NO_PAD.encode(json);
        let got = positions(&format!("a=1&{RECOVER_PARAM}={b64}")).expect("valid");
        assert_eq!(
            got.get("topic:order:7"),
            Some(&Position {
                epoch: "k7q2".into(),
                offset: 12
            })
        );
        let padded = base64::engine::general_purpose::URL_SAFE.encode(json);
        assert_eq!(
            positions(&format!("{RECOVER_PARAM}={padded}")),
            Ok(got.clone())
        );
        let escaped = padded.replace('=', "%3D");
        assert_eq!(positions(&format!("{RECOVER_PARAM}={escaped}")), Ok(got));
        assert_eq!(positions("a=1"), Ok(HashMap::new()));
        for bad in [
            "***",
            &URL_SAFE_NO_PAD.encode("[]"),
            &URL_SAFE_NO_PAD.encode(r#"{"s":{"epoch":1}}"#),
        ] {
            assert!(
                positions(&format!("{RECOVER_PARAM}={bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_payload_of_a_frame_is_read_back() {
        let text = frame::encode(frame::TEXT, "héllo".as_bytes());
        assert!(matches!(Body::of_frame(&text), Body::Text("héllo")));
        let big = vec![7u8; 70_000];
        let binary = frame::encode(frame::BINARY, &big);
        assert!(matches!(Body::of_frame(&binary), Body::Binary(b) if b == &big[..]));
    }

    #[test]
    fn client_frames_are_read_or_refused_with_a_reason() {
        let text = |s: &str| Incoming::Text(Bytes::from(s.to_owned()));
        assert_eq!(
            read(&text(r#"{"type":"message","data":"hi"}"#)),
            Ok(FromClient::Message {
                data: Bytes::from("hi"),
                text: true
            })
        );
        assert_eq!(
            read(&text(r#"{"type":"message","binary":"AP8="}"#)),
            Ok(FromClient::Message {
                data: Bytes::from_static(&[0, 255]),
                text: false
            })
        );
        assert_eq!(
            read(&text(r#"{"type":"ack","ids":[1,2]}"#)),
            Ok(FromClient::Ack(vec![1, 2]))
        );
        assert_eq!(read(&text(r#"{"type":"ping"}"#)), Ok(FromClient::Ping));
        assert_eq!(
            read(&Incoming::Binary(Bytes::from_static(b"raw"))),
            Ok(FromClient::Message {
                data: Bytes::from_static(b"raw"),
                text: false
            })
        );
        for bad in [
            "not json",
            "[]",
            "{}",
            r#"{"type":"nope"}"#,
            r#"{"type":"message"}"#,
            r#"{"type":"message","data":"a","binary":"AA=="}"#,
            r#"{"type":"message","binary":"***"}"#,
            r#"{"type":"ack"}"#,
        ] {
            assert!(read(&text(bad)).is_err(), "{bad} is refused");
        }
        let many: Vec<u64> = (0..=MAX_ACK_IDS as u64).collect();
        let too_many = serde_json::json!({"type":"ack","ids":many}).to_string();
        assert!(read(&text(&too_many)).is_err());
    }
}
