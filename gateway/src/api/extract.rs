//! Request extractors whose rejections are the API's JSON errors: a JSON body, query
//! parameters and a path segment, each failing with a 400 that says what to fix.
//!
//! A body must be declared `Content-Type: application/json` (415 otherwise): a web page can send
//! a form, `text/plain` or multipart to any address without asking, but not JSON, which makes
//! the browser ask the server first (a CORS preflight this API never allows). So no page a
//! developer opens can push through a key-less loopback API. Unknown fields are errors (the
//! request types deny them), so a misspelt field is reported instead of ignored.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use super::errors::ApiError;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        check_json(req.headers().get(header::CONTENT_TYPE))?;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(format!(
                    "the request body is too large ({}); send a smaller message (the limit follows the worker link's frame limit, --max-frame-bytes)",
                    e.body_text()
                ))
            } else {
                ApiError::bad_request(format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "the request body is empty; send a JSON object with this endpoint's fields (see /openapi.json)",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(format!(
                "the JSON body does not fit this endpoint: {e}; see /openapi.json for its fields"
            ))
        })
    }
}

/// Accepts `application/json`, with parameters (`; charset=utf-8`) or not, in any case.
fn check_json(content_type: Option<&HeaderValue>) -> Result<(), ApiError> {
    let essence = content_type.and_then(|v| v.to_str().ok()).map(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(other) => Err(ApiError::unsupported_media_type(format!(
            "the body is declared {other:?}; send JSON with the header `Content-Type: application/json` (curl: -H 'Content-Type: application/json')"
        ))),
        None => Err(ApiError::unsupported_media_type(
            "the request has no Content-Type; send JSON with the header `Content-Type: application/json` (curl: -H 'Content-Type: application/json')",
        )),
    }
}

/// Query parameters of type `T`.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "{}; see /openapi.json for this endpoint's query parameters",
                    e.body_text()
                ))
            })
    }
}

/// The `Idempotency-Key` header of a command: its command id (`Envelope.command_id`), so that a
/// retried request is carried out once and answered with the first one's reply.
#[derive(Debug, Default)]
pub(crate) struct IdempotencyKey(pub Option<String>);

/// The header's name.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl IdempotencyKey {
    /// `cluster`, sending this key as its commands' id when there is one.
    pub(crate) fn apply(self, cluster: wsgate_business::Cluster) -> wsgate_business::Cluster {
        match self.0 {
            Some(key) => cluster.with_command_id(key),
            None => cluster,
        }
    }

    /// The key of a request's headers (HTTP and gRPC metadata alike), checked.
    pub(crate) fn of(value: Option<&[u8]>) -> Result<Self, String> {
        let Some(value) = value else {
            return Ok(Self(None));
        };
        let key = std::str::from_utf8(value).map_err(|_| {
            "the Idempotency-Key is not ASCII; use a UUID or another id unique per command"
                .to_owned()
        })?;
        wsgate_proto::validate::command_id("the Idempotency-Key", key).map_err(|r| r.message)?;
        Ok(Self(Some(key.to_owned())))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(IDEMPOTENCY_KEY)
            .map(HeaderValue::as_bytes);
        Self::of(value).map_err(ApiError::bad_request)
    }
}

/// The one `{…}` segment of a path.
#[derive(Debug)]
pub(crate) struct PathSegment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathSegment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(segment)| PathSegment(segment))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "{}; percent-encode the path segment as UTF-8",
                    e.body_text()
                ))
            })
    }
}

/// A comma-separated query parameter as a list (`a,b` → `["a", "b"]`; empty items dropped).
pub(crate) fn comma_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_bodies_pass() {
        let ok = |v: &'static str| check_json(Some(&HeaderValue::from_static(v))).is_ok();
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ] {
            assert!(!ok(refused), "{refused}");
        }
        let none = check_json(None).expect_err("none");
        assert_eq!(none.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(none.message.contains("Content-Type: application/json"));
    }

    #[test]
    fn comma_lists_drop_empty_items() {
        assert_eq!(comma_list(Some("a,b,,c,")), ["a", "b", "c"]);
        assert!(comma_list(Some("")).is_empty());
        assert!(comma_list(None).is_empty());
    }
}
