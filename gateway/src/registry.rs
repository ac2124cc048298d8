//! The live client connections of this gateway, by connection id.
//!
//! Each entry holds the sending side of the connection's bounded queue and a control slot for
//! out-of-band closes. Sends never block: a full queue marks the client a slow consumer and
//! closes it, so one stalled browser cannot hold back a broadcast to everyone else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use wsgate_proto::v1::ClosedBy;

use crate::state::ConnState;

/// WebSocket close codes the gateway sends.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const ABNORMAL: u16 = 1006;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
    pub const SERVICE_RESTART: u16 = 1012;
    pub const IDLE_TIMEOUT: u16 = 4000;
    pub const SLOW_CONSUMER: u16 = 4001;
    pub const GUEST_TIMEOUT: u16 = 4002;
}

/// A request to close a connection.
#[derive(Debug, Clone)]
pub struct CloseRequest {
    pub code: u16,
    pub reason: String,
    pub closed_by: ClosedBy,
}

/// What the connection's task receives, in order.
#[derive(Debug)]
pub enum Outbound {
    Message(Message),
    Close(CloseRequest),
}

/// What the connection's handshake told us; fixed for its lifetime.
#[derive(Debug, Default, Clone)]
pub struct ConnInfo {
    pub remote_addr: String,
    pub forwarded_for: String,
    pub real_ip: String,
    pub connected_at_ms: u64,
}

/// The part of a connection other tasks reach: out-of-band closes (which must not wait behind
/// a full queue), the state business processes attach, and the handshake facts.
#[derive(Debug, Default)]
pub struct Conn {
    close: Mutex<Option<CloseRequest>>,
    notify: Notify,
    pub state: ConnState,
    pub info: ConnInfo,
}

impl Conn {
    pub fn new(info: ConnInfo) -> Self {
        Self {
            info,
            ..Self::default()
        }
    }

    /// Asks the connection to close now; the first request wins.
    pub fn close(&self, request: CloseRequest) {
        let mut slot = self.close.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(request);
            self.notify.notify_one();
        }
    }

    /// Waits for a close request.
    pub async fn closed(&self) -> CloseRequest {
        loop {
            if let Some(req) = self.close.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return req;
            }
            self.notify.notified().await;
        }
    }
}

/// A handle on one live connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub tx: mpsc::Sender<Outbound>,
    pub conn: Arc<Conn>,
}

/// What happened to one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Queued,
    Unknown,
    SlowConsumer,
}

/// All live connections.
#[derive(Debug, Default)]
pub struct Registry {
    conns: DashMap<Box<str>, ConnHandle>,
    /// Messages not queued because the recipient's queue was full (it is closed for it).
    dropped_slow_consumer: AtomicU64,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, conn_id: &str, handle: ConnHandle) {
        self.conns.insert(conn_id.into(), handle);
    }

    pub fn remove(&self, conn_id: &str) {
        self.conns.remove(conn_id);
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Messages dropped since start because their recipient was a slow consumer.
    pub fn dropped_slow_consumer(&self) -> u64 {
        self.dropped_slow_consumer.load(Ordering::Relaxed)
    }

    pub fn get(&self, conn_id: &str) -> Option<ConnHandle> {
        self.conns.get(conn_id).map(|h| h.clone())
    }

    /// One page of connection ids (see [`crate::state::page`]).
    pub fn page(&self, cursor: &str, limit: usize) -> (Vec<String>, String) {
        crate::state::page(
            self.conns.iter().map(|e| e.key().to_string()),
            cursor,
            limit,
        )
    }

    /// Queues `msg` for one connection.
    pub fn send(&self, conn_id: &str, msg: &Message) -> SendOutcome {
        match self.conns.get(conn_id) {
            Some(handle) => self.offer(&handle, Outbound::Message(msg.clone())),
            None => SendOutcome::Unknown,
        }
    }

    /// Queues `msg` for every connection not in `exclude`; returns how many got it.
    pub fn broadcast(&self, msg: &Message, exclude: &[String]) -> u32 {
        let mut queued = 0;
        for entry in self.conns.iter() {
            if exclude.iter().any(|e| **e == **entry.key()) {
                continue;
            }
            if self.offer(entry.value(), Outbound::Message(msg.clone())) == SendOutcome::Queued {
                queued += 1;
            }
        }
        queued
    }

    /// Sends `last` (if any) then closes the connection, in queue order so the last message
    /// arrives before the close frame. A full queue closes at once instead.
    pub fn close(&self, conn_id: &str, last: Option<Message>, request: CloseRequest) -> bool {
        let Some(handle) = self.conns.get(conn_id).map(|h| h.clone()) else {
            return false;
        };
        let queued = last.is_none_or(|m| handle.tx.try_send(Outbound::Message(m)).is_ok())
            && handle.tx.try_send(Outbound::Close(request.clone())).is_ok();
        if !queued {
            handle.conn.close(request);
        }
        true
    }

    fn offer(&self, handle: &ConnHandle, out: Outbound) -> SendOutcome {
        match handle.tx.try_send(out) {
            Ok(()) => SendOutcome::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_slow_consumer.fetch_add(1, Ordering::Relaxed);
                handle.conn.close(CloseRequest {
                    code: close_code::SLOW_CONSUMER,
                    reason: "slow consumer: send queue full".into(),
                    closed_by: ClosedBy::Gateway,
                });
                SendOutcome::SlowConsumer
            }
            // The task has ended and is about to remove itself.
            Err(mpsc::error::TrySendError::Closed(_)) => SendOutcome::Unknown,
        }
    }
}
