//! The hostile catalog: what an attacker or a careless operator can send the gateway, on every
//! door (the client listener, the worker link, the HTTP and gRPC APIs), each case with its
//! documented answer (an HTTP status, a close code, an `Error` or `Result` code), and each
//! checking that a well-behaved neighbour — a client and a business process beside the hostile
//! one — is still served and that nothing stays queued.
//!
//! Files: `client` (WebSocket frames, handshakes, floods, the per-address, per-user and
//! message-rate limits), `worker` (the worker link: frames, limits, large commands, frames that
//! would not fit), `api` (HTTP and gRPC), `memory` (the real binary flooded by clients that
//! never read, its resident memory measured).

#[path = "../common/mod.rs"]
mod common;

mod api;
mod client;
mod memory;
mod worker;

use common::*;
use tokio::task::JoinHandle;
use wsgate_business::{Client, ConnClose, Event};

/// A client and a business process that only ask for what is normal: the business echoes
/// every message back to its sender. [`Neighbour::check`] proves both are still served.
pub(crate) struct Neighbour {
    pub client: Client,
    pub ws: Ws,
    /// The neighbour client's connection id.
    pub conn_id: String,
    /// The ConnClose events of every other client (the neighbour's business process gets
    /// the events of the hostile clients too, when it is the only one).
    pub closes: tokio::sync::mpsc::UnboundedReceiver<ConnClose>,
    echo: JoinHandle<()>,
    round: u32,
}

impl Neighbour {
    pub async fn start(gw: &TestGateway) -> Self {
        let (client, mut events) = gw.business("neighbour").await;
        let echo_client = client.clone();
        let ws = gw.client().await;
        let conn_id = events.open().await.conn_id;
        let (close_tx, closes) = tokio::sync::mpsc::unbounded_channel();
        let echo = tokio::spawn(async move {
            while let Some(event) = events.0.recv().await {
                match event {
                    Event::Message(m) => {
                        if let Some(payload) = m.payload {
                            // Hostile clients may be gone already: their echo just fails.
                            let _ = echo_client.single_cast(m.conn_id, payload).await;
                        }
                    }
                    Event::Close(c) => {
                        let _ = close_tx.send(c);
                    }
                    _ => {}
                }
            }
        });
        Self {
            client,
            ws,
            conn_id,
            closes,
            echo,
            round: 0,
        }
    }

    /// The next ConnClose of another client.
    pub async fn next_close(&mut self) -> ConnClose {
        within("a ConnClose", self.closes.recv())
            .await
            .expect("the neighbour's business process runs")
    }

    /// One echo round trip through the business process.
    pub async fn check(&mut self) {
        self.round += 1;
        let text = format!("neighbour says {}", self.round);
        send_text(&mut self.ws, &text).await;
        loop {
            // Messages sent to everyone (broadcast cases) may come first.
            if recv_text(&mut self.ws).await == text {
                return;
            }
        }
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        self.echo.abort();
    }
}

/// Nothing stays behind a hostile client: once only the neighbour is connected, no bytes are
/// queued to clients.
pub(crate) async fn nothing_left(gw: &TestGateway, clients: u64) {
    wait_until("the hostile clients to be gone", || {
        gw.stat(|s| &s.connections_current) == clients
    })
    .await;
    wait_until("no bytes queued to clients", || {
        gw.stats.client_queued_bytes.get() == 0
    })
    .await;
}
