//! Per-connection state that business processes manage (user, topics, session) and the user and
//! topic indexes that find connections by it.
//!
//! The rule that keeps indexes and connections consistent under concurrent commands and closes:
//! every change takes the connection's own lock first, then updates the index entries for that
//! connection, then releases the lock. A closing connection marks itself closed under the same
//! lock and removes itself from every index, so nothing can add it back afterwards. When the last
//! member of a user or topic entry leaves, the entry is removed: an empty topic takes no memory.
//! A connection that never gets a user, topic or session carries one empty pointer.
//!
//! Every change costs time in the number of items it names, never in what the connection
//! already holds: a connection's topics are a hash set, and [`Indexes::subscribe`] takes a
//! whole batch under one lock. A connection holds at most a configured number of topics
//! (`--max-topics-per-conn`); a batch that would take it past that changes nothing.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;

use crate::connections::users::{UserConnectionPolicy, UserLimit, oldest};

pub use wsgate_proto::validate::{MAX_NAME_CHARS, Refused, check_name};
/// What such a name takes at most in bytes: four per character in UTF-8.
pub const MAX_NAME_BYTES: usize = 4 * MAX_NAME_CHARS;
/// Session limits.
pub const MAX_SESSION_KEYS: usize = 64;
pub const MAX_SESSION_BYTES: usize = 16 * 1024;

/// What business processes attached to a connection, as events and queries report it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Attached {
    pub user_id: Option<String>,
    pub topics: Vec<String>,
    pub session: HashMap<String, String>,
}

/// What a connection holds, as it is kept: topics in a set, so joining or leaving one costs
/// the same however many the connection is in.
#[derive(Debug, Default)]
struct Held {
    user_id: Option<String>,
    topics: HashSet<String>,
    session: HashMap<String, String>,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.user_id.is_none() && self.topics.is_empty() && self.session.is_empty()
    }

    fn to_attached(&self) -> Attached {
        Attached {
            user_id: self.user_id.clone(),
            topics: self.topics.iter().cloned().collect(),
            session: self.session.clone(),
        }
    }

    fn into_attached(self) -> Attached {
        Attached {
            user_id: self.user_id,
            topics: self.topics.into_iter().collect(),
            session: self.session,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    closed: bool,
    attached: Option<Box<Held>>,
}

/// What authentication attached to a new connection (a JWT's `sub`, the authorize hook).
#[derive(Debug, Default, Clone)]
pub struct Admitted {
    pub user_id: Option<String>,
    pub topics: Vec<String>,
    pub session: HashMap<String, String>,
}

/// The limits a new connection is admitted under.
#[derive(Debug, Clone, Copy)]
pub struct AdmitLimits {
    pub topics: usize,
    pub user: UserLimit,
}

/// What a bind did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Bound {
    /// False when the connection was already closed.
    pub bound: bool,
    /// The user's oldest connections, to be closed (close-oldest past the per-user limit).
    pub evicted: Vec<String>,
}

/// A bind refused because the user holds the most connections allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLimitExceeded {
    pub user_id: String,
    pub held: usize,
    pub limit: usize,
}

impl std::fmt::Display for UserLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user {:?} already has {} connections on this gateway; the limit is {} (--max-connections-per-user; --user-connection-policy close-oldest lets the new one in)",
            self.user_id, self.held, self.limit
        )
    }
}

/// A subscribe batch that would take a connection past its topic limit; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimit {
    /// Topics the connection is in.
    pub held: usize,
    /// Topics of the batch it is not in yet.
    pub adding: usize,
    pub limit: usize,
}

impl std::fmt::Display for TopicLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the connection is in {} topics and this would add {}; a connection may be in at most {} (--max-topics-per-conn)",
            self.held, self.adding, self.limit
        )
    }
}

/// One connection's attached state, and its connection id.
#[derive(Debug)]
pub struct ConnState {
    id: Arc<str>,
    inner: Mutex<Inner>,
}

/// The lock on one connection's state, open for changes. It carries the connection's id, so
/// an index change made under it can only be about that connection.
pub struct Locked<'a> {
    id: &'a str,
    guard: MutexGuard<'a, Inner>,
}

