//! The built-in console: one self-contained page at `/` (no external assets) that shows live
//! counts from `/metrics`, opens a test WebSocket to this gateway's client endpoint and pushes
//! a message to it through the HTTP API, so a gateway run with its defaults shows something
//! real. `/console/config.json` tells the page where the client endpoint is.
//!
//! Neither route needs the API key; the page sends the key a person types with its API calls.

use std::net::IpAddr;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use super::context::ApiContext;
use crate::config::Config;

/// The page, with its style and script inline.
const PAGE: &str = include_str!("console.html");

/// The page loads nothing from elsewhere and talks only to this API and WebSockets.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
    connect-src 'self' ws: wss:; img-src data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The console routes.
pub(crate) fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/", get(page))
        .route("/console/config.json", get(config))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

/// What the page needs to know about this gateway.
#[derive(Debug, Serialize)]
struct ConsoleConfig {
    /// The client endpoint, on the host the page was loaded from.
    ws_url: String,
    node_id: String,
    /// Whether API calls need `Authorization: Bearer <key>`.
    api_key_required: bool,
}

async fn config(State(context): State<ApiContext>, headers: HeaderMap) -> impl IntoResponse {
    let config = &context.config;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_name);
    let body = ConsoleConfig {
        ws_url: ws_url(config, host),
        node_id: config.node_id.clone(),
        api_key_required: config.api_key.as_deref().is_some_and(|k| !k.is_empty()),
    };
    ([(header::CACHE_CONTROL, "no-store")], Json(body))
}

/// `ws://HOST:PORT/PATH` (`wss://` with --tls-cert) for the client listener: the host the
/// request came to (a browser on another machine reaches the gateway by that name), else the
/// listener's own address.
fn ws_url(config: &Config, request_host: Option<&str>) -> String {
    let host = match request_host {
        Some(h) => h.to_owned(),
        None => match config.ws_addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        },
    };
    let scheme = if config.tls_cert.is_some() {
        "wss"
    } else {
        "ws"
    };
    format!(
        "{scheme}://{host}:{}{}",
        config.ws_addr.port(),
        config.ws_path
    )
}

/// The host part of a Host header (`name`, `name:port`, `[v6]:port`), if it is a plain name
/// or address: it is echoed to the page, so anything else is ignored.
fn host_name(host: &str) -> Option<&str> {
    let host = host.trim();
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.split(':').next()?
    };
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'));
    (plain && !name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_forms() {
        assert_eq!(host_name("127.0.0.1:8082"), Some("127.0.0.1"));
        assert_eq!(host_name("gw.example:80"), Some("gw.example"));
        assert_eq!(host_name("localhost"), Some("localhost"));
        assert_eq!(host_name("[::1]:8082"), Some("[::1]"));
        assert_eq!(host_name("[::1"), None);
        assert_eq!(host_name("evil\"host"), None);
        assert_eq!(host_name(""), None);
    }

    #[test]
    fn url_uses_the_request_host_or_the_listener() {
        let config = Config {
            ws_addr: "0.0.0.0:8080".parse().expect("addr"),
            ..Config::default()
        };
        assert_eq!(ws_url(&config, Some("gw.local")), "ws://gw.local:8080/ws");
        assert_eq!(ws_url(&config, None), "ws://127.0.0.1:8080/ws");
        let v6 = Config {
            ws_addr: "[::1]:9000".parse().expect("addr"),
            ..Config::default()
        };
        assert_eq!(ws_url(&v6, None), "ws://[::1]:9000/ws");
        let tls = Config {
            tls_cert: Some("cert.pem".into()),
            ..config
        };
        assert_eq!(ws_url(&tls, Some("gw.local")), "wss://gw.local:8080/ws");
    }
}
