//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, not the gateway's API):
//! everything that parses bytes a peer or a user controls, each called as the gateway calls
//! it, with the invariants a caller relies on asserted, so a fuzzer finds both crashes and
//! wrong answers.

use bytes::BytesMut;

use crate::config::Config;
use crate::config::layers::Loaded;
use crate::websocket::frame::{Decoder, Incoming};

/// Client WebSocket frames: the first byte picks the message limit (2^0 to 2^23 bytes) and the
/// second the size of the pieces the rest arrives in, as reads would split it.
pub fn client_frames(data: &[u8]) {
    let [limit, chunk, rest @ ..] = data else {
        return;
    };
    let max_message = 1usize << (limit % 24);
    let chunk = usize::from(*chunk).max(1);
    let mut decoder = Decoder::new(max_message);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(Incoming::Text(text))) => {
                    assert!(text.len() <= max_message, "a message over the limit");
                    assert!(std::str::from_utf8(&text).is_ok(), "text that is not UTF-8");
                }
                Ok(Some(Incoming::Binary(data))) => {
                    assert!(data.len() <= max_message, "a message over the limit");
                }
                Ok(Some(Incoming::Ping(data))) => assert!(data.len() <= 125),
                Ok(Some(Incoming::Pong | Incoming::Close(_))) => {}
                // The connection closes with the error's code: nothing more is read.
                Err(e) => {
                    assert!(matches!(e.close_code(), 1002 | 1007 | 1009));
                    return;
                }
            }
        }
    }
}

/// A client's HTTP request head, through the checks that need no gateway state, and the JWT
/// token finder on what it carries.
pub fn handshake(data: &[u8]) {
    static CONFIG: std::sync::LazyLock<Config> = std::sync::LazyLock::new(|| Config {
        allowed_origins: vec!["https://app.example.com".into(), "*.example.org".into()],
        ..Config::default()
    });
    if let Some((status, _token)) = crate::client::handshake::inspect(data, &CONFIG) {
        assert!(matches!(status, 101 | 400 | 403 | 404), "status {status}");
    }
}

/// The JWT token finder and the verifier on arbitrary query, header and token text (split at
/// NUL bytes).
pub fn jwt(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let query = parts.next().unwrap_or_default();
    let authorization = parts.next();
    let protocol = parts.next();
    let found = crate::auth::jwt::find_token(query, authorization, protocol);
    let verifier = crate::auth::jwt::JwtVerifier::new(
        None,
        Some("a-fuzzing-secret-of-at-least-32-bytes"),
        None,
        std::time::Duration::from_secs(5),
    );
    if let (Some(found), Ok(verifier)) = (found, verifier) {
        let _ = verifier.verify(&found.token);
    }
}

/// A `--config` file's text, loaded and validated as the binary does.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded =
        Loaded::from_args_reading(["wsgate", "--config", "fuzz.toml"], |_| Ok(text.to_owned()));
    if let Ok(loaded) = loaded {
        let _ = loaded.config.validate();
        // What --print-config prints must be a valid file again.
        if let Ok(printed) = loaded.to_toml() {
            let again = Loaded::from_args_reading(["wsgate", "--config", "again.toml"], |_| {
                Ok(printed.clone())
            });
            assert!(
                again.is_ok(),
                "--print-config printed a file that does not load: {printed}"
            );
        }
    }
}

/// What a `wsgate.stream.v1` client controls — a text frame of the subprotocol, the
/// `wsgate_recover` query parameter — and a `--stream` rule with a name to match (split at the
/// first newline): never a panic, and what is accepted is within its bounds.
pub fn stream_input(data: &[u8]) {
    use crate::connections::streams::rules::{self, Rule};
    use crate::websocket::subprotocol::{self, FromClient};

    let frame = Incoming::Text(bytes::Bytes::copy_from_slice(data));
    if let Ok(FromClient::Ack(ids)) = subprotocol::read(&frame) {
        assert!(ids.len() <= subprotocol::MAX_ACK_IDS, "too many ack ids");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(positions) = subprotocol::positions(text) {
        assert!(
            positions.len() <= subprotocol::MAX_POSITIONS,
            "too many positions"
        );
    }
    let (rule, name) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(parsed) = rule.parse::<Rule>() {
        // What --print-config writes parses back to the same rule.
        assert_eq!(parsed.to_string().parse::<Rule>(), Ok(parsed.clone()));
        let _ = rules::matches(&parsed.pattern, name);
    }
}

/// What a broker's producer controls: a consumer's message and the channel it came by, read by
/// a JSON-command consumer and by a fixed-command one with a `from` pattern (the first byte
/// picks which; the rest is the channel, a NUL, then the message). A command's id is always one
/// a gateway takes.
pub fn consumer_message(data: &[u8]) {
    use crate::consumers::meaning::{Meaning, Received};
    use crate::consumers::spec::Spec;
    static READERS: std::sync::LazyLock<[Meaning; 2]> = std::sync::LazyLock::new(|| {
        let spec = |extra: &str| -> Meaning {
            let text = format!(
                "name = \"fuzz\"\nkind = \"redis-pubsub\"\nchannels = [\"x\"]\nmax_bytes = 4096\n{extra}"
            );
            let spec: Spec = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
            Meaning::of(&spec)
        };
        [
            spec(""),
            spec(
                "command = \"topics/publish\"\nfrom = \"orders.{id}.{what}\"\nto = \"order:{id}:{what}\"",
            ),
        ]
    });
    let [mode, rest @ ..] = data else {
        return;
    };
    let (channel, message) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&rest[..0], rest),
    };
    let channel = String::from_utf8_lossy(channel);
    let reader = &READERS[usize::from(mode % 2)];
    let id = (mode & 2 != 0).then_some("broker-id");
    if let Ok(command) = reader.read(Received {
        data: message,
        channel: &channel,
        id,
    }) {
        if let Some(id) = &command.command_id {
            assert!(
                wsgate_proto::validate::command_id("id", id).is_ok(),
                "{id:?}"
            );
        }
        assert!(message.len() <= 4096, "a message over max_bytes was taken");
    }
}
