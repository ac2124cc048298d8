//! Errors a gateway operator sees: bad configuration, certificates that cannot be used and
//! listeners that cannot start. Each says what to change.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// The command line itself (also `--help` and `--version`, which main prints and exits on).
    #[error("{0}")]
    Cli(#[from] clap::Error),
    #[error(
        "cannot read the config file {path}: {source}; check the --config path (or WSGATE_CONFIG)"
    )]
    FileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Consumer { path: PathBuf, message: String },
    #[error("config file {path} is not valid TOML: {message}")]
    FileSyntax { path: PathBuf, message: String },
    #[error(
        "config file {path}: unknown key `{key}`{suggestion}. Keys are the flag names with '-' written as '_': {allowed}"
    )]
    UnknownKey {
        path: PathBuf,
        key: String,
        /// " (did you mean `x`?)" or empty.
        suggestion: String,
        allowed: String,
    },
    #[error("config file {path}: bad value for `{key}`: {value} ({reason}){expected}")]
    BadValue {
        path: PathBuf,
        key: String,
        value: String,
        reason: String,
        /// "; expected ..." or empty.
        expected: String,
    },
    /// The file's settings together with the flags and environment do not make a valid
    /// command line (for example two settings that exclude each other).
    #[error("with the settings of config file {path}: {message}")]
    FileConflict { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}; fix or unset it")]
    Env { var: String, message: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A certificate or key that cannot be used for TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}; check the path given to {flag}")]
    Read {
        what: &'static str,
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----` blocks, the server's certificate first, then its intermediates); pass it with --tls-cert"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "{path} holds no PEM private key (expected `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`); pass it with --tls-key"
    )]
    NoPrivateKey { path: PathBuf },
    #[error("{path} is not valid PEM: {message}")]
    Pem { path: PathBuf, message: String },
    #[error(
        "the certificate {cert} and the key {key} cannot be used together: {message}; check that the key is the certificate's own"
    )]
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
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
