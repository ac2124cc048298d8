//! The gateway: binds its listeners, runs until the injected shutdown future completes, then
//! drains in order.
//!
//! Shutdown order: stop accepting; close every client with 1001 and let each connection task
//! deliver its ConnClose; then let every worker link write out its queue and close. The whole
//! drain is bounded by `drain_timeout`. Tests run the gateway in-process on `127.0.0.1:0` and
//! pass their own shutdown future.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsgate_proto::ConnIdGenerator;
use wsgate_proto::v1::{Draining, envelope::Body};

use crate::api::ApiContext;
use crate::auth::AuthHook;
use crate::auth::jwt::{JwtAlgorithm, JwtVerifier};
use crate::cidr::CidrList;
use crate::cluster::{self, ClusterSlot};
use crate::config::Config;
use crate::error::{ConfigError, GatewayError};
use crate::links::Links;
use crate::registry::{QueueLimit, Registry};
use crate::state::Indexes;
use crate::stats::Stats;
use crate::tls::TlsReloader;
use crate::{api, client, grpc, worker};

/// What every task of one gateway shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub ids: ConnIdGenerator,
    pub registry: Registry,
    pub indexes: Indexes,
    pub links: Links,
    pub jwt: Option<JwtVerifier>,
    pub hook: AuthHook,
    pub stats: Arc<Stats>,
    /// Seats for clients (`--max-connections`).
    pub limit: Arc<client::limit::ConnectionLimit>,
    /// Handshakes per client address (`--handshake-rate-per-ip`), unless 0.
    pub handshake_rate: Option<client::rate::HandshakeRate>,
    /// Addresses that limit does not apply to, and proxies whose forwarded address counts.
    pub rate_exempt: CidrList,
    pub trusted_proxies: CidrList,
    /// The text-heartbeat reply as a ready WebSocket frame, encoded once for every connection.
    pub heartbeat_reply: bytes::Bytes,
    /// Serving and not draining: what /readyz reports.
    pub ready: std::sync::atomic::AtomicBool,
    /// Shutdown has begun.
    pub draining: std::sync::atomic::AtomicBool,
}

/// A bound, not yet running gateway.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    cluster: (watch::Sender<Option<wsgate_business::Cluster>>, ClusterSlot),
    api: TcpListener,
    api_addr: SocketAddr,
    grpc: TcpListener,
    grpc_addr: SocketAddr,
    ws: TcpListener,
    ws_addr: SocketAddr,
    /// With --tls-cert: clients connect with wss://.
    ws_tls: Option<TlsReloader>,
    /// The CA the cluster client trusts on TLS worker links (--worker-tls).
    cluster_tls: Option<wsgate_business::TlsOptions>,
    worker: TcpListener,
    worker_addr: SocketAddr,
}

