//! What a gateway is built from before it serves: its listeners (with their backlog), the
//! connection ceiling the open-file limit allows, the JWT verifier and the cluster client's
//! CA, each from the configuration, with errors that name the setting.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::auth::jwt::{JwtAlgorithm, JwtVerifier};
use crate::config::Config;
use crate::error::{ConfigError, GatewayError};

/// A listener on `addr` and the address it got (port 0 resolved).
pub(crate) fn bind(
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
pub(crate) fn max_connections(config: &Config) -> usize {
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
pub(crate) fn jwt_verifier(config: &Config) -> Result<Option<JwtVerifier>, ConfigError> {
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
pub(crate) fn cluster_ca(config: &Config) -> Result<wsgate_business::TlsOptions, ConfigError> {
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
