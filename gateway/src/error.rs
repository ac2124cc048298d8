//! Errors a gateway operator sees: bad configuration and listeners that cannot start.

use std::net::SocketAddr;

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid --node-id: {0}")]
    NodeId(#[from] wsgate_proto::ConnIdError),
    #[error(
        "the worker link listens on {addr}, which is not a loopback address, but no token is set; \
         set --worker-token (or WSGATE_WORKER_TOKEN) so that only your business processes can connect"
    )]
    TokenRequired { addr: SocketAddr },
    #[error(
        "--{key} is {addr}, which is not a loopback address, but no API key is set; set --api-key \
         (or WSGATE_API_KEY) so that only your services can push to clients"
    )]
    ApiKeyRequired { key: &'static str, addr: SocketAddr },
    #[error("invalid --{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("{0}")]
    Jwt(String),
}

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "cannot listen for {what} on {addr}: {source}; pick a free address with {flag} or stop the process using it"
    )]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        flag: &'static str,
        source: std::io::Error,
    },
}
