//! Which gateways a command goes to.
//!
//! A connection id embeds its gateway's node id (`<node_id>-<boot>-<seq>`,
//! [`node_of`](wsgate_proto::conn_id::node_of)), so connection-id commands go to the owning
//! gateway without a lookup: a body naming one connection goes to its owner
//! ([`Recipients::Owner`]), a body naming several is split into one body per owner
//! ([`Recipients::Split`], [`split_by_node`], [`restrict`]). A body that also names users goes to
//! every gateway (each gets the connection ids it owns, possibly none), since a user may be
//! connected anywhere; so do bodies that name no connection (user, topic, broadcast commands,
//! counts and lists). Pure functions, no I/O.

use std::collections::BTreeMap;

use wsgate_proto::conn_id;
use wsgate_proto::v1::envelope::Body;

/// Which gateways receive a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recipients {
    /// To the owner of this one connection only.
    Owner(String),
    /// These connection ids to their owners; with `everyone`, every other gateway gets the
    /// body too (with no connection ids) because it also names users.
    Split {
        conn_ids: Vec<String>,
        everyone: bool,
    },
    /// The same body to every gateway.
    Everyone,
}

/// Where `body` goes.
pub(crate) fn recipients_of(body: &Body) -> Recipients {
    let split = |conn_ids: &[String], user_ids: &[String]| Recipients::Split {
        conn_ids: conn_ids.to_vec(),
        everyone: !user_ids.is_empty(),
    };
    match body {
        Body::SingleCast(b) => Recipients::Owner(b.conn_id.clone()),
        Body::BindUser(b) => Recipients::Owner(b.conn_id.clone()),
        Body::UnbindUser(b) => Recipients::Owner(b.conn_id.clone()),
        Body::SetSession(b) => Recipients::Owner(b.conn_id.clone()),
        Body::Multicast(b) => split(&b.conn_ids, &[]),
        Body::QueryConnInfo(b) => split(&b.conn_ids, &[]),
        Body::ForceOffline(b) => split(&b.conn_ids, &b.user_ids),
        Body::Subscribe(b) => split(&b.conn_ids, &b.user_ids),
        Body::Unsubscribe(b) => split(&b.conn_ids, &b.user_ids),
        Body::QueryOnline(b) => split(&b.conn_ids, &b.user_ids),
        _ => Recipients::Everyone,
    }
}

/// Connection ids grouped by the node id they carry, each group in the order given (duplicates
/// kept, the gateway handles them), and the ids that are not wsgate connection ids at all (no
/// gateway can own them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ByNode {
    pub(crate) groups: BTreeMap<String, Vec<String>>,
    pub(crate) malformed: Vec<String>,
}

/// Whether `node_id`, which no registered gateway has, may still be a gateway of the cluster:
/// one registered under it before and down now, or one that has never registered (its node
/// id is not known yet). `down` holds the node id of every gateway not registered now. When
/// neither, the id names no gateway and its connections are simply unknown.
pub(crate) fn may_exist(node_id: &str, down: &[Option<String>]) -> bool {
    down.iter()
        .any(|known| known.as_deref().is_none_or(|n| n == node_id))
}

/// Groups `conn_ids` by owner.
pub(crate) fn split_by_node(conn_ids: Vec<String>) -> ByNode {
    let mut by_node = ByNode::default();
    for id in conn_ids {
        match conn_id::node_of(&id) {
            Some(node) => by_node.groups.entry(node.to_owned()).or_default().push(id),
            None => by_node.malformed.push(id),
        }
    }
    by_node
}

