//! Merging the answers of several gateways into one: reports, online checks, counts and list
//! pages. Pure functions, no I/O; each takes the answers of the gateways that answered.
//!
//! - Reports: `delivered` summed; unknown connection ids concatenated (each id has one owner);
//!   unknown user ids intersected (a user is unknown only when no gateway knows them).
//! - Online: the union, in the order asked.
//! - Counts: summed, per topic too. A user connected to two gateways counts twice in `users`
//!   (and a topic with members on two gateways twice in `topics`): gateways count only their
//!   own; distinct users are what [`list_all`](crate::Cluster::list_all) of
//!   [`ListKind::Users`](crate::ListKind::Users) returns.
//! - List pages: each gateway returned up to `limit` items after the cursor; the merged page is
//!   their sorted, deduplicated union cut so that nothing a gateway has not returned yet can
//!   fall before its end, then cut to `limit`. Its `next_cursor` is its last item whenever any
//!   gateway had more or the union was longer than `limit`.

use std::collections::{HashMap, HashSet};

use wsgate_proto::v1::{CountsReply, ListReply, OnlineReply, TopicCount};

use crate::cluster::report::GatewayFailure;
use crate::report::Report;

/// The page size a `QueryList` with limit 0 gets (the gateway's default).
pub(crate) const DEFAULT_LIST_LIMIT: u32 = 1000;

/// Merges the reports of the gateways that answered; `malformed` are ids that are no wsgate
/// connection id (no gateway could own them), reported as unknown.
pub(crate) fn reports(reports: Vec<Report>, malformed: Vec<String>) -> Report {
    let mut merged = Report::default();
    let mut unknown_users: Option<Vec<String>> = None;
    for report in reports {
        merged.delivered = merged.delivered.saturating_add(report.delivered);
        merged.unknown_conn_ids.extend(report.unknown_conn_ids);
        merged.receipts.extend(report.receipts);
        unknown_users = Some(match unknown_users {
            None => dedup(report.unknown_user_ids),
            Some(so_far) => {
                let here: HashSet<&String> = report.unknown_user_ids.iter().collect();
                so_far.into_iter().filter(|u| here.contains(u)).collect()
            }
        });
    }
    merged.unknown_conn_ids.extend(malformed);
    merged.unknown_user_ids = unknown_users.unwrap_or_default();
    merged
}

/// The union of online replies, listed in the order asked (then anything not asked for).
pub(crate) fn online(
    conn_ids: &[String],
    user_ids: &[String],
    replies: Vec<OnlineReply>,
) -> OnlineReply {
    let (mut conns, mut users) = (Vec::new(), Vec::new());
    for reply in replies {
        conns.extend(reply.conn_ids);
        users.extend(reply.user_ids);
    }
    OnlineReply {
        conn_ids: in_order_asked(conn_ids, conns),
        user_ids: in_order_asked(user_ids, users),
    }
}

/// Sums counts; topic counts are summed per topic, in the order first seen.
pub(crate) fn counts(replies: Vec<CountsReply>) -> CountsReply {
    let mut merged = CountsReply::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    for reply in replies {
        merged.connections = merged.connections.saturating_add(reply.connections);
        merged.users = merged.users.saturating_add(reply.users);
        merged.topics = merged.topics.saturating_add(reply.topics);
        for tc in reply.topic_counts {
            match index.get(&tc.topic) {
                Some(&i) => {
                    let slot = &mut merged.topic_counts[i];
                    slot.connections = slot.connections.saturating_add(tc.connections);
                    slot.users = slot.users.saturating_add(tc.users);
                }
                None => {
                    index.insert(tc.topic.clone(), merged.topic_counts.len());
                    merged.topic_counts.push(TopicCount { ..tc });
                }
            }
        }
    }
    merged
}

/// Merges the pages of one `QueryList(cursor, limit)` from several gateways (see the module
/// doc). `limit` 0 means [`DEFAULT_LIST_LIMIT`], as on a gateway.
pub(crate) fn list(cursor: &str, limit: u32, pages: Vec<ListReply>) -> ListReply {
    let limit = match limit {
        0 => DEFAULT_LIST_LIMIT,
        n => n,
    } as usize;
    // A gateway with more to come returned everything it has up to its next_cursor (its last
    // item) and nothing after: the merged page must not reach past the smallest such end, or
    // the next page would start after items that gateway has not sent yet.
    let bound: Option<String> = pages
        .iter()
        .filter(|p| !p.next_cursor.is_empty())
        .map(|p| p.next_cursor.clone())
        .min();
    let mut items: Vec<String> = pages
        .into_iter()
        .flat_map(|p| p.items)
        .filter(|item| item.as_str() > cursor)
        .collect();
    items.sort_unstable();
    items.dedup();
    if let Some(bound) = &bound {
        items.retain(|item| item <= bound);
    }
    let more = bound.is_some() || items.len() > limit;
    items.truncate(limit);
    let next_cursor = if !more {
        String::new()
    } else if let Some(last) = items.last() {
        last.clone()
    } else {
        // Only a gateway that claims more without sending any: continue after its cursor if
        // that moves forward, else stop.
        bound.filter(|b| b.as_str() > cursor).unwrap_or_default()
    };
    ListReply { items, next_cursor }
}

