//! `chat-rooms`: the business process of the chat-across-processes example
//! (`examples/chat-cluster/`): users log in by name, chat in rooms and one-to-one, across every
//! gateway of a cluster.
//!
//! It keeps no state of its own: who a connection is lives on the gateway (`BindUser`), which
//! rooms it is in too (topics, plus a session key per room so a message can be checked against
//! them without asking). So any number of these processes can run side by side, and one can be
//! restarted without anybody logging in again.
//!
//! The client protocol (JSON text frames) is in `examples/chat-cluster/README.md`.
//!
//! ```text
//! cargo run -p wsgate-examples --bin chat-rooms -- --gateway 127.0.0.1:8081,127.0.0.1:8091
//! ```

use std::process::ExitCode;

use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use tracing::warn;
use wsgate_business::proto::conn_id::node_of;
use wsgate_business::{
    Cluster, ConnClose, ConnMessage, Error, Event, EventKind, Payload, SessionChange, Targets,
};
use wsgate_examples::{LinkArgs, exit_code, init_logging};

/// Chat rooms and one-to-one messages across gateways.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    link: LinkArgs,
}

/// What a client asks for.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Request {
    /// Take a name: every connection of this name gets its one-to-one messages.
    Login {
        user: String,
    },
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    /// To everyone in a room the sender has joined.
    Say {
        room: String,
        text: String,
    },
    /// To every connection of one user, and nobody else.
    Whisper {
        to: String,
        text: String,
    },
}

/// The longest text a client may send in one message; longer ones are refused, not cut.
const MAX_TEXT: usize = 2000;

/// Reads a client frame, or says what is wrong with it in words the client can show.
fn parse(text: &str) -> Result<Request, String> {
    let request: Request = serde_json::from_str(text).map_err(|e| {
        format!(
            "not a request ({e}): send JSON such as {{\"type\":\"login\",\"user\":\"alice\"}}, \
             join, leave, say or whisper"
        )
    })?;
    match &request {
        Request::Login { user } => check_name("user", user)?,
        Request::Join { room } | Request::Leave { room } => check_name("room", room)?,
        Request::Say { room, text } => {
            check_name("room", room)?;
            check_text(text)?;
        }
        Request::Whisper { to, text } => {
            check_name("user", to)?;
            check_text(text)?;
        }
    }
    Ok(request)
}

/// Names are 1–32 letters, digits, `-` or `_`: they become user ids and topic names.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let valid = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {name:?}: use 1 to 32 letters, digits, '-' or '_'"
        ))
    }
}

fn check_text(text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(format!(
            "a message must have 1 to {MAX_TEXT} bytes of text, this one has {}",
            text.len()
        ));
    }
    Ok(())
}

/// The topic of a room: prefixed, so rooms cannot collide with topics other processes use.
fn topic(room: &str) -> String {
    format!("room.{room}")
}

/// The session key that says the connection is in `room`.
fn member_key(room: &str) -> String {
    format!("in:{room}")
}

fn frame(value: serde_json::Value) -> Payload {
    Payload::text(value.to_string())
}

