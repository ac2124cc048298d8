//! Which envelope body is what, and which end of a worker link sends it: the table of
//! `docs/protocol.md` section 4, as code.
//!
//! Both ends refuse a body that only the other end sends (with `Error UNSUPPORTED`). Deciding
//! that here, in one exhaustive match, means a body added to the protocol is classified once,
//! and neither end has to list every body it does not accept.

use crate::v1::envelope::Body;

/// Which end of a worker link sends a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// Only the gateway.
    Gateway,
    /// Only the business process.
    Business,
    /// Either end (`Error`, `Ping`, `Pong`).
    Either,
}

/// What a body is, by the protocol's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `Register`: opens the handshake.
    Register,
    /// `RegisterOk`: accepts it.
    RegisterOk,
    /// `Error`: a refusal, or why a link ends.
    Error,
    /// `Ping`: asks for a `Pong`.
    Ping,
    /// `Pong`: answers a `Ping`.
    Pong,
    /// `Draining`: the gateway is shutting down.
    Draining,
    /// `Ack`: the business process has taken every event up to a number.
    Ack,
    /// `ConnOpen`, `ConnMessage`, `ConnClose`: what happened to a client connection.
    Event,
    /// Bodies 30–42: a command (answered with a `Result` when its request id is not 0).
    Command,
    /// Bodies 50–53: a query (always answered with a `Result`).
    Query,
    /// `Result`: answers a command or query.
    Result,
    /// `Receipts`: what became of a cast sent with `RECEIPT_MODE_LATER`.
    Receipts,
    /// `Authorize`: the gateway asks about a client handshake.
    Authorize,
    /// `AuthorizeReply`: the business process's decision.
    AuthorizeReply,
}

impl BodyKind {
    /// What `body` is.
    pub fn of(body: &Body) -> Self {
        match body {
            Body::Register(_) => Self::Register,
            Body::RegisterOk(_) => Self::RegisterOk,
            Body::Error(_) => Self::Error,
            Body::Ping(_) => Self::Ping,
            Body::Pong(_) => Self::Pong,
            Body::Draining(_) => Self::Draining,
            Body::Ack(_) => Self::Ack,
            Body::ConnOpen(_) | Body::ConnMessage(_) | Body::ConnClose(_) => Self::Event,
            Body::SingleCast(_)
            | Body::Multicast(_)
            | Body::Broadcast(_)
            | Body::ForceOffline(_)
            | Body::BindUser(_)
            | Body::UnbindUser(_)
            | Body::SendToUsers(_)
            | Body::Subscribe(_)
            | Body::Unsubscribe(_)
            | Body::Publish(_)
            | Body::DeleteTopics(_)
            | Body::SetSession(_) => Self::Command,
            Body::QueryOnline(_)
            | Body::QueryConnInfo(_)
            | Body::QueryCounts(_)
            | Body::QueryList(_) => Self::Query,
            Body::Result(_) => Self::Result,
            Body::Receipts(_) => Self::Receipts,
            Body::Authorize(_) => Self::Authorize,
            Body::AuthorizeReply(_) => Self::AuthorizeReply,
        }
    }

    /// Which end sends bodies of this kind.
    pub fn sender(self) -> Sender {
        match self {
            Self::Error | Self::Ping | Self::Pong => Sender::Either,
            Self::RegisterOk
            | Self::Draining
            | Self::Event
            | Self::Result
            | Self::Receipts
            | Self::Authorize => Sender::Gateway,
            Self::Register | Self::Ack | Self::Command | Self::Query | Self::AuthorizeReply => {
                Sender::Business
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    #[test]
    fn kinds_follow_the_protocol_table() {
        let cases = [
            (Body::Register(v1::Register::default()), BodyKind::Register),
            (Body::Ping(v1::Ping {}), BodyKind::Ping),
            (Body::Ack(v1::Ack::default()), BodyKind::Ack),
            (Body::ConnClose(v1::ConnClose::default()), BodyKind::Event),
            (
                Body::DeleteTopics(v1::DeleteTopics::default()),
                BodyKind::Command,
            ),
            (Body::QueryList(v1::QueryList::default()), BodyKind::Query),
            (Body::Result(v1::Result::default()), BodyKind::Result),
            (Body::Receipts(v1::Receipts::default()), BodyKind::Receipts),
            (
                Body::AuthorizeReply(v1::AuthorizeReply::default()),
                BodyKind::AuthorizeReply,
            ),
        ];
        for (body, kind) in cases {
            assert_eq!(BodyKind::of(&body), kind, "{body:?}");
        }
    }

    #[test]
    fn each_end_sends_its_own_bodies() {
        assert_eq!(BodyKind::Event.sender(), Sender::Gateway);
        assert_eq!(BodyKind::Authorize.sender(), Sender::Gateway);
        assert_eq!(BodyKind::Draining.sender(), Sender::Gateway);
        assert_eq!(BodyKind::Command.sender(), Sender::Business);
        assert_eq!(BodyKind::Query.sender(), Sender::Business);
        assert_eq!(BodyKind::AuthorizeReply.sender(), Sender::Business);
        assert_eq!(BodyKind::Ack.sender(), Sender::Business);
        assert_eq!(BodyKind::Error.sender(), Sender::Either);
        assert_eq!(BodyKind::Pong.sender(), Sender::Either);
    }
}
