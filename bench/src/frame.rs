//! WebSocket framing (RFC 6455, section 5) as the load clients need it: parse the frames a
//! server sends (unmasked) and build the frames a client sends (masked).
//!
//! Written by hand instead of using tokio-tungstenite because at millions of messages per
//! second the clients' cost decides what is measured: this parser copies nothing and allocates
//! nothing, and every target is driven by exactly this code.

use thiserror::Error;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Larger server frames are refused: the benchmark's messages are 100 bytes.
const MAX_FRAME: u64 = 16 * 1024 * 1024;

/// A frame header read from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    /// Bytes of the header itself.
    pub header_len: usize,
    /// Bytes of payload after the header.
    pub payload_len: usize,
}

impl Header {
    /// Header and payload together.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// A server broke the framing rules.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("the server sent a masked frame (servers must not mask)")]
    Masked,
    #[error("the server sent a {0}-byte frame, more than the 16 MiB this client accepts")]
    TooLarge(u64),
    #[error("the server sent a frame with reserved opcode {0:#x}")]
    Opcode(u8),
}

/// Parses the header at the start of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    let opcode = b0 & 0x0F;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(FrameError::Opcode(opcode));
    }
    let (len, header_len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(b);
                (u64::from_be_bytes(eight), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode,
        header_len,
        // At most MAX_FRAME, so it fits.
        payload_len: usize::try_from(len).map_err(|_| FrameError::TooLarge(len))?,
    }))
}

/// Appends one complete (FIN) client frame: masked with `mask`, as RFC 6455 requires of
/// clients.
pub fn encode_client(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        // Fits in 7 bits: checked just above.
        out.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// A fresh random mask; per frame, as the RFC asks.
pub fn random_mask() -> [u8; 4] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n <= 0xFFFF => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn parses_all_length_forms() {
        for len in [0usize, 5, 125, 126, 1000, 65_535, 65_536, 70_000] {
            let frame = server_frame(OP_TEXT, &vec![b'a'; len]);
            let h = parse_header(&frame).expect("valid").expect("complete");
            assert!(h.fin);
            assert_eq!(h.opcode, OP_TEXT);
            assert_eq!(h.payload_len, len);
            assert_eq!(h.frame_len(), frame.len());
            // Any strict prefix of the header is "need more".
            for cut in 0..h.header_len {
                assert_eq!(parse_header(&frame[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn refuses_what_servers_must_not_send() {
        assert_eq!(parse_header(&[0x81, 0x85]), Err(FrameError::Masked));
        assert_eq!(parse_header(&[0x83, 0x00]), Err(FrameError::Opcode(3)));
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(matches!(parse_header(&huge), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn client_frames_are_masked() {
        let mut out = Vec::new();
        let mask = [1, 2, 3, 4];
        encode_client(OP_TEXT, b"hello", mask, &mut out);
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], 0x80 | 5);
        assert_eq!(&out[2..6], &mask);
        let unmasked: Vec<u8> = out[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3])
            .collect();
        assert_eq!(unmasked, b"hello");

        let mut long = Vec::new();
        encode_client(OP_BINARY, &[0u8; 300], mask, &mut long);
        assert_eq!(long[1], 0x80 | 126);
        assert_eq!(u16::from_be_bytes([long[2], long[3]]), 300);
        assert_eq!(long.len(), 4 + 4 + 300);
    }
}
