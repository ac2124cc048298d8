//! Plumbing shared by the example business processes, so each binary shows only its own
//! logic: the common command line (`--gateway`, `--token`, `--name`), the run loop
//! ([`LinkArgs::serve`]: connect, events one at a time, Ctrl-C), logging via `RUST_LOG`, and
//! turning the run's result into an exit code.
//!
//! The examples use the SDK's cluster client, so one process serves one gateway or several
//! (`--gateway a:8081,b:8081`): a chat message reaches clients on every gateway.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use wsgate_business::{
    Cluster, ClusterBuilder, ClusterEvent, ClusterEvents, Error, Event, StaticDiscovery,
};

/// How to reach the gateway.
#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// The worker listener of every gateway, host:port (comma-separated or repeated).
    #[arg(
        long,
        env = "WSGATE_GATEWAYS",
        value_delimiter = ',',
        default_value = "127.0.0.1:8081"
    )]
    pub gateway: Vec<String>,
    /// The gateway's worker token (empty when the gateway has none).
    #[arg(
        long,
        env = "WSGATE_WORKER_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub token: String,
    /// The name this process registers with, shown in the gateway's logs [default: the
    /// example's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Acknowledge events (at least once): what this process was given and had not taken when
    /// it died or hung goes to another process of the same role, marked redelivered.
    #[arg(long, env = "WSGATE_ACKS")]
    pub acks: bool,
}

impl LinkArgs {
    /// A cluster builder for these arguments.
    pub fn builder(&self, default_name: &str) -> ClusterBuilder {
        Cluster::builder(StaticDiscovery::new(self.gateway.clone()))
            .name(self.name.as_deref().unwrap_or(default_name))
            .token(self.token.as_str())
            .acks(self.acks)
    }

    /// Connects, retrying with backoff until at least one gateway answers, so an example may
    /// start before its gateways (as in docker compose). A refused registration (a wrong
    /// token) is not retried.
    pub async fn connect(
        &self,
        builder: impl Fn() -> ClusterBuilder,
    ) -> Result<(Cluster, ClusterEvents), Error> {
        let mut delay = std::time::Duration::from_millis(200);
        loop {
            match builder().connect().await {
                Err(e @ Error::Rejected { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(gateways = ?self.gateway, error = %e, "no gateway answered yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
                ok => return ok,
            }
        }
    }
}

impl LinkArgs {
    /// Runs a business process until Ctrl-C or until its links end: connects (as
    /// [`connect`](Self::connect) does), hands every event to `handle`, one at a time and in
    /// order (so a connection's frames are handled in the order it sent them), and shuts the
    /// cluster client down. Links coming and going are logged here; `name` is the example's.
    pub async fn serve<Fut>(
        &self,
        name: &str,
        builder: impl Fn() -> ClusterBuilder,
        mut handle: impl FnMut(Cluster, ClusterEvent) -> Fut,
    ) -> Result<(), Error>
    where
        Fut: std::future::Future<Output = ()>,
    {
        // One Ctrl-C future for the whole run, so a Ctrl-C pressed while a command is in
        // flight is not missed.
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let (client, mut events) = tokio::select! {
            connected = self.connect(builder) => connected?,
            _ = &mut ctrl_c => {
                tracing::info!("interrupted before the gateway answered");
                return Ok(());
            }
        };
        tracing::info!(gateways = ?self.gateway, "{name} is running; press Ctrl-C to stop");
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = &mut ctrl_c => {
                    tracing::info!("Ctrl-C received, shutting down");
                    break;
                }
            };
            let Some(event) = event else {
                break;
            };
            match &event.event {
                Event::Connected { .. } => {
                    tracing::info!(node_id = %event.node_id, "connected to a gateway")
                }
                Event::Disconnected { reason } => {
                    tracing::warn!(node_id = %event.node_id, %reason, "disconnected from a gateway")
                }
                _ => {}
            }
            handle(client.clone(), event).await;
        }
        client.shutdown().await;
        Ok(())
    }
}

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Logs a failed run and maps it to the process's exit code.
pub fn exit_code(example: &str, result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "{example} stopped");
            ExitCode::FAILURE
        }
    }
}
