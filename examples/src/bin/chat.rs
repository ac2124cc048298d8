//! `chat`: a wsgate business process that relays every client message to everyone else.
//!
//! Shows the three connection events working together: a join is announced as
//! `* <conn_id> joined`, every message goes to all other clients as `<conn_id>: <text>`
//! (binary messages keep their kind, with the `<conn_id>: ` prefix as bytes), and a leave is
//! announced as `* <conn_id> left`. The sender is excluded from every broadcast.
//!
//! ```text
//! wsgate &                      # gateway: clients on :8080/ws, workers on 127.0.0.1:8081
//! cargo run -p wsgate-examples --bin chat
//! ```

use std::process::ExitCode;

use clap::Parser;
use tracing::{debug, error, info, warn};
use wsgate_business::{Cluster, Error, Event, EventKind, Payload};
use wsgate_examples::{LinkArgs, exit_code, init_logging};

/// Relay every client message to all other clients.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    link: LinkArgs,
}

/// What the others see when `conn_id` sends `payload`: text stays text, binary stays binary.
fn relayed(conn_id: &str, payload: &Payload) -> Payload {
    match payload.as_text() {
        Some(text) => Payload::text(format!("{conn_id}: {text}")),
        None => {
            let mut data = Vec::with_capacity(conn_id.len() + 2 + payload.data.len());
            data.extend_from_slice(conn_id.as_bytes());
            data.extend_from_slice(b": ");
            data.extend_from_slice(&payload.data);
            Payload::binary(data)
        }
    }
}

/// Broadcasts `payload` to everyone but `sender`, logging failures.
async fn relay(client: &Cluster, sender: &str, payload: Payload) {
    match client.broadcast(payload, [sender.to_owned()]).await {
        Ok(sent) => {
            debug!(from = %sender, delivered = sent.report.delivered, "relayed");
            for failed in sent.failed {
                warn!(from = %sender, gateway = %failed.gateway, error = %failed.error, "a gateway missed the message");
            }
        }
        Err(err) => error!(from = %sender, error = %err, "broadcast failed"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    exit_code("chat", run(Args::parse()).await)
}

async fn run(args: Args) -> Result<(), Error> {
    let link = &args.link;
    let builder = || {
        link.builder("chat")
            .events([EventKind::Open, EventKind::Message, EventKind::Close])
    };
    link.serve("chat", builder, |client, event| async move {
        on_event(&client, event.event).await
    })
    .await
}

/// Announces joins and leaves, relays messages.
async fn on_event(client: &Cluster, event: Event) {
    match event {
        Event::Open(open) => {
            info!(conn_id = %open.conn_id, remote = %open.remote_addr, "joined");
            let text = format!("* {} joined", open.conn_id);
            relay(client, &open.conn_id, Payload::text(text)).await;
        }
        Event::Message(msg) => {
            let Some(payload) = msg.payload else {
                warn!(conn_id = %msg.conn_id, "message without a payload ignored");
                return;
            };
            relay(client, &msg.conn_id, relayed(&msg.conn_id, &payload)).await;
        }
        Event::Close(close) => {
            info!(conn_id = %close.conn_id, code = close.code, "left");
            let text = format!("* {} left", close.conn_id);
            relay(client, &close.conn_id, Payload::text(text)).await;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_prefixed_as_text() {
        let out = relayed("gw-1-a", &Payload::text("hello"));
        assert_eq!(out.as_text(), Some("gw-1-a: hello"));
    }

    #[test]
    fn binary_is_prefixed_as_binary() {
        let out = relayed("gw-1-a", &Payload::binary(vec![0u8, 255]));
        assert!(!out.is_text());
        assert_eq!(&out.data[..], b"gw-1-a: \x00\xff");
    }
}