/// Handles one client frame; `Err` is an error to show that client.
async fn handle(client: &Cluster, msg: &ConnMessage) -> Result<(), String> {
    let text = msg
        .payload
        .as_ref()
        .and_then(Payload::as_text)
        .ok_or("send text frames holding JSON")?;
    let request = parse(text)?;
    let conn = msg.conn_id.as_str();
    let me = msg.user_id.as_str();
    if me.is_empty() && !matches!(request, Request::Login { .. }) {
        return Err("log in first: {\"type\":\"login\",\"user\":\"<name>\"}".into());
    }
    let failed = |e: Error| format!("the gateway did not take it ({e}); try again");
    match request {
        Request::Login { user } => {
            client.bind_user(conn, &user).await.map_err(failed)?;
            let welcome = json!({"type": "welcome", "user": user, "gateway": node_of(conn).unwrap_or_default()});
            client
                .single_cast(conn, frame(welcome))
                .await
                .map_err(failed)?;
        }
        Request::Join { room } => {
            client
                .subscribe([topic(&room)], Targets::conn(conn))
                .await
                .map_err(failed)?;
            client
                .set_session(conn, SessionChange::new().set(member_key(&room), "1"))
                .await
                .map_err(failed)?;
            let joined = json!({"type": "joined", "room": room, "user": me});
            client
                .publish([topic(&room)], frame(joined), [])
                .await
                .map_err(failed)?;
        }
        Request::Leave { room } => {
            client
                .unsubscribe([topic(&room)], Targets::conn(conn))
                .await
                .map_err(failed)?;
            client
                .set_session(conn, SessionChange::new().delete(member_key(&room)))
                .await
                .map_err(failed)?;
            announce_left(client, me, [room]).await;
        }
        Request::Say { room, text } => {
            // The session comes with the message, so membership costs no round trip. A `say`
            // sent before the `joined` answer came back may still be refused: wait for it.
            if !msg.session.contains_key(&member_key(&room)) {
                return Err(format!("join room {room:?} before saying something in it"));
            }
            let said = json!({"type": "said", "room": room, "from": me, "text": text});
            client
                .publish([topic(&room)], frame(said), [])
                .await
                .map_err(failed)?;
        }
        Request::Whisper { to, text } => {
            let whisper = json!({"type": "whisper", "from": me, "to": to, "text": text});
            let sent = client
                .send_to_users([to.as_str()], frame(whisper), [])
                .await
                .map_err(failed)?;
            if sent.report.delivered == 0 {
                return Err(format!("{to} is not online"));
            }
            let receipt = json!({"type": "sent", "to": to, "connections": sent.report.delivered});
            client
                .single_cast(conn, frame(receipt))
                .await
                .map_err(failed)?;
        }
    }
    Ok(())
}

/// Tells each room that `user` left it.
async fn announce_left(client: &Cluster, user: &str, rooms: impl IntoIterator<Item = String>) {
    for room in rooms {
        let left = json!({"type": "left", "room": room, "user": user});
        if let Err(e) = client.publish([topic(&room)], frame(left), []).await {
            warn!(%room, error = %e, "could not announce a leave");
        }
    }
}

async fn closed(client: &Cluster, close: &ConnClose) {
    let rooms = close
        .topics
        .iter()
        .filter_map(|t| t.strip_prefix("room."))
        .map(str::to_owned);
    announce_left(client, &close.user_id, rooms).await;
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    exit_code("chat-rooms", run(Args::parse()).await)
}

async fn run(args: Args) -> Result<(), Error> {
    let link = &args.link;
    let builder = || {
        link.builder("chat-rooms")
            .events([EventKind::Message, EventKind::Close])
    };
    link.serve("chat-rooms", builder, |client, event| async move {
        match event.event {
            Event::Message(msg) => {
                if let Err(error) = handle(&client, &msg).await {
                    let answer = frame(json!({"type": "error", "error": error}));
                    if let Err(e) = client.single_cast(&msg.conn_id, answer).await {
                        warn!(conn_id = %msg.conn_id, error = %e, "could not answer");
                    }
                }
            }
            Event::Close(close) => closed(&client, &close).await,
            _ => {}
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read() {
        assert_eq!(
            parse(r#"{"type":"whisper","to":"bob","text":"hi"}"#),
            Ok(Request::Whisper {
                to: "bob".into(),
                text: "hi".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"join","room":"lobby"}"#),
            Ok(Request::Join {
                room: "lobby".into()
            })
        );
    }

    #[test]
    fn bad_requests_say_what_to_send() {
        for bad in ["hello", "{}", r#"{"type":"shout","text":"x"}"#, "[1]"] {
            let error = parse(bad).expect_err(bad);
            assert!(error.contains("send JSON such as"), "{bad}: {error}");
        }
        let long = format!(
            r#"{{"type":"say","room":"r","text":"{}"}}"#,
            "x".repeat(MAX_TEXT + 1)
        );
        assert!(parse(&long).expect_err("too long").contains("1 to 2000"));
        assert!(
            parse(r#"{"type":"login","user":"a b"}"#)
                .expect_err("space")
                .contains("invalid user name")
        );
        assert!(parse(r#"{"type":"join","room":""}"#).is_err());
        let long_name = format!(r#"{{"type":"login","user":"{}"}}"#, "a".repeat(33));
        assert!(parse(&long_name).is_err());
    }
}
