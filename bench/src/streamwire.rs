//! The `wsgate.stream.v1` subprotocol as the load clients speak it (docs/streams.md): what
//! they offer in the upgrade, the `wsgate_recover` position they give when they come back, and
//! the JSON frames they read — each one parsed, the way a real client must.
//!
//! Each client keeps a [`Slot`]: its position in the stream (epoch and offset of the last
//! publication or `joined`), what it received on its current connection, and every departure
//! from the protocol's promise (a gap, a duplicate). The client updates its own copy frame by
//! frame and stores it in the shared [`Book`] once per read, so the scenario can read where
//! every client was after the client's task is gone (its socket dropped on purpose).

use std::borrow::Cow;
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::Engine;
use serde::Deserialize;

use crate::stamp;

/// The subprotocol's name, offered in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "wsgate.stream.v1";

/// The query parameter holding a client's positions.
const RECOVER_PARAM: &str = "wsgate_recover";

/// One frame as the gateway writes it; fields the bench does not use are ignored, as the
/// protocol asks of clients.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow, default)]
    epoch: Option<Text<'a>>,
    offset: Option<u64>,
    #[serde(borrow, default)]
    data: Option<Text<'a>>,
    recovered: Option<bool>,
    #[serde(borrow, default)]
    gap: Option<Text<'a>>,
    #[serde(borrow, default)]
    message: Option<Text<'a>>,
}

/// A JSON string, borrowed from the frame unless it has escapes. serde borrows a bare
/// `Cow<str>` field but copies one inside an `Option`; the clients parse every frame of a
/// million-a-second phase on the cores the gateway uses too, so a copy per field would be
/// measured as the gateway's cost.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visitor)
    }
}

fn cow(text: Option<Text<'_>>) -> Option<Cow<'_, str>> {
    text.map(|t| t.0)
}

/// What one text frame of the subprotocol is.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A message of a stream, with its position.
    Publication {
        epoch: Cow<'a, str>,
        offset: u64,
        data: Option<Cow<'a, str>>,
    },
    /// A message that is not in a stream (a topic without history).
    Message { data: Option<Cow<'a, str>> },
    /// The connection joined a stream.
    Joined {
        epoch: Cow<'a, str>,
        offset: u64,
        recovered: Option<bool>,
        gap: Option<Cow<'a, str>>,
    },
    /// The gateway did not understand something the client sent.
    Error(Cow<'a, str>),
    /// Anything else (`pong`, types of later versions).
    Other,
}

/// Parses one text frame; `Err` says what is wrong with it.
pub fn parse(payload: &[u8]) -> Result<Frame<'_>, String> {
    let wire: Wire<'_> = serde_json::from_slice(payload).map_err(|e| {
        format!(
            "a frame that is not a JSON object of {SUBPROTOCOL} ({e}): {}",
            String::from_utf8_lossy(&payload[..payload.len().min(120)])
        )
    })?;
    let kind = wire.kind.0;
    let missing = |what: &str| format!("a {kind} frame without {what}");
    Ok(match &*kind {
        "publication" => Frame::Publication {
            epoch: cow(wire.epoch).ok_or_else(|| missing("\"epoch\""))?,
            offset: wire.offset.ok_or_else(|| missing("\"offset\""))?,
            data: cow(wire.data),
        },
        "message" => Frame::Message {
            data: cow(wire.data),
        },
        "joined" => Frame::Joined {
            epoch: cow(wire.epoch).ok_or_else(|| missing("\"epoch\""))?,
            offset: wire.offset.ok_or_else(|| missing("\"offset\""))?,
            recovered: wire.recovered,
            gap: cow(wire.gap),
        },
        "error" => Frame::Error(cow(wire.message).unwrap_or_default()),
        _ => Frame::Other,
    })
}

/// The query parameter that gives the position `epoch`/`offset` in `stream`:
/// `wsgate_recover=<base64url of {"<stream>":{"epoch":…,"offset":…}}>`.
pub fn recover_param(stream: &str, epoch: &str, offset: u64) -> String {
    let json = serde_json::json!({ stream: { "epoch": epoch, "offset": offset } }).to_string();
    format!(
        "{RECOVER_PARAM}={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    )
}

/// How a connection's join went, from its `joined` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// `None`: the client gave no position.
    pub recovered: Option<bool>,
    pub gap: Option<String>,
    /// The stream's offset at the join.
    pub offset: u64,
    /// The client's offset when `joined` came: the last publication replayed, which must be
    /// the stream's offset at the join.
    pub at_offset: u64,
}

/// One client's state in its stream.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    /// The client's position: epoch and offset of the last publication or `joined` (empty
    /// epoch: none yet).
    pub epoch: String,
    pub offset: u64,
    /// The offset the current connection started from (given in `wsgate_recover`), if any.
    pub since: Option<u64>,
    /// When the current connection's handshake was answered (ns since the UNIX epoch).
    pub connected_ns: u64,
    /// Data messages (publications, or plain `message` frames) on the current connection.
    pub received: u64,
    /// Publications that came before the current connection's `joined`: the replay.
    pub replayed: u64,
    /// The current connection's `joined`, and when it arrived (ns since the UNIX epoch).
    pub joined: Option<Joined>,
    pub joined_at_ns: u64,
    /// Publications whose offset skipped ahead of the next one expected, or came under a new
    /// epoch (what the protocol promises never happens to a connected member).
    pub gaps: u64,
    /// Publications at or below the position already held (also never promised).
    pub duplicates: u64,
    /// Frames that were not the protocol, and `error` frames; the first is kept.
    pub bad_frames: u64,
    pub first_bad: Option<String>,
}

