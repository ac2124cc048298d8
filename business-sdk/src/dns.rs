//! DNS discovery: the gateways of a cluster are the A and AAAA records of one name.
//!
//! This is the "DNS" half of "discovery is config or DNS": point [`DnsDiscovery`] at a name
//! that resolves to every gateway (a Kubernetes headless Service, a round-robin record, a
//! Consul/CoreDNS zone) and the cluster client re-resolves it on every rediscovery tick.
//!
//! Resolution uses `hickory-resolver` (pure Rust, no libc resolver, no C code):
//!
//! - [`DnsDiscovery::new`] reads the system configuration on *every* call: `/etc/resolv.conf`
//!   (nameservers, `search`/`domain`, `ndots`, `timeout`, `attempts`, `edns0`; on Windows the
//!   registry) and `/etc/hosts` (an entry there answers for its name and address family;
//!   unlike the C library, the family it lacks is still asked of DNS). Edits to either file
//!   are seen at the next call. A name with fewer dots than `ndots` (Kubernetes sets 5) is
//!   tried with the search domains first, as usual; a trailing dot skips that.
//! - [`DnsDiscovery::nameserver`] asks only that server: UDP first, TCP when the answer is
//!   truncated; no search domains, no `/etc/hosts`.
//!
//! **No caching.** Each call builds a fresh resolver with a response cache of size zero, so
//! every call asks the DNS server again and a record change (a gateway pod that became ready
//! or went away) is seen at the next call, whatever TTL the records carry. Rediscovery runs
//! every few seconds per business process, so the cost (two small queries, reading two small
//! files) is negligible; a caching resolver in between (the cluster DNS, `nscd`,
//! `systemd-resolved`) still applies its own TTL handling.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

use crate::discovery::Discovery;

/// Per-query timeout with [`DnsDiscovery::nameserver`]; one retry follows a timeout.
const NAMESERVER_TIMEOUT: Duration = Duration::from_secs(2);

/// Discovers the gateways of a cluster as the A and AAAA records of one DNS name.
///
/// [`discover`](Discovery::discover) returns `"ip:port"` for IPv4 and `"[ip]:port"` for IPv6
/// addresses, sorted (as strings) and deduplicated, with the port given to [`new`](Self::new).
/// A name that does not exist (NXDOMAIN) or has no A/AAAA records is an
/// [`io::ErrorKind::NotFound`] error that names the name and what to check. An IP literal
/// (`"10.0.0.7"`, `"::1"`, `"[::1]"`) is returned as is, without asking DNS.
///
/// Resolution uses `hickory-resolver` (pure Rust). Nothing is cached between calls: each call
/// asks the DNS server again (a resolver built for that call, response cache of size zero),
/// so a gateway that joins or leaves the record set is seen at the next call, whatever TTL the
/// records carry. A caching DNS server in between (the cluster DNS, `systemd-resolved`) still
/// applies its own TTLs.
///
/// ```no_run
/// use wsgate_business::DnsDiscovery;
///
/// // A Kubernetes headless Service `wsgate` in namespace `chat`, worker port 8081. Inside
/// // the namespace the pod's resolv.conf search list makes the short name `wsgate` work too.
/// let discovery = DnsDiscovery::new("wsgate.chat.svc.cluster.local", 8081);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DnsDiscovery {
    name: String,
    port: u16,
    nameserver: Option<SocketAddr>,
}

impl DnsDiscovery {
    /// Resolves `name` with the system resolver configuration (`/etc/resolv.conf`,
    /// `/etc/hosts`), re-read on every call; every address gets `port`, the gateways' worker
    /// port.
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        Self {
            name: name.into(),
            port,
            nameserver: None,
        }
    }

    /// Asks only this DNS server (UDP, falling back to TCP for truncated answers) instead of
    /// the system configuration; `/etc/hosts` and search domains are not used. A query that
    /// gets no answer times out after 2 s and is tried once more, so a dead server is an
    /// error after about 4 s.
    pub fn nameserver(mut self, addr: SocketAddr) -> Self {
        self.nameserver = Some(addr);
        self
    }

    /// The name this resolves.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker port given to every resolved address.
    pub fn port(&self) -> u16 {
        self.port
    }

    async fn resolve(&self) -> io::Result<Vec<String>> {
        let name = self.name.trim();
        if let Some(ip) = ip_literal(name) {
            return Ok(vec![SocketAddr::new(ip, self.port).to_string()]);
        }
        check_name(name)?;

        let resolver = self.resolver()?;
        let ips: Vec<IpAddr> = match resolver.lookup_ip(name).await {
            Ok(lookup) => lookup.iter().collect(),
            Err(err) => return Err(self.lookup_error(name, &err)),
        };
        if ips.is_empty() {
            return Err(self.not_found(name, false));
        }
        Ok(format_addrs(ips, self.port))
    }

    /// A fresh resolver for one call: re-reads the system configuration, caches nothing.
    fn resolver(&self) -> io::Result<TokioResolver> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match self.nameserver {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let mut builder = Resolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], vec![server]),
                    provider,
                );
                let options = builder.options_mut();
                options.use_hosts_file = ResolveHosts::Never;
                // A named server is near (loopback, the cluster DNS): fail in 2 x 2 s when it
                // is down rather than the resolv.conf default of 3 x 5 s.
                options.timeout = NAMESERVER_TIMEOUT;
                options.attempts = 1;
                builder
            }
            None => Resolver::builder(provider).map_err(|err| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "DNS discovery of `{}`: cannot read the system resolver configuration \
                         (/etc/resolv.conf): {err}; fix that file or pass a DNS server with \
                         DnsDiscovery::nameserver",
                        self.name
                    ),
                )
            })?,
        };
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.cache_size = 0;
        builder.build().map_err(|err| {
            io::Error::other(format!(
                "DNS discovery of `{}`: cannot set up the resolver: {err}",
                self.name
            ))
        })
    }

    fn source(&self) -> String {
        match self.nameserver {
            Some(addr) => format!("DNS server {addr}"),
            None => "the system resolver (/etc/resolv.conf, /etc/hosts)".to_owned(),
        }
    }

    fn not_found(&self, name: &str, nxdomain: bool) -> io::Error {
        let what = if nxdomain {
            "does not exist (NXDOMAIN)"
        } else {
            "has no A or AAAA records"
        };
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "DNS discovery found no gateways: `{name}` {what} according to {}; check the \
                 name (for a Kubernetes headless Service: <service>.<namespace>.svc.cluster.local) \
                 and that at least one gateway is running and ready (a headless Service lists \
                 only ready pods)",
                self.source()
            ),
        )
    }

    fn lookup_error(&self, name: &str, err: &NetError) -> io::Error {
        if err.is_no_records_found() {
            return self.not_found(name, err.is_nx_domain());
        }
        let kind = match err {
            NetError::Timeout => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(
            kind,
            format!(
                "DNS discovery: looking up `{name}` via {} failed: {err}; check that the DNS \
                 server is reachable",
                self.source()
            ),
        )
    }
}

