//! The publishers: the side that sends broadcasts or topic publishes while the clients count
//! what arrives.
//!
//! Four ways in: wsgate's SDK (`Client::broadcast` / `publish` over the worker link), wsgate's
//! HTTP API (`POST /api/v1/broadcast`), wsgate's gRPC API (`PushApi/Broadcast`, `Publish`), and
//! the peers' `POST /broadcast` / `POST /publish?topic=`. Each publisher task owns one sender
//! (a clone of the SDK client, one keep-alive HTTP connection, or one HTTP/2 channel) with one
//! request in flight, and asks the shared [`Gate`] before every message, so `--in-flight` tasks
//! make `--in-flight` requests in flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;

use serde::Serialize;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use wsgate_business::{Client, Payload};
use wsgate_proto::v1::{self, push_api_client::PushApiClient};

use crate::gate::Gate;
use crate::http::HttpClient;
use crate::recorder::{Percentiles, new_histogram};
use crate::stamp;

/// A publisher that failed this often stops: the target is gone or refuses.
const MAX_ERRORS: u64 = 100;

/// How messages reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Route {
    /// wsgate's Rust SDK over the worker link.
    #[serde(rename = "sdk")]
    Sdk,
    /// The same, every cast asking for its receipts (each connection's written / gone /
    /// dropped), sent later as `Receipts` frames so the publishers' pace is the SDK route's:
    /// what knowing the outcome per connection costs the gateway.
    #[serde(rename = "sdk-receipts")]
    SdkReceipts,
    /// The SDK without command ids (`retries(false)`): what the at-least-once machinery of
    /// the SDK route costs.
    #[serde(rename = "sdk-no-ids")]
    SdkNoIds,
    /// wsgate's HTTP API.
    #[serde(rename = "http-api")]
    WsgateHttp,
    /// wsgate's gRPC API.
    #[serde(rename = "grpc")]
    WsgateGrpc,
    /// A peer's own HTTP endpoint.
    #[serde(rename = "http")]
    PeerHttp,
}

impl Route {
    /// How tables and checks name the route.
    pub fn title(self) -> &'static str {
        match self {
            Route::Sdk => "SDK",
            Route::SdkReceipts => "SDK, receipts later",
            Route::SdkNoIds => "SDK, no command ids",
            Route::WsgateHttp => "HTTP API",
            Route::WsgateGrpc => "gRPC API",
            Route::PeerHttp => "HTTP",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Route::Sdk => "sdk",
            Route::SdkReceipts => "sdk-receipts",
            Route::SdkNoIds => "sdk-no-ids",
            Route::WsgateHttp => "http-api",
            Route::WsgateGrpc => "grpc",
            Route::PeerHttp => "http",
        }
    }
}

/// What each message is.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// To every client.
    Broadcast,
    /// To one random topic `t0` .. `t{topics-1}`.
    Publish { topics: usize },
    /// To this one topic (every client is in it: a broadcast through a topic, which is what
    /// a stream is).
    PublishTo(&'static str),
}

impl Action {
    /// The topic a publish goes to this time; `None` for a broadcast.
    fn topic(self) -> Option<String> {
        match self {
            Action::Broadcast => None,
            Action::Publish { topics } => Some(topic(topics)),
            Action::PublishTo(name) => Some(name.to_owned()),
        }
    }
}

/// One publisher task's way to the target.
#[derive(Debug)]
pub enum Sender {
    Sdk(Client),
    Http { client: HttpClient, route: Route },
    Grpc(PushApiClient<Channel>),
}

/// Where a target takes publishes.
#[derive(Debug, Clone, Copy)]
pub struct Doors<'a> {
    pub sdk: Option<&'a Client>,
    pub http: SocketAddr,
    pub grpc: Option<SocketAddr>,
}

impl Sender {
    /// `n` senders for `route`: SDK clones, fresh HTTP connections, or fresh gRPC channels
    /// (each its own HTTP/2 connection, driven on `runtime`, connected on first use).
    pub fn many(
        route: Route,
        n: usize,
        doors: Doors<'_>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Vec<Sender>, String> {
        (0..n)
            .map(|_| match (route, doors.sdk, doors.grpc) {
                (Route::Sdk | Route::SdkNoIds, Some(client), _) => Ok(Sender::Sdk(client.clone())),
                (Route::SdkReceipts, Some(client), _) => {
                    Ok(Sender::Sdk(client.with_receipts_later()))
                }
                (Route::Sdk | Route::SdkReceipts | Route::SdkNoIds, None, _) => {
                    Err("the SDK route needs a registered client".into())
                }
                (Route::WsgateGrpc, _, Some(addr)) => {
                    let _on = runtime.enter();
                    let channel = Channel::from_shared(format!("http://{addr}"))
                        .map_err(|e| format!("gRPC address {addr}: {e}"))?
                        .connect_lazy();
                    Ok(Sender::Grpc(PushApiClient::new(channel)))
                }
                (Route::WsgateGrpc, _, None) => {
                    Err("the gRPC route needs the target's gRPC address".into())
                }
                (Route::WsgateHttp | Route::PeerHttp, _, _) => Ok(Sender::Http {
                    client: HttpClient::new(doors.http),
                    route,
                }),
            })
            .collect()
    }

