//! Clients of the `wsgate.stream.v1` subprotocol (docs/streams.md) for the streams tests:
//! JWT users, positions in the handshake, the subprotocol's JSON frames.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{TestGateway, Ws, recv_text, within};

pub const SECRET: &str = "streams-test-secret-0123456789abcdef";

pub fn token(sub: &str) -> String {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: u64,
    }
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Claims { sub, exp },
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// A gateway with JWT (so clients name their user) and these stream rules.
pub async fn gateway(rules: &[&str]) -> TestGateway {
    gateway_with(rules, |_| {}).await
}

/// The same, with more settings.
pub async fn gateway_with(rules: &[&str], tweak: impl FnOnce(&mut wsgate::Config)) -> TestGateway {
    let rules: Vec<_> = rules
        .iter()
        .map(|r| r.parse().expect("a valid rule"))
        .collect();
    TestGateway::start_with(|c| {
        c.jwt_secret = Some(SECRET.into());
        c.stream = rules;
        c.client_ack_timeout = Duration::from_millis(800);
        tweak(c);
    })
    .await
}

/// A client of the subprotocol for `user`, saying where it was (`positions`, a JSON object
/// from stream to `{epoch, offset}`; `null` for nothing).
pub async fn stream_client(gw: &TestGateway, user: &str, positions: &Value) -> Ws {
    let mut url = gw.url();
    if !positions.is_null() {
        let b64 = URL_SAFE_NO_PAD.encode(positions.to_string());
        url = format!("{url}?wsgate_recover={b64}");
    }
    let offered = format!("wsgate.stream.v1, wsgate.jwt, {}", token(user));
    let (ws, agreed) = offering(url, &offered).await;
    assert_eq!(
        agreed.as_deref(),
        Some("wsgate.stream.v1"),
        "the gateway agreed to the subprotocol"
    );
    ws
}

/// A plain client for `user` (JWT in the subprotocol, as before streams).
pub async fn plain_client(gw: &TestGateway, user: &str) -> Ws {
    offering(gw.url(), &format!("wsgate.jwt, {}", token(user)))
        .await
        .0
}

/// A client of `url` offering the subprotocols `offered`, and the one the gateway answered.
async fn offering(url: String, offered: &str) -> (Ws, Option<String>) {
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        offered.parse().expect("a header value"),
    );
    let (ws, response) = within("a handshake", tokio_tungstenite::connect_async(request))
        .await
        .expect("the client connects");
    let agreed = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (ws, agreed)
}

/// The next frame of the subprotocol.
pub async fn next_json(ws: &mut Ws) -> Value {
    let text = recv_text(ws).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"))
}

/// Frames until (and with) the `joined` of `stream`.
pub async fn until_joined(ws: &mut Ws, stream: &str) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let frame = next_json(ws).await;
        let done = frame["type"] == "joined" && frame["stream"] == stream;
        got.push(frame);
        if done {
            return got;
        }
    }
}

pub fn datas(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .filter(|f| f["type"] == "publication")
        .map(|f| f["data"].as_str().expect("text data"))
        .collect()
}

pub fn at(frame: &Value) -> Value {
    json!({"epoch": frame["epoch"], "offset": frame["offset"]})
}

/// The shared Redis of this machine.
pub const REDIS: &str = "redis://127.0.0.1:6379/";

/// Whether tests that need Redis can run: `redis-server` installed and the shared one answering.
pub fn redis_here(what: &str) -> bool {
    let answers = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "ping"])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"PONG"));
    let why = "no redis-server answers on 127.0.0.1:6379 (apt-get install redis-server; redis-server --daemonize yes --port 6379 --save '' --appendonly no)";
    super::can_run(what, (!answers).then(|| why.to_owned()))
}

/// A key prefix no other test or run uses.
pub fn redis_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("wsgate-test:{test}:{}:{nanos}:", std::process::id())
}
