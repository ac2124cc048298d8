//! Registries must not leak: after random binds, subscribes, publishes, session changes and
//! closes, once every connection is gone every count is zero and every list is empty.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wsgate_business::{ListKind, Payload, SessionChange, Targets};

#[tokio::test]
async fn random_operations_leave_no_state_behind() {
    let gw = TestGateway::start().await;
    let (client, mut events) = gw.business("chaos").await;
    for seed in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut live: Vec<(Ws, String)> = Vec::new();
        for step in 0..300 {
            let user = format!("u{}", rng.random_range(0..6));
            let topic = format!("t{}", rng.random_range(0..5));
            let pick = (!live.is_empty()).then(|| rng.random_range(0..live.len()));
            match (rng.random_range(0..10), pick) {
                (0 | 1, _) | (_, None) if live.len() < 30 => {
                    let ws = gw.client().await;
                    let id = events.open().await.conn_id;
                    live.push((ws, id));
                }
                (2, Some(i)) => {
                    let (mut ws, _) = live.swap_remove(i);
                    ws.close(None).await.unwrap();
                    events.close().await;
                }
                (3, Some(i)) => client.bind_user(live[i].1.clone(), user).await.unwrap(),
                (4, Some(i)) => client.unbind_user(live[i].1.clone()).await.unwrap(),
                (5, Some(i)) => drop(
                    client
                        .subscribe(vec![topic], Targets::conn(live[i].1.clone()))
                        .await
                        .unwrap(),
                ),
                (6, _) => drop(
                    client
                        .subscribe(vec![topic], Targets::user(user))
                        .await
                        .unwrap(),
                ),
                (7, Some(i)) => drop(
                    client
                        .unsubscribe(vec![topic], Targets::conn(live[i].1.clone()))
                        .await
                        .unwrap(),
                ),
                (8, Some(i)) => {
                    let change = SessionChange::new().set(format!("k{step}"), "v");
                    client.set_session(live[i].1.clone(), change).await.unwrap();
                }
                (_, _) => {
                    if rng.random_bool(0.5) {
                        drop(
                            client
                                .publish(vec![topic], Payload::text("p"), Vec::<String>::new())
                                .await
                                .unwrap(),
                        );
                    } else {
                        drop(client.delete_topics(vec![topic]).await.unwrap());
                    }
                }
            }
        }
        // Half leave politely, half vanish.
        for (i, (mut ws, _)) in live.drain(..).enumerate() {
            if i % 2 == 0 {
                ws.close(None).await.unwrap();
            }
            drop(ws);
            events.close().await;
        }
        let counts = client.counts(Vec::<String>::new()).await.unwrap();
        assert_eq!(
            (counts.connections, counts.users, counts.topics),
            (0, 0, 0),
            "seed {seed}"
        );
        for kind in [ListKind::Connections, ListKind::Users, ListKind::Topics] {
            assert!(
                client.list_all(kind, "").await.unwrap().is_empty(),
                "seed {seed}: {kind:?}"
            );
        }
    }
    gw.stop().await;
}
