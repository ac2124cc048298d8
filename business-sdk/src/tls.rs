//! TLS on the worker link, for gateways started with `--worker-tls`: rustls with the ring
//! provider, trusting only the CA certificates given (no system roots).

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::Error;

/// How to reach a gateway whose worker listener serves TLS (`--worker-tls`); give it to
/// [`ClientBuilder::tls`](crate::ClientBuilder::tls) or
/// [`ClusterBuilder::tls`](crate::ClusterBuilder::tls).
///
/// ```no_run
/// use wsgate_business::{Client, TlsOptions};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let ca = std::fs::read("/etc/wsgate/tls/ca.pem")?;
/// let (client, mut events) = Client::builder("gateway.internal:8081")
///     .tls(TlsOptions::new(ca))
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsOptions {
    ca_pem: Vec<u8>,
    server_name: Option<String>,
}

impl TlsOptions {
    /// Trusts the CA certificate(s) in `ca_pem` (PEM, one or more `BEGIN CERTIFICATE`
    /// blocks) and nothing else. The gateway's certificate must be signed by one of them (or be
    /// one of them).
    pub fn new(ca_pem: impl Into<Vec<u8>>) -> Self {
        Self {
            ca_pem: ca_pem.into(),
            server_name: None,
        }
    }

    /// The name the gateway's certificate must name. Default: the host part of the address
    /// dialled (an IP address then needs an IP subject alternative name in the certificate).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Checks that the options can be used (the CA PEM holds a certificate rustls accepts, the
    /// server name is valid), without connecting.
    pub fn check(&self) -> Result<(), Error> {
        Connector::new(self).map(drop)
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn config_error(message: impl Into<String>) -> Error {
    Error::TlsConfig {
        message: message.into(),
    }
}

/// The prepared client side: what a link dials with.
#[derive(Clone)]
pub(crate) struct Connector {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Connector {
    pub(crate) fn new(options: &TlsOptions) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(&options.ca_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| config_error(format!("the CA PEM cannot be read: {e}")))?;
        if certs.is_empty() {
            return Err(config_error(
                "the CA PEM holds no certificate (expected `-----BEGIN CERTIFICATE-----` blocks)",
            ));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| config_error(format!("a CA certificate is not usable: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = options.server_name.as_deref().map(parse_name).transpose()?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The TLS handshake over `stream`, checking the certificate against the server name (or
    /// `addr`'s host).
    pub(crate) async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, Error> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => parse_name(host_of(addr))?,
        };
        let shown = name.to_str().into_owned();
        self.connector
            .connect(name, stream)
            .await
            .map_err(|source| Error::TlsHandshake {
                addr: addr.to_owned(),
                server_name: shown,
                source,
            })
    }
}

fn parse_name(name: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| config_error(format!("{name:?} is not a DNS name or IP address")))
}

/// The host of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("127.0.0.1:8081"), "127.0.0.1");
        assert_eq!(host_of("gw.example.com:8081"), "gw.example.com");
        assert_eq!(host_of("[::1]:8081"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn bad_options_are_config_errors() {
        let err = TlsOptions::new("not a pem").check().expect_err("no cert");
        assert!(matches!(err, Error::TlsConfig { .. }), "{err}");
        assert!(!err.is_retryable());
    }
}
