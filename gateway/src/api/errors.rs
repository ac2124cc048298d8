//! The HTTP API's errors: a status and a JSON body `{"error": code, "message": text}` whose
//! message says what to fix.
//!
//! Codes: `bad_request` (400), `unauthorized` (401), `forbidden` (403: without an API key, a
//! request whose Host or Origin is not loopback or allowed), `not_found` (404, no such API
//! route), `unknown_connection` (404, a single-target command or query named a connection
//! that is not connected), `method_not_allowed` (405), `unsupported_media_type` (415: a body
//! that is not `application/json`), `limit_exceeded` (422: the request names more than a
//! limit allows, or would take a connection past one), `unavailable` (503: the cluster client
//! is not connected yet, or no gateway answered), `internal` (500). SDK errors map onto them
//! in [`ApiError::from_sdk`].

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use wsgate_business::{Error as SdkError, ErrorCode, GatewayFailure};

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

    /// A limit refused the request (or some of its targets).
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded", message)
    }

    /// The named connection is not connected.
    pub fn unknown_connection(conn_ids: &[String]) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_connection",
            format!(
                "connection {} is not connected: it has closed or the id is wrong; use an id from a ConnOpen event or GET /api/v1/list/connections",
                conn_ids.join(", ")
            ),
        )
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

    /// A bug or an answer this gateway cannot interpret.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The response for an error of the SDK's cluster client.
    pub fn from_sdk(err: SdkError) -> Self {
        match err {
            SdkError::UnknownConnection { conn_ids } => Self::unknown_connection(&conn_ids),
            SdkError::Gateway {
                code: ErrorCode::BadRequest,
                message,
            } => Self::bad_request(message),
            SdkError::Gateway {
                code: ErrorCode::UnknownConnection,
                message,
            } => Self::new(StatusCode::NOT_FOUND, "unknown_connection", message),
            SdkError::Gateway {
                code: ErrorCode::LimitExceeded,
                message,
            } => Self::limit_exceeded(message),
            SdkError::Gateway {
                code: ErrorCode::ShuttingDown,
                message,
            } => Self::unavailable(format!(
                "the gateway is shutting down ({message}); retry against another gateway"
            )),
            SdkError::Codec(e) => Self::bad_request(format!(
                "the command does not fit in one worker-link frame: {e}"
            )),
            e @ (SdkError::Gateway { .. } | SdkError::Rejected { .. }) => {
                Self::internal(e.to_string())
            }
            other => Self::unavailable(other.to_string()),
        }
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
        assert_eq!(ApiError::from_sdk(SdkError::Timeout).code, "unavailable");
        let odd = ApiError::from_sdk(SdkError::Gateway {
            code: ErrorCode::Unsupported,
            message: "x".into(),
        });
        assert_eq!(odd.code, "internal");
    }
}