impl fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("DnsDiscovery");
        d.field("name", &self.name).field("port", &self.port);
        match self.nameserver {
            Some(addr) => d.field("nameserver", &addr),
            None => d.field("nameserver", &"system"),
        };
        d.finish()
    }
}

impl Discovery for DnsDiscovery {
    fn discover(&self) -> Pin<Box<dyn Future<Output = io::Result<Vec<String>>> + Send + '_>> {
        Box::pin(self.resolve())
    }
}

/// `name` as an IP address, when it is one (IPv6 with or without brackets).
fn ip_literal(name: &str) -> Option<IpAddr> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse().ok()
}

/// Rejects names that cannot be DNS names, with a hint at the likely mistake.
fn check_name(name: &str) -> io::Result<()> {
    let bad = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("DNS discovery name `{name}` {why}"),
        ))
    };
    if name.is_empty() || name == "." {
        return bad("is empty; give the DNS name that resolves to every gateway");
    }
    if name.contains(':') {
        return bad(
            "contains `:`; give the host name alone and the worker port as the port argument",
        );
    }
    if name.contains('/') || name.chars().any(char::is_whitespace) {
        return bad("is not a DNS name; give a host name such as wsgate.chat.svc.cluster.local");
    }
    Ok(())
}

/// `"ip:port"` / `"[ip]:port"` strings, sorted and deduplicated.
fn format_addrs(ips: impl IntoIterator<Item = IpAddr>, port: u16) -> Vec<String> {
    let mut addrs: Vec<String> = ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port).to_string())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn formats_sorts_and_dedups() {
        let ips: Vec<IpAddr> = ["10.0.0.2", "::1", "10.0.0.10", "10.0.0.2", "fd00::7", "::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            format_addrs(ips, 8081),
            [
                "10.0.0.10:8081",
                "10.0.0.2:8081",
                "[::1]:8081",
                "[fd00::7]:8081"
            ]
        );
    }

    #[tokio::test]
    async fn ip_literals_are_returned_without_dns() {
        // The nameserver is a port nothing listens on: a DNS query would fail.
        let ns: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for (name, want) in [
            ("10.1.2.3", "10.1.2.3:8081"),
            (" 10.1.2.3 ", "10.1.2.3:8081"),
            ("::1", "[::1]:8081"),
            ("[fd00::1]", "[fd00::1]:8081"),
        ] {
            let got = DnsDiscovery::new(name, 8081)
                .nameserver(ns)
                .discover()
                .await
                .unwrap();
            assert_eq!(got, [want], "{name}");
            // The system configuration is not read either.
            let got = DnsDiscovery::new(name, 8081).discover().await.unwrap();
            assert_eq!(got, [want], "{name}");
        }
    }

    #[tokio::test]
    async fn bad_names_are_rejected_before_any_query() {
        for (name, hint) in [
            ("", "is empty"),
            ("gw.example:8081", "port argument"),
            ("http://gw", "contains `:`"),
            ("gw/x", "not a DNS name"),
            ("g w", "not a DNS name"),
        ] {
            let err = DnsDiscovery::new(name, 8081).discover().await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}");
            assert!(err.to_string().contains(hint), "{name}: {err}");
        }
    }

    #[test]
    fn not_found_errors_name_the_name_and_the_server() {
        let ns: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let d = DnsDiscovery::new("gw.test", 8081).nameserver(ns);
        let err = d.not_found("gw.test", true);
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let msg = err.to_string();
        assert!(msg.contains("`gw.test`"), "{msg}");
        assert!(msg.contains("NXDOMAIN"), "{msg}");
        assert!(msg.contains("127.0.0.1:5353"), "{msg}");
        let msg = DnsDiscovery::new("gw.test", 1)
            .not_found("gw.test", false)
            .to_string();
        assert!(msg.contains("no A or AAAA records"), "{msg}");
        assert!(msg.contains("/etc/resolv.conf"), "{msg}");
    }

    #[test]
    fn debug_and_accessors() {
        let d = DnsDiscovery::new("gw.test", 8081);
        assert_eq!(d.name(), "gw.test");
        assert_eq!(d.port(), 8081);
        assert!(format!("{d:?}").contains("system"));
        let d = d.nameserver("127.0.0.1:53".parse().unwrap());
        assert!(format!("{d:?}").contains("127.0.0.1:53"));
    }
}
