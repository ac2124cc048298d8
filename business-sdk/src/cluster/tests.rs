//! The cluster client against scripted gateways on 127.0.0.1: connect with a gateway down,
//! routing by node id, fan-out with merged reports, failures named per gateway, draining,
//! rediscovery and shutdown. (The lead's gateway/tests run it against real gateways.)

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;
use wsgate_proto::WorkerCodec;
use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::result::Reply;
use wsgate_proto::v1::{
    self, ConnInfo, ConnInfoReply, CountsReply, Draining, Envelope, ErrorCode, ListKind, ListReply,
    OnlineReply, Payload, Pong, RegisterOk, TopicCount,
};

use super::*;
use crate::command;
use crate::error::Error;
use crate::events::Event;
use crate::session_change::SessionChange;
use crate::targets::Targets;

const WAIT: Duration = Duration::from_secs(5);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// What one scripted gateway knows: its connections and their users.
#[derive(Debug, Clone, Default)]
struct Model {
    /// (connection id, user id or "").
    conns: Vec<(String, String)>,
    /// Answer no command (a gateway that hangs).
    silent: bool,
    /// Refuse every command with BAD_REQUEST.
    refuse: bool,
    /// The token it accepts; any when `None`.
    token: Option<String>,
}

impl Model {
    fn knows(&self, conn_id: &str) -> bool {
        self.conns.iter().any(|(c, _)| c == conn_id)
    }

    fn conns_of(&self, user: &str) -> Vec<&str> {
        self.conns
            .iter()
            .filter(|(_, u)| u == user)
            .map(|(c, _)| c.as_str())
            .collect()
    }

    fn users(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .conns
            .iter()
            .map(|(_, u)| u)
            .filter(|u| !u.is_empty())
            .collect();
        set.into_iter().cloned().collect()
    }

    /// The gateway's answer, by the rules of the worker protocol.
    fn answer(&self, body: &Body) -> v1::Result {
        let ok = v1::Result::default();
        if self.refuse {
            return v1::Result {
                code: ErrorCode::BadRequest as i32,
                message: "topic too long".into(),
                ..ok
            };
        }
        let targets = |conn_ids: &[String], user_ids: &[String], exclude: &[String]| {
            let mut result = v1::Result::default();
            for id in conn_ids {
                if self.knows(id) {
                    result.delivered += 1;
                } else {
                    result.unknown_conn_ids.push(id.clone());
                }
            }
            for user in user_ids {
                let conns = self.conns_of(user);
                if conns.is_empty() {
                    result.unknown_user_ids.push(user.clone());
                }
                result.delivered += conns
                    .iter()
                    .filter(|c| !exclude.iter().any(|e| e == *c))
                    .count() as u32;
            }
            if !result.unknown_conn_ids.is_empty() {
                result.code = ErrorCode::UnknownConnection as i32;
            }
            result
        };
        match body {
            Body::SingleCast(b) => targets(std::slice::from_ref(&b.conn_id), &[], &[]),
            Body::BindUser(b) => targets(std::slice::from_ref(&b.conn_id), &[], &[]),
            Body::UnbindUser(b) => targets(std::slice::from_ref(&b.conn_id), &[], &[]),
            Body::SetSession(b) => targets(std::slice::from_ref(&b.conn_id), &[], &[]),
            Body::Multicast(b) => targets(&b.conn_ids, &[], &[]),
            Body::ForceOffline(b) => targets(&b.conn_ids, &b.user_ids, &[]),
            Body::Subscribe(b) => targets(&b.conn_ids, &b.user_ids, &[]),
            Body::Unsubscribe(b) => targets(&b.conn_ids, &b.user_ids, &[]),
            Body::SendToUsers(b) => targets(&[], &b.user_ids, &b.exclude_conn_ids),
            Body::Broadcast(b) => v1::Result {
                delivered: self
                    .conns
                    .iter()
                    .filter(|(c, _)| !b.exclude.contains(c))
                    .count() as u32,
                ..ok
            },
            Body::Publish(_) | Body::DeleteTopics(_) => ok,
            Body::QueryOnline(q) => v1::Result {
                reply: Some(Reply::Online(OnlineReply {
                    conn_ids: q
                        .conn_ids
                        .iter()
                        .filter(|c| self.knows(c))
                        .cloned()
                        .collect(),
                    user_ids: q
                        .user_ids
                        .iter()
                        .filter(|u| !self.conns_of(u).is_empty())
                        .cloned()
                        .collect(),
                })),
                ..ok
            },
            Body::QueryConnInfo(q) => v1::Result {
                reply: Some(Reply::ConnInfo(ConnInfoReply {
                    conns: self
                        .conns
                        .iter()
                        .filter(|(c, _)| q.conn_ids.contains(c))
                        .map(|(c, u)| ConnInfo {
                            conn_id: c.clone(),
                            user_id: u.clone(),
                            ..ConnInfo::default()
                        })
                        .collect(),
                    more_conn_ids: Vec::new(),
                })),
                ..ok
            },
            Body::QueryCounts(q) => v1::Result {
                reply: Some(Reply::Counts(CountsReply {
                    connections: self.conns.len() as u64,
                    users: self.users().len() as u64,
                    topics: 0,
                    topic_counts: q
                        .topics
                        .iter()
                        .map(|t| TopicCount {
                            topic: t.clone(),
                            connections: 1,
                            users: 1,
                        })
                        .collect(),
                })),
                ..ok
            },
            Body::QueryList(q) => {
                let mut all = match ListKind::try_from(q.kind) {
                    Ok(ListKind::Users) => self.users(),
                    _ => self.conns.iter().map(|(c, _)| c.clone()).collect(),
                };
                all.sort();
                let limit = if q.limit == 0 { 1000 } else { q.limit as usize };
                let after: Vec<String> = all.into_iter().filter(|i| *i > q.cursor).collect();
                let more = after.len() > limit;
                let items: Vec<String> = after.into_iter().take(limit).collect();
                v1::Result {
                    reply: Some(Reply::List(ListReply {
                        next_cursor: if more {
                            items.last().cloned().unwrap_or_default()
                        } else {
                            String::new()
                        },
                        items,
                    })),
                    ..ok
                }
            }
            _ => ok,
        }
    }
}

