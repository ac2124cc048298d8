//! How a client connection ends: why its loop ended ([`End`]), the `ConnClose` event that says
//! so, and the closing handshake (RFC 6455 section 7) the gateway still owes the client
//! ([`Goodbye`]), completed within `--client-close-linger` so a client that never answers
//! cannot hold its socket.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use wsgate_proto::v1::{ClosedBy, ConnClose};

use super::ClientStream;
use crate::connections::registry::CloseRequest;
use crate::websocket::close_code;
use crate::websocket::frame::{self, Decoder, Incoming};
use crate::websocket::io::{read_into, write_frame};

/// Why the loop ended.
pub(crate) enum End {
    /// The gateway or a business process closes the connection.
    Close(CloseRequest),
    /// The client sent a close frame, with its code and reason if any.
    ByClient(Option<(u16, String)>),
    /// The socket failed or the client vanished.
    Lost(String),
}

impl End {
    pub(crate) fn gateway(code: u16, reason: &str) -> Self {
        End::Close(CloseRequest::gateway(code, reason))
    }
}

/// What the gateway still owes the client when the loop ends.
pub(crate) enum Goodbye {
    /// Our close frame; then wait for the client's answer.
    Close(Bytes),
    /// The answer to the client's close frame.
    Answer(Bytes),
    /// Nothing: the client vanished.
    Nothing,
}

/// The ConnClose event for how the loop ended, and what the gateway still owes the client.
pub(crate) fn conclude(conn_id: String, end: End) -> (ConnClose, Goodbye) {
    let (code, reason, closed_by, goodbye) = match end {
        End::Close(req) => {
            let frame = frame::close(req.code, &req.reason);
            (req.code, req.reason, req.closed_by, Goodbye::Close(frame))
        }
        End::ByClient(frame) => {
            let (code, reason) = frame.unwrap_or((1005, String::new()));
            // Echo the client's code (RFC 6455 5.5.1); a close without one gets an empty close.
            let answer = if code == 1005 {
                frame::encode(frame::CLOSE, &[])
            } else {
                frame::close(code, "")
            };
            (code, reason, ClosedBy::Client, Goodbye::Answer(answer))
        }
        End::Lost(reason) => (
            close_code::ABNORMAL,
            reason,
            ClosedBy::Client,
            Goodbye::Nothing,
        ),
    };
    let event = ConnClose {
        conn_id,
        code: code as u32,
        reason,
        closed_by: closed_by as i32,
        ..ConnClose::default()
    };
    (event, goodbye)
}

/// Completes the closing handshake, bounded in time (`--client-close-linger`): sends our
/// close frame and waits for the client's answer, or answers the client's.
pub(crate) async fn say_goodbye<S: ClientStream>(
    stream: &mut S,
    goodbye: Goodbye,
    decoder: Decoder,
    input: BytesMut,
    linger_for: Duration,
) {
    let linger = async {
        match goodbye {
            Goodbye::Close(frame) => {
                if write_frame(stream, &frame).await.is_ok() {
                    drain(stream, decoder, input).await;
                }
            }
            Goodbye::Answer(frame) => {
                let _ = write_frame(stream, &frame).await;
            }
            Goodbye::Nothing => {}
        }
    };
    let _ = tokio::time::timeout(linger_for, linger).await;
}

/// Reads until the client answers the close frame or the stream ends, so unread input does not
/// turn our close into a TCP reset that would destroy the close frame in flight.
async fn drain<S: ClientStream>(stream: &mut S, mut decoder: Decoder, mut input: BytesMut) {
    let mut parsing = true;
    loop {
        while parsing {
            match decoder.decode(&mut input) {
                Ok(Some(Incoming::Close(_))) => return,
                Ok(Some(_)) => {}
                Ok(None) => break,
                // The frame stream is unusable (for example after an oversized frame): from
                // here on, raw bytes are discarded.
                Err(_) => parsing = false,
            }
        }
        if !parsing {
            input.clear();
        }
        match read_into(stream, &mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
