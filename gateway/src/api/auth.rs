//! The API key check for `/api/*`: when the gateway has an API key, every request must carry
//! `Authorization: Bearer <key>`, compared in constant time. Without a configured key (allowed
//! only while the API is bound to loopback) every request passes.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::ApiContext;
use super::errors::ApiError;

const HOW: &str = "send the header `Authorization: Bearer <key>` with the gateway's API key (api_key in the config file, WSGATE_API_KEY or --api-key)";

/// Why a request's key was refused.
fn refusal(headers: &HeaderMap, expected: &[u8]) -> Option<ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Some(ApiError::unauthorized(format!(
            "this API needs a key: {HOW}"
        )));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    let Some(presented) = presented else {
        return Some(ApiError::unauthorized(format!(
            "the Authorization header is not of the form `Bearer <key>`: {HOW}"
        )));
    };
    if bool::from(presented.as_bytes().ct_eq(expected)) {
        None
    } else {
        Some(ApiError::unauthorized(format!(
            "the API key is wrong: {HOW}"
        )))
    }
}

/// Middleware: lets the request through when no key is configured or it carries the key.
pub(crate) async fn require_key(
    State(context): State<ApiContext>,
    request: Request,
    next: Next,
) -> Response {
    let expected = context
        .shared
        .config
        .api_key
        .as_deref()
        .filter(|k| !k.is_empty());
    if let Some(expected) = expected
        && let Some(err) = refusal(request.headers(), expected.as_bytes())
    {
        return err.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(a));
        }
        h
    }

    #[test]
    fn only_the_right_bearer_key_passes() {
        assert!(refusal(&headers(Some("Bearer s3cret")), b"s3cret").is_none());
        assert!(refusal(&headers(Some("bearer s3cret")), b"s3cret").is_none());
        let missing = refusal(&headers(None), b"s3cret").expect("missing");
        assert!(missing.message.contains("Authorization: Bearer"));
        let wrong = refusal(&headers(Some("Bearer nope")), b"s3cret").expect("wrong");
        assert!(wrong.message.contains("wrong"));
        let basic = refusal(&headers(Some("Basic czNjcmV0")), b"s3cret").expect("basic");
        assert!(basic.message.contains("not of the form"));
        assert!(refusal(&headers(Some("Bearer s3cre")), b"s3cret").is_some());
    }
}
