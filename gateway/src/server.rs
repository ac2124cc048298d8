//! The gateway: binds its listeners, builds its parts, serves until the injected shutdown future
//! completes, then drains in order ([`drain`]).
//!
//! Each part has one owner and goes only where it is used: the settings, the connections
//! ([`Connections`]), the links to business processes ([`Links`]) and the authorize hook, the
//! counters ([`Stats`]) and the lifecycle flags. The client side, the worker side and the APIs
//! each get a context of their own holding what they use. Tests run the gateway in-process on
//! `127.0.0.1:0` and pass their own shutdown future.

mod drain;
mod setup;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use wsgate_proto::ConnIdGenerator;

use crate::api::context::ApiContext;
use crate::auth::AuthHook;
use crate::cidr::CidrList;
use crate::cluster::{self, ClusterSlot};
use crate::config::Config;
use crate::connections::Connections;
use crate::connections::registry::QueueLimit;
use crate::connections::streams::StreamEngine;
use crate::connections::streams::redis::RedisEngine;
use crate::error::{ConfigError, GatewayError};
use crate::lifecycle::Lifecycle;
use crate::links::Links;
use crate::stats::Stats;
use crate::tls::TlsReloader;
use crate::worker::command_ids::{self, CommandIds, Window};
use crate::worker::in_process::InProcessGateway;
use crate::{api, client, grpc, worker};

/// The parts of one gateway, each built once.
#[derive(Debug)]
struct Parts {
    config: Arc<Config>,
    conns: Arc<Connections>,
    links: Arc<Links>,
    stats: Arc<Stats>,
    lifecycle: Arc<Lifecycle>,
    client: Arc<client::context::Context>,
    worker: Arc<worker::context::Context>,
}

/// The listeners, bound.
#[derive(Debug)]
struct Listeners {
    ws: TcpListener,
    ws_addr: SocketAddr,
    worker: TcpListener,
    worker_addr: SocketAddr,
    api: TcpListener,
    api_addr: SocketAddr,
    grpc: TcpListener,
    grpc_addr: SocketAddr,
}

/// A bound, not yet running gateway.
#[derive(Debug)]
pub struct Gateway {
    parts: Parts,
    listeners: Listeners,
    cluster: (watch::Sender<Option<wsgate_business::Cluster>>, ClusterSlot),
    /// With --tls-cert: clients connect with wss://.
    ws_tls: Option<TlsReloader>,
    /// The CA the cluster client trusts on TLS worker links (--worker-tls).
    cluster_tls: Option<wsgate_business::TlsOptions>,
}

