//! A data message as a cast queues it: the frame plain clients get and, made once and only
//! when a `wsgate.stream.v1` client is among the recipients, the frame such a client gets
//! (see [`subprotocol`](crate::websocket::subprotocol)). Every recipient of a kind shares one
//! encoding, as before: a broadcast to plain clients costs what it always did.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::websocket::subprotocol::{self, Body};

/// One message, in the encodings its recipients need.
#[derive(Debug)]
pub(crate) struct Message {
    plain: Bytes,
    /// For clients of the subprotocol: a `publication` given at once, or a `message` made from
    /// `plain` the first time such a client is reached.
    framed: OnceLock<Bytes>,
    /// The ack id clients of the subprotocol are asked to answer with (a cast that asked for
    /// client acknowledgements).
    ack: Option<u64>,
}

impl Message {
    /// A message that is not in a stream; `plain` is an encoded data frame.
    pub(crate) fn new(plain: Bytes, ack: Option<u64>) -> Self {
        Self {
            plain,
            framed: OnceLock::new(),
            ack,
        }
    }

    /// A stream's publication: `framed` is its `publication` frame.
    pub(crate) fn publication(plain: Bytes, framed: Bytes, ack: Option<u64>) -> Self {
        Self {
            plain,
            framed: OnceLock::from(framed),
            ack,
        }
    }

    /// The frame for a client of the subprotocol (`streams`) or a plain one.
    pub(crate) fn frame(&self, streams: bool) -> &Bytes {
        if !streams {
            return &self.plain;
        }
        self.framed
            .get_or_init(|| subprotocol::message(Body::of_frame(&self.plain), self.ack))
    }

    /// The ack id a client of the subprotocol answers with, if asked.
    pub(crate) fn ack(&self) -> Option<u64> {
        self.ack
    }
}
