//! WebSocket framing (RFC 6455), server side: parsing what clients send and encoding what the
//! gateway sends.
//!
//! The gateway frames messages itself rather than through tungstenite's `WebSocketStream` for
//! two reasons that are the headline numbers: an idle connection holds no read or write buffer
//! at all (tungstenite keeps both per socket), and a message sent to many clients is encoded
//! once — an outgoing frame is one `Bytes` (header and payload) that every recipient's queue
//! shares and the connection writes as is, many frames per system call.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use wsgate_proto::v1::Payload;
use wsgate_proto::validate::{self, Refused};

pub(crate) const CONTINUATION: u8 = 0x0;
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;

/// Control frames carry at most this many payload bytes.
const MAX_CONTROL: usize = 125;

/// The gateway's keep-alive ping: no payload.
pub(crate) fn ping() -> Bytes {
    Bytes::from_static(&[0x80 | PING, 0])
}

/// One unfragmented, unmasked frame: the header and a copy of `payload`.
pub(crate) fn encode(opcode: u8, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut out = BytesMut::with_capacity(len + 10);
    out.put_u8(0x80 | opcode);
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(len);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.extend_from_slice(payload);
    out.freeze()
}

/// The WebSocket frame for a payload, encoded once per command and shared by every recipient.
pub(crate) fn outgoing(payload: Option<Payload>, field: &str) -> Result<Bytes, Refused> {
    validate::payload(payload.as_ref(), field)?;
    let payload = payload.ok_or_else(|| Refused::bad(format!("{field} is missing")))?;
    let opcode = if payload.is_text() { TEXT } else { BINARY };
    Ok(encode(opcode, &payload.data))
}

/// A close frame; the reason is cut to fit a control frame, on a character boundary.
pub(crate) fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(CLOSE, &payload)
}

/// True for an encoded text or binary frame (not a control frame).
pub(crate) fn is_data(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 0x08 == 0)
}

/// How many payload bytes an encoded frame carries (for the byte counters).
pub(crate) fn payload_len(frame: &[u8]) -> usize {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        Some(_) => 2,
        None => return 0,
    };
    frame.len().saturating_sub(header)
}

/// A complete message or control frame from a client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A text message; the payload is valid UTF-8.
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    /// The client's close frame: its code and reason, if it sent one.
    Close(Option<(u16, String)>),
}

/// Why a client's input ends the connection; each maps to the close code the gateway sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("message too big: the limit is {limit} bytes")]
    TooBig { limit: usize },
    #[error("invalid UTF-8 in a text message or close reason")]
    BadUtf8,
}

impl FrameError {
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            FrameError::Protocol(_) => 1002,
            FrameError::TooBig { .. } => 1009,
            FrameError::BadUtf8 => 1007,
        }
    }
}

/// Parses client frames out of a byte buffer, reassembling fragmented messages.
#[derive(Debug)]
pub(crate) struct Decoder {
    max_message: usize,
    /// A fragmented message in progress; boxed because it is rare.
    fragments: Option<Box<(u8, BytesMut)>>,
}

