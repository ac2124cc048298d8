//! The errors the SDK returns, each saying what went wrong and what to do about it.
//!
//! Three groups: errors of the link ([`Error::Connect`], [`Error::Rejected`],
//! [`Error::NotConnected`], [`Error::Disconnected`], [`Error::Timeout`], [`Error::Closed`],
//! [`Error::Codec`]), answers of the gateway to one command ([`Error::UnknownConnection`],
//! [`Error::Gateway`]), and errors of a [`Cluster`](crate::Cluster) ([`Error::Discovery`],
//! [`Error::GatewayUnavailable`]). Protocol error codes are kept as [`ErrorCode`] so callers can
//! match on them.

use std::io;

use wsgate_proto::CodecError;
use wsgate_proto::v1::ErrorCode;
use wsgate_proto::validate::Refused;

/// What kind of failure an [`Error`] is, for a caller that answers someone else in its own
/// protocol (the gateway's HTTP and gRPC APIs map each class to one status, in one table
/// each) or decides whether to retry. [`Error::class`] is the one place errors are sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The command is wrong (a missing field, a bad close code): fix it, do not retry.
    Invalid,
    /// The command does not fit in one worker-link frame: send less per command.
    TooLarge,
    /// The command names more than a limit allows, or would take something past one.
    LimitExceeded,
    /// A connection it names is not connected (closed, a typo, an unknown node).
    UnknownConnection,
    /// No gateway could take it now (not connected, down, shutting down): retry later.
    Unavailable,
    /// No answer within the request timeout: it may or may not have been done.
    Timeout,
    /// Anything else: a bug, or an answer this SDK cannot interpret.
    Internal,
}

