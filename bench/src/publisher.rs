//! The publishers: the side that sends broadcasts or topic publishes while the clients count
//! what arrives.
//!
//! Six ways in: wsgate's SDK (`Client::broadcast` / `publish` over the worker link), wsgate's
//! HTTP API (`POST /api/v1/broadcast`), wsgate's gRPC API (`PushApi/Broadcast`, `Publish`), the
//! peers' `POST /broadcast` / `POST /publish?topic=`, and two brokers that a wsgate consumer
//! reads (the consumers scenario): a RabbitMQ queue (`basic.publish` through the default
//! exchange, each message confirmed by the broker) and a Redis list (`LPUSH`), each message a
//! JSON command in the HTTP API's shape. Each publisher task owns one sender (a clone of the
//! SDK client, one keep-alive HTTP connection, one HTTP/2 channel, one AMQP connection or one
//! Redis connection) with one request in flight, and asks the shared [`Gate`] before every
//! message, so `--in-flight` tasks make `--in-flight` requests in flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use serde::Serialize;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use wsgate_business::{Client, Payload};
use wsgate_proto::v1::{self, push_api_client::PushApiClient};

use crate::gate::Gate;
use crate::http::HttpClient;
use crate::recorder::{Percentiles, new_histogram};
use crate::resp;
use crate::stamp;

/// A publisher that failed this often stops: the target is gone or refuses.
const MAX_ERRORS: u64 = 100;
/// How long connecting to a broker may take.
const BROKER_CONNECT: Duration = Duration::from_secs(5);

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
    /// A RabbitMQ queue that wsgate's `rabbitmq` consumer reads.
    #[serde(rename = "rabbitmq")]
    Rabbitmq,
    /// A Redis list that wsgate's `redis-list` consumer reads.
    #[serde(rename = "redis-list")]
    RedisList,
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
            Route::Rabbitmq => "RabbitMQ queue",
            Route::RedisList => "Redis list",
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
            Route::Rabbitmq => "rabbitmq",
            Route::RedisList => "redis-list",
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

/// A broker that a consumer of the target reads: where the broker routes write.
#[derive(Debug, Clone)]
pub enum Broker {
    /// A RabbitMQ queue, reached through the default exchange (routing key = queue name).
    Rabbitmq { url: String, queue: String },
    /// A Redis list that producers `LPUSH` into.
    RedisList { url: String, key: String },
}

/// One publisher task's way to the target.
#[derive(Debug)]
pub enum Sender {
    Sdk(Client),
    Http {
        client: HttpClient,
        route: Route,
    },
    Grpc(PushApiClient<Channel>),
    /// Connected on first use; again after a failure.
    Rabbitmq {
        url: String,
        queue: String,
        link: Option<Box<(lapin::Connection, lapin::Channel)>>,
    },
    /// Connected on first use; again after a failure.
    RedisList {
        url: String,
        key: String,
        redis: Option<resp::Redis>,
    },
}

/// Where a target takes publishes.
#[derive(Debug, Clone, Copy)]
pub struct Doors<'a> {
    pub sdk: Option<&'a Client>,
    pub http: SocketAddr,
    pub grpc: Option<SocketAddr>,
    /// The broker of the broker routes.
    pub broker: Option<&'a Broker>,
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
                (Route::Rabbitmq, _, _) => match doors.broker {
                    Some(Broker::Rabbitmq { url, queue }) => Ok(Sender::Rabbitmq {
                        url: url.clone(),
                        queue: queue.clone(),
                        link: None,
                    }),
                    _ => Err("the RabbitMQ route needs a RabbitMQ queue".into()),
                },
                (Route::RedisList, _, _) => match doors.broker {
                    Some(Broker::RedisList { url, key }) => Ok(Sender::RedisList {
                        url: url.clone(),
                        key: key.clone(),
                        redis: None,
                    }),
                    _ => Err("the Redis list route needs a Redis list".into()),
                },
            })
            .collect()
    }

    /// Closes what has to be closed politely (an AMQP connection); the rest closes on drop.
    async fn close(self) {
        if let Sender::Rabbitmq {
            link: Some(link), ..
        } = self
        {
            let _ = link.0.close(200, "done".into()).await;
        }
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
            // The brokers do not know the recipients: 0.
            (Sender::Rabbitmq { url, queue, link }, topic) => {
                let body = command(topic, message);
                let sent = rabbitmq_publish(url, queue, link, body.as_bytes()).await;
                if sent.is_err() {
                    // A fresh connection for the next message.
                    *link = None;
                }
                sent.map(|()| 0)
            }
            (Sender::RedisList { url, key, redis }, topic) => {
                let body = command(topic, message);
                let sent = redis_push(url, key, redis, &body).await;
                if sent.is_err() {
                    *redis = None;
                }
                sent.map(|()| 0)
            }
        }
    }
}

/// A message as a consumer reads it: a JSON command in the HTTP API's shape, without an id
/// (as a producer writes it that does not ask for deduplication).
pub fn command(topic: Option<String>, message: String) -> String {
    match topic {
        None => serde_json::json!({ "method": "broadcast", "params": { "text": message } }),
        Some(topic) => serde_json::json!({
            "method": "topics/publish",
            "params": { "topics": [topic], "text": message }
        }),
    }
    .to_string()
}

/// Connects to a RabbitMQ, as the broker routes and the consumers scenario's clean-up do.
pub async fn rabbitmq_connect(url: &str) -> Result<lapin::Connection, String> {
    let props =
        lapin::ConnectionProperties::default().with_connection_name("wsgate-bench producer".into());
    tokio::time::timeout(BROKER_CONNECT, lapin::Connection::connect(url, props))
        .await
        .map_err(|_| format!("no answer from RabbitMQ within {BROKER_CONNECT:?}"))?
        .map_err(|e| format!("cannot connect to RabbitMQ: {e}"))
}

/// Publishes `body` to `queue` through the default exchange and waits for the broker's
/// confirmation (the channel is in confirm mode), connecting first when `link` is empty.
async fn rabbitmq_publish(
    url: &str,
    queue: &str,
    link: &mut Option<Box<(lapin::Connection, lapin::Channel)>>,
    body: &[u8],
) -> Result<(), String> {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    if link.is_none() {
        let conn = rabbitmq_connect(url).await?;
        let channel = conn
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a RabbitMQ channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("confirm.select failed: {e}"))?;
        *link = Some(Box::new((conn, channel)));
    }
    let Some((_, channel)) = link.as_deref() else {
        return Err("no RabbitMQ channel".into());
    };
    let confirmation = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            lapin::BasicProperties::default(),
        )
        .await
        .map_err(|e| format!("basic.publish to {queue} failed: {e}"))?
        .await
        .map_err(|e| format!("RabbitMQ did not confirm a message to {queue}: {e}"))?;
    if confirmation.is_nack() {
        return Err(format!("RabbitMQ refused (nack) a message to {queue}"));
    }
    Ok(())
}

/// `LPUSH key body`, connecting first when `redis` is empty.
async fn redis_push(
    url: &str,
    key: &str,
    redis: &mut Option<resp::Redis>,
    body: &str,
) -> Result<(), String> {
    if redis.is_none() {
        *redis = Some(resp::Redis::connect(url).await?);
    }
    let Some(conn) = redis.as_mut() else {
        return Err("no Redis connection".into());
    };
    match conn.command(&["LPUSH", key, body]).await? {
        resp::Value::Int(_) => Ok(()),
        other => Err(format!("Redis answered LPUSH {key} with {other:?}")),
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
                sender.close().await;
            })
        })
        .collect()
}
