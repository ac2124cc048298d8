//! The client side: the WebSocket listener, the HTTP handshake and one task per client
//! connection.

pub(crate) mod accept;
pub(crate) mod acks;
pub(crate) mod close;
pub(crate) mod connection;
pub(crate) mod context;
pub(crate) mod handshake;
pub(crate) mod origin;
pub(crate) mod rate;
pub(crate) mod request;

/// What a client connection runs over: plain TCP, or TLS over TCP with `--tls-cert`. The
/// connection code is generic over it, so each kind gets its own code with no indirection on
/// the hot path.
pub(crate) trait ClientStream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
}

impl<S> ClientStream for S where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
}
