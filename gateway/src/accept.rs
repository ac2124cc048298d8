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

/// Accepts until `stop` fires, handing each connection (with TCP_NODELAY set) to `on_accept`.
pub(crate) async fn run(
    listener: TcpListener,
    what: &'static str,
    stop: CancellationToken,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    let mut backoff = Duration::ZERO;
    let mut failures = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                if failures > 0 {
                    tracing::info!(failures, "accepting {what} works again");
                    failures = 0;
                }
                backoff = Duration::ZERO;
                let _ = stream.set_nodelay(true);
                on_accept(stream, peer);
            }
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                if failures == 0 {
                    let hint = if is_out_of_files(&e) {
                        "the process is out of file descriptors: new connections wait in the backlog or are refused until some close; raise the open-file limit (ulimit -n, LimitNOFILE=) or add gateways"
                    } else {
                        "retrying with a backoff"
                    };
                    tracing::warn!(error = %e, "accepting {what} failed: {hint}");
                } else {
                    tracing::debug!(error = %e, retry_in = ?backoff, "accepting {what} failed again");
                }
                failures += 1;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

/// EMFILE (the process's limit) or ENFILE (the system's).
fn is_out_of_files(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}
