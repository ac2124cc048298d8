//! Per-connection state that business processes manage (user, topics, session) and the user and
//! topic indexes that find connections by it.
//!
//! The rule that keeps indexes and connections consistent under concurrent commands and closes:
//! every change takes the connection's own lock first, then updates the index entries for that
//! connection, then releases the lock. A closing connection marks itself closed under the same
//! lock and removes itself from every index, so nothing can add it back afterwards. When the last
//! member of a user or topic entry leaves, the entry is removed: an empty topic takes no memory.
//! A connection that never gets a user, topic or session carries one empty pointer.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

/// Longest user id or topic name.
pub const MAX_NAME_BYTES: usize = 128;
/// Session limits.
pub const MAX_SESSION_KEYS: usize = 64;
pub const MAX_SESSION_KEY_BYTES: usize = 128;
pub const MAX_SESSION_BYTES: usize = 16 * 1024;

/// What business processes attached to a connection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Attached {
    pub user_id: Option<String>,
    pub topics: Vec<String>,
    pub session: HashMap<String, String>,
}

impl Attached {
    fn is_empty(&self) -> bool {
        self.user_id.is_none() && self.topics.is_empty() && self.session.is_empty()
    }
}

#[derive(Debug, Default)]
struct Inner {
    closed: bool,
    attached: Option<Box<Attached>>,
}

/// One connection's attached state.
#[derive(Debug, Default)]
pub struct ConnState {
    inner: Mutex<Inner>,
}

/// The lock on one connection's state, open for changes.
pub struct Locked<'a> {
    guard: MutexGuard<'a, Inner>,
}

impl ConnState {
    pub fn lock(&self) -> Locked<'_> {
        Locked {
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
            .cloned()
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

    fn attached(&mut self) -> &mut Attached {
        self.guard.attached.get_or_insert_with(Box::default)
    }

    /// Frees the box when nothing is attached any more.
    fn tidy(&mut self) {
        if self
            .guard
            .attached
            .as_deref()
            .is_some_and(Attached::is_empty)
        {
            self.guard.attached = None;
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        self.guard
            .attached
            .as_deref()
            .and_then(|a| a.user_id.as_deref())
    }

    pub fn topics(&self) -> &[String] {
        self.guard
            .attached
            .as_deref()
            .map(|a| a.topics.as_slice())
            .unwrap_or_default()
    }
}

/// Checks a user id or topic name.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} is empty; give it a name"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} {:?}… is {} bytes; the limit is {MAX_NAME_BYTES}",
            name.chars().take(16).collect::<String>(),
            name.len()
        ));
    }
    Ok(())
}

/// The user and topic indexes of one gateway.
#[derive(Debug, Default)]
pub struct Indexes {
    users: DashMap<String, HashSet<String>>,
    topics: DashMap<String, HashSet<String>>,
}

fn index_add(map: &DashMap<String, HashSet<String>>, key: &str, conn_id: &str) {
    map.entry(key.to_owned())
        .or_default()
        .insert(conn_id.to_owned());
}

fn index_remove(map: &DashMap<String, HashSet<String>>, key: &str, conn_id: &str) {
    if let Entry::Occupied(mut e) = map.entry(key.to_owned()) {
        e.get_mut().remove(conn_id);
        if e.get().is_empty() {
            e.remove();
        }
    }
}

impl Indexes {
    /// Binds `user_id` to the connection (re-binding replaces). False if it is closed.
    pub fn bind(&self, conn_id: &str, l: &mut Locked<'_>, user_id: &str) -> bool {
        if l.is_closed() {
            return false;
        }
        if l.user_id() == Some(user_id) {
            return true;
        }
        if let Some(old) = l.attached().user_id.take() {
            index_remove(&self.users, &old, conn_id);
        }
        index_add(&self.users, user_id, conn_id);
        l.attached().user_id = Some(user_id.to_owned());
        true
    }

    pub fn unbind(&self, conn_id: &str, l: &mut Locked<'_>) -> bool {
        if l.is_closed() {
            return false;
        }
        if let Some(old) = l.guard.attached.as_mut().and_then(|a| a.user_id.take()) {
            index_remove(&self.users, &old, conn_id);
        }
        l.tidy();
        true
    }

