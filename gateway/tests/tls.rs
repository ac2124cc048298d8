//! TLS for clients (wss://) with real rustls clients that trust only the test CA: the
//! handshake and messages both ways, certificate reload on SIGHUP in the real binary without
//! dropping open connections (and a broken new certificate keeping the old one), unusable
//! certificate files at startup, and `--allowed-origins`. Also `--api-tls` (HTTPS and gRPC over
//! TLS) and `--worker-tls` (SDK business processes over TLS, plain-TCP ones refused and logged,
//! the gateway's own cluster client trusting `--worker-tls-ca`).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestGateway, within};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsgate_business::Event;

type Wss = WebSocketStream<TlsStream<TcpStream>>;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn cert_der(name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(data(name)).unwrap()
}

/// A TLS client configuration that trusts the test CA and nothing else.
fn client_tls() -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der("tls-ca.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A wss client: the TLS handshake (server name "localhost"), then the WebSocket one. Returns
/// the socket and the certificate the gateway presented.
async fn wss(addr: SocketAddr) -> (Wss, CertificateDer<'static>) {
    within("a wss handshake", async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = client_tls()
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let presented = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
        let url = format!("wss://localhost:{}/ws", addr.port());
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("WebSocket handshake over TLS");
        (ws, presented)
    })
    .await
}

async fn recv_text<S>(ws: &mut WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    within("a message", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    })
    .await
}

/// The gateway's text heartbeat answers without a business process: proof that frames flow
/// both ways through the gateway's connection code.
async fn heartbeat<S>(ws: &mut WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(recv_text(ws).await, "pong");
}

#[tokio::test]
async fn wss_handshake_and_messages_flow() {
    let gw = TestGateway::start_with(|c| {
        c.tls_cert = Some(data("tls-a.pem"));
        c.tls_key = Some(data("tls-a-key.pem"));
    })
    .await;
    let (business, mut events) = gw.business("echo").await;
    let (mut ws, presented) = wss(gw.ws_addr).await;
    assert_eq!(presented, cert_der("tls-a.pem"));
    let open = events.open().await;

    ws.send(Message::text("hello over tls")).await.unwrap();
    let msg = events.message().await;
    assert_eq!(msg.conn_id, open.conn_id);
    business
        .single_cast(msg.conn_id.clone(), msg.payload.unwrap())
        .await
        .unwrap();
    assert_eq!(recv_text(&mut ws).await, "hello over tls");

    // A large binary message both ways: TLS records split it, the gateway must not care.
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    let msg = events.message().await;
    business
        .single_cast(msg.conn_id.clone(), msg.payload.unwrap())
        .await
        .unwrap();
    let echoed = within("the binary echo", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => return b,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected binary, got {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(&echoed[..], &big[..]);
    heartbeat(&mut ws).await;

    // A plain ws:// client on the wss port gets no WebSocket.
    let plain = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.ws_addr)),
    )
    .await;
    assert!(
        !matches!(plain, Ok(Ok(_))),
        "plain ws must not work on a TLS listener"
    );
    heartbeat(&mut ws).await;

    ws.close(None).await.unwrap();
    assert!(matches!(events.next().await, Event::Close(_)));
    gw.stop().await;
}

#[tokio::test]
async fn unusable_certificate_files_stop_startup_with_the_reason() {
    let bind = |cert: &str, key: &str| {
        let mut config = common::test_config();
        config.tls_cert = Some(data(cert));
        config.tls_key = Some(data(key));
        wsgate::Gateway::bind(config)
    };
    let err = bind("no-such-cert.pem", "tls-a-key.pem")
        .await
        .expect_err("missing file");
    let text = err.to_string();
    assert!(
        text.contains("no-such-cert.pem") && text.contains("--tls-cert"),
        "{text}"
    );

    // A key that is not the certificate's own.
    let err = bind("tls-a.pem", "tls-b-key.pem")
        .await
        .expect_err("mismatched key");
    let text = err.to_string();
    assert!(text.contains("tls-b-key.pem"), "{text}");

    // A key file given as the certificate: no certificate in it.
    let err = bind("tls-a-key.pem", "tls-a-key.pem")
        .await
        .expect_err("no certificate");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");

    let mut config = common::test_config();
    config.tls_cert = Some(data("tls-a.pem"));
    let err = wsgate::Gateway::bind(config)
        .await
        .expect_err("cert without key");
    assert!(err.to_string().contains("--tls-key"), "{err}");
}

/// The `wsgate` binary, run with its stdout (the log) read line by line.
struct Binary {
    child: tokio::process::Child,
    log: Arc<Mutex<Vec<String>>>,
    ws_addr: SocketAddr,
}

