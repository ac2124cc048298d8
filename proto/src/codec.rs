//! The worker link's frame codec: a 4-byte big-endian length, then one encoded [`Envelope`].
//!
//! The length is checked against the configured maximum before anything is allocated, so a peer
//! that announces a huge frame costs nothing but an error. Decoding slices the frame out of the
//! read buffer as `Bytes`, so payloads reach their recipients without being copied.

use bytes::{Buf, BufMut, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::v1::Envelope;

/// Bytes taken by the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// The default largest frame, 16 MiB: room for a 1 MiB client message with plenty to spare.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The length prefix announced more than the configured maximum.
    #[error(
        "frame of {len} bytes exceeds the maximum of {max} bytes; send smaller messages or raise the peer's max frame size"
    )]
    FrameTooLarge { len: usize, max: usize },
    /// The frame's bytes are not a valid `Envelope`.
    #[error(
        "frame is not a valid wsgate.v1.Envelope ({0}); check that the peer speaks the wsgate worker protocol"
    )]
    Decode(#[from] prost::DecodeError),
    /// The underlying stream failed.
    #[error("worker link I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes and decodes length-prefixed [`Envelope`] frames.
#[derive(Debug, Clone)]
pub struct WorkerCodec {
    max_frame_bytes: usize,
}

impl WorkerCodec {
    /// A codec that rejects frames longer than `max_frame_bytes` in either direction.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes: max_frame_bytes.min(u32::MAX as usize),
        }
    }

    /// The largest frame this codec accepts.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }
}

impl Default for WorkerCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Decoder for WorkerCodec {
    type Item = Envelope;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Envelope>, CodecError> {
        if src.len() < LENGTH_PREFIX_BYTES {
            return Ok(None);
        }
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        prefix.copy_from_slice(&src[..LENGTH_PREFIX_BYTES]);
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_frame_bytes {
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }
        let needed = LENGTH_PREFIX_BYTES + len;
        if src.len() < needed {
            src.reserve(needed - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX_BYTES);
        let frame = src.split_to(len).freeze();
        Ok(Some(Envelope::decode(frame)?))
    }
}

impl Encoder<Envelope> for WorkerCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Envelope, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = item.encoded_len();
        if len > self.max_frame_bytes {
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }
        dst.reserve(LENGTH_PREFIX_BYTES + len);
        // Fits: max_frame_bytes is capped at u32::MAX.
        dst.put_u32(len as u32);
        item.encode_raw(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{Payload, Ping, SingleCast, envelope::Body};

    fn roundtrip(env: &Envelope) -> Envelope {
        let mut codec = WorkerCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(env.clone(), &mut buf).expect("encode");
        let out = codec
            .decode(&mut buf)
            .expect("decode")
            .expect("a whole frame");
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn frames_round_trip() {
        let env = Envelope {
            request_id: 7,
            body: Some(Body::SingleCast(SingleCast {
                conn_id: "gw-1-2".into(),
                payload: Some(Payload::text("hello")),
            })),
            ..Default::default()
        };
        assert_eq!(roundtrip(&env), env);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let env = Envelope {
            request_id: 1,
            body: Some(Body::Ping(Ping {})),
            ..Default::default()
        };
        let mut codec = WorkerCodec::default();
        let mut whole = BytesMut::new();
        codec.encode(env, &mut whole).expect("encode");
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let got = codec.decode(&mut buf).expect("decode");
            assert_eq!(got.is_some(), i + 1 == whole.len());
        }
    }

    #[test]
    fn oversized_length_is_rejected_before_allocating() {
        let mut codec = WorkerCodec::new(1024);
        let mut buf = BytesMut::new();
        buf.put_u32(u32::MAX);
        let err = codec.decode(&mut buf).expect_err("too large");
        assert!(
            matches!(err, CodecError::FrameTooLarge { len, max: 1024 } if len == u32::MAX as usize)
        );
        assert!(
            buf.capacity() < 1024 * 1024,
            "no allocation for the announced size"
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let mut codec = WorkerCodec::default();
        let mut buf = BytesMut::new();
        buf.put_u32(4);
        buf.put_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(codec.decode(&mut buf), Err(CodecError::Decode(_))));
    }

    #[test]
    fn oversized_outgoing_frame_is_refused() {
        let mut codec = WorkerCodec::new(8);
        let env = Envelope {
            request_id: 1,
            body: Some(Body::SingleCast(SingleCast {
                conn_id: "a-much-too-long-id".into(),
                payload: None,
            })),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        assert!(matches!(
            codec.encode(env, &mut buf),
            Err(CodecError::FrameTooLarge { .. })
        ));
        assert!(buf.is_empty());
    }
}