impl Decoder {
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            max_message,
            fragments: None,
        }
    }

    /// The next complete message or control frame in `buf`, consuming its bytes; `None` when
    /// more input is needed (room for the rest of a started frame is then reserved in `buf`).
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, FrameError> {
        loop {
            if buf.len() < 2 {
                return Ok(None);
            }
            let (b0, b1) = (buf[0], buf[1]);
            let fin = b0 & 0x80 != 0;
            if b0 & 0x70 != 0 {
                return Err(FrameError::Protocol(
                    "reserved bits set, but no extension was negotiated",
                ));
            }
            let opcode = b0 & 0x0f;
            if b1 & 0x80 == 0 {
                return Err(FrameError::Protocol("a client's frames must be masked"));
            }
            let (len, len_bytes) = match b1 & 0x7f {
                126 => match buf.get(2..4) {
                    Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
                    None => return Ok(None),
                },
                127 => match buf.get(2..10) {
                    Some(b) => {
                        let mut be = [0u8; 8];
                        be.copy_from_slice(b);
                        (u64::from_be_bytes(be), 8)
                    }
                    None => return Ok(None),
                },
                n => (u64::from(n), 0),
            };
            let control = opcode >= 8;
            if control {
                if !matches!(opcode, CLOSE | PING | PONG) {
                    return Err(FrameError::Protocol("unknown control opcode"));
                }
                if !fin {
                    return Err(FrameError::Protocol(
                        "a control frame must not be fragmented",
                    ));
                }
                if len > MAX_CONTROL as u64 {
                    return Err(FrameError::Protocol(
                        "a control frame carries at most 125 bytes",
                    ));
                }
            } else {
                match (opcode, self.fragments.is_some()) {
                    (CONTINUATION, false) => {
                        return Err(FrameError::Protocol(
                            "a continuation frame without a message to continue",
                        ));
                    }
                    (TEXT | BINARY, true) => {
                        return Err(FrameError::Protocol(
                            "a new message before the fragmented one ended",
                        ));
                    }
                    (CONTINUATION | TEXT | BINARY, _) => {}
                    _ => return Err(FrameError::Protocol("unknown data opcode")),
                }
                let so_far = self.fragments.as_ref().map_or(0, |f| f.1.len()) as u64;
                if len.saturating_add(so_far) > self.max_message as u64 {
                    return Err(FrameError::TooBig {
                        limit: self.max_message,
                    });
                }
            }
            // Within max_message (or 125), so it fits a usize.
            let len = len as usize;
            let header = 2 + len_bytes + 4;
            if buf.len() < header + len {
                buf.reserve(header + len - buf.len());
                return Ok(None);
            }
            let mask = [
                buf[header - 4],
                buf[header - 3],
                buf[header - 2],
                buf[header - 1],
            ];
            buf.advance(header);
            let mut payload = buf.split_to(len);
            unmask(&mut payload, mask);
            match opcode {
                PING => return Ok(Some(Incoming::Ping(payload.freeze()))),
                PONG => return Ok(Some(Incoming::Pong)),
                CLOSE => return close_payload(&payload).map(|c| Some(Incoming::Close(c))),
                CONTINUATION => {
                    let Some(fragments) = self.fragments.as_mut() else {
                        return Err(FrameError::Protocol("no fragmented message"));
                    };
                    fragments.1.extend_from_slice(&payload);
                    if fin {
                        let fragments = self.fragments.take().map(|f| *f);
                        if let Some((opcode, data)) = fragments {
                            return message(opcode, data.freeze()).map(Some);
                        }
                    }
                }
                _ if fin => return message(opcode, payload.freeze()).map(Some),
                _ => self.fragments = Some(Box::new((opcode, payload))),
            }
        }
    }
}

fn message(opcode: u8, data: Bytes) -> Result<Incoming, FrameError> {
    if opcode == TEXT {
        std::str::from_utf8(&data).map_err(|_| FrameError::BadUtf8)?;
        Ok(Incoming::Text(data))
    } else {
        Ok(Incoming::Binary(data))
    }
}

