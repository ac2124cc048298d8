//! The accept loop both TCP listeners (clients and worker links) run.
//!
//! An accept error is usually the process being out of file descriptors: retrying at once
//! would spin, so the loop backs off (10 ms doubling to 1 s) and existing connections keep
//! working until descriptors free up. The kernel keeps the waiting connections in the listen
//! backlog, and refuses new ones once it is full. Clients normally never get this far: the
//! connection limit ([`client::limit`](crate::connections::limit)) answers HTTP 503 below the
//! open-file limit; this is for descriptors held by other things (unfinished handshakes). The first failure of a run is logged as a
//! warning with what to do, the end of the run once more; the retries in between only at
//! debug level, so a full process does not also fill the log.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use wsgate_proto::backoff::{Backoff, Jitter};

/// Accepts until `stop` fires, handing each connection (with TCP_NODELAY set) to `on_accept`.
pub(crate) async fn run(
    listener: TcpListener,
    what: &'static str,
    stop: CancellationToken,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    let mut retry = Retry::new(what);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                retry.accepted();
                let _ = stream.set_nodelay(true);
                on_accept(stream, peer);
            }
            Err(e) => {
                let wait = retry.failed(&e);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// What an accept loop does after a failed accept: how long to wait (the one backoff,
/// 10 ms doubling to 1 s), and what to log (the first failure of a run as a warning with what
/// to do, the retries at debug level, the end of the run once). Shared by the plain and the
/// TLS listeners.
pub(crate) struct Retry {
    what: &'static str,
    backoff: Backoff,
    failures: u64,
}

impl Retry {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
                .with_jitter(Jitter::None),
            failures: 0,
        }
    }

    /// A connection was accepted: a run of failures, if any, is over.
    pub(crate) fn accepted(&mut self) {
        if self.failures > 0 {
            let (what, failures) = (self.what, self.failures);
            tracing::info!(failures, "accepting {what} works again");
            self.failures = 0;
            self.backoff.reset();
        }
    }

    /// An accept failed: how long to wait before the next.
    pub(crate) fn failed(&mut self, e: &std::io::Error) -> Duration {
        let what = self.what;
        let wait = self.backoff.next_delay();
        if self.failures == 0 {
            let hint = if is_out_of_files(e) {
                "the process is out of file descriptors: new connections wait in the backlog or are refused until some close; raise the open-file limit (ulimit -n, LimitNOFILE=) or add gateways"
            } else {
                "retrying with a backoff"
            };
            tracing::warn!(error = %e, "accepting {what} failed: {hint}");
        } else {
            tracing::debug!(error = %e, retry_in = ?wait, "accepting {what} failed again");
        }
        self.failures += 1;
        wait
    }
}

/// EMFILE (the process's limit) or ENFILE (the system's).
fn is_out_of_files(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}