/// Adds `more` failures, keeping one (the first) per gateway.
pub(crate) fn add_failures(into: &mut Vec<GatewayFailure>, more: Vec<GatewayFailure>) {
    for failure in more {
        if !into.iter().any(|f| f.gateway == failure.gateway) {
            into.push(failure);
        }
    }
}

/// `found` deduplicated, ordered like `asked` (ids found but not asked for come last).
fn in_order_asked(asked: &[String], found: Vec<String>) -> Vec<String> {
    let found_set: HashSet<&String> = found.iter().collect();
    let mut seen: HashSet<&String> = HashSet::new();
    let mut out: Vec<String> = asked
        .iter()
        .filter(|id| found_set.contains(id) && seen.insert(id))
        .cloned()
        .collect();
    let asked_set: HashSet<&String> = asked.iter().collect();
    let mut extra_seen: HashSet<&String> = HashSet::new();
    out.extend(
        found
            .iter()
            .filter(|id| !asked_set.contains(id) && extra_seen.insert(id))
            .cloned(),
    );
    out
}

/// `items` without repeats, first occurrence kept.
fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|x| x.to_string()).collect()
    }

    fn page(items: &[&str], next: &str) -> ListReply {
        ListReply {
            items: s(items),
            next_cursor: next.into(),
        }
    }

    fn report(delivered: u32, conns: &[&str], users: &[&str]) -> Report {
        Report {
            delivered,
            unknown_conn_ids: s(conns),
            unknown_user_ids: s(users),
            receipts: Vec::new(),
        }
    }

    #[test]
    fn reports_sum_and_concatenate() {
        let merged = reports(
            vec![
                report(3, &["gw1-1-9"], &[]),
                report(2, &[], &[]),
                report(u32::MAX, &["gw3-1-4"], &[]),
            ],
            s(&["junk"]),
        );
        assert_eq!(merged.delivered, u32::MAX, "saturates");
        assert_eq!(merged.unknown_conn_ids, s(&["gw1-1-9", "gw3-1-4", "junk"]));
        assert!(merged.unknown_user_ids.is_empty());
        let merged = reports(vec![report(3, &[], &[]), report(4, &[], &[])], vec![]);
        assert_eq!(merged.delivered, 7);
    }

    #[test]
    fn unknown_users_are_those_unknown_everywhere() {
        // alice is on gw1, bob on gw2, carol nowhere, dave on both.
        let merged = reports(
            vec![
                report(2, &[], &["bob", "carol"]),
                report(1, &[], &["alice", "carol"]),
                report(0, &[], &["alice", "bob", "carol", "carol"]),
            ],
            vec![],
        );
        assert_eq!(merged.unknown_user_ids, s(&["carol"]));
        // One gateway answering: its list, deduplicated.
        let merged = reports(vec![report(0, &[], &["x", "y", "x"])], vec![]);
        assert_eq!(merged.unknown_user_ids, s(&["x", "y"]));
        // Nobody answered: nobody is claimed unknown.
        assert_eq!(reports(vec![], vec![]), Report::default());
        // A gateway that knows all of them empties the list.
        let merged = reports(vec![report(0, &[], &["a"]), report(1, &[], &[])], vec![]);
        assert!(merged.unknown_user_ids.is_empty());
    }

    #[test]
    fn online_is_the_union_in_the_order_asked() {
        let merged = online(
            &s(&["gw1-1-1", "gw2-1-1", "gw1-1-2"]),
            &s(&["carol", "alice", "bob"]),
            vec![
                OnlineReply {
                    conn_ids: s(&["gw1-1-2", "gw1-1-1"]),
                    user_ids: s(&["alice", "bob"]),
                },
                OnlineReply {
                    conn_ids: s(&[]),
                    user_ids: s(&["alice"]),
                },
            ],
        );
        assert_eq!(merged.conn_ids, s(&["gw1-1-1", "gw1-1-2"]));
        assert_eq!(merged.user_ids, s(&["alice", "bob"]));
    }

    #[test]
    fn counts_are_summed_per_topic() {
        let tc = |topic: &str, connections, users| TopicCount {
            topic: topic.into(),
            connections,
            users,
        };
        let merged = counts(vec![
            CountsReply {
                connections: 5,
                users: 3,
                topics: 2,
                topic_counts: vec![tc("room", 2, 2), tc("news", 1, 1)],
            },
            CountsReply {
                connections: 4,
                users: 2,
                topics: 1,
                topic_counts: vec![tc("news", 3, 1), tc("empty", 0, 0)],
            },
        ]);
        assert_eq!((merged.connections, merged.users, merged.topics), (9, 5, 3));
        assert_eq!(
            merged.topic_counts,
            vec![tc("room", 2, 2), tc("news", 4, 2), tc("empty", 0, 0)]
        );
    }

    #[test]
    fn list_pages_merge_sorted_and_deduplicated() {
        // Users: bob is on both gateways, neither has more.
        let merged = list(
            "",
            10,
            vec![page(&["alice", "bob"], ""), page(&["bob", "carol"], "")],
        );
        assert_eq!(merged, page(&["alice", "bob", "carol"], ""));
    }

    #[test]
    fn list_next_cursor_when_the_merge_is_longer_than_the_limit() {
        let merged = list(
            "",
            3,
            vec![page(&["a", "c", "e"], ""), page(&["b", "d"], "")],
        );
        assert_eq!(merged, page(&["a", "b", "c"], "c"));
        // Exactly the limit and nobody has more: last page.
        let merged = list("", 3, vec![page(&["a", "c"], ""), page(&["b"], "")]);
        assert_eq!(merged, page(&["a", "b", "c"], ""));
    }

    #[test]
    fn list_never_passes_a_gateway_that_has_more() {
        // gw1 is full (3 items, more to come after "c"); gw2 has few, large items. Taking
        // "x" would skip gw1's "d".."w" on the next page.
        let merged = list("", 3, vec![page(&["a", "b", "c"], "c"), page(&["x"], "")]);
        assert_eq!(merged, page(&["a", "b", "c"], "c"));
        // Next page, from "c": gw1 sends its rest, gw2 still has "x".
        let merged = list("c", 3, vec![page(&["d"], ""), page(&["x"], "")]);
        assert_eq!(merged, page(&["d", "x"], ""));
        // Two full gateways: the smaller end wins, and the dedupe does not shorten it below
        // what that gateway sent.
        let merged = list(
            "",
            3,
            vec![page(&["a", "b", "f"], "f"), page(&["a", "b", "c"], "c")],
        );
        assert_eq!(merged, page(&["a", "b", "c"], "c"));
    }

    #[test]
    fn list_walks_a_whole_cluster_without_repeats_or_gaps() {
        // Three gateways' sorted sets with overlaps; page through them as list_all does, each
        // "gateway" answering QueryList by its rules.
        let sets = [
            s(&["a", "b", "c", "m", "n", "z"]),
            s(&["b", "d", "e", "f", "g", "h", "i"]),
            s(&["c", "y"]),
        ];
        let query = |set: &[String], cursor: &str, limit: usize| {
            let items: Vec<String> = set
                .iter()
                .filter(|i| i.as_str() > cursor)
                .take(limit + 1)
                .cloned()
                .collect();
            let more = items.len() > limit;
            let items: Vec<String> = items.into_iter().take(limit).collect();
            ListReply {
                next_cursor: if more {
                    items.last().cloned().unwrap_or_default()
                } else {
                    String::new()
                },
                items,
            }
        };
        for limit in 1..=7 {
            let mut all = Vec::new();
            let mut cursor = String::new();
            for _ in 0..100 {
                let pages = sets.iter().map(|set| query(set, &cursor, limit)).collect();
                let merged = list(&cursor, limit as u32, pages);
                assert!(merged.items.len() <= limit);
                all.extend(merged.items);
                if merged.next_cursor.is_empty() {
                    break;
                }
                assert!(merged.next_cursor > cursor, "cursor moves forward");
                cursor = merged.next_cursor;
            }
            let mut expected: Vec<String> = sets.concat();
            expected.sort();
            expected.dedup();
            assert_eq!(all, expected, "limit {limit}");
        }
    }

    #[test]
    fn list_limit_zero_is_the_default_and_items_before_the_cursor_are_dropped() {
        let many: Vec<String> = (0..1500).map(|i| format!("u{i:05}")).collect();
        let merged = list(
            "",
            0,
            vec![ListReply {
                items: many.clone(),
                next_cursor: String::new(),
            }],
        );
        assert_eq!(merged.items.len(), DEFAULT_LIST_LIMIT as usize);
        assert_eq!(merged.next_cursor, many[999]);
        let merged = list("b", 5, vec![page(&["a", "b", "c"], "")]);
        assert_eq!(merged, page(&["c"], ""));
    }

    #[test]
    fn list_with_a_gateway_claiming_more_but_sending_nothing() {
        let merged = list("a", 5, vec![page(&[], "q"), page(&["z"], "")]);
        assert_eq!(merged, page(&[], "q"));
        let merged = list("q", 5, vec![page(&[], "b")]);
        assert_eq!(merged, page(&[], ""));
    }

    #[test]
    fn failures_are_kept_once_per_gateway() {
        let f = |g: &str, e: &str| GatewayFailure {
            gateway: g.into(),
            error: e.into(),
        };
        let mut all = vec![f("gw1", "timeout")];
        add_failures(&mut all, vec![f("gw1", "down"), f("gw2", "down")]);
        assert_eq!(all, vec![f("gw1", "timeout"), f("gw2", "down")]);
    }
}
