//! Every gateway setting in one struct, with its default, flag, environment variable and
//! config file key.
//!
//! `Config` is both the command line (clap derive) and the value the library runs with, so a
//! default is written once. Tests build one with `Config { ws_addr: ..., ..Config::default() }`.
//! The binary layers its sources with [`Config::load`] (see [`layers`]): built-in defaults <
//! config file (`--config`) < `WSGATE_*` environment < flags. `--print-config` shows the result
//! ([`render`]).

mod check;
pub(crate) mod frames;
pub mod layers;
pub(crate) mod render;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

pub use crate::client::rate::RateLimitAction;
pub use crate::connections::users::UserConnectionPolicy;
use crate::error::ConfigError;
pub use layers::{Loaded, Source};

/// wsgate: WebSocket gateway for business processes that speak the worker protocol.
#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "wsgate", version, about, long_about = None)]
pub struct Config {
    /// Address for client WebSocket connections.
    #[arg(long, env = "WSGATE_WS_ADDR", default_value = "0.0.0.0:8080")]
    pub ws_addr: SocketAddr,

    /// The only HTTP path that upgrades to a WebSocket; others get 404.
    #[arg(long, env = "WSGATE_WS_PATH", default_value = "/ws")]
    pub ws_path: String,

    /// PEM certificate chain (the server's certificate first): clients then connect with wss://.
    /// Needs --tls-key. Re-read on SIGHUP.
    #[arg(long, env = "WSGATE_TLS_CERT", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 RSA or SEC1 EC). Re-read on SIGHUP.
    #[arg(long, env = "WSGATE_TLS_KEY", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,

    /// Serve the HTTP API (https://) and the gRPC API over TLS with the --tls-cert certificate
    /// (ALPN http/1.1 and h2). Needs --tls-cert and --tls-key.
    #[arg(long, env = "WSGATE_API_TLS")]
    pub api_tls: bool,

    /// Serve worker links over TLS with the --tls-cert certificate: business processes (and
    /// the gateways' own cluster clients) then connect with TLS. Needs --tls-cert and --tls-key.
    #[arg(long, env = "WSGATE_WORKER_TLS")]
    pub worker_tls: bool,

    /// PEM CA certificate(s) this gateway's cluster client trusts when it connects to its own
    /// and its peers' worker listeners with --worker-tls [default: the --tls-cert file, which
    /// only works when that certificate is itself a CA, e.g. self-signed].
    #[arg(long, env = "WSGATE_WORKER_TLS_CA", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_tls_ca: Option<PathBuf>,

    /// Address for business processes' worker links.
    #[arg(long, env = "WSGATE_WORKER_ADDR", default_value = "127.0.0.1:8081")]
    pub worker_addr: SocketAddr,

    /// Address of the HTTP API, /metrics, /healthz, /readyz and the console page.
    #[arg(long, env = "WSGATE_API_ADDR", default_value = "127.0.0.1:8082")]
    pub api_addr: SocketAddr,

    /// Address of the gRPC API.
    #[arg(long, env = "WSGATE_GRPC_ADDR", default_value = "127.0.0.1:8083")]
    pub grpc_addr: SocketAddr,

    /// Without --api-key the HTTP API only answers requests whose Host is a loopback name or
    /// address, or one of these names (comma-separated, with or without port), and whose
    /// Origin, if any, is one too; others get 403. Against DNS rebinding and web pages.
    #[arg(
        long,
        env = "WSGATE_API_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    pub api_allowed_hosts: Vec<String>,

    /// API key for the HTTP and gRPC APIs (`Authorization: Bearer KEY`). Required when either
    /// API listens on a non-loopback address.
    #[arg(long, env = "WSGATE_API_KEY", hide_env_values = true)]
    #[serde(
        serialize_with = "render::redacted",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_key: Option<String>,