    pub fn subscribe(&self, conn_id: &str, l: &mut Locked<'_>, topic: &str) -> bool {
        if l.is_closed() {
            return false;
        }
        if !l.topics().iter().any(|t| t == topic) {
            l.attached().topics.push(topic.to_owned());
            index_add(&self.topics, topic, conn_id);
        }
        true
    }

    pub fn unsubscribe(&self, conn_id: &str, l: &mut Locked<'_>, topic: &str) -> bool {
        if l.is_closed() {
            return false;
        }
        if let Some(a) = l.guard.attached.as_mut()
            && let Some(i) = a.topics.iter().position(|t| t == topic)
        {
            a.topics.swap_remove(i);
            index_remove(&self.topics, topic, conn_id);
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
    ) -> Result<bool, String> {
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

    /// Applies what authentication attached to a new connection (invalid names are skipped and
    /// logged: they came from our own hook, not a client); returns what was attached.
    pub fn admit(
        &self,
        conn_id: &str,
        state: &ConnState,
        user_id: Option<String>,
        topics: Vec<String>,
        session: HashMap<String, String>,
    ) -> Attached {
        let mut l = state.lock();
        if let Some(user) = user_id.filter(|u| check_name("user id", u).is_ok()) {
            self.bind(conn_id, &mut l, &user);
        }
        for topic in topics {
            match check_name("topic", &topic) {
                Ok(()) => drop(self.subscribe(conn_id, &mut l, &topic)),
                Err(e) => tracing::warn!(conn_id, "authorize hook topic skipped: {e}"),
            }
        }
        if !session.is_empty()
            && let Err(e) = self.set_session(&mut l, session, &[], true)
        {
            tracing::warn!(conn_id, "authorize hook session skipped: {e}");
        }
        l.guard.attached.as_deref().cloned().unwrap_or_default()
    }

    /// Marks the connection closed and removes it from every index; returns what it had.
    pub fn close(&self, conn_id: &str, state: &ConnState) -> Attached {
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
        *attached
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

fn check_session(session: &HashMap<String, String>) -> Result<(), String> {
    if session.len() > MAX_SESSION_KEYS {
        return Err(format!(
            "the session would hold {} keys; the limit is {MAX_SESSION_KEYS}",
            session.len()
        ));
    }
    if let Some(key) = session
        .keys()
        .find(|k| k.is_empty() || k.len() > MAX_SESSION_KEY_BYTES)
    {
        return Err(format!(
            "session key of {} bytes; keys must be 1 to {MAX_SESSION_KEY_BYTES} bytes",
            key.len()
        ));
    }
    let bytes: usize = session.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_SESSION_BYTES {
        return Err(format!(
            "the session would take {bytes} bytes; the limit is {MAX_SESSION_BYTES} (keys and values)"
        ));
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
        let state = ConnState::default();
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

    /// Random binds, subscribes, session changes and closes from several threads; once every
    /// connection is closed, both indexes are empty and each connection's view matched the index.
    #[test]
    fn random_operations_leave_nothing_behind() {
        for seed in 0..20u64 {
            let idx = Indexes::default();
            let conns: Vec<(String, ConnState)> = (0..40)
                .map(|i| (format!("n-1-{i:x}"), ConnState::default()))
                .collect();
            std::thread::scope(|s| {
                for t in 0..4u64 {
                    let (idx, conns) = (&idx, &conns);
                    s.spawn(move || {
                        let mut rng = StdRng::seed_from_u64(seed * 31 + t);
                        for _ in 0..2000 {
                            let (id, st) = &conns[rng.random_range(0..conns.len())];
                            let user = format!("u{}", rng.random_range(0..8));
                            let topic = format!("t{}", rng.random_range(0..6));
                            let mut l = st.lock();
                            match rng.random_range(0..6) {
                                0 => drop(idx.bind(id, &mut l, &user)),
                                1 => drop(idx.unbind(id, &mut l)),
                                2 | 3 => drop(idx.subscribe(id, &mut l, &topic)),
                                4 => drop(idx.unsubscribe(id, &mut l, &topic)),
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
            for (id, st) in &conns {
                idx.close(id, st);
            }
            assert_eq!((idx.user_count(), idx.topic_count()), (0, 0), "seed {seed}");
            // Closed connections cannot be added back.
            let (id, st) = &conns[0];
            assert!(!idx.bind(id, &mut st.lock(), "late"));
            assert_eq!(idx.user_count(), 0);
        }
    }
}
