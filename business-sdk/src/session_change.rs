//! A change to a connection's session data, built up and then sent with
//! [`Client::set_session`](crate::Client::set_session).
//!
//! The session is a small string map the gateway keeps per connection (at most 64 keys, keys up
//! to 128 characters, 16 KiB in all); it comes back in every `ConnMessage` and `ConnClose` and in
//! [`Client::conn_info`](crate::Client::conn_info). A change either edits keys (set some,
//! delete others) or, with [`SessionChange::replace_all`], replaces the whole map.

use std::collections::HashMap;

use wsgate_proto::v1::SetSession;

/// A change to one connection's session data (a builder for the `SetSession` command).
///
/// Calls apply in order: a key set and then deleted is deleted, a key deleted and then set is
/// set.
///
/// ```
/// use wsgate_business::SessionChange;
///
/// // Edit: write two keys, remove one, keep the rest.
/// let edit = SessionChange::new().set("room", "lobby").set("role", "admin").delete("draft");
/// // Replace: the session becomes exactly {"room": "lobby"}.
/// let replace = SessionChange::new().set("room", "lobby").replace_all();
/// # let _ = (edit, replace);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a SessionChange does nothing until passed to Client::set_session"]
pub struct SessionChange {
    set: HashMap<String, String>,
    delete: Vec<String>,
    replace: bool,
}

impl SessionChange {
    /// An empty change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `key` = `value`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.delete.retain(|k| *k != key);
        self.set.insert(key, value.into());
        self
    }

    /// Removes `key` (nothing happens if it is not there).
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.set.remove(&key);
        if !self.delete.contains(&key) {
            self.delete.push(key);
        }
        self
    }

    /// Makes the session exactly the keys set in this change, dropping every other key.
    /// Deletes are then moot. `SessionChange::new().replace_all()` clears the session.
    pub fn replace_all(mut self) -> Self {
        self.replace = true;
        self
    }

    /// The `SetSession` command applying this change to `conn_id`.
    pub(crate) fn into_command(self, conn_id: String) -> SetSession {
        SetSession {
            conn_id,
            set: self.set,
            // With `replace` the gateway ignores deletes; do not send them.
            delete: if self.replace {
                Vec::new()
            } else {
                self.delete
            },
            replace: self.replace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn edits_become_set_and_delete() {
        let cmd = SessionChange::new()
            .set("room", "lobby")
            .set("role", "admin")
            .delete("draft")
            .into_command("gw-1-1".into());
        assert_eq!(
            cmd,
            SetSession {
                conn_id: "gw-1-1".into(),
                set: map(&[("room", "lobby"), ("role", "admin")]),
                delete: vec!["draft".into()],
                replace: false,
            }
        );
    }

    #[test]
    fn the_last_call_for_a_key_wins() {
        let cmd = SessionChange::new()
            .set("a", "1")
            .delete("a")
            .delete("b")
            .set("b", "2")
            .set("b", "3")
            .delete("c")
            .delete("c")
            .into_command("x".into());
        assert_eq!(cmd.set, map(&[("b", "3")]));
        assert_eq!(cmd.delete, ["a", "c"]);
        assert!(!cmd.replace);
    }

    #[test]
    fn replace_all_sends_only_the_new_map() {
        let cmd = SessionChange::new()
            .delete("old")
            .set("room", "lobby")
            .replace_all()
            .into_command("x".into());
        assert_eq!(cmd.set, map(&[("room", "lobby")]));
        assert!(cmd.delete.is_empty());
        assert!(cmd.replace);

        let clear = SessionChange::new().replace_all().into_command("x".into());
        assert!(clear.set.is_empty() && clear.delete.is_empty() && clear.replace);
    }

    #[test]
    fn an_empty_change_changes_nothing() {
        let cmd = SessionChange::new().into_command("x".into());
        assert_eq!(
            cmd,
            SetSession {
                conn_id: "x".into(),
                ..SetSession::default()
            }
        );
    }
}
