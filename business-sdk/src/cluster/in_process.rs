//! A gateway in the same process as the cluster client, reached by a call instead of its link.
//!
//! A gateway's own HTTP and gRPC APIs are a cluster client of every gateway, itself included.
//! Through its link, a command to itself takes six task hops (the link's writer, loopback TCP,
//! the worker session, the answer back, the link's reader, the caller), each queued behind
//! whatever else the process runs — while a broadcast is being written, 10,000 connection
//! tasks. Given an [`InProcess`] for its own node id, the cluster client carries out that
//! gateway's part of a command by calling it in the caller's task, and keeps using the link
//! for everything else the link gives: registration (the node id, the limits), status, and
//! routing. The answer is the one the gateway would have sent on its link.

use std::future::Future;
use std::pin::Pin;

use wsgate_proto::v1::{self, ReceiptMode, envelope::Body};

/// The answer of an [`InProcess`] gateway to one command: its `Result`, or the `Error` it would
/// have sent on its link.
pub type InProcessAnswer<'a> =
    Pin<Box<dyn Future<Output = Result<v1::Result, v1::Error>> + Send + 'a>>;

/// A gateway the cluster client reaches in-process (see the module doc). Set with
/// [`ClusterBuilder::in_process`](crate::ClusterBuilder::in_process).
pub trait InProcess: Send + Sync + std::fmt::Debug + 'static {
    /// The node id the gateway registers with: its part of a command goes to
    /// [`execute`](Self::execute) when its link is registered under this node id.
    fn node_id(&self) -> &str;

    /// Carries out one command or query, exactly as on the gateway's link, with its command id
    /// (`Envelope.command_id`; empty: none), receipt mode (`Envelope.receipt`) and whether
    /// clients are asked to acknowledge (`Envelope.client_ack`). The future must finish the command once it has
    /// started even when the caller stops waiting: the cluster client applies no request
    /// timeout to it (nothing it waits for is remote).
    fn execute(
        &self,
        command_id: &str,
        receipt: ReceiptMode,
        client_ack: bool,
        body: Body,
    ) -> InProcessAnswer<'_>;
}