/// What a test tells a fake gateway's links.
#[derive(Debug, Clone)]
enum Control {
    Draining,
    Close,
}

/// A scripted gateway listening on 127.0.0.1.
struct Fake {
    addr: String,
    /// Every command body it received.
    seen: Arc<Mutex<Vec<Body>>>,
    /// When false, connections are accepted and dropped at once (the gateway is "down").
    accepting: Arc<AtomicBool>,
    control: broadcast::Sender<Control>,
    task: JoinHandle<()>,
}

impl Fake {
    async fn start(node_id: &str, model: Model) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepting = Arc::new(AtomicBool::new(true));
        let (control, _) = broadcast::channel(16);
        let task = tokio::spawn({
            let (seen, accepting, control) =
                (Arc::clone(&seen), Arc::clone(&accepting), control.clone());
            let node_id = node_id.to_owned();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    if !accepting.load(Ordering::SeqCst) {
                        drop(stream);
                        continue;
                    }
                    tokio::spawn(serve(
                        stream,
                        node_id.clone(),
                        model.clone(),
                        Arc::clone(&seen),
                        control.subscribe(),
                    ));
                }
            }
        });
        Fake {
            addr,
            seen,
            accepting,
            control,
            task,
        }
    }

    fn seen(&self) -> Vec<Body> {
        self.seen.lock().expect("lock").clone()
    }

    fn tell(&self, control: Control) {
        let _ = self.control.send(control);
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
        self.tell(Control::Close);
    }
}

async fn serve(
    stream: TcpStream,
    node_id: String,
    model: Model,
    seen: Arc<Mutex<Vec<Body>>>,
    mut control: broadcast::Receiver<Control>,
) {
    let mut peer = Framed::new(stream, WorkerCodec::default());
    let Some(Ok(first)) = peer.next().await else {
        return;
    };
    let Some(Body::Register(register)) = first.body else {
        return;
    };
    if model.token.as_ref().is_some_and(|t| *t != register.token) {
        let _ = peer
            .send(Envelope {
                request_id: first.request_id,
                body: Some(Body::Error(v1::Error {
                    code: ErrorCode::Unauthenticated as i32,
                    message: "wrong worker token".into(),
                })),
                ..Default::default()
            })
            .await;
        return;
    }
    let ok = Envelope {
        request_id: first.request_id,
        body: Some(Body::RegisterOk(RegisterOk {
            node_id,
            protocol_version: 1,
            limits: None,
        })),
        ..Default::default()
    };
    if peer.send(ok).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = peer.next() => {
                let Some(Ok(envelope)) = frame else { return };
                let request_id = envelope.request_id;
                let reply = match envelope.body {
                    Some(Body::Ping(_)) => Some(Body::Pong(Pong {})),
                    Some(Body::Pong(_)) | None => None,
                    Some(body) => {
                        seen.lock().expect("lock").push(body.clone());
                        (request_id != 0 && !model.silent)
                            .then(|| Body::Result(model.answer(&body)))
                    }
                };
                if let Some(body) = reply
                    && peer
                        .send(Envelope { request_id, body: Some(body), ..Default::default() })
                        .await
                        .is_err()
                {
                    return;
                }
            }
            order = control.recv() => match order {
                Ok(Control::Draining) => {
                    let draining = Envelope {
                        request_id: 0,
                        body: Some(Body::Draining(Draining { close_code: 1012, drain_timeout_ms: 1000 })),
                        ..Default::default()
                    };
                    if peer.send(draining).await.is_err() {
                        return;
                    }
                }
                Ok(Control::Close) | Err(_) => return,
            },
        }
    }
}

