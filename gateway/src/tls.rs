//! TLS for client connections (wss://): the certificate chain and key from PEM files
//! (`--tls-cert`, `--tls-key`), rustls with the ring provider, and reload without a restart.
//!
//! The acceptor's configuration sits behind a lock that every accept reads once. [`reload`]
//! (the binary calls it on SIGHUP) reads both files again, builds a new configuration and swaps
//! it in: new connections get the new certificate, connections already open keep the session
//! they have, so a reload drops nothing. Files that cannot be used leave the certificate in
//! service as it was, and the error says why.
//!
//! [`reload`]: TlsReloader::reload
//!
//! The same certificate serves every listener that has TLS on: clients (always, with
//! `--tls-cert`), the HTTP and gRPC APIs (`--api-tls`, with ALPN `http/1.1` and `h2`) and
//! worker links (`--worker-tls`). [`incoming`] runs the TLS handshakes of the API listeners.

pub(crate) mod incoming;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::TlsError;

/// The TLS configuration a listener accepts with, and the files it comes from. Cheap to clone;
/// every clone sees every reload.
#[derive(Debug, Clone)]
pub struct TlsReloader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Configs>,
}

/// One configuration per ALPN offer, all from the same certificate and key.
#[derive(Debug, Clone)]
struct Configs {
    plain: Arc<ServerConfig>,
    http1: Arc<ServerConfig>,
    h2: Arc<ServerConfig>,
}

impl Configs {
    fn new(config: ServerConfig) -> Self {
        let with = |protocol: &[u8]| {
            let mut c = config.clone();
            c.alpn_protocols = vec![protocol.to_vec()];
            Arc::new(c)
        };
        Self {
            http1: with(b"http/1.1"),
            h2: with(b"h2"),
            plain: Arc::new(config),
        }
    }
}

/// The application protocol a listener offers in the TLS handshake (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// No ALPN: client WebSockets and worker links.
    None,
    /// `http/1.1`: the HTTP API.
    Http1,
    /// `h2`: the gRPC API.
    H2,
}

impl TlsReloader {
    /// Loads the certificate chain and key; an error names the file and what is wrong with it.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let config = server_config(cert, key)?;
        Ok(Self {
            inner: Arc::new(Inner {
                cert: cert.to_owned(),
                key: key.to_owned(),
                current: RwLock::new(Configs::new(config)),
            }),
        })
    }

    /// An acceptor with the configuration in service now, offering no ALPN protocol.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor_for(Alpn::None)
    }

    /// An acceptor with the configuration in service now, offering `alpn`.
    pub(crate) fn acceptor_for(&self, alpn: Alpn) -> TlsAcceptor {
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let config = match alpn {
            Alpn::None => &current.plain,
            Alpn::Http1 => &current.http1,
            Alpn::H2 => &current.h2,
        };
        TlsAcceptor::from(Arc::clone(config))
    }

    /// Reads the certificate and key files again and, if they can be used, serves new
    /// connections with them. On error the previous certificate stays in service.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.inner.cert, &self.inner.key)?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Configs::new(config);
        Ok(())
    }

    /// The certificate file (`--tls-cert`).
    pub fn cert_path(&self) -> &Path {
        &self.inner.cert
    }

    /// The key file (`--tls-key`).
    pub fn key_path(&self) -> &Path {
        &self.inner.key
    }
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, no client certificates) from
/// PEM files. The key may also be in the certificate file.
fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let cert_pem = read(cert, "the certificate file", "--tls-cert")?;
    let key_pem = read(key, "the private key file", "--tls-key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let private_key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoPrivateKey {
                path: key.to_owned(),
            });
        }
        Err(e) => return Err(pem_error(key, e)),
    };
    let rejected = |e: rustls::Error| TlsError::Rejected {
        cert: cert.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(rejected)
}

fn read(path: &Path, what: &'static str, flag: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        flag,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, e: pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