/// Why a connect or a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection to the gateway's worker listener could not be opened.
    #[error(
        "cannot connect to the wsgate gateway's worker listener at {addr}: {source}; check that the gateway is running and that {addr} is its --worker-addr"
    )]
    Connect {
        /// The address that was dialled.
        addr: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// The gateway refused the registration (for example a wrong worker token). Not retried.
    #[error(
        "the gateway refused to register this business process ({}: {message}); check the worker token (--worker-token / WSGATE_WORKER_TOKEN) and that the gateway speaks protocol version {}",
        .code.as_str_name(),
        wsgate_proto::PROTOCOL_VERSION
    )]
    Rejected {
        /// The gateway's error code, for example [`ErrorCode::Unauthenticated`].
        code: ErrorCode,
        /// The gateway's explanation.
        message: String,
    },

    /// The link to the gateway is down (it is being re-established); the command was not sent.
    #[error(
        "not connected to the gateway, the command was not sent; the SDK is reconnecting, retry after Event::Connected"
    )]
    NotConnected,

    /// The link dropped after the command was handed to it and before the gateway answered.
    #[error(
        "the link to the gateway dropped before it answered; the command may or may not have been carried out, retry after Event::Connected if it must happen"
    )]
    Disconnected,

    /// The gateway did not answer within the request timeout.
    #[error(
        "the gateway did not answer within the request timeout; the command may or may not have been carried out, check the gateway's load or raise request_timeout"
    )]
    Timeout,

    /// The target connection is not connected to this gateway (it closed, or belongs to another
    /// gateway).
    #[error(
        "connection id(s) {conn_ids:?} are not connected to this gateway; they have closed (forget them) or belong to another gateway"
    )]
    UnknownConnection {
        /// The ids the gateway did not know.
        conn_ids: Vec<String>,
    },

    /// The gateway refused a command, for example [`ErrorCode::BadRequest`] for a bad close code.
    #[error("the gateway refused the command ({}): {message}", .code.as_str_name())]
    Gateway {
        /// The gateway's error code.
        code: ErrorCode,
        /// The gateway's explanation.
        message: String,
    },

    /// A frame could not be encoded or decoded (for example a command larger than the gateway's
    /// frame limit).
    #[error("worker link frame error: {0}")]
    Codec(#[from] CodecError),

    /// The client was shut down with [`Client::shutdown`](crate::Client::shutdown) (or
    /// [`Cluster::shutdown`](crate::Cluster::shutdown)) or every handle was dropped.
    #[error(
        "the wsgate client was shut down; build a new one with Client::builder(..).connect() or Cluster::builder(..).connect()"
    )]
    Closed,

    /// A [`Cluster`](crate::Cluster) could not find its gateways: discovery failed or named
    /// none.
    #[error(
        "cannot find the wsgate gateways with {discovery}: {source}; check the gateway list or DNS name (for a gateway: --peers / --peers-dns) and that it names at least one gateway's worker address"
    )]
    Discovery {
        /// The discovery that was asked, for example `StaticDiscovery([...])`.
        discovery: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// A [`Cluster`](crate::Cluster) command names a connection whose gateway (the node id in
    /// the connection id) is not connected right now: it is down or restarting, draining away,
    /// or not among the discovered gateways. Nothing was sent.
    #[error(
        "no connected gateway has node id {node_id:?}, the command was not sent; that gateway is down, restarting or not discovered, and its client connections are gone with it (clients reconnect through another gateway with new connection ids): forget the connection id, or retry once that gateway is back (ClusterEvent with Event::Connected from {node_id:?})"
    )]
    GatewayUnavailable {
        /// The node id from the connection id.
        node_id: String,
    },

    /// The TLS settings ([`TlsOptions`](crate::TlsOptions)) cannot be used: no certificate in
    /// the CA PEM, or a server name that is not a DNS name or IP address. Not retried.
    #[error("the TLS settings of the worker link cannot be used: {message}")]
    TlsConfig {
        /// What is wrong.
        message: String,
    },

    /// The TLS handshake with the gateway's worker listener failed: the gateway does not
    /// serve TLS there (start it with --worker-tls), or its certificate is not signed by the
    /// given CA or does not name the server name. Retried like a connection failure.
    #[error(
        "the TLS handshake with the wsgate gateway's worker listener at {addr} failed: {source}; check that the gateway runs with --worker-tls, that its certificate is signed by the CA given in TlsOptions and names {server_name:?}"
    )]
    TlsHandshake {
        /// The address that was dialled.
        addr: String,
        /// The name the certificate was checked against.
        server_name: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// What kind of failure this is.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::UnknownConnection { .. } => ErrorClass::UnknownConnection,
            Error::Gateway { code, .. } => match code {
                ErrorCode::BadRequest => ErrorClass::Invalid,
                ErrorCode::LimitExceeded => ErrorClass::LimitExceeded,
                ErrorCode::UnknownConnection => ErrorClass::UnknownConnection,
                ErrorCode::FrameTooLarge => ErrorClass::TooLarge,
                ErrorCode::ShuttingDown | ErrorCode::Unavailable => ErrorClass::Unavailable,
                _ => ErrorClass::Internal,
            },
            Error::Codec(CodecError::FrameTooLarge { .. }) => ErrorClass::TooLarge,
            Error::Timeout => ErrorClass::Timeout,
            Error::Connect { .. }
            | Error::NotConnected
            | Error::Disconnected
            | Error::Closed
            | Error::Discovery { .. }
            | Error::GatewayUnavailable { .. }
            | Error::TlsHandshake { .. } => ErrorClass::Unavailable,
            Error::Rejected { code, .. } if *code == ErrorCode::ShuttingDown => {
                ErrorClass::Unavailable
            }
            Error::Rejected { .. } | Error::Codec(_) | Error::TlsConfig { .. } => {
                ErrorClass::Internal
            }
        }
    }

    /// Whether a failed registration attempt is worth retrying: everything but a refusal that
    /// will not change by itself (wrong token, unsupported version).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Rejected { code, .. } => *code == ErrorCode::ShuttingDown,
            Error::Closed | Error::TlsConfig { .. } => false,
            _ => true,
        }
    }
}

/// A body the rules every door shares refused, before it was sent: the same error a gateway
/// would have answered.
impl From<Refused> for Error {
    fn from(refused: Refused) -> Self {
        Error::Gateway {
            code: refused.code,
            message: refused.message,
        }
    }
}

/// The [`ErrorCode`] for a wire value. A code this SDK does not know (from a newer gateway) is
/// reported as [`ErrorCode::Unsupported`]; [`describe`] keeps the number in the message.
pub(crate) fn error_code(value: i32) -> ErrorCode {
    ErrorCode::try_from(value).unwrap_or(ErrorCode::Unsupported)
}