impl Binary {
    async fn start(args: &[&str]) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wsgate"));
        for (k, _) in std::env::vars() {
            if k.starts_with("WSGATE_") {
                command.env_remove(k);
            }
        }
        let mut child = command
            .args([
                "--ws-addr=127.0.0.1:0",
                "--worker-addr=127.0.0.1:0",
                "--api-addr=127.0.0.1:0",
                "--grpc-addr=127.0.0.1:0",
                "--node-id=tls-test",
                "--drain-timeout=2s",
            ])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the wsgate binary starts");
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (up_tx, up_rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut up = Some(up_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("wsgate is up")
                    && let Some(tx) = up.take()
                {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let up = within("the gateway to log that it is up", up_rx)
            .await
            .expect("the gateway starts");
        let clients = up
            .split_whitespace()
            .find_map(|f| f.strip_prefix("clients="))
            .expect("the up line names the client address");
        let addr = clients
            .strip_prefix("wss://")
            .and_then(|s| s.strip_suffix("/ws"))
            .unwrap_or_else(|| panic!("expected wss://ADDR/ws, got {clients}"));
        Self {
            child,
            log,
            ws_addr: addr.parse().unwrap(),
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the `n`th log line (counting from 1) that contains `text`.
    async fn wait_log(&self, text: &str, n: usize) -> String {
        within(&format!("log line {text:?}"), async {
            loop {
                let found = self
                    .log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|l| l.contains(text))
                    .nth(n - 1)
                    .cloned();
                if let Some(line) = found {
                    return line;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    async fn stop(mut self) {
        self.signal("TERM");
        let status = within("the gateway to exit", self.child.wait())
            .await
            .unwrap();
        assert!(status.success(), "exit status {status}");
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_connections() {
    let dir = std::env::temp_dir().join(format!("wsgate-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::copy(data("tls-a.pem"), &cert).unwrap();
    std::fs::copy(data("tls-a-key.pem"), &key).unwrap();
    let gw = Binary::start(&[
        &format!("--tls-cert={}", cert.display()),
        &format!("--tls-key={}", key.display()),
    ])
    .await;

    let (mut old, presented) = wss(gw.ws_addr).await;
    assert_eq!(presented, cert_der("tls-a.pem"));
    heartbeat(&mut old).await;

    // Swap the files for certificate B and tell the gateway.
    std::fs::copy(data("tls-b.pem"), &cert).unwrap();
    std::fs::copy(data("tls-b-key.pem"), &key).unwrap();
    gw.signal("HUP");
    gw.wait_log("TLS certificate reloaded", 1).await;

    let (mut new, presented) = wss(gw.ws_addr).await;
    assert_eq!(presented, cert_der("tls-b.pem"), "a new client sees B");
    heartbeat(&mut new).await;
    heartbeat(&mut old).await; // the connection made with A is untouched

    // A broken key: the reload fails, says why, and B stays in service.
    std::fs::write(&key, "not a key\n").unwrap();
    gw.signal("HUP");
    let line = gw.wait_log("NOT reloaded", 1).await;
    assert!(line.contains("no PEM private key"), "{line}");
    let (mut third, presented) = wss(gw.ws_addr).await;
    assert_eq!(presented, cert_der("tls-b.pem"));
    heartbeat(&mut third).await;
    heartbeat(&mut old).await;
    heartbeat(&mut new).await;

    drop((old, new, third));
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends a handshake with `origin` by hand and returns the status line and the body.
async fn raw_handshake(addr: SocketAddr, origin: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A refusal closes the connection; an upgrade does not, so read only what arrives.
    within("the handshake answer", async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            response.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&response);
            if n == 0 || text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

#[tokio::test]
async fn allowed_origins_refuse_others_with_403() {
    let gw = TestGateway::start_with(|c| {
        c.allowed_origins = vec![
            "https://app.example.com".into(),
            "https://*.example.org".into(),
        ];
    })
    .await;

    let (status, body) = raw_handshake(gw.ws_addr, Some("https://evil.example.net")).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    assert!(body.contains("https://evil.example.net"), "{body}");
    assert!(body.contains("--allowed-origins"), "{body}");
    // Lookalikes are refused too.
    for origin in [
        "http://app.example.com",
        "https://app.example.com.evil.net",
        "https://example.org",
    ] {
        let (status, _) = raw_handshake(gw.ws_addr, Some(origin)).await;
        assert!(status.starts_with("HTTP/1.1 403"), "{origin}: {status}");
    }

    for origin in ["https://app.example.com", "https://chat.example.org"] {
        let (status, _) = raw_handshake(gw.ws_addr, Some(origin)).await;
        assert!(status.starts_with("HTTP/1.1 101"), "{origin}: {status}");
    }
    // No Origin header: not a browser page; allowed.
    let (status, _) = raw_handshake(gw.ws_addr, None).await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");

    // A real client from an allowed origin talks as usual.
    let mut request = gw.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    let (mut ws, _) = within(
        "an allowed-origin handshake",
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("allowed origin connects");
    heartbeat(&mut ws).await;
    // And one from another origin is told 403.
    let mut request = gw.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example.net".parse().unwrap());
    assert_eq!(common::refusal(request).await.status(), 403);
    gw.stop().await;
}

/// The test CA as PEM, for the SDK's TlsOptions.
fn ca_pem() -> Vec<u8> {
    std::fs::read(data("tls-ca.pem")).unwrap()
}

/// A TLS client offering `alpn` that trusts the test CA, connected to `addr` as "localhost".
async fn tls_connect(addr: SocketAddr, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der("tls-ca.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    within("a TLS handshake", async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("TLS handshake")
    })
    .await
}

/// One HTTP/1.1 GET over TLS; returns the whole response.
async fn https_get(addr: SocketAddr, path: &str) -> String {
    let mut tls = tls_connect(addr, b"http/1.1").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    within("the HTTPS response", tls.read_to_end(&mut response))
        .await
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn api_tls_serves_https_and_grpc_over_tls() {
    let gw = TestGateway::start_with(|c| {
        c.tls_cert = Some(data("tls-a.pem"));
        c.tls_key = Some(data("tls-a-key.pem"));
        c.api_tls = true;
    })
    .await;

    let health = https_get(gw.api_addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let counts = https_get(gw.api_addr, "/api/v1/counts").await;
    assert!(counts.starts_with("HTTP/1.1 200"), "{counts}");
    assert!(counts.contains("\"connections\""), "{counts}");

    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let mut plain = TcpStream::connect(gw.api_addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "plain HTTP must not work on the TLS API port"
    );

    // The gRPC API: the handshake picks h2, and a tonic client with TLS gets answers.
    let tls = tls_connect(gw.grpc_addr, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem()))
        .domain_name("localhost");
    let channel = within(
        "the gRPC TLS connection",
        tonic::transport::Channel::from_shared(format!("https://{}", gw.grpc_addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect(),
    )
    .await
    .expect("gRPC over TLS connects");
    let mut api = wsgate_proto::v1::push_api_client::PushApiClient::new(channel);
    let counts = within(
        "a gRPC call over TLS",
        api.counts(wsgate_proto::v1::QueryCounts::default()),
    )
    .await
    .expect("Counts answers")
    .into_inner();
    assert_eq!(counts.connections, 0);

    // A plain gRPC client is refused.
    let plain = tokio::time::timeout(
        Duration::from_secs(5),
        tonic::transport::Channel::from_shared(format!("http://{}", gw.grpc_addr))
            .unwrap()
            .connect(),
    )
    .await;
    if let Ok(Ok(channel)) = plain {
        let mut api = wsgate_proto::v1::push_api_client::PushApiClient::new(channel);
        let call = tokio::time::timeout(
            Duration::from_secs(5),
            api.counts(wsgate_proto::v1::QueryCounts::default()),
        )
        .await;
        assert!(!matches!(call, Ok(Ok(_))), "plain gRPC must not work");
    }
    gw.stop().await;
}

#[tokio::test]
async fn worker_tls_links_business_processes_over_tls_and_refuses_plain_tcp() {
    let gw = TestGateway::start_with(|c| {
        c.tls_cert = Some(data("tls-a.pem"));
        c.tls_key = Some(data("tls-a-key.pem"));
        c.worker_tls = true;
        c.worker_tls_ca = Some(data("tls-ca.pem"));
    })
    .await;
    // The gateway's own cluster client reaches its worker listener over TLS (127.0.0.1: the
    // certificate's IP SAN), so the APIs work.
    let mut slot = gw.cluster.clone();
    within("the cluster client over TLS", slot.ready())
        .await
        .expect("the cluster client connects");

    let (business, events) = wsgate_business::Client::builder(gw.worker_addr.to_string())
        .name("echo")
        .tls(wsgate_business::TlsOptions::new(ca_pem()))
        .connect()
        .await
        .expect("a TLS business connects");
    let mut events = common::EventsExt(events);
    let (mut ws, _) = wss(gw.ws_addr).await;
    let open = events.open().await;
    ws.send(Message::text("over two TLS hops")).await.unwrap();
    let msg = events.message().await;
    assert_eq!(msg.conn_id, open.conn_id);
    business
        .single_cast(msg.conn_id.clone(), msg.payload.unwrap())
        .await
        .unwrap();
    assert_eq!(recv_text(&mut ws).await, "over two TLS hops");

    // An explicit server name works too.
    let (named, _events) = wsgate_business::Client::builder(gw.worker_addr.to_string())
        .tls(wsgate_business::TlsOptions::new(ca_pem()).server_name("localhost"))
        .connect()
        .await
        .expect("a TLS business with a server name connects");
    named.shutdown().await;

    // A business process without TLS: the handshake fails and the link is closed.
    let plain = wsgate_business::Client::builder(gw.worker_addr.to_string())
        .request_timeout(Duration::from_secs(3))
        .connect()
        .await;
    assert!(plain.is_err(), "a plain-TCP business must be refused");

    // A CA that did not sign the gateway's certificate: the SDK says why.
    let err = wsgate_business::Client::builder(gw.worker_addr.to_string())
        .tls(wsgate_business::TlsOptions::new(
            std::fs::read(data("tls-b.pem")).unwrap(),
        ))
        .connect()
        .await
        .expect_err("an untrusted certificate");
    assert!(
        matches!(err, wsgate_business::Error::TlsHandshake { .. }),
        "{err}"
    );
    // A CA PEM without a certificate fails before dialling, and is not retried.
    let err = wsgate_business::Client::builder(gw.worker_addr.to_string())
        .tls(wsgate_business::TlsOptions::new("no pem here"))
        .retry_initial_connect(true)
        .connect()
        .await
        .expect_err("unusable options");
    assert!(
        matches!(err, wsgate_business::Error::TlsConfig { .. }),
        "{err}"
    );

    ws.close(None).await.unwrap();
    business.shutdown().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_tls_business_is_told_when_the_gateway_has_no_worker_tls() {
    let gw = TestGateway::start().await;
    let err = wsgate_business::Client::builder(gw.worker_addr.to_string())
        .tls(wsgate_business::TlsOptions::new(ca_pem()))
        .request_timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect_err("no TLS on the worker listener");
    assert!(
        matches!(err, wsgate_business::Error::TlsHandshake { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--worker-tls"), "{err}");
    gw.stop().await;
}

#[tokio::test]
async fn api_and_worker_tls_need_the_certificate() {
    for tweak in [
        (|c: &mut wsgate::Config| c.api_tls = true) as fn(&mut wsgate::Config),
        |c| c.worker_tls = true,
        |c| {
            c.tls_cert = Some(data("tls-a.pem"));
            c.tls_key = Some(data("tls-a-key.pem"));
            c.worker_tls_ca = Some(data("tls-ca.pem"));
        },
    ] {
        let mut config = common::test_config();
        tweak(&mut config);
        let err = wsgate::Gateway::bind(config)
            .await
            .expect_err("invalid TLS settings");
        let text = err.to_string();
        assert!(
            text.contains("api-tls") || text.contains("worker-tls"),
            "{text}"
        );
    }
    // A CA file without a certificate stops startup and names the key.
    let mut config = common::test_config();
    config.tls_cert = Some(data("tls-a.pem"));
    config.tls_key = Some(data("tls-a-key.pem"));
    config.worker_tls = true;
    config.worker_tls_ca = Some(data("tls-a-key.pem"));
    let err = wsgate::Gateway::bind(config)
        .await
        .expect_err("no CA certificate");
    assert!(err.to_string().contains("worker-tls-ca"), "{err}");
}

#[tokio::test]
async fn the_binary_logs_a_plain_tcp_business_on_a_tls_worker_listener() {
    let gw = Binary::start(&[
        &format!("--tls-cert={}", data("tls-a.pem").display()),
        &format!("--tls-key={}", data("tls-a-key.pem").display()),
        "--worker-tls",
        &format!("--worker-tls-ca={}", data("tls-ca.pem").display()),
    ])
    .await;
    let up = gw.wait_log("wsgate is up", 1).await;
    let worker: SocketAddr = common::log_field(&up, " worker=").parse().unwrap();
    assert!(up.contains("worker_tls=true"), "{up}");

    let plain = wsgate_business::Client::builder(worker.to_string())
        .request_timeout(Duration::from_secs(3))
        .connect()
        .await;
    assert!(plain.is_err(), "a plain-TCP business must be refused");
    let line = gw.wait_log("worker link TLS handshake failed", 1).await;
    assert!(line.contains("--worker-tls"), "{line}");

    let (tls, _events) = wsgate_business::Client::builder(worker.to_string())
        .tls(wsgate_business::TlsOptions::new(ca_pem()))
        .connect()
        .await
        .expect("a TLS business connects to the binary");
    tls.shutdown().await;
    gw.stop().await;
}