/// A discovery whose list the test changes.
#[derive(Debug, Clone, Default)]
struct Switchable(Arc<Mutex<Vec<String>>>);

impl Switchable {
    fn set(&self, addrs: Vec<String>) {
        *self.0.lock().expect("lock") = addrs;
    }
}

impl Discovery for Switchable {
    fn discover(&self) -> Pin<Box<dyn Future<Output = io::Result<Vec<String>>> + Send + '_>> {
        let addrs = self.0.lock().expect("lock").clone();
        Box::pin(async move { Ok(addrs) })
    }
}

fn conns(node: &str, users: &[&str]) -> Vec<(String, String)> {
    users
        .iter()
        .enumerate()
        .map(|(i, u)| (format!("{node}-1-{:x}", i + 1), (*u).to_owned()))
        .collect()
}

/// An address nothing listens on.
async fn dead_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    addr
}

fn builder(discovery: impl Discovery) -> ClusterBuilder {
    Cluster::builder(discovery)
        .name("test")
        .request_timeout(Duration::from_millis(500))
        .backoff(Duration::from_millis(10), Duration::from_millis(30))
}

/// Reads events until `pick` accepts one.
async fn wait_event<T>(
    events: &mut ClusterEvents,
    what: &str,
    mut pick: impl FnMut(&ClusterEvent) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            let ev = events.recv().await.expect("events open");
            if let Some(found) = pick(&ev) {
                return found;
            }
        }
    })
    .await
}

