//! Several business processes: connections are split between them by hash, every event of a
//! connection goes to one process, and a process that goes away hands its connections over.

mod common;

use std::collections::HashMap;

use common::*;
use wsgate_business::Event;

#[tokio::test]
async fn connections_split_by_hash_and_move_when_a_process_dies() {
    let gw = TestGateway::start().await;
    let (a, mut a_events) = gw.business("a").await;
    let (_b, mut b_events) = gw.business("b").await;
    wait_until("two links", || gw.stat(|s| &s.links_current) == 2).await;

    const N: usize = 24;
    let mut clients = Vec::new();
    for i in 0..N {
        let mut ws = gw.client().await;
        send_text(&mut ws, &format!("hello {i}")).await;
        clients.push(ws);
    }
    // Every client's open and first message, by owner.
    let mut owner: HashMap<String, char> = HashMap::new();
    let mut seen = 0;
    while seen < 2 * N {
        let (who, ev) = tokio::select! {
            e = a_events.next() => ('a', e),
            e = b_events.next() => ('b', e),
        };
        match ev {
            Event::Open(o) => {
                assert!(owner.insert(o.conn_id, who).is_none());
            }
            Event::Message(m) => {
                assert_eq!(
                    owner.get(&m.conn_id),
                    Some(&who),
                    "open and message went to different processes"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        seen += 1;
    }
    let on_a = owner.values().filter(|w| **w == 'a').count();
    assert!(
        on_a > 0 && on_a < N,
        "connections are spread over both processes ({on_a} of {N} on a)"
    );

    // a goes away; all connections now reach b.
    a.shutdown().await;
    wait_until("one link", || gw.stat(|s| &s.links_current) == 1).await;
    for (i, ws) in clients.iter_mut().enumerate() {
        send_text(ws, &format!("again {i}")).await;
    }
    let mut got = 0;
    while got < N {
        let m = b_events.message().await;
        assert!(owner.contains_key(&m.conn_id));
        got += 1;
    }
    for ws in &mut clients {
        ws.close(None).await.unwrap();
    }
    for _ in 0..N {
        b_events.close().await;
    }
    gw.stop().await;
}
