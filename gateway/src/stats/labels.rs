//! The label values the gateway counts by: why a client connection closed and which command a
//! business process (or an API, through the cluster client) sent.
//!
//! Each is a small enum indexing an array of atomics, so counting never allocates or looks a
//! string up; the label text exists only for the exporter.

use wsgate_proto::v1::{ClosedBy, envelope::Body};

use crate::websocket::close_code;

/// Why a client connection closed (`wsgate_closes_total{reason=...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a close frame.
    Client,
    /// The client vanished without a close frame (1006).
    Lost,
    IdleTimeout,
    SlowConsumer,
    TooBig,
    /// A business process or API caller forced it offline.
    Business,
    /// The gateway is shutting down or restarting (1001 / 1012).
    Shutdown,
    GuestTimeout,
    ProtocolError,
    /// Over the message rate, or past the per-user limit in a race (1008).
    RateLimited,
    /// The user's newer connection pushed it out (4004).
    Replaced,
    /// Anything else the gateway closed for (an internal error).
    Internal,
}

impl CloseReason {
    pub const ALL: [CloseReason; 12] = [
        CloseReason::Client,
        CloseReason::Lost,
        CloseReason::IdleTimeout,
        CloseReason::SlowConsumer,
        CloseReason::TooBig,
        CloseReason::Business,
        CloseReason::Shutdown,
        CloseReason::GuestTimeout,
        CloseReason::ProtocolError,
        CloseReason::RateLimited,
        CloseReason::Replaced,
        CloseReason::Internal,
    ];

    /// The reason for a close, from the ConnClose event's code and who closed.
    pub fn of(code: u32, closed_by: ClosedBy) -> Self {
        match closed_by {
            ClosedBy::Business => return CloseReason::Business,
            ClosedBy::Client | ClosedBy::Unspecified => {
                return if code == u32::from(close_code::ABNORMAL) {
                    CloseReason::Lost
                } else {
                    CloseReason::Client
                };
            }
            ClosedBy::Gateway => {}
        }
        match u16::try_from(code).unwrap_or(0) {
            close_code::IDLE_TIMEOUT => CloseReason::IdleTimeout,
            close_code::SLOW_CONSUMER => CloseReason::SlowConsumer,
            close_code::TOO_BIG => CloseReason::TooBig,
            close_code::GUEST_TIMEOUT => CloseReason::GuestTimeout,
            close_code::PROTOCOL_ERROR => CloseReason::ProtocolError,
            close_code::POLICY_VIOLATION => CloseReason::RateLimited,
            close_code::REPLACED => CloseReason::Replaced,
            close_code::GOING_AWAY | close_code::SERVICE_RESTART => CloseReason::Shutdown,
            _ => CloseReason::Internal,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Lost => "lost",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::TooBig => "too_big",
            CloseReason::Business => "business",
            CloseReason::Shutdown => "shutdown",
            CloseReason::GuestTimeout => "guest_timeout",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::Replaced => "replaced",
            CloseReason::Internal => "internal",
        }
    }
}

/// A command or query on the worker link (`wsgate_commands_total{kind=...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    SingleCast,
    Multicast,
    Broadcast,
    ForceOffline,
    BindUser,
    UnbindUser,
    SendToUsers,
    Subscribe,
    Unsubscribe,
    Publish,
    DeleteTopics,
    SetSession,
    QueryOnline,
    QueryConnInfo,
    QueryCounts,
    QueryList,
    /// A body this gateway does not run as a command.
    Other,
}

impl CommandKind {
    pub const ALL: [CommandKind; 17] = [
        CommandKind::SingleCast,
        CommandKind::Multicast,
        CommandKind::Broadcast,
        CommandKind::ForceOffline,
        CommandKind::BindUser,
        CommandKind::UnbindUser,
        CommandKind::SendToUsers,
        CommandKind::Subscribe,
        CommandKind::Unsubscribe,
        CommandKind::Publish,
        CommandKind::DeleteTopics,
        CommandKind::SetSession,
        CommandKind::QueryOnline,
        CommandKind::QueryConnInfo,
        CommandKind::QueryCounts,
        CommandKind::QueryList,
        CommandKind::Other,
    ];

    pub fn of(body: &Body) -> Self {
        match body {
            Body::SingleCast(_) => CommandKind::SingleCast,
            Body::Multicast(_) => CommandKind::Multicast,
            Body::Broadcast(_) => CommandKind::Broadcast,
            Body::ForceOffline(_) => CommandKind::ForceOffline,
            Body::BindUser(_) => CommandKind::BindUser,
            Body::UnbindUser(_) => CommandKind::UnbindUser,
            Body::SendToUsers(_) => CommandKind::SendToUsers,
            Body::Subscribe(_) => CommandKind::Subscribe,
            Body::Unsubscribe(_) => CommandKind::Unsubscribe,
            Body::Publish(_) => CommandKind::Publish,
            Body::DeleteTopics(_) => CommandKind::DeleteTopics,
            Body::SetSession(_) => CommandKind::SetSession,
            Body::QueryOnline(_) => CommandKind::QueryOnline,
            Body::QueryConnInfo(_) => CommandKind::QueryConnInfo,
            Body::QueryCounts(_) => CommandKind::QueryCounts,
            Body::QueryList(_) => CommandKind::QueryList,
            _ => CommandKind::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CommandKind::SingleCast => "single_cast",
            CommandKind::Multicast => "multicast",
            CommandKind::Broadcast => "broadcast",
            CommandKind::ForceOffline => "force_offline",
            CommandKind::BindUser => "bind_user",
            CommandKind::UnbindUser => "unbind_user",
            CommandKind::SendToUsers => "send_to_users",
            CommandKind::Subscribe => "subscribe",
            CommandKind::Unsubscribe => "unsubscribe",
            CommandKind::Publish => "publish",
            CommandKind::DeleteTopics => "delete_topics",
            CommandKind::SetSession => "set_session",
            CommandKind::QueryOnline => "query_online",
            CommandKind::QueryConnInfo => "query_conn_info",
            CommandKind::QueryCounts => "query_counts",
            CommandKind::QueryList => "query_list",
            CommandKind::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_match_positions() {
        for (i, r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, k) in CommandKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
    }

    #[test]
    fn close_reasons() {
        use CloseReason as R;
        assert_eq!(R::of(1000, ClosedBy::Client), R::Client);
        assert_eq!(R::of(1006, ClosedBy::Client), R::Lost);
        assert_eq!(R::of(4000, ClosedBy::Gateway), R::IdleTimeout);
        assert_eq!(R::of(4001, ClosedBy::Gateway), R::SlowConsumer);
        assert_eq!(R::of(1009, ClosedBy::Gateway), R::TooBig);
        assert_eq!(R::of(4002, ClosedBy::Gateway), R::GuestTimeout);
        assert_eq!(R::of(1002, ClosedBy::Gateway), R::ProtocolError);
        assert_eq!(R::of(1001, ClosedBy::Gateway), R::Shutdown);
        assert_eq!(R::of(1012, ClosedBy::Gateway), R::Shutdown);
        assert_eq!(R::of(1011, ClosedBy::Gateway), R::Internal);
        assert_eq!(R::of(4321, ClosedBy::Business), R::Business);
    }
}