    /// Shared secret a business process must present in Register. Required when the worker
    /// address is not a loopback address.
    #[arg(long, env = "WSGATE_WORKER_TOKEN", hide_env_values = true)]
    #[serde(
        serialize_with = "render::redacted",
        skip_serializing_if = "Option::is_none"
    )]
    pub worker_token: Option<String>,

    /// This gateway's node id; every connection id starts with it. Must be unique in a cluster.
    #[arg(long, env = "WSGATE_NODE_ID", default_value_t = default_node_id())]
    pub node_id: String,

    /// Largest message a client may send, in bytes; larger ones close the client with 1009.
    #[arg(long, env = "WSGATE_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Most clients held at once; past it a handshake gets HTTP 503 with Retry-After. 0: as
    /// many as the open-file limit leaves room for (logged at start-up).
    #[arg(long, env = "WSGATE_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Messages queued per client before it is closed as a slow consumer (4001).
    #[arg(long, env = "WSGATE_SEND_QUEUE", default_value_t = 1024)]
    pub send_queue: usize,

    /// Bytes queued (and being written) per client before it is closed as a slow consumer
    /// (4001). A message larger than this is still sent when nothing else is pending for it.
    #[arg(long, env = "WSGATE_SEND_QUEUE_BYTES", default_value_t = 256 * 1024)]
    pub send_queue_bytes: usize,

    /// Messages per second one client may send on average (a token bucket); 0 turns the limit
    /// off. Past it the client is closed with 1008, or its messages dropped (see
    /// --client-rate-limit-action).
    #[arg(long, env = "WSGATE_CLIENT_MESSAGE_RATE", default_value_t = 500)]
    pub client_message_rate: u32,

    /// Messages one client may send at once above --client-message-rate (the bucket's size).
    #[arg(long, env = "WSGATE_CLIENT_MESSAGE_BURST", default_value_t = 1000)]
    pub client_message_burst: u32,

    /// What a client past --client-message-rate gets: close (1008, counted) or drop (its
    /// messages are dropped and counted until it slows down).
    #[arg(
        long,
        env = "WSGATE_CLIENT_RATE_LIMIT_ACTION",
        value_enum,
        default_value = "close"
    )]
    #[serde(serialize_with = "render::value_enum")]
    pub client_rate_limit_action: crate::client::rate::RateLimitAction,

    /// Most connections one user may have on this gateway at once; 0 turns the limit off.
    /// What happens past it: --user-connection-policy.
    #[arg(long, env = "WSGATE_MAX_CONNECTIONS_PER_USER", default_value_t = 100)]
    pub max_connections_per_user: usize,

    /// Past --max-connections-per-user: refuse-new (a handshake gets HTTP 429, BindUser
    /// LIMIT_EXCEEDED) or close-oldest (the user's oldest connection is closed with 4004).
    #[arg(
        long,
        env = "WSGATE_USER_CONNECTION_POLICY",
        value_enum,
        default_value = "refuse-new"
    )]
    #[serde(serialize_with = "render::value_enum")]
    pub user_connection_policy: crate::connections::users::UserConnectionPolicy,

    /// Handshakes per second one client address may start (a token bucket per IPv4 address
    /// or IPv6 /64); past it HTTP 429 with Retry-After. 0 turns the limit off.
    #[arg(long, env = "WSGATE_HANDSHAKE_RATE_PER_IP", default_value_t = 50)]
    pub handshake_rate_per_ip: u32,

    /// Handshakes one address may start at once above --handshake-rate-per-ip.
    #[arg(long, env = "WSGATE_HANDSHAKE_BURST_PER_IP", default_value_t = 100)]
    pub handshake_burst_per_ip: u32,

    /// Client addresses (CIDR or plain addresses, comma-separated) the per-address handshake
    /// limit does not apply to.
    #[arg(
        long,
        env = "WSGATE_HANDSHAKE_RATE_EXEMPT",
        value_delimiter = ',',
        value_name = "CIDR",
        default_values_t = [String::from("127.0.0.0/8"), String::from("::1/128")]
    )]
    pub handshake_rate_exempt: Vec<String>,

    /// Proxies (CIDR or addresses) whose X-Forwarded-For / X-Real-IP name the client: for a
    /// handshake from one of them, the per-address limit counts the address it forwards.
    #[arg(
        long,
        env = "WSGATE_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR",
        default_values_t = [String::from("127.0.0.0/8"), String::from("::1/128")]
    )]
    pub trusted_proxies: Vec<String>,

    /// Topics one connection may be in at once; a Subscribe past it gets LIMIT_EXCEEDED.
    #[arg(long, env = "WSGATE_MAX_TOPICS_PER_CONN", default_value_t = 1000)]
    pub max_topics_per_conn: usize,

    /// Most topics one command may name (Subscribe, Unsubscribe, Publish, DeleteTopics,
    /// QueryCounts); past it: LIMIT_EXCEEDED, nothing done.
    #[arg(long, env = "WSGATE_MAX_TOPICS_PER_COMMAND", default_value_t = 1000)]
    pub max_topics_per_command: usize,

    /// Most connection ids one command may name, exclude lists included; past it:
    /// LIMIT_EXCEEDED, nothing done.
    #[arg(
        long,
        env = "WSGATE_MAX_CONN_IDS_PER_COMMAND",
        default_value_t = 10_000
    )]
    pub max_conn_ids_per_command: usize,

    /// Most user ids one command may name; past it: LIMIT_EXCEEDED, nothing done.
    #[arg(
        long,
        env = "WSGATE_MAX_USER_IDS_PER_COMMAND",
        default_value_t = 10_000
    )]
    pub max_user_ids_per_command: usize,

    /// Connections each listener may have waiting to be accepted (the listen backlog). The
    /// kernel caps it at net.core.somaxconn; the start-up log says when it did.
    #[arg(long, env = "WSGATE_LISTEN_BACKLOG", default_value_t = 4096)]
    pub listen_backlog: u32,

    /// How often the gateway pings each client.
    #[arg(long, env = "WSGATE_CLIENT_PING_INTERVAL", default_value = "20s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub client_ping_interval: Duration,

    /// A client that sends nothing for this long is closed with 4000.
    #[arg(long, env = "WSGATE_CLIENT_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub client_idle_timeout: Duration,

    /// How long a closing client connection waits for the client's answer to its close frame
    /// (the WebSocket closing handshake) before the socket is dropped.
    #[arg(long, env = "WSGATE_CLIENT_CLOSE_LINGER", default_value = "2s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub client_close_linger: Duration,

    /// A client text message equal to this is a heartbeat: answered, never forwarded. Empty
    /// disables text heartbeats.
    #[arg(long, env = "WSGATE_HEARTBEAT_TEXT", default_value = "ping")]
    pub heartbeat_text: String,

    /// The gateway's answer to a text heartbeat.
    #[arg(long, env = "WSGATE_HEARTBEAT_REPLY", default_value = "pong")]
    pub heartbeat_reply: String,

    /// A request header to pass to business processes in ConnOpen (repeatable; case-insensitive).
    #[arg(
        long = "forward-header",
        env = "WSGATE_FORWARD_HEADERS",
        value_delimiter = ',',
        default_values_t = [String::from("origin"), String::from("user-agent")]
    )]
    pub forward_headers: Vec<String>,

    /// Origins whose pages may open client WebSockets (comma-separated or repeated):
    /// `https://app.example.com`, `https://*.example.com`, `app.example.com:8443` (any scheme),
    /// `null` or `*`. A handshake from another origin gets HTTP 403; requests without an
    /// Origin header (non-browser clients) are allowed. Empty: every origin.
    #[arg(
        long,
        env = "WSGATE_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<String>,

    /// How often the gateway pings each worker link.
    #[arg(long, env = "WSGATE_WORKER_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub worker_heartbeat_interval: Duration,

    /// A worker link silent for this long is closed.
    #[arg(long, env = "WSGATE_WORKER_HEARTBEAT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub worker_heartbeat_timeout: Duration,

    /// Largest worker-link frame accepted, in bytes.
    #[arg(long, env = "WSGATE_MAX_FRAME_BYTES", default_value_t = wsgate_proto::codec::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Bytes of events queued for one worker link before the clients whose events they are
    /// wait (their reads stop until the business process catches up).
    #[arg(long, env = "WSGATE_LINK_QUEUE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub link_queue_bytes: usize,

    /// On a worker link registered with acks: events written and not yet acknowledged at
    /// most; past it no more events go to that link until an Ack comes.
    #[arg(long, env = "WSGATE_WORKER_ACK_WINDOW", default_value_t = 4096)]
    pub worker_ack_window: usize,

    /// The same window in bytes (one event larger than what is left still goes).
    #[arg(long, env = "WSGATE_WORKER_ACK_WINDOW_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub worker_ack_window_bytes: usize,

    /// On a worker link registered with acks: nothing acknowledged for this long while an event
    /// waits (from the oldest event's writing or the last acknowledgement, whichever is later)
    /// marks the business process as stalled; the link is closed and its events go to another
    /// process.
    #[arg(long, env = "WSGATE_WORKER_ACK_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub worker_ack_timeout: Duration,

    /// When no business process is registered at all (the only one is restarting), how long a
    /// client event waits for one before it is dropped; the client's reads wait with it. 0:
    /// dropped at once (a gateway used only through the HTTP and gRPC APIs has none).
    #[arg(long, env = "WSGATE_NO_BUSINESS_WAIT", default_value = "0s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub no_business_wait: Duration,

    /// Command ids (`Envelope.command_id`, HTTP `Idempotency-Key`) this gateway remembers at
    /// most, so a retried command is carried out once; 0 turns command ids off.
    #[arg(long, env = "WSGATE_COMMAND_IDS", default_value_t = 100_000)]
    pub command_ids: usize,

    /// How long a command id is remembered after its command finished.
    #[arg(long, env = "WSGATE_COMMAND_ID_TTL", default_value = "10m", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub command_id_ttl: Duration,

    /// Topics and users whose messages get offsets and a history, so clients of the
    /// `wsgate.stream.v1` subprotocol recover what they missed across a reconnect (repeated,
    /// or comma-separated in the variable): `topics order:* history=100 age=10m`,
    /// `users * history=20 age=2m`, `topics progress:* cache`. The first rule that matches
    /// wins; none: no streams. See docs/streams.md.
    #[arg(
        long = "stream",
        env = "WSGATE_STREAM",
        value_delimiter = ',',
        value_name = "RULE",
        value_parser = parse_stream_rule
    )]
    #[serde(serialize_with = "render::displayed")]
    pub stream: Vec<crate::connections::streams::rules::Rule>,

    /// Streams this gateway holds at most; past it, a topic or user that would be a new stream
    /// is delivered live without history (a warning says so).
    #[arg(long, env = "WSGATE_MAX_STREAMS", default_value_t = 100_000)]
    pub max_streams: usize,

    /// Where streams keep their history: `memory` (in this gateway; lost when it restarts,
    /// clients are then told so) or `redis` (shared by the gateways of a cluster, so a client
    /// recovers on any of them; --stream-redis-url).
    #[arg(
        long,
        env = "WSGATE_STREAM_ENGINE",
        value_enum,
        default_value_t = crate::connections::streams::StreamEngine::Memory
    )]
    #[serde(serialize_with = "render::value_enum")]
    pub stream_engine: crate::connections::streams::StreamEngine,

    /// The Redis of `--stream-engine redis`: `redis://[:password@]host:port/db`.
    #[arg(
        long,
        env = "WSGATE_STREAM_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    #[serde(serialize_with = "render::url_without_password")]
    pub stream_redis_url: String,

    /// What the keys of `--stream-engine redis` start with (one prefix per service sharing a
    /// Redis).
    #[arg(long, env = "WSGATE_STREAM_REDIS_PREFIX", default_value = "wsgate:")]
    pub stream_redis_prefix: String,

    /// With `--stream-engine redis`, what a publication to a stream does while Redis cannot be
    /// reached: `fail` (refused with ERROR_CODE_UNAVAILABLE, HTTP 503: the publisher retries) or
    /// `live` (delivered live without offset or history).
    #[arg(
        long,
        env = "WSGATE_STREAM_REDIS_DOWN",
        value_enum,
        default_value_t = crate::connections::streams::redis::WhenDown::Fail
    )]
    #[serde(serialize_with = "render::value_enum")]
    pub stream_redis_down: crate::connections::streams::redis::WhenDown,

    /// How long a `wsgate.stream.v1` client has to acknowledge a message sent with client
    /// acknowledgements (`Envelope.client_ack`) before its receipt says UNACKED.
    #[arg(long, env = "WSGATE_CLIENT_ACK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub client_ack_timeout: Duration,

    /// Time a new worker link has to send Register.
    #[arg(long, env = "WSGATE_REGISTER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub register_timeout: Duration,

    /// Time a client has to complete the WebSocket handshake.
    #[arg(long, env = "WSGATE_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub handshake_timeout: Duration,

    /// HS256 secret for client JWTs; with it, every client needs a valid token.
    #[arg(
        long,
        env = "WSGATE_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key"
    )]
    #[serde(
        serialize_with = "render::redacted",
        skip_serializing_if = "Option::is_none"
    )]
    pub jwt_secret: Option<String>,

    /// PEM public key file (RS256 or ES256) for client JWTs; with it, every client needs a
    /// valid token.
    #[arg(long, env = "WSGATE_JWT_PUBLIC_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_public_key: Option<std::path::PathBuf>,

    /// JWT algorithm: HS256, RS256 or ES256 [default: inferred from the secret or key].
    #[arg(long, env = "WSGATE_JWT_ALGORITHM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_algorithm: Option<String>,

    /// Clock skew allowed when checking a JWT's exp and nbf.
    #[arg(long, env = "WSGATE_JWT_LEEWAY", default_value = "5s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub jwt_leeway: Duration,

    /// Ask a business process (one registered with authorize = true) about every handshake.
    #[arg(long, env = "WSGATE_AUTHORIZE_HOOK")]
    pub authorize_hook: bool,

    /// How long the authorize hook may take to answer.
    #[arg(long, env = "WSGATE_AUTHORIZE_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub authorize_timeout: Duration,

    /// What happens when the authorize hook gives no answer: deny (HTTP 503) or allow.
    #[arg(
        long,
        env = "WSGATE_AUTHORIZE_FALLBACK",
        value_enum,
        default_value = "deny"
    )]
    #[serde(serialize_with = "render::value_enum")]
    pub authorize_fallback: crate::auth::Fallback,

    /// Close connections with no user bound this long after opening (4002); 0 turns it off.
    #[arg(long, env = "WSGATE_GUEST_TIMEOUT", default_value = "0s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub guest_timeout: Duration,

    /// Worker addresses of every gateway of the cluster, this one included (comma-separated).
    /// Clients are closed with 1012 on shutdown so they reconnect to another gateway.
    #[arg(
        long,
        env = "WSGATE_PEERS",
        value_delimiter = ',',
        conflicts_with = "peers_dns"
    )]
    pub peers: Vec<String>,

    /// A DNS name (NAME:PORT) that resolves to every gateway's worker address, re-resolved
    /// (a Kubernetes headless Service works as is). Same effect as --peers.
    #[arg(long, env = "WSGATE_PEERS_DNS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers_dns: Option<String>,

    /// The DNS server to ask for --peers-dns (ip:port) instead of the system's resolver.
    #[arg(long, env = "WSGATE_PEERS_DNS_SERVER", requires = "peers_dns")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers_dns_server: Option<std::net::SocketAddr>,

    /// On shutdown, the longest wait for clients to close and their events to reach business
    /// processes.
    #[arg(long, env = "WSGATE_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "render::duration")]
    pub drain_timeout: Duration,

    /// Consumers of brokers (RabbitMQ, Redis, NATS, a PostgreSQL outbox) whose messages the
    /// gateway carries out as commands: the config file's `[[consumer]]` tables only (each is
    /// a table of settings, no flag could hold one). See docs/consumers.md.
    #[arg(skip)]
    #[serde(rename = "consumer", skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<crate::consumers::spec::Spec>,
}

