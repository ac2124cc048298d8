//! Opening one client WebSocket: a TCP socket bound to one of several loopback source
//! addresses, then the HTTP/1.1 upgrade request and its `101` answer.
//!
//! Binding each socket to 127.0.0.x before connecting spreads the clients over several source
//! addresses (Linux answers to all of 127.0.0.0/8), so a few tens of thousands of clients plus
//! churn do not run out of ephemeral ports on one address.
//!
//! The answer's `Sec-WebSocket-Accept` is checked as a browser would: every target in a run
//! has to complete a real handshake, not just print `101`.

use std::net::{Ipv4Addr, SocketAddr};

use base64::Engine;
use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// An open client WebSocket: the stream and any bytes the server sent after its `101`.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    pub leftover: BytesMut,
}

/// Why a client could not connect.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("cannot bind a socket to {addr}: {source}")]
    Bind {
        addr: Ipv4Addr,
        source: std::io::Error,
    },
    #[error("TCP connect from {from} failed: {source}")]
    Tcp {
        from: Ipv4Addr,
        source: std::io::Error,
    },
    #[error("the upgrade failed on the wire: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection before answering the upgrade")]
    Eof,
    #[error("the server answered the upgrade with {status} instead of 101: {body:?}")]
    Refused { status: u16, body: String },
    #[error("the server's answer to the upgrade is not HTTP: {0}")]
    Malformed(String),
    #[error(
        "the server's Sec-WebSocket-Accept is {got:?}, expected {expected:?} for the key sent: \
         the server does not implement the RFC 6455 handshake"
    )]
    BadAccept {
        got: Option<String>,
        expected: String,
    },
    #[error(
        "the server did not agree to the subprotocol {offered:?} (it answered {answered:?}): \
         its frames would not be that protocol's"
    )]
    Subprotocol {
        offered: String,
        answered: Option<String>,
    },
}

/// The `n`-th source address of `count`: 127.0.0.1, 127.0.0.2, ... round-robin.
pub fn source_addr(n: usize, count: u8) -> Ipv4Addr {
    let count = usize::from(count.max(1));
    // n % count < 250: fits in a u8.
    Ipv4Addr::new(127, 0, 0, 1 + (n % count) as u8)
}

/// Connects from `from` to `server` and upgrades `path` (path and query) to a WebSocket.
pub async fn connect(from: Ipv4Addr, server: SocketAddr, path: &str) -> Result<Conn, ConnectError> {
    connect_with(from, server, path, None).await
}

/// [`connect`], offering the subprotocol `protocol` when given: the server must answer with
/// it, or the frames that follow would not be what the client expects.
pub async fn connect_with(
    from: Ipv4Addr,
    server: SocketAddr,
    path: &str,
    protocol: Option<&str>,
) -> Result<Conn, ConnectError> {
    let socket = TcpSocket::new_v4().map_err(|source| ConnectError::Bind { addr: from, source })?;
    socket
        .bind(SocketAddr::new(from.into(), 0))
        .map_err(|source| ConnectError::Bind { addr: from, source })?;
    let mut stream = socket
        .connect(server)
        .await
        .map_err(|source| ConnectError::Tcp { from, source })?;
    // Echo round trips are latency-bound: do not let Nagle hold back the small frames.
    stream.set_nodelay(true)?;
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let offer = protocol.map_or_else(String::new, |p| format!("Sec-WebSocket-Protocol: {p}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(ConnectError::Eof);
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                if status != 101 {
                    let body = String::from_utf8_lossy(&buf[head_len..]);
                    return Err(ConnectError::Refused {
                        status,
                        body: body.chars().take(200).collect(),
                    });
                }
                let expected = derive_accept_key(key.as_bytes());
                let got = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                    .map(|h| String::from_utf8_lossy(h.value).trim().to_owned());
                if got.as_deref() != Some(expected.as_str()) {
                    return Err(ConnectError::BadAccept { got, expected });
                }
                if let Some(offered) = protocol {
                    let answered = response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned());
                    if answered.as_deref() != Some(offered) {
                        return Err(ConnectError::Subprotocol {
                            offered: offered.to_owned(),
                            answered,
                        });
                    }
                }
                let leftover = buf.split_off(head_len);
                return Ok(Conn { stream, leftover });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(ConnectError::Malformed(format!(
                    "no end of the response head within {MAX_HEAD} bytes"
                )));
            }
            Err(e) => return Err(ConnectError::Malformed(e.to_string())),
        }
    }
}

/// Test servers' answer to the request head `head`: `101` with the accept key `accept` makes
/// from the request's `Sec-WebSocket-Key`.
#[cfg(test)]
pub(crate) fn switching_protocols(head: &str, accept: fn(&str) -> String) -> String {
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept(key)
    )
}

/// The correct accept key for `key` (RFC 6455, section 4.2.2).
#[cfg(test)]
pub(crate) fn correct_accept(key: &str) -> String {
    derive_accept_key(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_round_robin() {
        assert_eq!(source_addr(0, 16), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_addr(15, 16), Ipv4Addr::new(127, 0, 0, 16));
        assert_eq!(source_addr(16, 16), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_addr(7, 1), Ipv4Addr::new(127, 0, 0, 1));
    }

    /// A one-shot server that reads the request head and answers `101` with the accept key
    /// `accept` makes from the request's key, then `extra` bytes. Returns the request head.
    async fn one_upgrade(
        accept: fn(&str) -> String,
        extra: &'static [u8],
    ) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.expect("read");
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(switching_protocols(&head, accept).as_bytes())
                .await
                .expect("write");
            s.write_all(extra).await.expect("write");
            head
        });
        (addr, server)
    }

    #[tokio::test]
    async fn upgrades_and_keeps_leftover_bytes() {
        let (addr, server) = one_upgrade(correct_accept, b"\x81\x02hi").await;
        let conn = connect(Ipv4Addr::new(127, 0, 0, 2), addr, "/ws?topic=t1")
            .await
            .expect("connect");
        let head = server.await.expect("server");
        assert!(head.starts_with("GET /ws?topic=t1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Sec-WebSocket-Version: 13"));
        assert_eq!(&conn.leftover[..], b"\x81\x02hi");
        assert_eq!(
            conn.stream.local_addr().expect("local").ip(),
            std::net::IpAddr::from([127, 0, 0, 2])
        );
    }

    #[tokio::test]
    async fn an_offered_subprotocol_must_be_answered() {
        let (addr, server) = one_upgrade(correct_accept, b"").await;
        let err = connect_with(Ipv4Addr::LOCALHOST, addr, "/ws", Some("wsgate.stream.v1"))
            .await
            .expect_err("a server that does not answer the subprotocol did not agree to it");
        assert!(
            matches!(&err, ConnectError::Subprotocol { answered: None, .. }),
            "{err}"
        );
        let head = server.await.expect("server");
        assert!(
            head.contains("Sec-WebSocket-Protocol: wsgate.stream.v1\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_wrong_accept_key_is_refused() {
        let (addr, _server) = one_upgrade(|_| "bm90IHRoZSBrZXk=".to_owned(), b"").await;
        let err = connect(Ipv4Addr::LOCALHOST, addr, "/ws")
            .await
            .expect_err("a wrong accept key must fail the handshake");
        assert!(
            matches!(&err, ConnectError::BadAccept { got: Some(g), .. } if g == "bm90IHRoZSBrZXk="),
            "{err}"
        );
    }
}