impl Gateway {
    /// Validates `config` and binds the client and worker listeners.
    pub async fn bind(mut config: Config) -> Result<Self, GatewayError> {
        config.validate()?;
        let max_connections = setup::max_connections(&config);
        let ids = ConnIdGenerator::new(&config.node_id).map_err(ConfigError::from)?;
        let ws_tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                Some(TlsReloader::load(cert, key).map_err(ConfigError::from)?)
            }
            _ => None,
        };
        let cluster_tls = if config.worker_tls {
            Some(setup::cluster_ca(&config)?)
        } else {
            None
        };
        let listeners = Listeners::bind(&config)?;
        // From here on the configuration tells the real addresses (port 0 resolved), for
        // whatever advertises them (the console, logs).
        config.ws_addr = listeners.ws_addr;
        config.worker_addr = listeners.worker_addr;
        config.api_addr = listeners.api_addr;
        config.grpc_addr = listeners.grpc_addr;
        let parts = Parts::build(config, ids, max_connections)?;
        Ok(Self {
            parts,
            listeners,
            cluster: cluster::slot(),
            ws_tls,
            cluster_tls,
        })
    }

    /// The client listener's TLS configuration (with --tls-cert), to reload on SIGHUP.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.ws_tls.clone()
    }

    /// Where clients connect (the real port when bound to port 0).
    pub fn ws_addr(&self) -> SocketAddr {
        self.listeners.ws_addr
    }

    /// Where business processes connect.
    pub fn worker_addr(&self) -> SocketAddr {
        self.listeners.worker_addr
    }

    pub fn node_id(&self) -> &str {
        &self.parts.config.node_id
    }

    /// The gateway's cluster client: connected to every peer (--peers/--peers-dns), or to this
    /// gateway alone. It connects once `run` serves; the APIs act through it.
    pub fn cluster(&self) -> ClusterSlot {
        self.cluster.1.clone()
    }

    /// Where the HTTP API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.listeners.api_addr
    }

    /// Where the gRPC API listens.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.listeners.grpc_addr
    }

    /// The gateway's counters; they stay readable after `run` returns.
    pub fn stats(&self) -> Arc<Stats> {
        self.parts.stats.clone()
    }

    /// Serves until `shutdown` completes, then drains and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (parts, running) = self.start();
        parts.lifecycle.serve();
        shutdown.await;
        drain::run(
            &parts.config,
            &parts.conns,
            &parts.links,
            &parts.lifecycle,
            running,
        )
        .await;
    }

    /// Spawns the tasks of a serving gateway: the client and worker accept loops, the
    /// cluster client and the APIs, each with what it uses and the signal that stops it.
    fn start(self) -> (Parts, drain::Running) {
        let Gateway {
            parts,
            listeners,
            cluster: (cluster_tx, slot),
            ws_tls,
            cluster_tls,
        } = self;
        let config = parts.config.clone();
        let api_tls = ws_tls.clone().filter(|_| config.api_tls);
        let worker_tls = ws_tls.clone().filter(|_| config.worker_tls);
        listeners.announce(
            &config,
            ws_tls.is_some(),
            worker_tls.is_some(),
            api_tls.is_some(),
        );
        let Listeners {
            ws,
            worker,
            worker_addr,
            api,
            grpc,
            ..
        } = listeners;

        let mut running = drain::Running::default();
        running.accept.push(tokio::spawn(client::accept::run(
            ws,
            ws_tls,
            parts.client.clone(),
            running.stop_accept.clone(),
            running.close_clients.clone(),
            running.clients.clone(),
        )));
        running.accept.push(tokio::spawn(worker::accept::run(
            worker,
            worker_tls,
            parts.worker.clone(),
            running.stop_accept.clone(),
            running.close_links.clone(),
            running.links.clone(),
        )));
        let own = Arc::new(InProcessGateway::new(
            config.node_id.clone(),
            parts.conns.clone(),
            parts.worker.limits,
            parts.worker.command_ids.clone(),
            parts.stats.clone(),
        ));
        running.cluster = Some(tokio::spawn(cluster::run(
            (*config).clone(),
            worker_addr,
            own,
            cluster_tls,
            cluster_tx,
            running.stop_cluster.clone(),
        )));
        // Consumers stop taking messages when the listeners stop accepting: the drain's first
        // step, so nothing they took is cut off by the clients' closing.
        running.consumers = crate::consumers::start(
            &config.consumers,
            &crate::consumers::ConsumerContext {
                cluster: slot.clone(),
                node_id: config.node_id.clone(),
                stats: parts.stats.clone(),
            },
            &running.stop_accept,
        );
        let context = ApiContext {
            config,
            conns: parts.conns.clone(),
            stats: parts.stats.clone(),
            lifecycle: parts.lifecycle.clone(),
            cluster: slot,
        };
        running.apis.extend([
            tokio::spawn(api::serve(
                api,
                api_tls.clone(),
                context.clone(),
                running.stop_apis.clone(),
            )),
            tokio::spawn(grpc::serve(
                grpc,
                api_tls,
                context,
                running.stop_apis.clone(),
            )),
        ]);
        (parts, running)
    }
}

