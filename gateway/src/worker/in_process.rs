//! This gateway's worker side without a link, for the gateway's own cluster client: the HTTP
//! and gRPC APIs' part of a command that concerns this gateway is carried out by a call in the
//! API's task, not sent over loopback TCP to this gateway's own worker listener.
//!
//! That link cost six task hops per command, each queued on the same worker threads behind the
//! connection tasks the previous broadcast woke; a backend waiting for its answer paid for all
//! of them. The answer is the same `Result` the link would carry, counted the same way.
//!
//! A command that finishes without yielding — a broadcast, any command of up to
//! [`WORK_SLICE`](super::limits::WORK_SLICE) steps — runs entirely in the caller's poll. One
//! that yields goes on in a task of its own: a command once started is carried out in full,
//! whether or not the API's caller is still waiting for the answer (as on a link).

use std::sync::Arc;

use futures_util::FutureExt;
use wsgate_business::{InProcess, InProcessAnswer};
use wsgate_proto::v1::{self, ErrorCode, ReceiptMode, envelope::Body};
use wsgate_proto::validate::Refused;

use super::command_ids::CommandIds;
use super::commands::{self, Asked};
use super::limits::Limits;
use super::report::refused;
use crate::connections::Connections;
use crate::stats::Stats;

/// This gateway, as its cluster client calls it.
#[derive(Debug)]
pub(crate) struct InProcessGateway {
    node_id: String,
    conns: Arc<Connections>,
    limits: Limits,
    command_ids: Arc<CommandIds>,
    stats: Arc<Stats>,
}

impl InProcessGateway {
    pub(crate) fn new(
        node_id: String,
        conns: Arc<Connections>,
        limits: Limits,
        command_ids: Arc<CommandIds>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            node_id,
            conns,
            limits,
            command_ids,
            stats,
        }
    }
}