impl Slot {
    /// Handles one text frame received at `now_ns`: the data messages it counts (0 or 1),
    /// their latency pushed to `latencies` when `timed`.
    pub fn frame(
        &mut self,
        payload: &[u8],
        now_ns: u64,
        timed: bool,
        latencies: &mut Vec<u64>,
    ) -> u64 {
        let data = match parse(payload) {
            Ok(Frame::Publication {
                epoch,
                offset,
                data,
            }) => {
                let same_epoch = self.epoch == epoch;
                if same_epoch && offset <= self.offset {
                    self.duplicates += 1;
                    return 0;
                }
                if !self.epoch.is_empty() && (!same_epoch || offset != self.offset + 1) {
                    self.gaps += 1;
                }
                if !same_epoch {
                    self.epoch = epoch.into_owned();
                }
                self.offset = offset;
                if self.joined.is_none() {
                    self.replayed += 1;
                }
                data
            }
            Ok(Frame::Message { data }) => data,
            Ok(Frame::Joined {
                epoch,
                offset,
                recovered,
                gap,
            }) => {
                self.joined = Some(Joined {
                    recovered,
                    gap: gap.map(Cow::into_owned),
                    offset,
                    at_offset: self.offset,
                });
                self.joined_at_ns = now_ns;
                // "epoch and offset are the stream's position at the join: make it yours."
                if self.epoch != epoch {
                    self.epoch = epoch.into_owned();
                }
                self.offset = offset;
                return 0;
            }
            Ok(Frame::Error(message)) => {
                self.bad(format!("the gateway sent an error frame: {message}"));
                return 0;
            }
            Ok(Frame::Other) => return 0,
            Err(e) => {
                self.bad(e);
                return 0;
            }
        };
        self.received += 1;
        if timed && let Some(l) = data.and_then(|d| stamp::latency_micros(d.as_bytes(), now_ns)) {
            latencies.push(l);
        }
        1
    }

    fn bad(&mut self, what: String) {
        self.bad_frames += 1;
        self.first_bad.get_or_insert(what);
    }

    /// Why this client's reconnect did not recover exactly `expected` publications, or `None`
    /// when it did: `joined` with `"recovered": true` after a gapless replay of `expected`
    /// publications that ends at the stream's offset.
    pub fn not_recovered(&self, expected: u64) -> Option<String> {
        if self.since.is_none() {
            return Some("it came back without a position (it had received nothing)".to_owned());
        }
        let Some(joined) = &self.joined else {
            return Some(format!(
                "no joined frame (replayed {} publications)",
                self.replayed
            ));
        };
        if joined.recovered != Some(true) {
            return Some(match (joined.recovered, &joined.gap) {
                (Some(false), Some(gap)) => format!("recovered: false, gap {gap:?}"),
                (Some(false), None) => "recovered: false, no gap given".to_owned(),
                _ => "joined without a recovered field: the position was not taken".to_owned(),
            });
        }
        if self.replayed != expected {
            return Some(format!(
                "recovered: true but {} publications replayed, not {expected}",
                self.replayed
            ));
        }
        if self.gaps > 0 || self.duplicates > 0 {
            return Some(format!(
                "{} gaps and {} duplicates in the replay",
                self.gaps, self.duplicates
            ));
        }
        if joined.at_offset != joined.offset {
            return Some(format!(
                "joined at offset {} after a replay up to {}",
                joined.offset, joined.at_offset
            ));
        }
        None
    }
}

/// Every client's slot, by client index.
#[derive(Debug)]
pub struct Book {
    slots: Box<[Mutex<Slot>]>,
}

impl Book {
    pub fn new(clients: usize) -> Book {
        Book {
            slots: (0..clients).map(|_| Mutex::default()).collect(),
        }
    }

    /// Clients in the book.
    pub fn clients(&self) -> usize {
        self.slots.len()
    }

    fn lock(&self, id: usize) -> Option<MutexGuard<'_, Slot>> {
        self.slots
            .get(id)
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Client `id`'s slot for a new connection, whose handshake was just answered: its
    /// position kept, the rest of what a connection counts reset, `since` set when it had a
    /// position (it gave it in the URL). Stored at once: until the client's first read the
    /// book must not show what its previous connection got (its `joined` above all).
    pub fn start(&self, id: usize) -> Slot {
        let Some(mut slot) = self.lock(id) else {
            return Slot::default();
        };
        let kept = std::mem::take(&mut *slot);
        *slot = Slot {
            since: (!kept.epoch.is_empty()).then_some(kept.offset),
            connected_ns: stamp::now_nanos(),
            epoch: kept.epoch,
            offset: kept.offset,
            ..Slot::default()
        };
        slot.clone()
    }

