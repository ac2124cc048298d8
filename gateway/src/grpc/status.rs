//! The gRPC API's errors: how a call reaches the cluster client, and how what goes wrong
//! becomes a [`Status`] whose message says what to fix.
//!
//! Codes: INVALID_ARGUMENT (a field is missing or wrong; nothing was done), NOT_FOUND (the one
//! connection a single-connection command names is not connected), RESOURCE_EXHAUSTED (a limit:
//! the request names too many items, or would take a connection past one), UNAUTHENTICATED (API key,
//! see `auth`), UNAVAILABLE (the cluster client is not connected yet, the owning gateway is not
//! reachable, no gateway answered, or the gateway is shutting down), DEADLINE_EXCEEDED (a
//! gateway did not answer in time) and INTERNAL (anything this gateway cannot interpret).

use std::time::Duration;

use tonic::Status;
use wsgate_business::{Cluster, Error as SdkError, ErrorCode, GatewayFailure};

use crate::cluster::{ClusterSlot, none_answered};

/// How long a call waits for the cluster client to connect (at startup) before UNAVAILABLE.
pub(crate) const READY_WAIT: Duration = Duration::from_secs(2);

/// The cluster client, or UNAVAILABLE when it has not connected within [`READY_WAIT`].
pub(crate) async fn cluster(slot: &ClusterSlot) -> Result<Cluster, Status> {
    slot.within(READY_WAIT).await.map_err(Status::unavailable)
}

/// Fails with UNAVAILABLE when every gateway the cluster client knows is in `failed`: then
/// nothing was carried out and the answer would be empty. Partial failures pass (the reply
/// names them in `failed`).
pub(crate) fn some_answered(cluster: &Cluster, failed: &[GatewayFailure]) -> Result<(), Status> {
    if !none_answered(cluster, failed) {
        return Ok(());
    }
    let names: Vec<String> = failed.iter().map(ToString::to_string).collect();
    Err(Status::unavailable(format!(
        "no gateway answered ({}); check that the gateways are running and retry",
        names.join("; ")
    )))
}

/// INVALID_ARGUMENT for a request field that is missing or wrong.
pub(crate) fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

/// The status for an error of the SDK's cluster client.
pub(crate) fn from_sdk(err: SdkError) -> Status {
    match err {
        SdkError::UnknownConnection { conn_ids } => Status::not_found(format!(
            "connection {} is not connected: it has closed or the id is wrong; use an id from a ConnOpen event or the List RPC (LIST_KIND_CONNECTIONS)",
            conn_ids.join(", ")
        )),
        SdkError::Gateway {
            code: ErrorCode::BadRequest,
            message,
        } => Status::invalid_argument(message),
        SdkError::Gateway {
            code: ErrorCode::UnknownConnection,
            message,
        } => Status::not_found(message),
        SdkError::Gateway {
            code: ErrorCode::LimitExceeded,
            message,
        } => Status::resource_exhausted(message),
        SdkError::Gateway {
            code: ErrorCode::ShuttingDown,
            message,
        } => Status::unavailable(format!(
            "the gateway is shutting down ({message}); retry against another gateway"
        )),
        SdkError::Codec(e) => Status::invalid_argument(format!(
            "the command does not fit in one worker-link frame: {e}; send a smaller payload"
        )),
        e @ SdkError::Timeout => Status::deadline_exceeded(e.to_string()),
        e @ (SdkError::Gateway { .. } | SdkError::Rejected { .. }) => {
            Status::internal(e.to_string())
        }
        other => Status::unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn sdk_errors_map_to_codes() {
        let status = from_sdk(SdkError::UnknownConnection {
            conn_ids: vec!["gw-1-1".into()],
        });
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("gw-1-1"), "{}", status.message());
        let bad = from_sdk(SdkError::Gateway {
            code: ErrorCode::BadRequest,
            message: "no topic given; name at least one".into(),
        });
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert_eq!(bad.message(), "no topic given; name at least one");
        let limit = from_sdk(SdkError::Gateway {
            code: ErrorCode::LimitExceeded,
            message: "too many".into(),
        });
        assert_eq!(limit.code(), Code::ResourceExhausted);
        let gone = from_sdk(SdkError::GatewayUnavailable {
            node_id: "gw2".into(),
        });
        assert_eq!(gone.code(), Code::Unavailable);
        assert_eq!(from_sdk(SdkError::Timeout).code(), Code::DeadlineExceeded);
        assert_eq!(from_sdk(SdkError::Closed).code(), Code::Unavailable);
        let odd = from_sdk(SdkError::Gateway {
            code: ErrorCode::Unsupported,
            message: "x".into(),
        });
        assert_eq!(odd.code(), Code::Internal);
    }
}