impl InProcess for InProcessGateway {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn execute(
        &self,
        command_id: &str,
        receipt: ReceiptMode,
        client_ack: bool,
        body: Body,
    ) -> InProcessAnswer<'_> {
        let (conns, limits, stats) = (self.conns.clone(), self.limits, self.stats.clone());
        let (ids, command_id) = (self.command_ids.clone(), command_id.to_owned());
        // The APIs have no link to send Receipts frames on later: they wait for them.
        let asked = match receipt {
            ReceiptMode::Later => Err(Refused::bad(
                "RECEIPT_MODE_LATER needs a worker link to send the Receipts frames on; ask the HTTP and gRPC APIs to wait (RECEIPT_MODE_WAIT)",
            )),
            mode => Asked::of(mode as i32, client_ack, &body),
        };
        let mut work = Box::pin(async move {
            let asked = match asked {
                Ok(asked) => asked,
                Err(refusal) => return Some(refused(refusal)),
            };
            let id = &command_id;
            ids.carry_out(id, body, |body| async move {
                let mut result =
                    commands::carry_out(&conns, &limits, &stats, body, asked.as_ref(), id).await?;
                if let Some(asked) = asked {
                    result.receipts = asked.receipts.all().await;
                }
                Some(result)
            })
            .await
        });
        Box::pin(async move {
            let answer = match (&mut work).now_or_never() {
                Some(answer) => answer,
                None => {
                    match tokio::spawn(work).await {
                        Ok(answer) => answer,
                        // A panic ends the caller as it would have ended the link's session.
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(_) => {
                            return Err(v1::Error {
                            code: ErrorCode::ShuttingDown as i32,
                            message: "the gateway is shutting down; send the request to another gateway".into(),
                        });
                        }
                    }
                }
            };
            answer.ok_or_else(|| v1::Error {
                code: ErrorCode::Unsupported as i32,
                message: "not a command or a query: the cluster client sends only those".into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::poll;
    use wsgate_proto::ConnIdGenerator;
    use wsgate_proto::v1::{Payload, Publish, Subscribe};

    use super::*;
    use crate::config::Config;
    use crate::connections::registry::{Conn, Next, PeerInfo, QueueLimit};
    use crate::worker::command_ids::Window;

    /// A gateway's connections without sockets: `n` registered connections.
    fn gateway(n: usize) -> (InProcessGateway, Vec<Arc<Conn>>) {
        let stats = Arc::new(Stats::default());
        let limit = QueueLimit {
            frames: 16,
            bytes: 1 << 20,
        };
        let ids = ConnIdGenerator::new("node").expect("a valid node id");
        let conns = Arc::new(Connections::new(ids, limit, n, stats.clone()));
        let all: Vec<Arc<Conn>> = (0..n)
            .map(|_| {
                let info = PeerInfo {
                    remote_addr: "127.0.0.1:1".parse().expect("an address"),
                    forwarded_for: None,
                    real_ip: None,
                    connected_at_ms: 0,
                };
                let conn = Arc::new(Conn::new(conns.ids.next_id().into(), info, false));
                conns.registry.insert(conn.clone());
                conn
            })
            .collect();
        let limits = Limits::of(&Config::default());
        let window = Window {
            count: 0,
            ttl: Duration::ZERO,
            bytes: 0,
        };
        let ids = Arc::new(CommandIds::new(window, stats.clone()));
        let gw = InProcessGateway::new("node".into(), conns, limits, ids, stats);
        (gw, all)
    }

    /// A command longer than one work slice goes on by itself once its caller stops waiting:
    /// every member gets the message, as they would from a command sent on a link.
    #[tokio::test]
    async fn a_command_started_is_finished_when_the_caller_goes_away() {
        let n = 3 * super::super::limits::WORK_SLICE;
        let (gw, all) = gateway(n);
        let subscribe = Body::Subscribe(Subscribe {
            topics: vec!["t".into()],
            conn_ids: all.iter().map(|c| c.id().to_string()).collect(),
            ..Default::default()
        });
        let joined = gw
            .execute("", ReceiptMode::None, false, subscribe)
            .await
            .expect("subscribed");
        assert_eq!(joined.delivered as usize, n);

        let publish = Body::Publish(Publish {
            topics: vec!["t".into()],
            payload: Some(Payload {
                data: "paid".into(),
                kind: 0,
            }),
            exclude_conn_ids: Vec::new(),
        });
        let mut answer = gw.execute("", ReceiptMode::None, false, publish);
        assert!(
            poll!(&mut answer).is_pending(),
            "a publish to {n} members yields after the first slice"
        );
        drop(answer);
        // Every member's queue gets the frame although nobody waits for the answer.
        let mut pending = all;
        tokio::time::timeout(Duration::from_secs(10), async {
            while !pending.is_empty() {
                tokio::task::yield_now().await;
                pending.retain(|c| match futures_util::FutureExt::now_or_never(c.next()) {
                    Some(Next::Send(queue)) => queue.len() != 1,
                    _ => true,
                });
            }
        })
        .await
        .expect("the publish reached every member");
    }

    #[tokio::test]
    async fn a_short_command_is_answered_in_the_first_poll() {
        let (gw, all) = gateway(3);
        let broadcast = Body::Broadcast(wsgate_proto::v1::Broadcast {
            payload: Some(Payload {
                data: "hi".into(),
                kind: 0,
            }),
            exclude: Vec::new(),
        });
        let mut answer = gw.execute("", ReceiptMode::None, false, broadcast);
        match poll!(&mut answer) {
            std::task::Poll::Ready(Ok(result)) => assert_eq!(result.delivered, 3),
            other => panic!("a broadcast to 3 is answered at once, got {other:?}"),
        }
        assert!(all.iter().all(|c| c.next().now_or_never().is_some()));
        let not_a_command = gw
            .execute("", ReceiptMode::None, false, Body::Ping(Default::default()))
            .await;
        assert_eq!(
            not_a_command.map_err(|e| e.code),
            Err(ErrorCode::Unsupported as i32)
        );
    }
}
