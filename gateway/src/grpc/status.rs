//! The gRPC API's errors: how a call reaches the cluster client, and how what goes wrong
//! becomes a [`Status`] whose message says what to fix.
//!
//! Codes: INVALID_ARGUMENT (a field is missing or wrong; nothing was done), NOT_FOUND (the one
//! connection a single-connection command names is not connected), RESOURCE_EXHAUSTED (a limit:
//! the request names too many items, would take a connection past one, or does not fit in one
//! worker-link frame), UNAUTHENTICATED (API key, see `auth`), UNAVAILABLE (the cluster client
//! is not connected yet, the owning gateway is not reachable, no gateway answered, or the
//! gateway is shutting down), DEADLINE_EXCEEDED (a gateway did not answer in time) and
//! INTERNAL (anything this gateway cannot interpret).
//!
//! [`from_sdk`] is one row per [`ErrorClass`], the HTTP API's table (`api/errors.rs`) in gRPC
//! codes, with the same messages ([`explain`]).

use std::time::Duration;

use tonic::Status;
use wsgate_business::{Cluster, Error as SdkError, ErrorClass, GatewayFailure};

use crate::api::errors::explain;
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

/// INVALID_ARGUMENT for a request field that is missing or wrong (the events stream's own
/// fields; commands are checked by the shared rules).
pub(crate) fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message)
}

/// The status for an error of the SDK's cluster client: one row per class.
pub(crate) fn from_sdk(err: SdkError) -> Status {
    let message = explain(&err, "the List RPC (LIST_KIND_CONNECTIONS)");
    match err.class() {
        ErrorClass::Invalid => Status::invalid_argument(message),
        ErrorClass::TooLarge | ErrorClass::LimitExceeded => Status::resource_exhausted(message),
        ErrorClass::UnknownConnection => Status::not_found(message),
        ErrorClass::Unavailable => Status::unavailable(message),
        ErrorClass::Timeout => Status::deadline_exceeded(message),
        _ => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use wsgate_business::ErrorCode;

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