    /// Sends one message; the target's count of recipients.
    async fn send(&mut self, action: Action, message: String) -> Result<u64, String> {
        match (self, action.topic()) {
            (Sender::Sdk(client), None) => client
                .broadcast(Payload::text(message), [])
                .await
                .map(|r| u64::from(r.delivered))
                .map_err(|e| format!("SDK broadcast failed: {e}")),
            (Sender::Sdk(client), Some(topic)) => client
                .publish([topic], Payload::text(message), [])
                .await
                .map(|r| u64::from(r.delivered))
                .map_err(|e| format!("SDK publish failed: {e}")),
            (Sender::Grpc(api), None) => api
                .broadcast(v1::Broadcast {
                    payload: Some(text(message)),
                    exclude: Vec::new(),
                })
                .await
                .map(|r| u64::from(r.into_inner().delivered))
                .map_err(|e| format!("gRPC Broadcast failed: {e}")),
            (Sender::Grpc(api), Some(topic)) => api
                .publish(v1::Publish {
                    topics: vec![topic],
                    payload: Some(text(message)),
                    exclude_conn_ids: Vec::new(),
                })
                .await
                .map(|r| u64::from(r.into_inner().delivered))
                .map_err(|e| format!("gRPC Publish failed: {e}")),
            (Sender::Http { client, route }, topic) => {
                let (path, content_type, body, field) = match (*route, topic) {
                    (Route::WsgateHttp, None) => (
                        "/api/v1/broadcast".to_owned(),
                        "application/json",
                        serde_json::json!({ "text": message }).to_string(),
                        "delivered",
                    ),
                    (Route::WsgateHttp, Some(topic)) => (
                        "/api/v1/topics/publish".to_owned(),
                        "application/json",
                        serde_json::json!({ "topics": [topic], "text": message }).to_string(),
                        "delivered",
                    ),
                    (_, None) => ("/broadcast".to_owned(), "text/plain", message, "recipients"),
                    (_, Some(topic)) => (
                        format!("/publish?topic={topic}"),
                        "text/plain",
                        message,
                        "recipients",
                    ),
                };
                let r = client
                    .post(&path, content_type, body.as_bytes())
                    .await
                    .map_err(|e| format!("POST {path} failed: {e}"))?;
                if r.status != 200 {
                    return Err(format!("POST {path} answered {}: {}", r.status, r.text()));
                }
                let value: serde_json::Value = serde_json::from_slice(&r.body)
                    .map_err(|e| format!("POST {path} did not answer JSON ({e}): {}", r.text()))?;
                Ok(value
                    .get(field)
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0))
            }
        }
    }
}

/// A text payload, as the gRPC API takes it.
fn text(message: String) -> v1::Payload {
    v1::Payload {
        data: message.into(),
        kind: v1::PayloadKind::Text as i32,
    }
}

/// A random topic name of `topics`.
fn topic(topics: usize) -> String {
    format!("t{}", rand::random_range(0..topics.max(1)))
}

/// What the publishers achieved.
#[derive(Debug)]
pub struct PublishStats {
    ok: AtomicU64,
    errors: AtomicU64,
    /// Recipients the target reported, summed.
    reported: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Round trips of successful publishes (µs), while `measuring`.
    round_trips: Mutex<Histogram<u64>>,
    measuring: AtomicBool,
}

impl Default for PublishStats {
    fn default() -> Self {
        Self {
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            first_error: Mutex::new(None),
            round_trips: Mutex::new(new_histogram()),
            measuring: AtomicBool::new(false),
        }
    }
}

impl PublishStats {
    /// Round trips are recorded only while on (the measured part of a phase).
    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Ordering::Relaxed);
    }

    /// The publish round trips recorded.
    pub fn round_trips(&self) -> Percentiles {
        Percentiles::of(
            &self
                .round_trips
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn round_trip(&self, since: Instant) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut h = self
            .round_trips
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        h.saturating_record(micros.max(1));
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
    pub fn reported(&self) -> u64 {
        self.reported.load(Ordering::Relaxed)
    }
    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Starts one publisher task per sender on `runtime`; they run until the gate stops.
pub fn spawn(
    runtime: &tokio::runtime::Handle,
    senders: Vec<Sender>,
    action: Action,
    gate: Arc<Gate>,
    stats: Arc<PublishStats>,
) -> Vec<JoinHandle<()>> {
    senders
        .into_iter()
        .map(|mut sender| {
            let (gate, stats) = (gate.clone(), stats.clone());
            runtime.spawn(async move {
                while let Some(seq) = gate.next().await {
                    let sent = Instant::now();
                    match sender.send(action, stamp::message(seq)).await {
                        Ok(n) => {
                            stats.round_trip(sent);
                            stats.ok.fetch_add(1, Ordering::Relaxed);
                            stats.reported.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            let errors = stats.errors.fetch_add(1, Ordering::Relaxed) + 1;
                            stats
                                .first_error
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .get_or_insert(e);
                            if errors >= MAX_ERRORS {
                                gate.stop();
                            }
                        }
                    }
                }
            })
        })
        .collect()
}
