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
use wsgate_business::{Cluster, ClusterEvent, Error, Event, EventKind};
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
    let link = &args.link;
    let builder = || link.builder("echo").events([EventKind::Message]);
    link.serve("echo", builder, |client, event| async move {
        echo(&client, event).await
    })
    .await
}

/// Sends a message back to its sender.
async fn echo(client: &Cluster, event: ClusterEvent) {
    let ClusterEvent {
        event: Event::Message(msg),
        redelivered,
        ..
    } = event
    else {
        return;
    };
    let Some(payload) = msg.payload else {
        warn!(conn_id = %msg.conn_id, "message without a payload ignored");
        return;
    };
    // A process that died or hung had it and may have echoed it: an echo answers again (a
    // duplicate the client can tell by its content); a business with side effects would look
    // `seq` up among what it has done.
    if redelivered {
        info!(conn_id = %msg.conn_id, seq = msg.seq, "redelivered message");
    }
    debug!(conn_id = %msg.conn_id, bytes = payload.data.len(), "echoing");
    if let Err(err) = client.single_cast(msg.conn_id.as_str(), payload).await {
        error!(conn_id = %msg.conn_id, error = %err, "echo failed");
    }
}