impl ConnState {
    pub fn new(id: Arc<str>) -> Self {
        Self {
            id,
            inner: Mutex::default(),
        }
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// Whether the connection is in `topic` (`user` false) or is `name`'s (`user` true).
    pub fn is_member(&self, user: bool, name: &str) -> bool {
        let l = self.lock();
        if user {
            l.user_id() == Some(name)
        } else {
            l.has_topic(name)
        }
    }

    pub fn lock(&self) -> Locked<'_> {
        Locked {
            id: &self.id,
            guard: self.inner.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// The user id and session, for an event.
    pub fn user_and_session(&self) -> (String, HashMap<String, String>) {
        let l = self.lock();
        match l.guard.attached.as_deref() {
            Some(a) => (a.user_id.clone().unwrap_or_default(), a.session.clone()),
            None => (String::new(), HashMap::new()),
        }
    }

    pub fn snapshot(&self) -> Attached {
        self.lock()
            .guard
            .attached
            .as_deref()
            .map(Held::to_attached)
            .unwrap_or_default()
    }

    pub fn has_user(&self) -> bool {
        self.lock()
            .guard
            .attached
            .as_deref()
            .is_some_and(|a| a.user_id.is_some())
    }
}

impl Locked<'_> {
    pub fn is_closed(&self) -> bool {
        self.guard.closed
    }

    fn attached(&mut self) -> &mut Held {
        self.guard.attached.get_or_insert_with(Box::default)
    }

    /// Frees the box when nothing is attached any more.
    fn tidy(&mut self) {
        if self.guard.attached.as_deref().is_some_and(Held::is_empty) {
            self.guard.attached = None;
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        self.guard
            .attached
            .as_deref()
            .and_then(|a| a.user_id.as_deref())
    }

    /// How many topics the connection is in.
    pub fn topic_count(&self) -> usize {
        self.guard.attached.as_deref().map_or(0, |a| a.topics.len())
    }

    pub(crate) fn has_topic(&self, topic: &str) -> bool {
        self.guard
            .attached
            .as_deref()
            .is_some_and(|a| a.topics.contains(topic))
    }
}

/// The user and topic indexes of one gateway.
#[derive(Debug, Default)]
pub struct Indexes {
    users: DashMap<String, HashSet<String>>,
    topics: DashMap<String, HashSet<String>>,
}

fn index_add(map: &DashMap<String, HashSet<String>>, key: &str, conn_id: &str) {
    // An existing entry needs no copy of its key.
    if let Some(mut members) = map.get_mut(key) {
        members.insert(conn_id.to_owned());
        return;
    }
    map.entry(key.to_owned())
        .or_default()
        .insert(conn_id.to_owned());
}

fn index_remove(map: &DashMap<String, HashSet<String>>, key: &str, conn_id: &str) {
    map.remove_if_mut(key, |_, members| {
        members.remove(conn_id);
        members.is_empty()
    });
}

impl Indexes {
    /// Binds `user_id` to the connection (re-binding replaces), within the per-user limit:
    /// past it the bind is refused ([`UserLimitExceeded`], nothing changes) or, with
    /// close-oldest, done and the user's oldest connections are returned for the caller to
    /// close. `Ok` with `bound: false` when the connection is closed. The count is checked
    /// under the user entry's lock, so concurrent binds cannot together pass the limit.
    pub fn bind(
        &self,
        l: &mut Locked<'_>,
        user_id: &str,
        limit: UserLimit,
    ) -> Result<Bound, UserLimitExceeded> {
        let conn_id = l.id;
        if l.is_closed() {
            return Ok(Bound::default());
        }
        if l.user_id() == Some(user_id) {
            return Ok(Bound {
                bound: true,
                evicted: Vec::new(),
            });
        }
        let mut evicted = Vec::new();
        {
            let mut members = self.users.entry(user_id.to_owned()).or_default();
            if members.len() >= limit.max {
                match limit.policy {
                    UserConnectionPolicy::RefuseNew => {
                        let held = members.len();
                        drop(members);
                        // An entry made just for this check must not stay behind empty.
                        self.users.remove_if(user_id, |_, m| m.is_empty());
                        return Err(UserLimitExceeded {
                            user_id: user_id.to_owned(),
                            held,
                            limit: limit.max,
                        });
                    }
                    UserConnectionPolicy::CloseOldest => {
                        let mut ids: Vec<String> = members.iter().cloned().collect();
                        evicted = oldest(&mut ids, members.len() + 1 - limit.max);
                    }
                }
            }
            members.insert(conn_id.to_owned());
        }
        if let Some(old) = l.attached().user_id.take() {
            index_remove(&self.users, &old, conn_id);
        }
        l.attached().user_id = Some(user_id.to_owned());
        Ok(Bound {
            bound: true,
            evicted,
        })
    }

    /// How many connections `user_id` has here.
    pub fn user_conn_count(&self, user_id: &str) -> usize {
        self.users.get(user_id).map_or(0, |m| m.len())
    }

    pub fn unbind(&self, l: &mut Locked<'_>) -> bool {
        let conn_id = l.id;
        if l.is_closed() {
            return false;
        }
        if let Some(old) = l.guard.attached.as_mut().and_then(|a| a.user_id.take()) {
            index_remove(&self.users, &old, conn_id);
        }
        l.tidy();
        true
    }

    /// Adds the connection to every topic of `topics` it is not in yet, all or none: when that
    /// would put it in more than `limit` topics nothing changes. `Ok(false)` when it is closed.
    pub fn subscribe(
        &self,
        l: &mut Locked<'_>,
        topics: &[String],
        limit: usize,
    ) -> Result<bool, TopicLimit> {
        let conn_id = l.id;
        if l.is_closed() {
            return Ok(false);
        }
        let mut adding: HashSet<&str> = HashSet::new();
        for topic in topics {
            if !l.has_topic(topic) {
                adding.insert(topic);
            }
        }
        let held = l.topic_count();
        if held + adding.len() > limit {
            return Err(TopicLimit {
                held,
                adding: adding.len(),
                limit,
            });
        }
        if adding.is_empty() {
            return Ok(true);
        }
        let mine = &mut l.attached().topics;
        mine.reserve(adding.len());
        for topic in adding {
            mine.insert(topic.to_owned());
            index_add(&self.topics, topic, conn_id);
        }
        Ok(true)
    }

    /// Removes the connection from each of `topics` it is in. False when it is closed.
    pub fn unsubscribe(&self, l: &mut Locked<'_>, topics: &[String]) -> bool {
        let conn_id = l.id;
        if l.is_closed() {
            return false;
        }
        if let Some(a) = l.guard.attached.as_mut() {
            for topic in topics {
                if a.topics.remove(topic.as_str()) {
                    index_remove(&self.topics, topic, conn_id);
                }
            }
            // A set that shrank a lot gives its memory back.
            if a.topics.capacity() > 2 * a.topics.len() + 16 {
                a.topics.shrink_to_fit();
            }
        }
        l.tidy();
        true
    }

    /// Applies a session change after checking the limits on the result.
    pub fn set_session(
        &self,
        l: &mut Locked<'_>,
        set: HashMap<String, String>,
        delete: &[String],
        replace: bool,
    ) -> Result<bool, Refused> {
        if l.is_closed() {
            return Ok(false);
        }
        let current = l.guard.attached.as_deref().map(|a| &a.session);
        let mut next = if replace {
            HashMap::new()
        } else {
            current.cloned().unwrap_or_default()
        };
        for key in delete {
            next.remove(key);
        }
        next.extend(set);
        check_session(&next)?;
        l.attached().session = next;
        l.tidy();
        Ok(true)
    }

    /// Applies what authentication attached to a new connection (invalid names, and topics
    /// past `topic_limit`, are skipped and logged: they came from our own hook, not a client);
    /// returns what was attached.
    pub fn admit(
        &self,
        state: &ConnState,
        admitted: Admitted,
        limits: AdmitLimits,
    ) -> Result<(Attached, Vec<String>), UserLimitExceeded> {
        let Admitted {
            user_id,
            mut topics,
            session,
        } = admitted;
        let topic_limit = limits.topics;
        let conn_id: &str = state.id();
        let mut l = state.lock();
        let mut evicted = Vec::new();
        if let Some(user) = user_id.filter(|u| check_name("user id", u).is_ok()) {
            evicted = self.bind(&mut l, &user, limits.user)?.evicted;
        }
        topics.retain(|topic| match check_name("topic", topic) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(conn_id, "authorize hook topic skipped: {e}");
                false
            }
        });
        topics.sort_unstable();
        topics.dedup();
        if topics.len() > topic_limit {
            tracing::warn!(
                conn_id,
                topics = topics.len(),
                limit = topic_limit,
                "the authorize hook named more topics than --max-topics-per-conn; the first {topic_limit} in byte order are kept"
            );
            topics.truncate(topic_limit);
        }
        // Cannot exceed the limit: the connection is new and the list was cut to it.
        let _ = self.subscribe(&mut l, &topics, topic_limit);
        if !session.is_empty()
            && let Err(e) = self.set_session(&mut l, session, &[], true)
        {
            tracing::warn!(conn_id, "authorize hook session skipped: {e}");
        }
        let attached = l
            .guard
            .attached
            .as_deref()
            .map(Held::to_attached)
            .unwrap_or_default();
        Ok((attached, evicted))
    }

