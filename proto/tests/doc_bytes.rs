//! The byte-by-byte examples of docs/protocol.md section 20 that this version added, encoded
//! by the real types: the hex in the docs is copied from here, so it cannot drift from what
//! the gateway sends.

use prost::Message;
use wsgate_proto::v1::{
    Delivery, Envelope, Limits, Payload, Receipt, ReceiptMode, RegisterOk, Result as CmdResult,
    SingleCast, envelope::Body,
};

fn hex(env: &Envelope) -> String {
    let body = env.encode_to_vec();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn register_ok_with_the_default_limits() {
    let env = Envelope {
        request_id: 1,
        body: Some(Body::RegisterOk(RegisterOk {
            node_id: "gw1".into(),
            protocol_version: 1,
            limits: Some(Limits {
                max_frame_bytes: 16 << 20,
                max_client_message_bytes: 1 << 20,
                heartbeat_interval_ms: 10_000,
                heartbeat_timeout_ms: 30_000,
                client_send_queue: 1024,
                client_send_queue_bytes: 256 << 10,
                max_topics_per_conn: 1000,
                max_topics_per_command: 1000,
                max_conn_ids_per_command: 10_000,
                max_user_ids_per_command: 10_000,
                ack_window: 4096,
                ack_window_bytes: 8 << 20,
                ack_timeout_ms: 30_000,
                command_ids: 100_000,
                command_id_ttl_ms: 600_000,
            }),
        })),
        ..Default::default()
    };
    assert_eq!(
        hex(&env),
        "00 00 00 44 08 01 5a 40 0a 03 67 77 31 10 01 1a 37 08 80 80 80 08 10 80 80 40 18 90 4e 20 b0 \
         ea 01 28 80 08 30 80 80 10 38 e8 07 40 e8 07 48 90 4e 50 90 4e 58 80 20 60 80 80 80 04 68 b0 \
         ea 01 70 a0 8d 06 78 c0 cf 24"
    );
}

const CONN: &str = "gw1-6172a3b4c5d6e-1f";

#[test]
fn a_single_cast_with_a_command_id_and_a_waiting_receipt() {
    let cast = Envelope {
        request_id: 3,
        command_id: "pay-42".into(),
        receipt: ReceiptMode::Wait as i32,
        body: Some(Body::SingleCast(SingleCast {
            conn_id: CONN.into(),
            payload: Some(Payload::text("hi")),
        })),
        ..Default::default()
    };
    assert_eq!(
        hex(&cast),
        "00 00 00 2b 08 03 22 06 70 61 79 2d 34 32 28 01 f2 01 1c 0a 14 67 77 31 2d 36 31 37 32 61 33 \
         62 34 63 35 64 36 65 2d 31 66 12 04 0a 02 68 69"
    );
    let answer = Envelope {
        request_id: 3,
        body: Some(Body::Result(CmdResult {
            delivered: 1,
            receipts: vec![Receipt {
                conn_id: CONN.into(),
                delivery: Delivery::Written as i32,
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    assert_eq!(
        hex(&answer),
        "00 00 00 21 08 03 c2 02 1c 18 01 3a 18 0a 14 67 77 31 2d 36 31 37 32 61 33 62 34 63 35 64 36 \
         65 2d 31 66 10 01"
    );
}