impl Default for Config {
    /// The declared defaults, ignoring `WSGATE_*` variables (those are for the command line).
    /// Parsed once per process: building the command line parser is the costly part.
    fn default() -> Self {
        static DEFAULTS: std::sync::LazyLock<Config> = std::sync::LazyLock::new(|| {
            use clap::{CommandFactory, FromArgMatches};
            let command = Config::command().mut_args(|arg| arg.env(None));
            let parsed = command
                .try_get_matches_from(["wsgate"])
                .and_then(|m| Config::from_arg_matches(&m));
            // Only a default that does not parse could fail here: a bug caught by the unit
            // tests.
            parsed.unwrap_or_else(|e| panic!("wsgate's built-in defaults do not parse: {e}"))
        });
        DEFAULTS.clone()
    }
}

impl Config {
    /// The configuration from built-in defaults, the `--config` file, `WSGATE_*` variables and
    /// `args` (the command line, program name first), each overriding the one before.
    /// Not yet validated: [`crate::Gateway::bind`] does that.
    pub fn load<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString>,
    {
        Loaded::from_args(args).map(|loaded| loaded.config)
    }

    /// True when this gateway is one of several (peers configured).
    pub fn in_cluster(&self) -> bool {
        !self.peers.is_empty() || self.peers_dns.is_some()
    }

