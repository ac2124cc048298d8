//! A WebSocket client that speaks raw bytes after a real upgrade, for tests that send what no
//! well-behaved client library would: unmasked frames, bad lengths, floods.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{TestGateway, within};

/// A client speaking raw bytes after a real upgrade.
pub struct Raw(pub TcpStream);

impl Raw {
    pub async fn connect(gw: &TestGateway) -> Self {
        let mut s = TcpStream::connect(gw.ws_addr).await.expect("connect");
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("request");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            within("the 101", s.read_exact(&mut b))
                .await
                .expect("response");
            head.push(b[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
        Raw(s)
    }

    /// Sends one frame, masked unless `masked` is false.
    pub async fn frame(&mut self, b0: u8, payload: &[u8], masked: bool) {
        let mask = [9u8, 200, 31, 77];
        let mut out = vec![b0];
        let m = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xffff => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        self.0.write_all(&out).await.expect("send frame");
    }

    /// The next frame from the gateway: (first byte, payload).
    pub async fn next(&mut self) -> (u8, Vec<u8>) {
        within("a frame from the gateway", async {
            let mut h = [0u8; 2];
            self.0.read_exact(&mut h).await.expect("frame header");
            assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
            let len = match h[1] & 0x7f {
                126 => u64::from(self.0.read_u16().await.expect("len16")),
                127 => self.0.read_u64().await.expect("len64"),
                n => u64::from(n),
            };
            let mut payload = vec![0u8; len as usize];
            self.0.read_exact(&mut payload).await.expect("payload");
            (h[0], payload)
        })
        .await
    }

    /// Expects a close frame and returns its code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            let (b0, payload) = self.next().await;
            if b0 == 0x88 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }
}