/// The gateway's message, with the raw code prepended when it is one this SDK does not know.
pub(crate) fn describe(value: i32, message: String) -> String {
    if ErrorCode::try_from(value).is_ok() {
        message
    } else {
        format!("unknown error code {value} from a newer gateway: {message}")
    }
}

/// The error for an `Error` frame that answered one request.
pub(crate) fn from_wire(err: wsgate_proto::v1::Error) -> Error {
    Error::Gateway {
        code: error_code(err.code),
        message: describe(err.code, err.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_keep_their_number() {
        assert_eq!(error_code(3), ErrorCode::BadRequest);
        assert_eq!(error_code(999), ErrorCode::Unsupported);
        assert_eq!(describe(3, "x".into()), "x");
        assert!(describe(999, "x".into()).contains("999"));
    }

    #[test]
    fn wire_errors_become_gateway_errors() {
        let err = from_wire(wsgate_proto::v1::Error {
            code: ErrorCode::Unsupported as i32,
            message: "unknown body".into(),
        });
        assert!(matches!(
            err,
            Error::Gateway { code: ErrorCode::Unsupported, ref message } if message == "unknown body"
        ));
        assert!(err.to_string().contains("ERROR_CODE_UNSUPPORTED"));
    }

    #[test]
    fn every_error_has_one_class() {
        let gateway = |code| Error::Gateway {
            code,
            message: String::new(),
        };
        let cases = [
            (gateway(ErrorCode::BadRequest), ErrorClass::Invalid),
            (gateway(ErrorCode::LimitExceeded), ErrorClass::LimitExceeded),
            (
                gateway(ErrorCode::UnknownConnection),
                ErrorClass::UnknownConnection,
            ),
            (gateway(ErrorCode::ShuttingDown), ErrorClass::Unavailable),
            (gateway(ErrorCode::Unsupported), ErrorClass::Internal),
            (
                Error::UnknownConnection {
                    conn_ids: vec!["gw-1-1".into()],
                },
                ErrorClass::UnknownConnection,
            ),
            (
                Error::Codec(CodecError::FrameTooLarge { len: 2, max: 1 }),
                ErrorClass::TooLarge,
            ),
            (Error::Timeout, ErrorClass::Timeout),
            (Error::NotConnected, ErrorClass::Unavailable),
            (
                Error::GatewayUnavailable {
                    node_id: "gw2".into(),
                },
                ErrorClass::Unavailable,
            ),
        ];
        for (err, class) in cases {
            assert_eq!(err.class(), class, "{err:?}");
        }
        let refused: Error = Refused::limit("too many").into();
        assert_eq!(refused.class(), ErrorClass::LimitExceeded);
    }

    #[test]
    fn only_lasting_refusals_stop_retries() {
        let rejected = |code| Error::Rejected {
            code,
            message: String::new(),
        };
        assert!(!rejected(ErrorCode::Unauthenticated).is_retryable());
        assert!(!rejected(ErrorCode::UnsupportedVersion).is_retryable());
        assert!(rejected(ErrorCode::ShuttingDown).is_retryable());
        assert!(Error::Timeout.is_retryable());
        assert!(Error::Disconnected.is_retryable());
        assert!(!Error::Closed.is_retryable());
        assert!(
            Error::GatewayUnavailable {
                node_id: "gw1".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn cluster_errors_say_what_to_do() {
        let text = Error::GatewayUnavailable {
            node_id: "gw2".into(),
        }
        .to_string();
        assert!(text.contains("\"gw2\""), "{text}");
        assert!(text.contains("forget the connection id"), "{text}");
        let text = Error::Discovery {
            discovery: "StaticDiscovery([])".into(),
            source: io::Error::other("no addresses"),
        }
        .to_string();
        assert!(text.contains("StaticDiscovery([])"), "{text}");
        assert!(text.contains("--peers"), "{text}");
    }

    #[test]
    fn messages_say_what_to_do() {
        let err = Error::Rejected {
            code: ErrorCode::Unauthenticated,
            message: "wrong token".into(),
        };
        let text = err.to_string();
        assert!(text.contains("ERROR_CODE_UNAUTHENTICATED"), "{text}");
        assert!(text.contains("wrong token"), "{text}");
        assert!(text.contains("WSGATE_WORKER_TOKEN"), "{text}");
    }
}
