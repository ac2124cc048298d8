//! TLS connections for the HTTP and gRPC APIs (`--api-tls`): one task accepts TCP, each
//! connection does its TLS handshake in a task of its own (bounded by `--handshake-timeout`,
//! so a slow or silent peer delays no one else), and the finished connections queue for the
//! server. [`TlsListener`] hands them to axum, [`TlsListener::into_stream`] to tonic.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::{Alpn, TlsReloader};
use crate::accept::Retry;

/// Finished handshakes waiting for the server to take them.
const QUEUE: usize = 64;

/// A listener whose connections have completed the TLS handshake.
#[derive(Debug)]
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` with the certificate of `tls` (as it is at each accept),
    /// offering `alpn`; stops when `stop` fires. `what` names the listener in logs.
    pub(crate) fn start(
        listener: TcpListener,
        tls: TlsReloader,
        alpn: Alpn,
        handshake_timeout: Duration,
        stop: CancellationToken,
        what: &'static str,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(accept_loop(
            listener,
            tls,
            alpn,
            handshake_timeout,
            stop,
            tx,
            what,
        ));
        Ok(Self { rx, local })
    }

    /// The connections as a stream, for tonic's `serve_with_incoming_shutdown`.
    pub(crate) fn into_stream(
        mut self,
    ) -> impl Stream<Item = Result<TlsStream<TcpStream>, io::Error>> + Send + 'static {
        futures_util::stream::poll_fn(move |cx| {
            self.rx
                .poll_recv(cx)
                .map(|next| next.map(|(stream, _)| Ok(stream)))
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accept loop stopped (shutdown): no more connections, ever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: TlsReloader,
    alpn: Alpn,
    handshake_timeout: Duration,
    stop: CancellationToken,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    what: &'static str,
) {
    let mut retry = Retry::new(what);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tx.closed() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                retry.accepted();
                let _ = stream.set_nodelay(true);
                let acceptor = tls.acceptor_for(alpn);
                let tx = tx.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                    let done = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = handshake => r,
                    };
                    match done {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        // Scanners and clients that do not trust the certificate end here.
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "{what}: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "{what}: TLS handshake timed out"),
                    }
                });
            }
            Err(e) => {
                let wait = retry.failed(&e);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}
