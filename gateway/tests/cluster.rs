//! Many gateways, one logical service: three real gateways, business processes using the SDK's
//! cluster client, clients spread over all three.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use wsgate_business::{
    Cluster, ClusterEvent, ClusterEvents, Error, Event, GatewayState, ListKind, Payload,
    StaticDiscovery, Targets,
};

async fn gateways(n: usize) -> Vec<TestGateway> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(TestGateway::start_with(|c| c.node_id = format!("gw{i}")).await);
    }
    out
}

async fn cluster(gws: &[TestGateway], name: &str) -> (Cluster, ClusterEvents) {
    let addrs = gws.iter().map(|g| g.worker_addr.to_string()).collect();
    Cluster::builder(StaticDiscovery::new(addrs))
        .name(name)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .connect()
        .await
        .expect("cluster connects")
}

/// The next connection event from any gateway, skipping link status.
async fn next(events: &mut ClusterEvents) -> ClusterEvent {
    within("a cluster event", async {
        loop {
            let e = events.recv().await.expect("events open");
            if matches!(
                e.event,
                Event::Open(_) | Event::Message(_) | Event::Close(_)
            ) {
                return e;
            }
        }
    })
    .await
}

/// Waits for a status event of one gateway.
async fn status(events: &mut ClusterEvents, node: &str, want: fn(&Event) -> bool) {
    within("a gateway status event", async {
        loop {
            let e = events.recv().await.expect("events open");
            if e.node_id == node && want(&e.event) {
                return;
            }
        }
    })
    .await
}

/// Opens two clients on each gateway; returns them with their connection ids.
async fn spread(gws: &[TestGateway], events: &mut ClusterEvents) -> Vec<(Ws, String)> {
    let mut out = Vec::new();
    for gw in gws {
        for _ in 0..2 {
            let ws = gw.client().await;
            let e = next(events).await;
            let Event::Open(open) = e.event else {
                panic!("expected an open, got {e:?}")
            };
            assert_eq!(
                e.node_id, gw.node_id,
                "events are tagged with their gateway"
            );
            out.push((ws, open.conn_id));
        }
    }
    out
}