fn close_payload(payload: &[u8]) -> Result<Option<(u16, String)>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol(
            "a close frame with a one-byte payload",
        )),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let allowed = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if !allowed {
                return Err(FrameError::Protocol(
                    "a close code that must not be sent on the wire",
                ));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| FrameError::BadUtf8)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame as a browser sends it: masked.
    fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![b0];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Vec<Result<Incoming, FrameError>> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[test]
    fn text_binary_ping_and_close_round_trip_through_masking() {
        let mut d = Decoder::new(1 << 20);
        let mut wire = client_frame(0x81, b"hello");
        wire.extend(client_frame(0x82, &[0, 1, 2, 3, 4, 5, 6]));
        wire.extend(client_frame(0x89, b"p"));
        wire.extend(client_frame(0x8A, b""));
        wire.extend(client_frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
        let got = decode_all(&mut d, &wire);
        assert_eq!(
            got,
            vec![
                Ok(Incoming::Text(Bytes::from_static(b"hello"))),
                Ok(Incoming::Binary(Bytes::from_static(&[0, 1, 2, 3, 4, 5, 6]))),
                Ok(Incoming::Ping(Bytes::from_static(b"p"))),
                Ok(Incoming::Pong),
                Ok(Incoming::Close(Some((1000, "bye".into())))),
            ]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_messages() {
        let big = vec![b'a'; 70_000];
        let mut wire = client_frame(0x81, b"one");
        wire.extend(client_frame(0x82, &big));
        wire.extend(client_frame(0x81, &[b'b'; 300]));
        for split in [1, 2, 3, 5, 9, 13, 100, 4000, 70_010] {
            let mut d = Decoder::new(1 << 20);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                buf.extend_from_slice(chunk);
                while let Some(m) = d.decode(&mut buf).expect("valid frames") {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 3, "split {split}");
            assert_eq!(got[1], Incoming::Binary(Bytes::from(big.clone())));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn fragments_are_joined_and_control_frames_may_interleave() {
        let mut d = Decoder::new(1 << 20);
        let mut wire = client_frame(0x01, "hé".as_bytes());
        wire.extend(client_frame(0x89, b""));
        wire.extend(client_frame(0x00, b"ll"));
        wire.extend(client_frame(0x80, b"o"));
        let got = decode_all(&mut d, &wire);
        assert_eq!(
            got,
            vec![
                Ok(Incoming::Ping(Bytes::new())),
                Ok(Incoming::Text(Bytes::from("héllo"))),
            ]
        );
    }

    #[test]
    fn limits_and_protocol_violations_are_errors_with_their_close_codes() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (client_frame(0x81, &[b'x'; 101]), 1009),
            (client_frame(0xC1, b"x"), 1002),
            (vec![0x81, 0x01, b'x'], 1002),
            (client_frame(0x80, b"x"), 1002),
            (client_frame(0x83, b"x"), 1002),
            (client_frame(0x0B, b""), 1002),
            (client_frame(0x09, b""), 1002),
            (client_frame(0x89, &[0; 126]), 1002),
            (client_frame(0x81, &[0xff, 0xfe]), 1007),
            (client_frame(0x88, &[0x03]), 1002),
            (client_frame(0x88, &[0x03, 0xed]), 1002),
            (client_frame(0x88, &[0x03, 0xe8, 0xff]), 1007),
        ];
        for (wire, code) in cases {
            let mut d = Decoder::new(100);
            let got = decode_all(&mut d, &wire);
            match got.last() {
                Some(Err(e)) => assert_eq!(e.close_code(), code, "{wire:02x?}: {e}"),
                other => panic!("{wire:02x?}: expected an error, got {other:?}"),
            }
        }
        // Fragments add up against the limit.
        let mut d = Decoder::new(100);
        let mut wire = client_frame(0x01, &[b'x'; 60]);
        wire.extend(client_frame(0x80, &[b'x'; 60]));
        assert_eq!(
            decode_all(&mut d, &wire),
            vec![Err(FrameError::TooBig { limit: 100 })]
        );
        // A new message inside a fragmented one.
        let mut d = Decoder::new(100);
        let mut wire = client_frame(0x01, b"a");
        wire.extend(client_frame(0x81, b"b"));
        assert_eq!(
            decode_all(&mut d, &wire).last().map(|r| r.is_err()),
            Some(true)
        );
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_payload_arrives() {
        let mut d = Decoder::new(1000);
        let mut buf = BytesMut::from(&[0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0][..]);
        assert_eq!(d.decode(&mut buf), Err(FrameError::TooBig { limit: 1000 }));
    }

    #[test]
    fn encoded_frames_have_the_right_headers() {
        assert_eq!(&encode(TEXT, b"hi")[..], &[0x81, 2, b'h', b'i']);
        let mid = encode(BINARY, &[7; 300]);
        assert_eq!(&mid[..4], &[0x82, 126, 1, 44]);
        assert_eq!(payload_len(&mid), 300);
        let big = encode(BINARY, &[7; 70_000]);
        assert_eq!(&big[..2], &[0x82, 127]);
        assert_eq!(payload_len(&big), 70_000);
        let c = close(4001, &"é".repeat(100));
        assert!(c.len() <= 127);
        assert!(std::str::from_utf8(&c[4..]).is_ok());
        assert_eq!(&c[2..4], &4001u16.to_be_bytes());
    }
}
