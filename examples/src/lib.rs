//! Plumbing shared by the example business processes, so each binary shows only its own
//! logic: the common command line (`--gateway`, `--token`, `--name`), logging via `RUST_LOG`,
//! and turning the run's result into an exit code.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use wsgate_business::{Client, ClientBuilder, Error};

/// How to reach the gateway.
#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// The gateway's worker listener, host:port.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub gateway: String,
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
}

impl LinkArgs {
    /// A client builder for these arguments. It keeps retrying until the gateway is up, so an
    /// example may start before its gateway.
    pub fn builder(&self, default_name: &str) -> ClientBuilder {
        Client::builder(self.gateway.as_str())
            .name(self.name.as_deref().unwrap_or(default_name))
            .token(self.token.as_str())
            .retry_initial_connect(true)
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
