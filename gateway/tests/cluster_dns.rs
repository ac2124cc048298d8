//! DNS discovery against a DNS server the test controls: gateways joining and leaving the
//! name's records are joined and dropped while everything runs.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::dns::TestDns;
use common::*;
use wsgate_business::{Cluster, DnsDiscovery, Event, Payload};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP address")
}

#[tokio::test]
async fn dns_discovery_follows_the_records() {
    let dns = TestDns::start().await;
    dns.set("gateways.test", &[ip("127.0.0.1"), ip("127.0.0.2")]);

    // One worker port on three loopback addresses, as a headless Service gives one port on
    // many pod IPs. gw0 also fans out through its own cluster client, found by the same name.
    let first = TestGateway::start_with(|c| c.node_id = "d0".into()).await;
    let port = first.worker_addr.port();
    first.stop().await;
    let mut gws = Vec::new();
    for (i, host) in ["127.0.0.1", "127.0.0.2", "127.0.0.3"].iter().enumerate() {
        gws.push(
            TestGateway::start_with(|c| {
                c.node_id = format!("d{i}");
                c.ws_addr = format!("{host}:0").parse().unwrap();
                c.worker_addr = format!("{host}:{port}").parse().unwrap();
                if i == 0 {
                    c.peers_dns = Some(format!("gateways.test:{port}"));
                    c.peers_dns_server = Some(dns.addr());
                }
            })
            .await,
        );
    }
    let discovery = DnsDiscovery::new("gateways.test", port).nameserver(dns.addr());
    let (cluster, mut events) = Cluster::builder(discovery)
        .name("app")
        .rediscover_every(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let mut clients = Vec::new();
    for gw in &gws {
        clients.push(gw.client().await);
    }
    let r = cluster
        .broadcast(Payload::text("two"), Vec::<String>::new())
        .await
        .unwrap();
    assert_eq!(r.report.delivered, 2, "d2 is not in DNS yet");

    // d2 appears in DNS: joined without help.
    dns.set(
        "gateways.test",
        &[ip("127.0.0.1"), ip("127.0.0.2"), ip("127.0.0.3")],
    );
    within("d2 to be joined", async {
        loop {
            let e = events.recv().await.unwrap();
            if e.node_id == "d2" && matches!(e.event, Event::Connected { .. }) {
                return;
            }
        }
    })
    .await;
    let r = cluster
        .broadcast(Payload::text("three"), Vec::<String>::new())
        .await
        .unwrap();
    assert_eq!(r.report.delivered, 3);
    for ws in clients.iter_mut().take(2) {
        assert_eq!(recv_text(ws).await, "two");
    }
    for ws in &mut clients {
        assert_eq!(recv_text(ws).await, "three");
    }

    // The gateway-side cluster client found all three by the same name.
    let mut slot = gws[0].cluster.clone();
    let peer = within("gw0's cluster client", slot.ready()).await.unwrap();
    within("all three peers", async {
        while peer
            .gateways()
            .iter()
            .filter(|g| g.state == wsgate_business::GatewayState::Up)
            .count()
            < 3
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let r = peer
        .broadcast(Payload::text("from d0"), Vec::<String>::new())
        .await
        .unwrap();
    assert_eq!(r.report.delivered, 3);

    // d0 leaves DNS: its link is dropped.
    dns.set("gateways.test", &[ip("127.0.0.2"), ip("127.0.0.3")]);
    wait_until("the app's link to d0 to go", || {
        !cluster
            .gateways()
            .iter()
            .any(|g| g.addr.starts_with("127.0.0.1:"))
    })
    .await;
    cluster.shutdown().await;
    for gw in gws {
        gw.stop().await;
    }
}
