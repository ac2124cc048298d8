//! `echo`: a wsgate business process that sends every client message back to its sender.
//!
//! The smallest useful business process: it asks only for message events and answers each one
//! with a single cast of the same payload (text stays text, binary stays binary). Replies are
//! sent in order, one at a time, so a client sees its echoes in the order it sent the messages.
//!
//! ```text
//! wsgate &                      # gateway: clients on :8080/ws, workers on 127.0.0.1:8081
//! cargo run -p wsgate-examples --bin echo
//! ```

use std::process::ExitCode;

use clap::Parser;
use tracing::{debug, error, info, warn};
use wsgate_business::{ClusterEvent, Error, Event, EventKind};
use wsgate_examples::{LinkArgs, exit_code, init_logging};

/// Echo every client message back to its sender.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    link: LinkArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    exit_code("echo", run(Args::parse()).await)
}

async fn run(args: Args) -> Result<(), Error> {
    // One Ctrl-C future for the whole run, so a Ctrl-C pressed while a command is in flight is
    // not missed.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    let connect = args
        .link
        .connect(|| args.link.builder("echo").events([EventKind::Message]));
    let (client, mut events) = tokio::select! {
        connected = connect => connected?,
        _ = &mut ctrl_c => {
            info!("interrupted before the gateway answered");
            return Ok(());
        }
    };
    info!(gateways = ?args.link.gateway, "echo is running; press Ctrl-C to stop");

    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = &mut ctrl_c => {
                info!("Ctrl-C received, shutting down");
                break;
            }
        };
        let Some(ClusterEvent {
            node_id,
            event,
            redelivered,
            ..
        }) = event
        else {
            break;
        };
        match event {
            Event::Message(msg) => {
                let Some(payload) = msg.payload else {
                    warn!(conn_id = %msg.conn_id, "message without a payload ignored");
                    continue;
                };
                // A process that died or hung had it and may have echoed it: an echo answers
                // again (a duplicate the client can tell by its content); a business with side
                // effects would look `seq` up among what it has done.
                if redelivered {
                    info!(conn_id = %msg.conn_id, seq = msg.seq, "redelivered message");
                }
                debug!(conn_id = %msg.conn_id, bytes = payload.data.len(), "echoing");
                if let Err(err) = client.single_cast(msg.conn_id.as_str(), payload).await {
                    error!(conn_id = %msg.conn_id, error = %err, "echo failed");
                }
            }
            Event::Connected { .. } => info!(%node_id, "connected to a gateway"),
            Event::Disconnected { reason } => {
                warn!(%node_id, %reason, "disconnected from a gateway")
            }
            _ => {}
        }
    }
    client.shutdown().await;
    Ok(())
}