/// A copy of `body` naming only `conn_ids` (its other fields unchanged). Bodies that name no
/// connection list are copied as they are.
pub(crate) fn restrict(body: &Body, conn_ids: Vec<String>) -> Body {
    let mut body = body.clone();
    match &mut body {
        Body::Multicast(b) => b.conn_ids = conn_ids,
        Body::QueryConnInfo(b) => b.conn_ids = conn_ids,
        Body::ForceOffline(b) => b.conn_ids = conn_ids,
        Body::Subscribe(b) => b.conn_ids = conn_ids,
        Body::Unsubscribe(b) => b.conn_ids = conn_ids,
        Body::QueryOnline(b) => b.conn_ids = conn_ids,
        _ => {}
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_may_exist_only_as_a_down_or_unregistered_gateway() {
        let down = [Some("gw2".to_owned())];
        assert!(may_exist("gw2", &down), "known and down");
        assert!(!may_exist("nope", &down), "nobody's node id");
        assert!(!may_exist("nope", &[]), "everyone is up");
        assert!(
            may_exist("nope", &[None]),
            "a gateway that never registered may be it"
        );
    }
    use crate::command;
    use crate::session_change::SessionChange;
    use crate::targets::Targets;
    use wsgate_proto::v1::{ListKind, Payload};

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mixed_ids_are_grouped_by_node_in_order() {
        let by_node = split_by_node(ids(&[
            "gw1-6172a3b4c5d6e-1",
            "gw-2-6172a3b4c5d6f-a",
            "gw1-6172a3b4c5d6e-2",
            "not-a-conn-id",
            "gw-2-6172a3b4c5d6f-b",
            "gw3-1-1",
            "",
            "gw1-6172a3b4c5d6e-1",
        ]));
        assert_eq!(by_node.groups.len(), 3);
        assert_eq!(
            by_node.groups["gw1"],
            ids(&[
                "gw1-6172a3b4c5d6e-1",
                "gw1-6172a3b4c5d6e-2",
                "gw1-6172a3b4c5d6e-1"
            ])
        );
        // Node ids may contain '-': the node id is everything before the last two.
        assert_eq!(
            by_node.groups["gw-2"],
            ids(&["gw-2-6172a3b4c5d6f-a", "gw-2-6172a3b4c5d6f-b"])
        );
        assert_eq!(by_node.groups["gw3"], ids(&["gw3-1-1"]));
        assert_eq!(by_node.malformed, ids(&["not-a-conn-id", ""]));
    }

    #[test]
    fn single_connection_commands_go_to_the_owner() {
        let c = "gw1-1-1".to_owned();
        for body in [
            command::single_cast(c.clone(), Payload::text("x")),
            command::bind_user(c.clone(), "alice".into()),
            command::unbind_user(c.clone()),
            command::set_session(c.clone(), SessionChange::new().set("k", "v")),
        ] {
            assert_eq!(
                recipients_of(&body),
                Recipients::Owner(c.clone()),
                "{body:?}"
            );
        }
    }

    #[test]
    fn connection_lists_are_split_and_users_go_everywhere() {
        let conns = ids(&["gw1-1-1", "gw2-1-1"]);
        let only_conns = Recipients::Split {
            conn_ids: conns.clone(),
            everyone: false,
        };
        assert_eq!(
            recipients_of(&command::multicast(conns.clone(), Payload::text("x"))),
            only_conns
        );
        assert_eq!(
            recipients_of(&command::conn_info(conns.clone())),
            only_conns
        );
        assert_eq!(
            recipients_of(&command::force_offline(
                conns.clone(),
                vec![],
                1000,
                "",
                None
            )),
            only_conns
        );
        assert_eq!(
            recipients_of(&command::subscribe(
                ids(&["t"]),
                Targets::conns(conns.clone())
            )),
            only_conns
        );
        let with_users = Targets {
            conn_ids: conns.clone(),
            user_ids: ids(&["alice"]),
        };
        let conns_and_everyone = Recipients::Split {
            conn_ids: conns.clone(),
            everyone: true,
        };
        assert_eq!(
            recipients_of(&command::unsubscribe(ids(&["t"]), with_users)),
            conns_and_everyone
        );
        assert_eq!(
            recipients_of(&command::online(conns.clone(), ids(&["alice"]))),
            conns_and_everyone
        );
        assert_eq!(
            recipients_of(&command::force_offline(
                vec![],
                ids(&["bob"]),
                1000,
                "",
                None
            )),
            Recipients::Split {
                conn_ids: vec![],
                everyone: true
            }
        );
    }

    #[test]
    fn user_topic_broadcast_and_queries_go_everywhere() {
        for body in [
            command::broadcast(Payload::text("x"), ids(&["gw1-1-1"])),
            command::send_to_users(ids(&["alice"]), Payload::text("x"), vec![]),
            command::publish(ids(&["t"]), Payload::text("x"), ids(&["gw1-1-1"])),
            command::delete_topics(ids(&["t"])),
            command::counts(vec![]),
            command::list(ListKind::Users, String::new(), String::new(), 10),
        ] {
            assert_eq!(recipients_of(&body), Recipients::Everyone, "{body:?}");
        }
        // Topic membership by users only: every gateway, none of them gets connection ids.
        assert_eq!(
            recipients_of(&command::subscribe(ids(&["t"]), Targets::user("alice"))),
            Recipients::Split {
                conn_ids: vec![],
                everyone: true
            }
        );
    }

    #[test]
    fn restrict_replaces_only_the_connection_list() {
        let body = command::subscribe(
            ids(&["room"]),
            Targets {
                conn_ids: ids(&["gw1-1-1", "gw2-1-1"]),
                user_ids: ids(&["alice"]),
            },
        );
        let Body::Subscribe(s) = restrict(&body, ids(&["gw2-1-1"])) else {
            panic!("expected Subscribe");
        };
        assert_eq!(s.conn_ids, ["gw2-1-1"]);
        assert_eq!(s.user_ids, ["alice"]);
        assert_eq!(s.topics, ["room"]);

        let body = command::force_offline(ids(&["gw1-1-1"]), vec![], 4000, "bye", None);
        let Body::ForceOffline(f) = restrict(&body, vec![]) else {
            panic!("expected ForceOffline");
        };
        assert!(f.conn_ids.is_empty());
        assert_eq!((f.code, f.reason.as_str()), (4000, "bye"));

        let body = command::counts(ids(&["t"]));
        assert_eq!(restrict(&body, ids(&["gw1-1-1"])), body);
    }
}
