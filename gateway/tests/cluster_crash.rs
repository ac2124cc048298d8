//! A gateway process killed with SIGKILL in the middle of a run: the cluster client reports it
//! down, the other gateways keep working, and when it is started again the link returns alone.

mod common;

use std::time::Duration;

use common::*;
use wsgate_business::{Cluster, Error, Event, Payload, StaticDiscovery};

/// Starts the real binary on a fixed worker address; returns it and its client URL.
async fn spawn_gateway(worker: &str, node: &str) -> (tokio::process::Child, String) {
    let (child, up) = spawn_wsgate(&["--worker-addr", worker, "--node-id", node]).await;
    (child, log_field(&up, "clients=").to_owned())
}

#[tokio::test]
async fn a_killed_gateway_is_reported_down_and_rejoins_when_restarted() {
    let others = [
        TestGateway::start_with(|c| c.node_id = "gw0".into()).await,
        TestGateway::start_with(|c| c.node_id = "gw2".into()).await,
    ];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let worker = format!("127.0.0.1:{port}");
    let (mut crashing, url) = spawn_gateway(&worker, "gw1").await;

    let addrs = vec![
        others[0].worker_addr.to_string(),
        worker.clone(),
        others[1].worker_addr.to_string(),
    ];
    let (cluster, mut events) = Cluster::builder(StaticDiscovery::new(addrs))
        .name("app")
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .connect()
        .await
        .expect("cluster connects");
    let _c0 = others[0].client().await;
    let _c1 = connect(&url).await;
    let _c2 = others[1].client().await;
    let on_gw1 = within("gw1's connection", async {
        loop {
            let e = events.recv().await.expect("events");
            if let Event::Open(o) = e.event
                && e.node_id == "gw1"
            {
                return o.conn_id;
            }
        }
    })
    .await;

    crashing.start_kill().expect("SIGKILL");
    crashing.wait().await.expect("reaped");
    within("gw1 reported down", async {
        loop {
            let e = events.recv().await.expect("events");
            if e.node_id == "gw1" && matches!(e.event, Event::Disconnected { .. }) {
                return;
            }
        }
    })
    .await;
    let r = cluster
        .broadcast(Payload::text("x"), Vec::<String>::new())
        .await
        .expect("broadcast");
    assert_eq!(r.report.delivered, 2, "the others keep working");
    assert_eq!(
        r.failed
            .iter()
            .map(|f| f.gateway.as_str())
            .collect::<Vec<_>>(),
        ["gw1"]
    );
    assert!(matches!(
        cluster.single_cast(on_gw1, Payload::text("x")).await,
        Err(Error::GatewayUnavailable { .. })
    ));

    // Started again on the same address: the link returns without help.
    let (_back, _) = spawn_gateway(&worker, "gw1").await;
    within("gw1 back", async {
        loop {
            let e = events.recv().await.expect("events");
            if e.node_id == "gw1" && matches!(e.event, Event::Connected { .. }) {
                return;
            }
        }
    })
    .await;
    let r = cluster
        .broadcast(Payload::text("y"), Vec::<String>::new())
        .await
        .expect("broadcast");
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    cluster.shutdown().await;
    for gw in others {
        gw.stop().await;
    }
}