    /// Stores client `id`'s slot.
    pub fn store(&self, id: usize, slot: &Slot) {
        if let Some(mut s) = self.lock(id) {
            s.clone_from(slot);
        }
    }

    pub fn get(&self, id: usize) -> Slot {
        self.lock(id).map(|s| s.clone()).unwrap_or_default()
    }

    pub fn snapshot(&self) -> Vec<Slot> {
        (0..self.slots.len()).map(|i| self.get(i)).collect()
    }

    /// Clients whose current connection got its `joined`.
    pub fn joined(&self) -> usize {
        (0..self.slots.len())
            .filter(|&i| self.lock(i).is_some_and(|s| s.joined.is_some()))
            .count()
    }

    /// Clients that received at least `n` data messages on their current connection.
    pub fn received_at_least(&self, n: u64) -> usize {
        (0..self.slots.len())
            .filter(|&i| self.lock(i).is_some_and(|s| s.received >= n))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(epoch: &str, offset: u64, data: &str) -> Vec<u8> {
        serde_json::json!({"type":"publication","stream":"topic:s0","epoch":epoch,"offset":offset,"data":data})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn frames_are_read_as_documented() {
        let p = publication("k7", 13, "hi");
        assert_eq!(
            parse(&p),
            Ok(Frame::Publication {
                epoch: "k7".into(),
                offset: 13,
                data: Some("hi".into())
            })
        );
        let j = br#"{"type":"joined","stream":"topic:s0","epoch":"k7","offset":15,"recovered":false,"gap":"trimmed","later":1}"#;
        assert_eq!(
            parse(j),
            Ok(Frame::Joined {
                epoch: "k7".into(),
                offset: 15,
                recovered: Some(false),
                gap: Some("trimmed".into())
            })
        );
        assert_eq!(
            parse(br#"{"type":"message","data":"a\"b"}"#),
            Ok(Frame::Message {
                data: Some("a\"b".into())
            })
        );
        assert_eq!(parse(br#"{"type":"pong"}"#), Ok(Frame::Other));
        assert!(parse(b"plain text").is_err());
        assert!(parse(br#"{"type":"publication","offset":1}"#).is_err());
    }

    #[test]
    fn the_recover_parameter_is_base64url_json() {
        let param = recover_param("topic:s0", "k7", 12);
        let b64 = param
            .strip_prefix("wsgate_recover=")
            .expect("the parameter");
        assert!(!b64.contains('=') && !b64.contains('+') && !b64.contains('/'));
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .expect("base64url");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({"topic:s0":{"epoch":"k7","offset":12}})
        );
    }

    #[test]
    fn a_slot_follows_the_position_and_sees_gaps_and_duplicates() {
        let mut s = Slot::default();
        let mut l = Vec::new();
        let joined = br#"{"type":"joined","stream":"topic:s0","epoch":"e","offset":0}"#;
        assert_eq!(s.frame(joined, 5, false, &mut l), 0);
        let stamped = stamp::message_at(1_000, 0);
        assert_eq!(
            s.frame(&publication("e", 1, &stamped), 3_000, true, &mut l),
            1
        );
        assert_eq!(l, vec![2]);
        assert_eq!(s.frame(&publication("e", 1, "x"), 0, false, &mut l), 0);
        assert_eq!(s.frame(&publication("e", 3, "x"), 0, false, &mut l), 1);
        assert_eq!((s.received, s.duplicates, s.gaps, s.offset), (2, 1, 1, 3));
        assert_eq!(s.replayed, 0);

        // Back with position 3: a replay of 4 and 5, then joined at 5.
        let book = Book::new(1);
        book.store(0, &s);
        let mut r = book.start(0);
        assert_eq!((r.since, r.received, r.gaps), (Some(3), 0, 0));
        // The book shows the new connection at once, not the old one's joined.
        assert_eq!(book.joined(), 0);
        assert_eq!(book.get(0).since, Some(3));
        r.frame(&publication("e", 4, "x"), 0, false, &mut l);
        r.frame(&publication("e", 5, "x"), 0, false, &mut l);
        assert_eq!(
            r.not_recovered(2).as_deref(),
            Some("no joined frame (replayed 2 publications)")
        );
        let back =
            br#"{"type":"joined","stream":"topic:s0","epoch":"e","offset":5,"recovered":true}"#;
        r.frame(back, 42, false, &mut l);
        assert_eq!(r.not_recovered(2), None);
        assert_eq!(r.joined_at_ns, 42);
        assert!(r.not_recovered(3).is_some());
        let lost = br#"{"type":"joined","stream":"topic:s0","epoch":"f","offset":9,"recovered":false,"gap":"epoch"}"#;
        let mut t = book.start(0);
        t.frame(lost, 0, false, &mut l);
        assert_eq!(
            t.not_recovered(0).as_deref(),
            Some("recovered: false, gap \"epoch\"")
        );
        assert_eq!(t.epoch, "f");
    }
}
