//! Fuzz target: worker-link frames as a gateway reads them — the length-prefixed codec, the
//! `Envelope` decoding, the command rules (`wsgate_proto::validate`) — and what decodes must
//! encode and decode again to the same message.
#![no_main]

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use wsgate_proto::WorkerCodec;
use wsgate_proto::v1::Envelope;
use wsgate_proto::validate::{self, Limits};

const LIMITS: Limits = Limits {
    topics: 1000,
    conn_ids: 10_000,
    user_ids: 10_000,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut codec = WorkerCodec::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(envelope)) = codec.decode(&mut buf) {
        if let Some(body) = &envelope.body {
            let _ = validate::command(body, &LIMITS);
        }
        let mut out = BytesMut::new();
        if codec.encode(envelope.clone(), &mut out).is_ok() {
            let again: Envelope = codec
                .decode(&mut out)
                .expect("what was encoded decodes")
                .expect("a whole frame");
            assert_eq!(again, envelope, "a round trip changed the message");
        }
    }
});
