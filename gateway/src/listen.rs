//! Binding the gateway's TCP listeners with a backlog fit for a gateway.
//!
//! The listen backlog holds connections the kernel has completed but the gateway has not
//! accepted yet. Tokio's default (1024, or 128 through std) overflows when hundreds of clients
//! connect at once, after a deploy or a network blip, and the kernel then drops their SYNs:
//! each such client waits a second or more for its retransmission. `--listen-backlog`
//! (default 4096) is asked for on every listener; Linux silently caps it at
//! `net.core.somaxconn`, so the start-up log says when that happened and how to raise it.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The kernel's cap on listen backlogs, where it can be read.
pub(crate) fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The backlog a listener gets: the one asked for, at most the kernel's cap.
pub(crate) fn effective_backlog(asked: u32, cap: Option<u32>) -> u32 {
    match cap {
        Some(cap) => asked.min(cap),
        None => asked,
    }
}

/// Logs, once at start-up, when the kernel holds the backlog below `--listen-backlog`.
pub(crate) fn report_backlog(asked: u32) {
    let cap = somaxconn();
    let effective = effective_backlog(asked, cap);
    if effective < asked {
        tracing::warn!(
            listen_backlog = asked,
            somaxconn = cap.unwrap_or_default(),
            effective,
            "the kernel caps listen backlogs below --listen-backlog: connects arriving in bursts may be dropped and retried; raise it with `sysctl -w net.core.somaxconn={asked}`"
        );
    } else {
        tracing::debug!(listen_backlog = asked, "listen backlog");
    }
}

/// A listener on `addr` with `backlog` (address reuse on, as std and tokio do, so a restarted
/// gateway binds at once).
pub(crate) fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_cap_wins() {
        assert_eq!(effective_backlog(4096, Some(128)), 128);
        assert_eq!(effective_backlog(4096, Some(65535)), 4096);
        assert_eq!(effective_backlog(4096, None), 4096);
    }

    #[tokio::test]
    async fn a_listener_binds_with_its_backlog() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"), 4096).expect("binds");
        let addr = listener.local_addr().expect("bound");
        let connect = tokio::net::TcpStream::connect(addr);
        let (accepted, connected) = tokio::join!(listener.accept(), connect);
        assert!(accepted.is_ok() && connected.is_ok());
    }
}
