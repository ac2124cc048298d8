//! Who may call `/api/*`. With an API key, every request must carry `Authorization: Bearer
//! <key>`, compared in constant time. Without one (allowed only while the API is bound to
//! loopback) a request must come from this machine by name too: its `Host` must be a
//! loopback name or address (`localhost`, `127.0.0.1`, `[::1]`, with any port) or one of
//! `--api-allowed-hosts`, and its `Origin`, if it has one, likewise; others get 403. That stops
//! DNS rebinding (a page whose name resolves to 127.0.0.1 sends its own name as Host) and pages
//! of other sites, which the JSON requirement (`extract`) already keeps from sending commands.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::context::ApiContext;
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

/// The host part of a `Host` value or an origin's authority: without port, brackets and
/// case (`[::1]:8082` → `::1`).
fn host_of(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn is_local(host: &str, allowed: &[String]) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || allowed.iter().any(|a| !a.is_empty() && host_of(a) == host)
}

/// Why a key-less request is refused: a Host or an Origin that is not this machine's.
fn foreign(headers: &HeaderMap, allowed: &[String]) -> Option<ApiError> {
    const HOW: &str = "without an API key this API only answers requests to a loopback name or address (localhost, 127.0.0.1, [::1]); add the name to --api-allowed-hosts, or set --api-key";
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match host {
        Some(h) if is_local(&host_of(h), allowed) => {}
        Some(h) => {
            return Some(ApiError::forbidden(format!(
                "Host {h:?} is not allowed: {HOW}"
            )));
        }
        None => {
            return Some(ApiError::forbidden(format!(
                "the request has no Host header: {HOW}"
            )));
        }
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("?"));
    if let Some(origin) = origin {
        let authority = origin.split_once("://").map(|(_, a)| a);
        if !authority.is_some_and(|a| is_local(&host_of(a), allowed)) {
            return Some(ApiError::forbidden(format!(
                "requests from pages of origin {origin:?} are not allowed: {HOW}"
            )));
        }
    }
    None
}

/// Middleware: lets the request through when it carries the configured key, or, without a
/// key, when it comes from this machine by name.
pub(crate) async fn require_key(
    State(context): State<ApiContext>,
    request: Request,
    next: Next,
) -> Response {
    let config = &context.config;
    let expected = config.api_key.as_deref().filter(|k| !k.is_empty());
    let refused = match expected {
        Some(expected) => refusal(request.headers(), expected.as_bytes()),
        None => foreign(request.headers(), &config.api_allowed_hosts),
    };
    match refused {
        Some(err) => err.into_response(),
        None => next.run(request).await,
    }
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

    fn with(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(name.clone(), HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn without_a_key_only_this_machine_by_name_passes() {
        let none: &[String] = &[];
        for host in [
            "127.0.0.1:8082",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8082",
            "127.9.9.9",
        ] {
            assert!(
                foreign(&with(&[(header::HOST, host)]), none).is_none(),
                "{host}"
            );
        }
        let rebinding =
            foreign(&with(&[(header::HOST, "evil.example:8082")]), none).expect("a foreign Host");
        assert_eq!(rebinding.code, "forbidden");
        assert!(rebinding.message.contains("--api-allowed-hosts"));
        assert!(foreign(&HeaderMap::new(), none).is_some(), "no Host");
        let page = with(&[
            (header::HOST, "127.0.0.1:8082"),
            (header::ORIGIN, "http://evil.example"),
        ]);
        assert!(foreign(&page, none).is_some(), "a foreign page");
        let console = with(&[
            (header::HOST, "127.0.0.1:8082"),
            (header::ORIGIN, "http://127.0.0.1:8082"),
        ]);
        assert!(
            foreign(&console, none).is_none(),
            "the console's own origin"
        );
        assert!(
            foreign(
                &with(&[(header::HOST, "127.0.0.1"), (header::ORIGIN, "null")]),
                none
            )
            .is_some()
        );
        let named = ["gateway.internal:8082".to_owned()];
        assert!(foreign(&with(&[(header::HOST, "gateway.internal")]), &named).is_none());
        assert!(foreign(&with(&[(header::HOST, "evil.localhost.example")]), none).is_some());
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
