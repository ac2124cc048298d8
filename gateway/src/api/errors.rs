//! The HTTP API's errors: a status and a JSON body `{"error": code, "message": text}` whose
//! message says what to fix.
//!
//! Codes: `bad_request` (400), `unauthorized` (401), `forbidden` (403: without an API key, a
//! request whose Host or Origin is not loopback or allowed), `not_found` (404, no such API
//! route), `unknown_connection` (404, a single-target command or query named a connection
//! that is not connected), `method_not_allowed` (405), `too_large` (413: the body, or the
//! command it makes, does not fit in one worker-link frame), `unsupported_media_type` (415: a
//! body that is not `application/json`), `limit_exceeded` (422: the request names more than a
//! limit allows, or would take a connection past one), `internal` (500), `unavailable` (503:
//! the cluster client is not connected yet, or no gateway answered), `timeout` (504: no
//! answer within the request timeout; it may or may not have been done).
//!
//! SDK errors map onto them in [`ApiError::from_sdk`], one row per [`ErrorClass`]: the
//! gRPC API has the same table in its own codes (`grpc/status.rs`), and both take their
//! messages from [`explain`].

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use wsgate_business::{Error as SdkError, ErrorClass, ErrorCode, GatewayFailure};
use wsgate_proto::validate::Refused;

/// An API call that failed, ready to become a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    /// The request is wrong; `message` says how to fix it.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// No or a wrong API key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The request may not come from where it comes from.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// The body is not JSON.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// The body does not fit in one worker-link frame.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// A command the shared rules (`validate`) refused, as the SDK would report it.
    pub fn refused(refused: Refused) -> Self {
        Self::from_sdk(refused.into())
    }

    /// The cluster cannot be asked right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// Every gateway concerned failed.
    pub fn none_answered(failed: &[GatewayFailure]) -> Self {
        let names: Vec<String> = failed.iter().map(ToString::to_string).collect();
        Self::unavailable(format!(
            "no gateway answered ({}); check that the gateways are running and retry",
            names.join("; ")
        ))
    }

    /// A route that does not exist.
    pub fn not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "there is no API route {method} {path}; the routes are listed in /openapi.json"
            ),
        )
    }

    /// A route that exists with another method.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &'static str) -> Self {
        let mut error = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{path} takes {allowed}, not {method}: commands are POST with a JSON body, queries are GET with query parameters"
            ),
        );
        error.allow = Some(allowed);
        error
    }

    /// The response for an error of the SDK's cluster client: one row per class.
    pub fn from_sdk(err: SdkError) -> Self {
        let (status, code) = match err.class() {
            ErrorClass::Invalid => (StatusCode::BAD_REQUEST, "bad_request"),
            ErrorClass::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ErrorClass::LimitExceeded => (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded"),
            ErrorClass::UnknownConnection => (StatusCode::NOT_FOUND, "unknown_connection"),
            ErrorClass::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ErrorClass::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self::new(status, code, explain(&err, "GET /api/v1/list/connections"))
    }
}

/// The message for an SDK error, the same at the HTTP and the gRPC door: the gateway's own
/// words where it refused, otherwise the SDK's, which say what to do. `list` names where
/// that door lists connections, for an unknown connection.
pub(crate) fn explain(err: &SdkError, list: &str) -> String {
    match err {
        SdkError::UnknownConnection { conn_ids } => format!(
            "connection {} is not connected: it has closed or the id is wrong; use an id from a ConnOpen event or {list}",
            conn_ids.join(", ")
        ),
        SdkError::Gateway {
            code: ErrorCode::ShuttingDown,
            message,
        } => format!("the gateway is shutting down ({message}); retry against another gateway"),
        SdkError::Gateway { message, .. } if err.class() != ErrorClass::Internal => message.clone(),
        SdkError::Codec(e) => format!(
            "the command does not fit in one worker-link frame: {e}; send less per request (the limit is the gateway's --max-frame-bytes)"
        ),
        other => other.to_string(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_errors_map_to_codes() {
        let bad = ApiError::from_sdk(SdkError::Gateway {
            code: ErrorCode::BadRequest,
            message: "ForceOffline.code 1234 is not allowed".into(),
        });
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.message, "ForceOffline.code 1234 is not allowed");
        let limit = ApiError::from_sdk(SdkError::Gateway {
            code: ErrorCode::LimitExceeded,
            message: "Subscribe.topics names 2000 topics".into(),
        });
        assert_eq!(
            (limit.status, limit.code),
            (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded")
        );

        let unknown = ApiError::from_sdk(SdkError::UnknownConnection {
            conn_ids: vec!["gw-1-1".into()],
        });
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(unknown.code, "unknown_connection");
        assert!(unknown.message.contains("gw-1-1"));

        let down = ApiError::from_sdk(SdkError::GatewayUnavailable {
            node_id: "gw2".into(),
        });
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.code, "unavailable");
        let timeout = ApiError::from_sdk(SdkError::Timeout);
        assert_eq!(
            (timeout.status, timeout.code),
            (StatusCode::GATEWAY_TIMEOUT, "timeout")
        );
        let big = ApiError::from_sdk(SdkError::Codec(wsgate_proto::CodecError::FrameTooLarge {
            len: 2,
            max: 1,
        }));
        assert_eq!(
            (big.status, big.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
        );
        let odd = ApiError::from_sdk(SdkError::Gateway {
            code: ErrorCode::Unsupported,
            message: "x".into(),
        });
        assert_eq!(odd.code, "internal");
    }
}
