//! The link's own frames, built the same way by both ends: heartbeat `Ping` and `Pong`, and
//! the `Error` that refuses a frame or closes a link.

use crate::codec::CodecError;
use crate::v1::envelope::Body;
use crate::v1::{self, Envelope, ErrorCode, Ping, Pong};

/// A heartbeat `Ping` (request id 0).
pub fn ping() -> Envelope {
    Envelope {
        request_id: 0,
        body: Some(Body::Ping(Ping {})),
        ..Default::default()
    }
}

/// The `Pong` answering a `Ping` with `request_id`.
pub fn pong(request_id: u64) -> Envelope {
    Envelope {
        request_id,
        body: Some(Body::Pong(Pong {})),
        ..Default::default()
    }
}

/// An `Error` frame for `request_id` (0 when it ends the link rather than answer a request).
pub fn error(request_id: u64, code: ErrorCode, message: impl Into<String>) -> Envelope {
    Envelope {
        request_id,
        body: Some(Body::Error(v1::Error {
            code: code as i32,
            message: message.into(),
        })),
        ..Default::default()
    }
}

/// The `Error` that closes a link whose peer sent a frame that cannot be read:
/// `FRAME_TOO_LARGE` for one over the limit, else `DECODE_FAILED`.
pub fn unreadable(err: &CodecError) -> Envelope {
    let code = match err {
        CodecError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
        _ => ErrorCode::DecodeFailed,
    };
    error(0, code, format!("{err}; closing this link"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pong_echoes_the_ping_id() {
        assert_eq!(pong(7).request_id, 7);
        assert!(matches!(pong(7).body, Some(Body::Pong(_))));
        assert_eq!(ping().request_id, 0);
    }

    #[test]
    fn unreadable_frames_say_why() {
        let too_large = unreadable(&CodecError::FrameTooLarge { len: 9, max: 4 });
        let Some(Body::Error(e)) = too_large.body else {
            panic!("an Error frame")
        };
        assert_eq!(e.code, ErrorCode::FrameTooLarge as i32);
        assert!(e.message.ends_with("; closing this link"), "{}", e.message);
        let io = unreadable(&CodecError::Io(std::io::Error::other("x")));
        let Some(Body::Error(e)) = io.body else {
            panic!("an Error frame")
        };
        assert_eq!(e.code, ErrorCode::DecodeFailed as i32);
    }
}