    /// The close code clients get on shutdown: 1012 (service restart) in a cluster, so they
    /// reconnect to another gateway, else 1001 (going away).
    pub fn shutdown_close(&self) -> (u16, &'static str) {
        if self.in_cluster() {
            (crate::close_code::SERVICE_RESTART, "gateway restarting")
        } else {
            (crate::close_code::GOING_AWAY, "gateway shutting down")
        }
    }
}

/// The machine's host name reduced to node-id characters, or "wsgate".
pub fn default_node_id() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let id: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(wsgate_proto::conn_id::MAX_NODE_ID_LEN)
        .collect();
    if id.is_empty() { "wsgate".into() } else { id }
}

/// Parses "250ms", "10s", "5m", "1h" or a bare number of seconds.
/// A `--stream` rule (see [`crate::connections::streams::rules`]).
fn parse_stream_rule(s: &str) -> Result<crate::connections::streams::rules::Rule, String> {
    s.parse()
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write it like 500ms, 10s, 5m or 1h"))?;
    let secs = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is longer than this gateway can count"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        _ => Err(format!("unknown unit {unit:?} in {s:?}; use ms, s, m or h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let c = Config::default();
        assert_eq!(c.ws_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.ws_path, "/ws");
        assert_eq!(c.worker_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(c.max_message_bytes, 1 << 20);
        assert_eq!(c.forward_headers, ["origin", "user-agent"]);
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn flags_override_defaults() {
        let parsed = Config::try_parse_from(["wsgate", "--send-queue", "7"]).expect("flags parse");
        assert_eq!(parsed.send_queue, 7);
        assert_eq!(Config::default().send_queue, 1024);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn token_required_off_loopback() {
        let mut c = Config {
            worker_addr: "0.0.0.0:9000".parse().expect("addr"),
            ..Config::default()
        };
        let err = c.validate().expect_err("token required");
        assert!(err.to_string().contains("--worker-token"), "{err}");
        c.worker_token = Some("s3cret".into());
        c.validate().expect("valid with a token");
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = Config {
            node_id: "bad/id".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            client_idle_timeout: Duration::from_secs(1),
            ..Config::default()
        };
        let err = c.validate().expect_err("idle <= ping");
        assert!(err.to_string().contains("client-idle-timeout"), "{err}");
        let c = Config {
            authorize_hook: true,
            authorize_timeout: Duration::from_secs(30),
            ..Config::default()
        };
        let err = c.validate().expect_err("hook slower than the handshake");
        assert!(err.to_string().contains("authorize-timeout"), "{err}");
    }
}