impl Listeners {
    fn bind(config: &Config) -> Result<Self, GatewayError> {
        let backlog = config.listen_backlog;
        crate::listen::report_backlog(backlog);
        let (ws, ws_addr) = setup::bind(config.ws_addr, backlog, "client WebSockets", "--ws-addr")?;
        let (worker, worker_addr) =
            setup::bind(config.worker_addr, backlog, "worker links", "--worker-addr")?;
        let (api, api_addr) = setup::bind(config.api_addr, backlog, "the HTTP API", "--api-addr")?;
        let (grpc, grpc_addr) =
            setup::bind(config.grpc_addr, backlog, "the gRPC API", "--grpc-addr")?;
        Ok(Self {
            ws,
            ws_addr,
            worker,
            worker_addr,
            api,
            api_addr,
            grpc,
            grpc_addr,
        })
    }

    /// The start-up line: where each listener is and which speak TLS.
    fn announce(&self, config: &Config, ws_tls: bool, worker_tls: bool, api_tls: bool) {
        tracing::info!(
            node_id = %config.node_id,
            clients = %format!(
                "{}://{}{}",
                if ws_tls { "wss" } else { "ws" },
                self.ws_addr,
                config.ws_path
            ),
            worker = %self.worker_addr,
            worker_tls,
            api = %format!("{}://{}/", if api_tls { "https" } else { "http" }, self.api_addr),
            grpc = %self.grpc_addr,
            grpc_tls = api_tls,
            "wsgate is up"
        );
    }
}

impl Parts {
    fn build(
        config: Config,
        ids: ConnIdGenerator,
        max_connections: usize,
    ) -> Result<Self, GatewayError> {
        let jwt = setup::jwt_verifier(&config)?;
        // Checked by validate(): both lists parse.
        let cidrs = |key: &'static str, list: &[String]| {
            CidrList::parse(list).map_err(|reason| ConfigError::Invalid { key, reason })
        };
        let rate_exempt = cidrs("handshake-rate-exempt", &config.handshake_rate_exempt)?;
        let trusted_proxies = cidrs("trusted-proxies", &config.trusted_proxies)?;
        let handshake_rate =
            client::rate::Rate::new(config.handshake_rate_per_ip, config.handshake_burst_per_ip)
                .map(client::rate::HandshakeRate::new);
        let queue = QueueLimit {
            frames: config.send_queue,
            bytes: config.send_queue_bytes,
        };
        let stats = Arc::new(Stats::default());
        let redis = match config.stream_engine {
            StreamEngine::Memory => None,
            StreamEngine::Redis => Some(
                RedisEngine::new(
                    &config.stream_redis_url,
                    config.stream_redis_prefix.clone(),
                    config.stream_redis_down,
                    stats.clone(),
                )
                .map_err(|reason| ConfigError::Invalid {
                    key: "stream-redis-url",
                    reason,
                })?,
            ),
        };
        let conns = Arc::new(
            Connections::new(ids, queue, max_connections, stats.clone()).with_streams(
                config.stream.clone(),
                config.max_streams,
                redis,
            ),
        );
        let links = Arc::new(Links::new(stats.clone(), config.no_business_wait));
        let hook = Arc::new(AuthHook::default());
        let heartbeat_reply = crate::websocket::frame::encode(
            crate::websocket::frame::TEXT,
            config.heartbeat_reply.as_bytes(),
        );
        let limits = worker::limits::Limits::of(&config);
        let command_ids = Arc::new(CommandIds::new(
            Window {
                count: config.command_ids,
                ttl: config.command_id_ttl,
                bytes: command_ids::WINDOW_BYTES,
            },
            stats.clone(),
        ));
        let config = Arc::new(config);
        let client = Arc::new(client::context::Context {
            config: config.clone(),
            conns: conns.clone(),
            links: links.clone(),
            hook: hook.clone(),
            stats: stats.clone(),
            jwt,
            handshake_rate,
            rate_exempt,
            trusted_proxies,
            heartbeat_reply,
        });
        let worker = Arc::new(worker::context::Context {
            config: config.clone(),
            conns: conns.clone(),
            links: links.clone(),
            hook,
            stats: stats.clone(),
            limits,
            command_ids,
        });
        Ok(Self {
            config,
            conns,
            links,
            stats,
            lifecycle: Arc::new(Lifecycle::default()),
            client,
            worker,
        })
    }
}
