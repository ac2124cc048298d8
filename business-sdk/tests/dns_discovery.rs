//! DnsDiscovery against a real DNS server on loopback (the gateway tests' `TestDns`): records
//! that change between calls are seen at once, missing names are errors that say which name,
//! IPv6 addresses come bracketed, large answers go over TCP.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../../gateway/tests/common/dns.rs"]
mod dns;

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use dns::TestDns;
use wsgate_business::{Discovery, DnsDiscovery};

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

async fn discover(d: &DnsDiscovery) -> io::Result<Vec<String>> {
    tokio::time::timeout(Duration::from_secs(10), d.discover())
        .await
        .expect("DNS discovery took over 10 s")
}

#[tokio::test]
async fn record_changes_are_seen_at_the_next_call() {
    let server = TestDns::start().await;
    let d = DnsDiscovery::new("gw.wsgate.test", 8081).nameserver(server.addr());

    server.set(
        "gw.wsgate.test",
        &ips(&["127.0.0.3", "127.0.0.2", "127.0.0.3"]),
    );
    assert_eq!(
        discover(&d).await.unwrap(),
        ["127.0.0.2:8081", "127.0.0.3:8081"]
    );

    let before = server.queries();
    server.set("gw.wsgate.test", &ips(&["127.0.0.4"]));
    assert_eq!(discover(&d).await.unwrap(), ["127.0.0.4:8081"]);
    assert!(
        server.queries() > before,
        "the second call asked the server again"
    );

    // Names match case-insensitively and with a trailing dot.
    let upper = DnsDiscovery::new("GW.wsgate.TEST.", 9).nameserver(server.addr());
    assert_eq!(discover(&upper).await.unwrap(), ["127.0.0.4:9"]);
}

#[tokio::test]
async fn ipv6_addresses_are_bracketed_and_sorted_with_ipv4() {
    let server = TestDns::start().await;
    server.set(
        "gw.wsgate.test",
        &ips(&["fd00::2", "127.0.0.1", "::1", "fd00::2"]),
    );
    let d = DnsDiscovery::new("gw.wsgate.test", 8081).nameserver(server.addr());
    assert_eq!(
        discover(&d).await.unwrap(),
        ["127.0.0.1:8081", "[::1]:8081", "[fd00::2]:8081"]
    );

    server.set("v6only.wsgate.test", &ips(&["fd00::9"]));
    let d = DnsDiscovery::new("v6only.wsgate.test", 1).nameserver(server.addr());
    assert_eq!(discover(&d).await.unwrap(), ["[fd00::9]:1"]);
}

#[tokio::test]
async fn a_missing_name_is_an_error_that_names_it() {
    let server = TestDns::start().await;
    let d = DnsDiscovery::new("nope.wsgate.test", 8081).nameserver(server.addr());
    let err = discover(&d).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("nope.wsgate.test"), "{msg}");
    assert!(msg.contains("NXDOMAIN"), "{msg}");
    assert!(msg.contains(&server.addr().to_string()), "{msg}");

    // A name that exists without addresses (every gateway gone) is an error too.
    server.set("empty.wsgate.test", &[]);
    let d = DnsDiscovery::new("empty.wsgate.test", 8081).nameserver(server.addr());
    let err = discover(&d).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("empty.wsgate.test"), "{msg}");
    assert!(msg.contains("no A or AAAA records"), "{msg}");

    // And a name that goes away after having records.
    server.set("gone.wsgate.test", &ips(&["127.0.0.5"]));
    let d = DnsDiscovery::new("gone.wsgate.test", 8081).nameserver(server.addr());
    assert_eq!(discover(&d).await.unwrap(), ["127.0.0.5:8081"]);
    server.remove("gone.wsgate.test");
    let err = discover(&d).await.unwrap_err();
    assert!(err.to_string().contains("gone.wsgate.test"), "{err}");
}

#[tokio::test]
async fn answers_too_large_for_udp_come_over_tcp() {
    let server = TestDns::start().await;
    // 40 AAAA records (28 bytes each) do not fit a 512-byte UDP answer.
    let many: Vec<IpAddr> = (1..=40u16)
        .map(|i| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, i]))
        .collect();
    server.set("many.wsgate.test", &many);
    let d = DnsDiscovery::new("many.wsgate.test", 8081).nameserver(server.addr());
    let got = discover(&d).await.unwrap();
    assert!(server.tcp_queries() > 0, "the resolver retried over TCP");
    assert_eq!(got.len(), 40, "{got:?}");
    assert!(got.contains(&"[fd00::28]:8081".to_owned()), "{got:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "sorted: {got:?}");
}

#[tokio::test]
async fn a_dropped_server_stops_answering() {
    let server = TestDns::start().await;
    server.set("gw.wsgate.test", &ips(&["127.0.0.2"]));
    let d = DnsDiscovery::new("gw.wsgate.test", 8081).nameserver(server.addr());
    assert_eq!(discover(&d).await.unwrap(), ["127.0.0.2:8081"]);
    drop(server);
    tokio::task::yield_now().await;
    let err = discover(&d).await.unwrap_err();
    assert!(err.to_string().contains("gw.wsgate.test"), "{err}");
}