async fn wait_state(cluster: &Cluster, addr: &str, state: GatewayState) {
    within(&format!("{addr} to be {state}"), async {
        loop {
            if cluster
                .gateways()
                .iter()
                .any(|g| g.addr == addr && g.state == state)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Two gateways: gw1 has alice and dave, gw-2 (a node id with a dash) has bob and dave.
async fn two() -> (Fake, Fake) {
    let gw1 = Fake::start(
        "gw1",
        Model {
            conns: conns("gw1", &["alice", "dave", ""]),
            ..Model::default()
        },
    )
    .await;
    let gw2 = Fake::start(
        "gw-2",
        Model {
            conns: conns("gw-2", &["bob", "dave"]),
            ..Model::default()
        },
    )
    .await;
    (gw1, gw2)
}

#[tokio::test]
async fn connects_with_a_gateway_down_and_reports_it() {
    let (gw1, gw2) = two().await;
    let dead = dead_addr().await;
    let discovery = StaticDiscovery::new(vec![gw1.addr.clone(), gw2.addr.clone(), dead.clone()]);
    let (cluster, mut events) = builder(discovery).connect().await.expect("connect");

    let mut connected = BTreeSet::new();
    while connected.len() < 2 {
        let (node, addr) = wait_event(&mut events, "Connected", |ev| match &ev.event {
            Event::Connected { node_id } => {
                assert_eq!(*node_id, ev.node_id);
                Some((ev.node_id.clone(), ev.addr.clone()))
            }
            _ => None,
        })
        .await;
        assert!(addr == gw1.addr || addr == gw2.addr, "{addr}");
        connected.insert(node);
    }
    assert_eq!(
        connected,
        BTreeSet::from(["gw-2".to_owned(), "gw1".to_owned()])
    );
    let mut node_ids = cluster.node_ids();
    node_ids.sort();
    assert_eq!(node_ids, ["gw-2", "gw1"]);

    let gateways = cluster.gateways();
    assert_eq!(gateways.len(), 3);
    let down = gateways
        .iter()
        .find(|g| g.addr == dead)
        .expect("dead listed");
    assert_eq!(down.state, GatewayState::Down);
    assert_eq!(down.node_id, None);
    assert!(
        down.last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot connect")),
        "{down:?}"
    );
    let up = gateways.iter().find(|g| g.addr == gw1.addr).expect("gw1");
    assert_eq!(
        (up.state, up.node_id.as_deref(), up.last_error.as_deref()),
        (GatewayState::Up, Some("gw1"), None)
    );

    // A command for everyone names the dead gateway by its address.
    let sent = cluster
        .broadcast(Payload::text("hi"), [])
        .await
        .expect("broadcast");
    assert_eq!(sent.report.delivered, 5);
    assert_eq!(sent.failed.len(), 1, "{:?}", sent.failed);
    assert_eq!(sent.failed[0].gateway, dead);
    assert!(
        sent.failed[0].error.contains("not connected"),
        "{:?}",
        sent.failed
    );
    assert!(!sent.is_complete());
    cluster.shutdown().await;
}

#[tokio::test]
async fn single_connection_commands_go_to_the_owner_or_fail_fast() {
    let (gw1, gw2) = two().await;
    let discovery = StaticDiscovery::new(vec![gw1.addr.clone(), gw2.addr.clone()]);
    let (cluster, _events) = builder(discovery).connect().await.expect("connect");
    wait_state(&cluster, &gw2.addr, GatewayState::Up).await;
    wait_state(&cluster, &gw1.addr, GatewayState::Up).await;

    cluster
        .single_cast("gw-2-1-1", Payload::text("to bob"))
        .await
        .expect("routed to gw-2");
    cluster.bind_user("gw1-1-3", "erin").await.expect("bind");
    cluster
        .set_session("gw1-1-3", SessionChange::new().set("k", "v"))
        .await
        .expect("session");
    cluster.unbind_user("gw-2-1-2").await.expect("unbind");
    assert!(matches!(gw2.seen()[0], Body::SingleCast(ref s) if s.conn_id == "gw-2-1-1"));
    assert!(
        gw1.seen().iter().all(|b| !matches!(b, Body::SingleCast(_))),
        "{:?}",
        gw1.seen()
    );
    assert_eq!(gw1.seen().len(), 2);
    assert_eq!(gw2.seen().len(), 2);

    // Gone on its gateway: the gateway's answer.
    let err = cluster
        .single_cast("gw1-1-99", Payload::text("x"))
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, Error::UnknownConnection { ref conn_ids } if conn_ids == &["gw1-1-99"]),
        "{err:?}"
    );
    // A node nobody has, up or down: an unknown connection (a typo is no outage), and
    // nothing is sent.
    let err = cluster
        .bind_user("gw9-1-1", "x")
        .await
        .expect_err("unknown node");
    assert!(
        matches!(err, Error::UnknownConnection { ref conn_ids } if conn_ids == &["gw9-1-1"]),
        "{err:?}"
    );
    // Not a connection id at all.
    let err = cluster.unbind_user("junk").await.expect_err("malformed");
    assert!(
        matches!(err, Error::UnknownConnection { ref conn_ids } if conn_ids == &["junk"]),
        "{err:?}"
    );
    assert_eq!(gw1.seen().len() + gw2.seen().len(), 5);
    cluster.shutdown().await;
}

#[tokio::test]
async fn connection_lists_are_split_per_owner() {
    let (gw1, gw2) = two().await;
    let discovery = StaticDiscovery::new(vec![gw1.addr.clone(), gw2.addr.clone()]);
    let (cluster, _events) = builder(discovery).connect().await.expect("connect");
    wait_state(&cluster, &gw2.addr, GatewayState::Up).await;
    wait_state(&cluster, &gw1.addr, GatewayState::Up).await;

    let sent = cluster
        .multicast(
            [
                "gw1-1-1", "gw-2-1-1", "gw9-1-1", "junk", "gw1-1-99", "gw-2-1-2",
            ],
            Payload::text("x"),
        )
        .await
        .expect("multicast");
    assert_eq!(sent.report.delivered, 3);
    // gw9 is no gateway of the cluster: its id is an unknown connection, not a failure.
    assert_eq!(
        sent.report.unknown_conn_ids,
        ["gw1-1-99", "junk", "gw9-1-1"]
    );
    assert!(sent.report.unknown_user_ids.is_empty());
    assert!(sent.failed.is_empty(), "{:?}", sent.failed);
    let Body::Multicast(m1) = &gw1.seen()[0] else {
        panic!("gw1 got {:?}", gw1.seen());
    };
    assert_eq!(m1.conn_ids, ["gw1-1-1", "gw1-1-99"]);
    let Body::Multicast(m2) = &gw2.seen()[0] else {
        panic!("gw-2 got {:?}", gw2.seen());
    };
    assert_eq!(m2.conn_ids, ["gw-2-1-1", "gw-2-1-2"]);

    // Only gw1's connections: gw-2 is not asked at all.
    let info = cluster.conn_info(["gw1-1-2"]).await.expect("conn_info");
    assert!(info.is_complete());
    assert_eq!(info.value.len(), 1);
    assert_eq!(info.value[0].user_id, "dave");
    assert_eq!(gw2.seen().len(), 1);

    // Connections and users: every gateway, each with its own connection ids.
    let targets = Targets {
        conn_ids: vec!["gw1-1-3".into()],
        user_ids: vec!["bob".into()],
    };
    let sent = cluster
        .subscribe(["room"], targets)
        .await
        .expect("subscribe");
    assert_eq!(sent.report.delivered, 2);
    assert!(sent.report.unknown_user_ids.is_empty(), "bob is on gw-2");
    let Some(Body::Subscribe(s2)) = gw2.seen().last().cloned() else {
        panic!("gw-2 got {:?}", gw2.seen());
    };
    assert!(s2.conn_ids.is_empty());
    assert_eq!(s2.user_ids, ["bob"]);

    let online = cluster
        .online(
            vec!["gw-2-1-1".into(), "gw1-1-50".into(), "gw1-1-1".into()],
            vec!["carol".into(), "dave".into(), "bob".into()],
        )
        .await
        .expect("online");
    assert_eq!(online.value.conn_ids, ["gw-2-1-1", "gw1-1-1"]);
    assert_eq!(online.value.user_ids, ["dave", "bob"]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_handle_restricted_to_one_gateway_sends_only_there() {
    let (gw1, gw2) = two().await;
    let discovery = StaticDiscovery::new(vec![gw1.addr.clone(), gw2.addr.clone()]);
    let (cluster, _events) = builder(discovery).connect().await.expect("connect");
    wait_state(&cluster, &gw2.addr, GatewayState::Up).await;
    wait_state(&cluster, &gw1.addr, GatewayState::Up).await;
    let only = cluster.only_gateway("gw-2");

    // A command for everyone reaches gw-2 alone.
    let sent = only
        .command(Body::SendToUsers(wsgate_proto::v1::SendToUsers {
            user_ids: vec!["dave".into()],
            payload: Some(Payload::text("x")),
            exclude_conn_ids: Vec::new(),
        }))
        .await
        .expect("send_to_users");
    assert!(sent.failed.is_empty(), "{:?}", sent.failed);
    assert_eq!(gw2.seen().len(), 1);
    assert!(gw1.seen().is_empty(), "gw1 got {:?}", gw1.seen());

    // Connection ids of gw1 are left out, neither unknown nor failed.
    let sent = only
        .multicast(["gw1-1-1", "gw-2-1-1"], Payload::text("x"))
        .await
        .expect("multicast");
    assert!(sent.failed.is_empty() && sent.report.unknown_conn_ids.is_empty());
    let Some(Body::Multicast(m)) = gw2.seen().last().cloned() else {
        panic!("gw-2 got {:?}", gw2.seen());
    };
    assert_eq!(m.conn_ids, ["gw-2-1-1"]);
    assert!(gw1.seen().is_empty());
    // A single-connection command for gw1: unknown to this handle, and nothing sent.
    let err = only
        .single_cast("gw1-1-1", Payload::text("x"))
        .await
        .expect_err("not this gateway's");
    assert!(matches!(err, Error::UnknownConnection { .. }), "{err}");
    assert!(gw1.seen().is_empty());
    // The unrestricted handle still reaches both.
    cluster
        .broadcast(Payload::text("all"), [])
        .await
        .expect("broadcast");
    assert_eq!(gw1.seen().len(), 1);
    cluster.shutdown().await;
}

#[tokio::test]
async fn user_commands_and_queries_are_merged() {
    let (gw1, gw2) = two().await;
    let discovery = StaticDiscovery::new(vec![gw1.addr.clone(), gw2.addr.clone()]);
    let (cluster, _events) = builder(discovery).connect().await.expect("connect");
    wait_state(&cluster, &gw2.addr, GatewayState::Up).await;
    wait_state(&cluster, &gw1.addr, GatewayState::Up).await;

    let sent = cluster
        .send_to_users(
            ["alice", "bob", "carol", "dave"],
            Payload::text("x"),
            ["gw1-1-2".to_owned()],
        )
        .await
        .expect("send_to_users");
    // alice 1 + dave on gw1 excluded 0 ; bob 1 + dave 1 on gw-2.
    assert_eq!(sent.report.delivered, 3);
    assert_eq!(sent.report.unknown_user_ids, ["carol"]);
    assert!(sent.is_complete());

    let counts = cluster.counts(["room".to_owned()]).await.expect("counts");
    assert_eq!(counts.value.connections, 5);
    assert_eq!(counts.value.users, 4, "dave counts twice");
    assert_eq!(counts.value.topic_counts[0].connections, 2);

    let users = cluster
        .list_all(ListKind::Users, "")
        .await
        .expect("list_all");
    assert_eq!(users.value, ["alice", "bob", "dave"]);
    let page = cluster
        .list(ListKind::Connections, "", "", 3)
        .await
        .expect("list");
    assert_eq!(page.value.items, ["gw-2-1-1", "gw-2-1-2", "gw1-1-1"]);
    assert_eq!(page.value.next_cursor, "gw1-1-1");
    let page = cluster
        .list(ListKind::Connections, "", "gw1-1-1", 3)
        .await
        .expect("list");
    assert_eq!(page.value.items, ["gw1-1-2", "gw1-1-3"]);
    assert_eq!(page.value.next_cursor, "");

    let posted = cluster
        .post(command::publish(
            vec!["room".into()],
            Payload::text("x"),
            vec![],
        ))
        .await
        .expect("post");
    assert!(posted.is_complete());
    cluster.shutdown().await;
}

#[tokio::test]
async fn slow_and_refusing_gateways_are_reported() {
    let (gw1, _gw2) = two().await;
    let silent = Fake::start(
        "gw3",
        Model {
            conns: conns("gw3", &["carol"]),
            silent: true,
            ..Model::default()
        },
    )
    .await;
    let discovery = StaticDiscovery::new(vec![gw1.addr.clone(), silent.addr.clone()]);
    let (cluster, _events) = builder(discovery)
        .request_timeout(Duration::from_millis(200))
        .connect()
        .await
        .expect("connect");
    wait_state(&cluster, &silent.addr, GatewayState::Up).await;
    wait_state(&cluster, &gw1.addr, GatewayState::Up).await;
    let sent = cluster
        .send_to_users(["alice", "carol"], Payload::text("x"), [])
        .await
        .expect("partial");
    assert_eq!(sent.report.delivered, 1);
    // Only gw1 answered: carol is unknown there; the silent one is named.
    assert_eq!(sent.report.unknown_user_ids, ["carol"]);
    assert_eq!(sent.failed.len(), 1);
    assert_eq!(sent.failed[0].gateway, "gw3");
    assert!(
        sent.failed[0].error.contains("did not answer"),
        "{:?}",
        sent.failed
    );
    let err = cluster
        .single_cast("gw3-1-1", Payload::text("x"))
        .await
        .expect_err("timeout");
    assert!(matches!(err, Error::Timeout), "{err:?}");
    cluster.shutdown().await;

    // Every gateway refuses: the refusal is the caller's error.
    let refusing = |node: &'static str| {
        Fake::start(
            node,
            Model {
                refuse: true,
                ..Model::default()
            },
        )
    };
    let (r1, r2) = (refusing("r1").await, refusing("r2").await);
    let (cluster, _events) = builder(StaticDiscovery::new(vec![r1.addr.clone(), r2.addr.clone()]))
        .connect()
        .await
        .expect("connect");
    wait_state(&cluster, &r1.addr, GatewayState::Up).await;
    wait_state(&cluster, &r2.addr, GatewayState::Up).await;
    let err = cluster
        .publish(["x"], Payload::text("x"), [])
        .await
        .expect_err("bad request");
    assert!(
        matches!(err, Error::Gateway { code: ErrorCode::BadRequest, ref message } if message == "topic too long"),
        "{err:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_draining_gateway_is_used_until_it_leaves_then_retried() {
    let (gw1, gw2) = two().await;
    let discovery = StaticDiscovery::new(vec![gw1.addr.clone(), gw2.addr.clone()]);
    let (cluster, mut events) = builder(discovery).connect().await.expect("connect");
    wait_state(&cluster, &gw2.addr, GatewayState::Up).await;

    gw2.tell(Control::Draining);
    let (close_code, timeout) = wait_event(&mut events, "Draining", |ev| match ev.event {
        Event::Draining {
            close_code,
            drain_timeout_ms,
        } => {
            assert_eq!(
                (ev.node_id.as_str(), ev.addr.as_str()),
                ("gw-2", gw2.addr.as_str())
            );
            Some((close_code, drain_timeout_ms))
        }
        _ => None,
    })
    .await;
    assert_eq!((close_code, timeout), (1012, 1000));
    wait_state(&cluster, &gw2.addr, GatewayState::Draining).await;
    cluster
        .single_cast("gw-2-1-1", Payload::text("still works"))
        .await
        .expect("draining gateway still serves");

    // It goes away and does not take new links for now.
    gw2.accepting.store(false, Ordering::SeqCst);
    gw2.tell(Control::Close);
    wait_event(&mut events, "Disconnected", |ev| {
        matches!(ev.event, Event::Disconnected { .. } if ev.node_id == "gw-2").then_some(())
    })
    .await;
    wait_state(&cluster, &gw2.addr, GatewayState::Down).await;
    let err = cluster
        .single_cast("gw-2-1-1", Payload::text("x"))
        .await
        .expect_err("gone");
    assert!(
        matches!(err, Error::GatewayUnavailable { ref node_id } if node_id == "gw-2"),
        "{err:?}"
    );
    let status = cluster
        .gateways()
        .into_iter()
        .find(|g| g.addr == gw2.addr)
        .expect("still listed");
    assert_eq!(
        status.node_id.as_deref(),
        Some("gw-2"),
        "node id kept while down"
    );
    let sent = cluster
        .broadcast(Payload::text("x"), [])
        .await
        .expect("broadcast");
    assert_eq!(sent.report.delivered, 3);
    assert_eq!(sent.failed.len(), 1);
    assert_eq!(sent.failed[0].gateway, "gw-2", "named by its last node id");

    // Back after its restart: retried with backoff, routed again.
    gw2.accepting.store(true, Ordering::SeqCst);
    wait_event(&mut events, "Connected again", |ev| {
        matches!(ev.event, Event::Connected { .. } if ev.node_id == "gw-2").then_some(())
    })
    .await;
    cluster
        .single_cast("gw-2-1-1", Payload::text("welcome back"))
        .await
        .expect("routed again");
    cluster.shutdown().await;
}

#[tokio::test]
async fn rediscovery_adds_and_removes_gateways() {
    let (gw1, gw2) = two().await;
    let gw3 = Fake::start(
        "gw3",
        Model {
            conns: conns("gw3", &["carol"]),
            ..Model::default()
        },
    )
    .await;
    let discovery = Switchable::default();
    discovery.set(vec![gw1.addr.clone(), gw2.addr.clone()]);
    let (cluster, mut events) = builder(discovery.clone())
        .rediscover_every(Duration::from_millis(20))
        .connect()
        .await
        .expect("connect");

    discovery.set(vec![
        format!(" {} ", gw1.addr),
        gw3.addr.clone(),
        String::new(),
    ]);
    // Both happen, in either order.
    let (mut gw3_connected, mut removed) = (false, None);
    while !gw3_connected || removed.is_none() {
        let ev = within("gw3 Connected and gw-2 removed", events.recv())
            .await
            .expect("events open");
        match ev.event {
            Event::Connected { .. } if ev.node_id == "gw3" => gw3_connected = true,
            Event::Disconnected { reason } if ev.node_id == "gw-2" => removed = Some(reason),
            _ => {}
        }
    }
    let reason = removed.unwrap_or_default();
    assert!(reason.contains("no longer named by discovery"), "{reason}");
    within("gw-2 to leave the list", async {
        while cluster.gateways().len() != 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let addrs: BTreeSet<String> = cluster.gateways().into_iter().map(|g| g.addr).collect();
    assert_eq!(addrs, BTreeSet::from([gw1.addr.clone(), gw3.addr.clone()]));
    // Gone from discovery, the node is no gateway of the cluster any more: its connections
    // are unknown.
    let err = cluster
        .single_cast("gw-2-1-1", Payload::text("x"))
        .await
        .expect_err("removed");
    assert!(matches!(err, Error::UnknownConnection { .. }), "{err:?}");

    // A discovery that names nothing changes nothing.
    discovery.set(vec![]);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(cluster.gateways().len(), 2);
    cluster
        .single_cast("gw3-1-1", Payload::text("x"))
        .await
        .expect("gw3 kept");
    cluster.shutdown().await;
}

#[tokio::test]
async fn connect_errors() {
    // Discovery that names nothing.
    let err = builder(StaticDiscovery::new(vec![]))
        .connect()
        .await
        .expect_err("nothing to connect to");
    assert!(matches!(err, Error::Discovery { .. }), "{err:?}");
    assert!(err.to_string().contains("named no gateway"), "{err}");

    // Every gateway refuses the token: the refusal, not a retry loop.
    let model = Model {
        token: Some("right".into()),
        ..Model::default()
    };
    let (a, b) = (
        Fake::start("a", model.clone()).await,
        Fake::start("b", model).await,
    );
    let err = builder(StaticDiscovery::new(vec![a.addr.clone(), b.addr.clone()]))
        .token("wrong")
        .connect()
        .await
        .expect_err("rejected");
    assert!(
        matches!(
            err,
            Error::Rejected {
                code: ErrorCode::Unauthenticated,
                ..
            }
        ),
        "{err:?}"
    );

    // Everything down.
    let err = builder(StaticDiscovery::new(vec![dead_addr().await]))
        .connect()
        .await
        .expect_err("down");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn shutdown_ends_the_events_and_later_commands() {
    let (gw1, gw2) = two().await;
    let discovery = StaticDiscovery::new(vec![gw1.addr.clone(), gw2.addr.clone()]);
    let (cluster, mut events) = builder(discovery).connect().await.expect("connect");
    wait_state(&cluster, &gw2.addr, GatewayState::Up).await;
    wait_state(&cluster, &gw1.addr, GatewayState::Up).await;
    let other = cluster.clone();
    cluster.shutdown().await;
    cluster.shutdown().await;

    let mut disconnected = BTreeSet::new();
    within("events to end", async {
        while let Some(ev) = events.recv().await {
            if let Event::Disconnected { reason } = ev.event {
                assert!(reason.contains("cluster client was shut down"), "{reason}");
                disconnected.insert(ev.node_id);
            }
        }
    })
    .await;
    assert_eq!(
        disconnected,
        BTreeSet::from(["gw-2".to_owned(), "gw1".to_owned()])
    );
    assert!(matches!(
        other.single_cast("gw1-1-1", Payload::text("x")).await,
        Err(Error::Closed)
    ));
    assert!(matches!(
        other.broadcast(Payload::text("x"), []).await,
        Err(Error::Closed)
    ));
    assert!(
        other
            .gateways()
            .iter()
            .all(|g| g.state == GatewayState::Down)
    );
}

#[tokio::test]
async fn dropping_every_handle_and_the_events_stops_the_links() {
    let (gw1, _gw2) = two().await;
    let (cluster, events) = builder(StaticDiscovery::new(vec![gw1.addr.clone()]))
        .connect()
        .await
        .expect("connect");
    let members = Arc::clone(&cluster.inner.members);
    drop(cluster);
    drop(events);
    within("the links to stop", async {
        while members.links().iter().any(|l| l.session().is_some()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_draining_gateway_that_leaves_discovery_keeps_its_link_until_it_closes() {
    let (gw1, gw2) = two().await;
    let discovery = Switchable::default();
    discovery.set(vec![gw1.addr.clone(), gw2.addr.clone()]);
    let (cluster, mut events) = builder(discovery.clone())
        .rediscover_every(Duration::from_millis(20))
        .connect()
        .await
        .expect("connect");
    wait_state(&cluster, &gw2.addr, GatewayState::Up).await;

    // As in Kubernetes: the terminating pod leaves DNS while it drains.
    gw2.tell(Control::Draining);
    wait_state(&cluster, &gw2.addr, GatewayState::Draining).await;
    discovery.set(vec![gw1.addr.clone()]);
    tokio::time::sleep(Duration::from_millis(120)).await; // several rediscoveries
    assert!(
        cluster
            .gateways()
            .iter()
            .any(|g| g.addr == gw2.addr && g.state == GatewayState::Draining),
        "the draining link is kept for its last events"
    );

    // Once the gateway closes it, the next rediscovery drops it.
    gw2.accepting.store(false, Ordering::SeqCst);
    gw2.tell(Control::Close);
    wait_event(&mut events, "Disconnected", |ev| {
        matches!(ev.event, Event::Disconnected { .. } if ev.node_id == "gw-2").then_some(())
    })
    .await;
    within("gw-2 to leave the list", async {
        while cluster.gateways().iter().any(|g| g.addr == gw2.addr) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    cluster.shutdown().await;
}