fn bind(
    addr: SocketAddr,
    backlog: u32,
    what: &'static str,
    flag: &'static str,
) -> Result<(TcpListener, SocketAddr), GatewayError> {
    let err = |source| GatewayError::Bind {
        what,
        addr,
        flag,
        source,
    };
    let listener = crate::listen::bind(addr, backlog).map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

/// The most clients this gateway holds: `--max-connections`, at most what the open-file limit
/// (raised to its hard limit here) leaves room for. Both are logged.
fn max_connections(config: &Config) -> usize {
    let Some(open_files) = crate::fd_limit::raise() else {
        return match config.max_connections {
            0 => usize::MAX,
            n => n,
        };
    };
    let ceiling = usize::try_from(crate::fd_limit::ceiling(open_files)).unwrap_or(usize::MAX);
    let max = match config.max_connections {
        0 => ceiling,
        n if n > ceiling => {
            tracing::warn!(
                max_connections = n,
                connection_ceiling = ceiling,
                "--max-connections is more than the open-file limit leaves room for; holding at most connection_ceiling clients: raise the hard limit (ulimit -Hn, LimitNOFILE=)"
            );
            ceiling
        }
        n => n,
    };
    tracing::info!(
        open_files,
        connection_ceiling = ceiling,
        max_connections = max,
        "open-file limit: at most max_connections clients at once, more get HTTP 503; raise the hard limit (ulimit -Hn, LimitNOFILE=) for more"
    );
    max
}

/// The JWT verifier the configuration asks for, if any.
fn jwt_verifier(config: &Config) -> Result<Option<JwtVerifier>, ConfigError> {
    if config.jwt_secret.is_none() && config.jwt_public_key.is_none() {
        if config.jwt_algorithm.is_some() {
            return Err(ConfigError::Invalid {
                key: "jwt-algorithm",
                reason: "is set but neither --jwt-secret nor --jwt-public-key is".into(),
            });
        }
        return Ok(None);
    }
    let algorithm = match &config.jwt_algorithm {
        Some(a) => Some(
            a.parse::<JwtAlgorithm>()
                .map_err(|e| ConfigError::Invalid {
                    key: "jwt-algorithm",
                    reason: e.to_string(),
                })?,
        ),
        None => None,
    };
    let pem = match &config.jwt_public_key {
        Some(path) => Some(std::fs::read(path).map_err(|e| ConfigError::Invalid {
            key: "jwt-public-key",
            reason: format!("cannot read {}: {e}", path.display()),
        })?),
        None => None,
    };
    let verifier = JwtVerifier::new(
        algorithm,
        config.jwt_secret.as_deref(),
        pem.as_deref(),
        config.jwt_leeway,
    )
    .map_err(|e| ConfigError::Jwt(e.to_string()))?;
    Ok(Some(verifier))
}

/// What the cluster client trusts on TLS worker links: --worker-tls-ca, else the --tls-cert
/// file (enough when that certificate is a CA itself, e.g. self-signed).
fn cluster_ca(config: &Config) -> Result<wsgate_business::TlsOptions, ConfigError> {
    let (path, key) = match (&config.worker_tls_ca, &config.tls_cert) {
        (Some(ca), _) => (ca, "worker-tls-ca"),
        (None, Some(cert)) => (cert, "tls-cert"),
        (None, None) => {
            return Err(ConfigError::Invalid {
                key: "worker-tls",
                reason: "needs --tls-cert and --tls-key".into(),
            });
        }
    };
    let pem = std::fs::read(path).map_err(|e| ConfigError::Invalid {
        key,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let options = wsgate_business::TlsOptions::new(pem);
    options.check().map_err(|e| ConfigError::Invalid {
        key,
        reason: format!(
            "{} cannot be the CA of TLS worker links: {e}",
            path.display()
        ),
    })?;
    Ok(options)
}

impl Gateway {
    /// Validates `config` and binds the client and worker listeners.
    pub async fn bind(mut config: Config) -> Result<Self, GatewayError> {
        config.validate()?;
        let max_connections = max_connections(&config);
        let ids = ConnIdGenerator::new(&config.node_id).map_err(ConfigError::from)?;
        let ws_tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                Some(TlsReloader::load(cert, key).map_err(ConfigError::from)?)
            }
            _ => None,
        };
        let cluster_tls = if config.worker_tls {
            Some(cluster_ca(&config)?)
        } else {
            None
        };
        let backlog = config.listen_backlog;
        crate::listen::report_backlog(backlog);
        let (ws, ws_addr) = bind(config.ws_addr, backlog, "client WebSockets", "--ws-addr")?;
        let (worker, worker_addr) =
            bind(config.worker_addr, backlog, "worker links", "--worker-addr")?;
        let (api, api_addr) = bind(config.api_addr, backlog, "the HTTP API", "--api-addr")?;
        let (grpc, grpc_addr) = bind(config.grpc_addr, backlog, "the gRPC API", "--grpc-addr")?;
        // From here on the configuration tells the real addresses (port 0 resolved), for
        // whatever advertises them (the console, logs).
        config.ws_addr = ws_addr;
        config.worker_addr = worker_addr;
        config.api_addr = api_addr;
        config.grpc_addr = grpc_addr;
        let jwt = jwt_verifier(&config)?;
        let stats = Arc::new(Stats::default());
        // Checked by validate(): both lists parse.
        let cidrs = |key: &'static str, list: &[String]| {
            CidrList::parse(list).map_err(|reason| ConfigError::Invalid { key, reason })
        };
        let rate_exempt = cidrs("handshake-rate-exempt", &config.handshake_rate_exempt)?;
        let trusted_proxies = cidrs("trusted-proxies", &config.trusted_proxies)?;
        let handshake_rate =
            client::rate::Rate::new(config.handshake_rate_per_ip, config.handshake_burst_per_ip)
                .map(client::rate::HandshakeRate::new);
        let queue_limit = QueueLimit {
            frames: config.send_queue,
            bytes: config.send_queue_bytes,
        };
        let shared = Arc::new(Shared {
            ids,
            registry: Registry::new(queue_limit, stats.clone()),
            indexes: Indexes::default(),
            links: Links::new(stats.clone()),
            jwt,
            hook: AuthHook::default(),
            stats,
            limit: client::limit::ConnectionLimit::new(max_connections),
            handshake_rate,
            rate_exempt,
            trusted_proxies,
            heartbeat_reply: client::frame::encode(
                client::frame::TEXT,
                config.heartbeat_reply.as_bytes(),
            ),
            ready: std::sync::atomic::AtomicBool::new(false),
            draining: std::sync::atomic::AtomicBool::new(false),
            config,
        });
        Ok(Self {
            cluster: cluster::slot(),
            api,
            api_addr,
            grpc,
            grpc_addr,
            shared,
            ws,
            ws_addr,
            ws_tls,
            cluster_tls,
            worker,
            worker_addr,
        })
    }

    /// The client listener's TLS configuration (with --tls-cert), to reload on SIGHUP.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.ws_tls.clone()
    }

    /// Where clients connect (the real port when bound to port 0).
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// Where business processes connect.
    pub fn worker_addr(&self) -> SocketAddr {
        self.worker_addr
    }

    pub fn node_id(&self) -> &str {
        &self.shared.config.node_id
    }

    /// The gateway's cluster client: connected to every peer (--peers/--peers-dns), or to this
    /// gateway alone. It connects once `run` serves; the APIs act through it.
    pub fn cluster(&self) -> ClusterSlot {
        self.cluster.1.clone()
    }

    /// Where the HTTP API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Where the gRPC API listens.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The gateway's counters; they stay readable after `run` returns.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// Serves until `shutdown` completes, then drains and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Gateway {
            shared,
            ws,
            ws_tls,
            cluster_tls,
            worker,
            cluster,
            api,
            grpc,
            ..
        } = self;
        let config = &shared.config;
        let api_tls = ws_tls.clone().filter(|_| config.api_tls);
        let worker_tls = ws_tls.clone().filter(|_| config.worker_tls);
        tracing::info!(
            node_id = %shared.config.node_id,
            clients = %format!(
                "{}://{}{}",
                if ws_tls.is_some() { "wss" } else { "ws" },
                self.ws_addr,
                shared.config.ws_path
            ),
            worker = %self.worker_addr,
            worker_tls = worker_tls.is_some(),
            api = %format!(
                "{}://{}/",
                if api_tls.is_some() { "https" } else { "http" },
                self.api_addr
            ),
            grpc = %self.grpc_addr,
            grpc_tls = api_tls.is_some(),
            "wsgate is up"
        );
        let stop_accept = CancellationToken::new();
        let close_clients = CancellationToken::new();
        let close_links = CancellationToken::new();
        let clients = TaskTracker::new();
        let links = TaskTracker::new();
        let accept_clients = tokio::spawn(client::accept::run(
            ws,
            ws_tls,
            shared.clone(),
            stop_accept.clone(),
            close_clients.clone(),
            clients.clone(),
        ));
        let accept_links = tokio::spawn(worker::accept::run(
            worker,
            worker_tls,
            shared.clone(),
            stop_accept.clone(),
            close_links.clone(),
            links.clone(),
        ));

        let stop_cluster = CancellationToken::new();
        let (cluster_tx, slot) = cluster;
        let cluster_task = tokio::spawn(cluster::run(
            shared.config.clone(),
            self.worker_addr,
            cluster_tls,
            cluster_tx,
            stop_cluster.clone(),
        ));
        let stop_apis = CancellationToken::new();
        let context = ApiContext {
            shared: shared.clone(),
            cluster: slot,
        };
        let apis = [
            tokio::spawn(api::serve(
                api,
                api_tls.clone(),
                context.clone(),
                stop_apis.clone(),
            )),
            tokio::spawn(grpc::serve(grpc, api_tls, context, stop_apis.clone())),
        ];
        shared
            .ready
            .store(true, std::sync::atomic::Ordering::Release);

        shutdown.await;
        // Load balancers see /readyz fail first; the APIs keep answering through the drain.
        shared
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        shared
            .ready
            .store(false, std::sync::atomic::Ordering::Release);
        let drain = shared.config.drain_timeout;
        tracing::info!(
            clients = shared.registry.len(),
            links = shared.links.len(),
            ?drain,
            "shutting down: closing clients, then worker links"
        );
        let deadline = Instant::now() + drain;
        stop_accept.cancel();
        let _ = accept_clients.await;
        let _ = accept_links.await;
        clients.close();
        links.close();

        // Business processes hear it first: the connections' closes follow.
        let (close_code, _) = shared.config.shutdown_close();
        let draining = Draining {
            close_code: u32::from(close_code),
            drain_timeout_ms: drain.as_millis().min(u128::from(u32::MAX)) as u32,
        };
        shared
            .links
            .notify_all(Body::Draining(draining), Duration::from_millis(500))
            .await;
        close_clients.cancel();
        if tokio::time::timeout_at(deadline, clients.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = shared.registry.len(),
                "drain timeout: some clients did not finish closing"
            );
        }
        close_links.cancel();
        // Links get what is left of the drain time, but always a moment to flush.
        let link_deadline = deadline.max(Instant::now() + Duration::from_millis(500));
        if tokio::time::timeout_at(link_deadline, links.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain timeout: some worker links did not finish writing");
        }
        stop_apis.cancel();
        for task in apis {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        stop_cluster.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), cluster_task).await;
        tracing::info!("wsgate stopped");
    }
}