#[tokio::test]
async fn commands_reach_every_gateway_and_queries_merge_exactly() {
    let gws = gateways(3).await;
    let (cluster, mut events) = cluster(&gws, "app").await;
    let mut conns = spread(&gws, &mut events).await;
    let ids: Vec<String> = conns.iter().map(|c| c.1.clone()).collect();

    // One user with a connection on every gateway (bind routes by the node id in the id).
    for i in [0, 2, 4] {
        cluster.bind_user(ids[i].clone(), "uma").await.unwrap();
    }
    let r = cluster
        .send_to_users(
            vec!["uma".to_string()],
            Payload::text("to uma"),
            Vec::<String>::new(),
        )
        .await
        .unwrap();
    assert!(r.failed.is_empty());
    assert_eq!(r.report.delivered, 3);
    for i in [0, 2, 4] {
        assert_eq!(recv_text(&mut conns[i].0).await, "to uma");
    }

    // A topic with members on two gateways.
    cluster
        .subscribe(
            vec!["t".to_string()],
            Targets::conns(vec![ids[1].clone(), ids[5].clone()]),
        )
        .await
        .unwrap();
    let r = cluster
        .publish(
            vec!["t".to_string()],
            Payload::text("topic"),
            Vec::<String>::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.report.delivered, 2);
    for i in [1, 5] {
        assert_eq!(recv_text(&mut conns[i].0).await, "topic");
    }

    // Broadcast reaches everyone exactly once.
    let r = cluster
        .broadcast(Payload::text("all"), Vec::<String>::new())
        .await
        .unwrap();
    assert_eq!(r.report.delivered, 6);
    for (ws, _) in &mut conns {
        assert_eq!(recv_text(ws).await, "all");
    }

    // Merged queries are exact.
    let counts = cluster.counts(Vec::<String>::new()).await.unwrap();
    assert!(counts.failed.is_empty());
    assert_eq!(counts.value.connections, 6);
    assert_eq!(counts.value.topics, 2, "t exists on two gateways");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        cluster
            .list_all(ListKind::Connections, "")
            .await
            .unwrap()
            .value,
        sorted
    );
    // One cursor across gateways: pages of 4 walk all 6 once, in order.
    let mut cursor = String::new();
    let mut seen = Vec::new();
    loop {
        let page = cluster
            .list(ListKind::Connections, "", cursor.clone(), 4)
            .await
            .unwrap()
            .value;
        seen.extend(page.items);
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    assert_eq!(seen, sorted);
    assert_eq!(
        cluster.list_all(ListKind::Users, "").await.unwrap().value,
        vec!["uma".to_string()],
        "deduplicated"
    );
    let online = cluster
        .online(
            vec![ids[3].clone()],
            vec!["uma".to_string(), "nobody".to_string()],
        )
        .await
        .unwrap()
        .value;
    assert_eq!(online.conn_ids, vec![ids[3].clone()]);
    assert_eq!(online.user_ids, vec!["uma".to_string()]);
    let info = cluster
        .conn_info(vec![ids[0].clone(), ids[5].clone()])
        .await
        .unwrap()
        .value;
    assert_eq!(info.len(), 2);
    cluster.shutdown().await;
    for gw in gws {
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_gateway_that_goes_down_is_reported_and_returns_without_help() {
    let mut gws = gateways(3).await;
    let (cluster, mut events) = cluster(&gws, "app").await;
    let conns = spread(&gws, &mut events).await;
    let on_gw1 = conns[2].1.clone();

    let gw1 = gws.remove(1);
    let (addr, node): (SocketAddr, String) = (gw1.worker_addr, gw1.node_id.clone());
    gw1.stop().await;
    status(&mut events, &node, |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;

    let r = cluster
        .broadcast(Payload::text("while down"), Vec::<String>::new())
        .await
        .unwrap();
    assert_eq!(r.report.delivered, 4, "the other gateways still serve");
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].gateway, node, "the missing gateway is named");
    match cluster
        .single_cast(on_gw1.clone(), Payload::text("x"))
        .await
    {
        Err(Error::GatewayUnavailable { node_id }) => assert_eq!(node_id, node),
        other => panic!("expected GatewayUnavailable, got {other:?}"),
    }
    assert!(
        cluster
            .gateways()
            .iter()
            .any(|g| g.node_id.as_deref() == Some(node.as_str()) && g.state != GatewayState::Up)
    );

    // Back on the same address: the link returns by itself.
    let back = TestGateway::start_with(|c| {
        c.worker_addr = addr;
        c.node_id = node.clone();
    })
    .await;
    status(&mut events, &node, |e| matches!(e, Event::Connected { .. })).await;
    let r = cluster
        .broadcast(Payload::text("all back"), Vec::<String>::new())
        .await
        .unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    cluster.shutdown().await;
    back.stop().await;
    for gw in gws {
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_killed_business_process_loses_no_later_events() {
    let gws = gateways(3).await;
    let (a, _a_events) = cluster(&gws, "a").await;
    let (_b, mut b_events) = cluster(&gws, "b").await;
    for gw in &gws {
        wait_until("two links on every gateway", || {
            gw.stat(|s| &s.links_current) == 2
        })
        .await;
    }
    let mut clients = Vec::new();
    for gw in &gws {
        for _ in 0..4 {
            clients.push(gw.client().await);
        }
    }
    a.shutdown().await;
    for gw in &gws {
        wait_until("one link on every gateway", || {
            gw.stat(|s| &s.links_current) == 1
        })
        .await;
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        send_text(ws, &format!("m{i}")).await;
    }
    let mut got = HashSet::new();
    while got.len() < clients.len() {
        if let Event::Message(m) = next(&mut b_events).await.event {
            got.insert(m.payload.unwrap().as_text().unwrap().to_string());
        }
    }
    for gw in gws {
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_rolling_restart_drains_one_gateway_with_1012() {
    let mut gws = Vec::new();
    for i in 0..2 {
        gws.push(
            TestGateway::start_with(|c| {
                c.node_id = format!("gw{i}");
                c.peers = vec!["127.0.0.1:9".into()]; // in a cluster: clients get 1012
            })
            .await,
        );
    }
    let (cluster, mut events) = cluster(&gws, "app").await;
    let mut conns = spread(&gws, &mut events).await;
    let mut gw0 = gws.remove(0);
    gw0.begin_shutdown();
    for (ws, _) in conns.iter_mut().take(2) {
        assert_eq!(u16::from(recv_close(ws).await.code), 1012);
    }
    let mut draining = false;
    let mut closes = 0;
    within("drain events", async {
        while closes < 2 || !draining {
            let e = events.recv().await.expect("events open");
            match e.event {
                Event::Draining { close_code, .. } => {
                    assert_eq!((e.node_id.as_str(), close_code), ("gw0", 1012));
                    draining = true;
                }
                Event::Close(c) => {
                    assert!(draining, "Draining comes before the closes");
                    assert_eq!((e.node_id.as_str(), c.code), ("gw0", 1012));
                    closes += 1;
                }
                _ => {}
            }
        }
    })
    .await;
    gw0.finished().await;
    // The other gateway keeps serving.
    let r = cluster
        .broadcast(Payload::text("still"), Vec::<String>::new())
        .await
        .unwrap();
    assert_eq!(r.report.delivered, 2);
    cluster.shutdown().await;
    for gw in gws {
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_gateway_fans_out_to_the_whole_cluster_through_its_cluster_client() {
    let addrs = reserve_addrs(3);
    let peers: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let mut gws = Vec::new();
    let mut slots = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let gw = TestGateway::start_with(|c| {
            c.node_id = format!("gw{i}");
            c.worker_addr = *addr;
            c.peers = peers.clone();
        })
        .await;
        slots.push(gw.cluster.clone());
        gws.push(gw);
    }
    let mut clients = Vec::new();
    for gw in &gws {
        clients.push(gw.client().await);
    }
    let cluster = within("gw0's cluster client", slots[0].ready())
        .await
        .expect("connected");
    // Its peer links want no events, so a business-less cluster still drops messages alone;
    // but commands reach every gateway.
    for gw in &gws {
        wait_until("the peer links", || gw.stat(|s| &s.peer_links_current) == 3).await;
    }
    let r = cluster
        .broadcast(Payload::text("from gw0"), Vec::<String>::new())
        .await
        .unwrap();
    assert!(r.failed.is_empty());
    assert_eq!(r.report.delivered, 3);
    for ws in &mut clients {
        assert_eq!(recv_text(ws).await, "from gw0");
    }
    for gw in gws {
        gw.stop().await;
    }
}
