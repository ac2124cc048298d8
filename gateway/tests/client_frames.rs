//! The gateway's own WebSocket framing against a raw client: fragments, control frames, and
//! every kind of bad frame a client can send, each with its close code and ConnClose.

mod common;

use common::raw_ws::Raw;
use common::*;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use wsgate_business::{ClosedBy, Payload};

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