    /// Marks the connection closed and removes it from every index; returns what it had.
    pub fn close(&self, state: &ConnState) -> Attached {
        let conn_id: &str = state.id();
        let mut l = state.lock();
        l.guard.closed = true;
        let Some(attached) = l.guard.attached.take() else {
            return Attached::default();
        };
        if let Some(user) = &attached.user_id {
            index_remove(&self.users, user, conn_id);
        }
        for topic in &attached.topics {
            index_remove(&self.topics, topic, conn_id);
        }
        attached.into_attached()
    }

    /// The connection ids of a user or topic (a copy: no lock is held afterwards).
    pub fn user_conns(&self, user_id: &str) -> Vec<String> {
        self.users
            .get(user_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn topic_conns(&self, topic: &str) -> Vec<String> {
        self.topics
            .get(topic)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn has_user(&self, user_id: &str) -> bool {
        self.users.contains_key(user_id)
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    pub fn topic_members(&self, topic: &str) -> usize {
        self.topics.get(topic).map(|s| s.len()).unwrap_or(0)
    }

    /// One page of user ids or topic names.
    pub fn page_users(&self, cursor: &str, limit: usize) -> (Vec<String>, String) {
        page(self.users.iter().map(|e| e.key().clone()), cursor, limit)
    }

    pub fn page_topics(&self, cursor: &str, limit: usize) -> (Vec<String>, String) {
        page(self.topics.iter().map(|e| e.key().clone()), cursor, limit)
    }
}

fn check_session(session: &HashMap<String, String>) -> Result<(), Refused> {
    if session.len() > MAX_SESSION_KEYS {
        return Err(Refused::bad(format!(
            "the session would hold {} keys; the limit is {MAX_SESSION_KEYS}",
            session.len()
        )));
    }
    if let Some(key) = session
        .keys()
        .find(|k| k.is_empty() || k.chars().count() > MAX_NAME_CHARS)
    {
        return Err(Refused::bad(format!(
            "session key of {} characters; keys must be 1 to {MAX_NAME_CHARS} characters",
            key.chars().count()
        )));
    }
    let bytes: usize = session.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_SESSION_BYTES {
        return Err(Refused::bad(format!(
            "the session would take {bytes} bytes; the limit is {MAX_SESSION_BYTES} (keys and values)"
        )));
    }
    Ok(())
}

/// The first `limit` items greater than `cursor`, ascending, and the cursor for the next page
/// (empty when there is none). Keeps at most `limit` items in memory however many there are.
pub fn page(
    items: impl Iterator<Item = String>,
    cursor: &str,
    limit: usize,
) -> (Vec<String>, String) {
    let mut heap: BinaryHeap<String> = BinaryHeap::with_capacity(limit.min(1024) + 1);
    let mut more = false;
    for item in items {
        if item.as_str() <= cursor {
            continue;
        }
        if heap.len() < limit {
            heap.push(item);
        } else if heap.peek().is_some_and(|top| item < *top) {
            heap.pop();
            heap.push(item);
            more = true;
        } else {
            more = true;
        }
    }
    let items = heap.into_sorted_vec();
    let next = if more {
        items.last().cloned().unwrap_or_default()
    } else {
        String::new()
    };
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn paging_walks_everything_once_in_order() {
        let all: Vec<String> = (0..2500).map(|i| format!("id-{i:05}")).collect();
        let mut shuffled = all.clone();
        shuffled.reverse();
        let mut cursor = String::new();
        let mut seen = Vec::new();
        loop {
            let (items, next) = page(shuffled.iter().cloned(), &cursor, 1000);
            seen.extend(items);
            if next.is_empty() {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen, all);
        assert_eq!(
            page(all.iter().cloned(), "", 2500).1,
            "",
            "an exact fit has no next page"
        );
    }

    #[test]
    fn session_limits() {
        let idx = Indexes::default();
        let state = ConnState::new("c".into());
        let mut l = state.lock();
        let big: HashMap<_, _> = [("k".to_string(), "v".repeat(MAX_SESSION_BYTES))].into();
        assert!(idx.set_session(&mut l, big, &[], false).is_err());
        let many: HashMap<_, _> = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(idx.set_session(&mut l, many, &[], false).is_err());
        assert!(
            l.guard.attached.is_none(),
            "a refused change leaves nothing behind"
        );
        let ok: HashMap<_, _> = [("room".to_string(), "7".to_string())].into();
        assert_eq!(idx.set_session(&mut l, ok, &[], false), Ok(true));
        assert_eq!(
            idx.set_session(&mut l, HashMap::new(), &["room".into()], false),
            Ok(true)
        );
        assert!(
            l.guard.attached.is_none(),
            "an emptied session frees its box"
        );
    }

    #[test]
    fn a_batch_past_the_topic_limit_changes_nothing() {
        let idx = Indexes::default();
        let state = ConnState::new("c".into());
        let names = |r: std::ops::Range<usize>| r.map(|i| format!("t{i}")).collect::<Vec<_>>();
        let mut l = state.lock();
        assert_eq!(idx.subscribe(&mut l, &names(0..8), 10), Ok(true));
        // Two new, six already held: within the limit.
        assert_eq!(idx.subscribe(&mut l, &names(2..10), 10), Ok(true));
        assert_eq!(l.topic_count(), 10);
        let refused = idx.subscribe(&mut l, &names(5..11), 10);
        assert_eq!(
            refused,
            Err(TopicLimit {
                held: 10,
                adding: 1,
                limit: 10
            })
        );
        assert_eq!(l.topic_count(), 10, "a refused batch adds nothing");
        assert_eq!(idx.topic_count(), 10);
        assert!(idx.unsubscribe(&mut l, &names(0..10)));
        assert!(
            l.guard.attached.is_none(),
            "no topics left: the box is freed"
        );
        assert_eq!(idx.topic_count(), 0);
    }

    #[test]
    fn the_user_limit_refuses_or_evicts_the_oldest() {
        let idx = Indexes::default();
        let conns: Vec<(String, ConnState)> = (1..=4)
            .map(|i| {
                let id = format!("gw-1a-{i:x}");
                (id.clone(), ConnState::new(id.into()))
            })
            .collect();
        let refuse = UserLimit::new(2, UserConnectionPolicy::RefuseNew);
        for (_, st) in &conns[..2] {
            assert!(
                idx.bind(&mut st.lock(), "alice", refuse)
                    .expect("within")
                    .bound
            );
        }
        let (_, st) = &conns[2];
        let err = idx
            .bind(&mut st.lock(), "alice", refuse)
            .expect_err("a third");
        assert_eq!((err.held, err.limit), (2, 2));
        assert!(
            err.to_string().contains("--max-connections-per-user"),
            "{err}"
        );
        assert_eq!(st.snapshot().user_id, None, "a refused bind binds nothing");
        assert_eq!(idx.user_conn_count("alice"), 2);
        // Re-binding a connection to the user it has is no new connection.
        let (_, st0) = &conns[0];
        assert!(idx.bind(&mut st0.lock(), "alice", refuse).is_ok());

        let evict = UserLimit::new(2, UserConnectionPolicy::CloseOldest);
        let bound = idx.bind(&mut st.lock(), "alice", evict).expect("let in");
        assert_eq!(bound.evicted, ["gw-1a-1"], "the oldest goes");
        // Refused with a limit on a user nobody holds yet: no empty entry stays behind.
        let (_, st3) = &conns[3];
        let none = UserLimit::new(1, UserConnectionPolicy::RefuseNew);
        idx.bind(&mut st3.lock(), "bob", none).expect("first");
        idx.close(st3);
        assert!(!idx.has_user("bob"));
    }

    /// 50,000 topics in batches of 1,000: each batch costs what it names. Counted through the
    /// index, not timed: the connection's own set never has to be scanned.
    #[test]
    fn many_topics_on_one_connection() {
        let idx = Indexes::default();
        let state = ConnState::new("c".into());
        let mut l = state.lock();
        for batch in 0..50 {
            let topics: Vec<String> = (0..1000).map(|i| format!("t{batch}-{i}")).collect();
            assert_eq!(idx.subscribe(&mut l, &topics, 50_000), Ok(true));
        }
        assert_eq!((l.topic_count(), idx.topic_count()), (50_000, 50_000));
        drop(l);
        let closed = idx.close(&state);
        assert_eq!(closed.topics.len(), 50_000);
        assert_eq!(idx.topic_count(), 0);
    }

    /// Random binds, subscribes, session changes and closes from several threads; once every
    /// connection is closed, both indexes are empty and each connection's view matched the index.
    #[test]
    fn random_operations_leave_nothing_behind() {
        for seed in 0..20u64 {
            let idx = Indexes::default();
            let conns: Vec<(String, ConnState)> = (0..40)
                .map(|i| {
                    let id = format!("n-1-{i:x}");
                    (id.clone(), ConnState::new(id.into()))
                })
                .collect();
            std::thread::scope(|s| {
                for t in 0..4u64 {
                    let (idx, conns) = (&idx, &conns);
                    s.spawn(move || {
                        let mut rng = StdRng::seed_from_u64(seed * 31 + t);
                        // Half the seeds with a per-user limit: refusals must leave nothing.
                        let limit = if seed % 2 == 0 {
                            UserLimit::NONE
                        } else {
                            UserLimit::new(3, UserConnectionPolicy::RefuseNew)
                        };
                        for _ in 0..2000 {
                            let (_, st) = &conns[rng.random_range(0..conns.len())];
                            let user = format!("u{}", rng.random_range(0..8));
                            let topic = format!("t{}", rng.random_range(0..6));
                            let mut l = st.lock();
                            match rng.random_range(0..6) {
                                0 => drop(idx.bind(&mut l, &user, limit)),
                                1 => drop(idx.unbind(&mut l)),
                                2 | 3 => drop(idx.subscribe(&mut l, &[topic], 4)),
                                4 => drop(idx.unsubscribe(&mut l, &[topic])),
                                _ => drop(idx.set_session(
                                    &mut l,
                                    [(topic, user)].into(),
                                    &[],
                                    false,
                                )),
                            }
                        }
                    });
                }
            });
            // Consistency before closing: each connection's view equals the index.
            for (id, st) in &conns {
                let a = st.snapshot();
                if let Some(u) = &a.user_id {
                    assert!(idx.user_conns(u).contains(id));
                }
                for t in &a.topics {
                    assert!(idx.topic_conns(t).contains(id));
                }
            }
            if seed % 2 == 1 {
                for u in 0..8 {
                    let held = idx.user_conn_count(&format!("u{u}"));
                    assert!(held <= 3, "seed {seed}: user u{u} holds {held} connections");
                }
            }
            for (_, st) in &conns {
                idx.close(st);
            }
            assert_eq!((idx.user_count(), idx.topic_count()), (0, 0), "seed {seed}");
            // Closed connections cannot be added back.
            let (_, st) = &conns[0];
            assert_eq!(
                idx.bind(&mut st.lock(), "late", UserLimit::NONE),
                Ok(Bound::default())
            );
            assert_eq!(idx.user_count(), 0);
        }
    }
}
