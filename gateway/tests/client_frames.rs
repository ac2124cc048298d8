//! The gateway's own WebSocket framing against a raw client: fragments, control frames, and
//! every kind of bad frame a client can send, each with its close code and ConnClose.

mod common;

use common::*;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wsgate_business::{ClosedBy, Payload};

/// A client speaking raw bytes after a real upgrade.
struct Raw(TcpStream);

impl Raw {
    async fn connect(gw: &TestGateway) -> Self {
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
    async fn frame(&mut self, b0: u8, payload: &[u8], masked: bool) {
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
    async fn next(&mut self) -> (u8, Vec<u8>) {
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
    async fn close_code(&mut self) -> u16 {
        loop {
            let (b0, payload) = self.next().await;
            if b0 == 0x88 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }
}

#[tokio::test]
async fn fragments_arrive_as_one_message_and_pings_are_answered_in_between() {
    let gw = TestGateway::start().await;
    let (_client, mut events) = gw.business("frames").await;
    let mut raw = Raw::connect(&gw).await;
    events.open().await;

    raw.frame(0x01, "hé".as_bytes(), true).await;
    raw.frame(0x89, b"are you there", true).await;
    raw.frame(0x00, b"ll", true).await;
    raw.frame(0x80, b"o", true).await;
    assert_eq!(raw.next().await, (0x8A, b"are you there".to_vec()));
    let m = events.message().await;
    assert_eq!(m.payload, Some(Payload::text("héllo")));

    // A binary message over 64 KiB (64-bit length) in one frame.
    let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    raw.frame(0x82, &big, true).await;
    let m = events.message().await;
    assert_eq!(m.payload.map(|p| p.data.to_vec()), Some(big));

    // The client closes: the gateway answers with the same code.
    raw.frame(0x88, &[0x0f, 0xa0, b'b', b'y', b'e'], true).await;
    assert_eq!(raw.close_code().await, 4000);
    let close = events.close().await;
    assert_eq!((close.code, close.reason.as_str()), (4000, "bye"));
    assert_eq!(close.closed_by, ClosedBy::Client as i32);
}

#[tokio::test]
async fn bad_frames_close_the_client_with_the_code_that_says_why() {
    let gw = TestGateway::start_with(|c| c.max_message_bytes = 1000).await;
    let (_client, mut events) = gw.business("bad-frames").await;
    // (what the client sends, the close code, words the reason must contain)
    let cases: [(u8, Vec<u8>, bool, u16, &str); 7] = [
        (0x81, b"not masked".to_vec(), false, 1002, "masked"),
        (0xC1, b"rsv1".to_vec(), true, 1002, "reserved bits"),
        (0x83, b"opcode 3".to_vec(), true, 1002, "opcode"),
        (
            0x80,
            b"nothing to continue".to_vec(),
            true,
            1002,
            "continuation",
        ),
        (0x09, Vec::new(), true, 1002, "fragmented"),
        (0x81, vec![0xff, 0xfe, 0xfd], true, 1007, "UTF-8"),
        (0x82, vec![0; 1001], true, 1009, "the limit is 1000 bytes"),
    ];
    for (b0, payload, masked, code, words) in cases {
        let mut raw = Raw::connect(&gw).await;
        let open = events.open().await;
        raw.frame(b0, &payload, masked).await;
        assert_eq!(raw.close_code().await, code, "{b0:#x}");
        let close = events.close().await;
        assert_eq!(close.conn_id, open.conn_id);
        assert_eq!(close.code, u32::from(code));
        assert!(close.reason.contains(words), "{b0:#x}: {}", close.reason);
        assert_eq!(close.closed_by, ClosedBy::Gateway as i32);
    }
    // The gateway is unharmed: a well-behaved client still gets its messages through.
    let mut ws = gw.client().await;
    events.open().await;
    send_text(&mut ws, "still here").await;
    assert_eq!(
        events.message().await.payload,
        Some(Payload::text("still here"))
    );
}

#[tokio::test]
async fn garbage_after_the_upgrade_is_a_protocol_error_not_a_crash() {
    let gw = TestGateway::start().await;
    let (_client, mut events) = gw.business("garbage").await;
    let mut raw = Raw::connect(&gw).await;
    events.open().await;
    raw.0
        .write_all(b"GET / HTTP/1.1\r\nthis is not a frame\r\n\r\n")
        .await
        .expect("garbage");
    assert_eq!(raw.close_code().await, 1002);
    assert_eq!(events.close().await.code, 1002);
}

#[tokio::test]
async fn one_broadcast_frame_reaches_clients_of_every_size_intact() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("sizes").await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(gw.client().await);
        events.open().await;
    }
    // 7-bit, 16-bit and 64-bit lengths.
    for len in [5usize, 300, 70_000] {
        let text: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let report = client
            .broadcast(Payload::text(text.clone()), [])
            .await
            .expect("broadcast");
        assert_eq!(report.delivered, 3);
        for ws in &mut clients {
            let got = within("the broadcast", ws.next()).await;
            match got {
                Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), text),
                other => panic!("expected the text, got {other:?}"),
            }
        }
    }
}
