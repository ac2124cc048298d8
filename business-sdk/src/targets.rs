//! Which connections a topic command ([`Client::subscribe`](crate::Client::subscribe),
//! [`Client::unsubscribe`](crate::Client::unsubscribe)) acts on: connection ids, user ids, or
//! both.
//!
//! A user id stands for the user's connections at the time of the command on the gateway that
//! runs it; connections the user opens later are not included.

/// The connections a topic command acts on: the named connections plus every current
/// connection of the named users.
///
/// ```
/// use wsgate_business::Targets;
///
/// let one = Targets::conn("gw1-6172a3b4c5d6e-1f");
/// let users = Targets::users(["alice", "bob"]);
/// // Both kinds at once: the fields are public.
/// let both = Targets {
///     conn_ids: one.conn_ids,
///     user_ids: users.user_ids,
/// };
/// assert_eq!(both.user_ids, ["alice", "bob"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Connection ids.
    pub conn_ids: Vec<String>,
    /// User ids: each stands for all of that user's current connections.
    pub user_ids: Vec<String>,
}

impl Targets {
    /// Several connections.
    pub fn conns(conn_ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            conn_ids: conn_ids.into_iter().map(Into::into).collect(),
            user_ids: Vec::new(),
        }
    }

    /// Every current connection of several users.
    pub fn users(user_ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            conn_ids: Vec::new(),
            user_ids: user_ids.into_iter().map(Into::into).collect(),
        }
    }

    /// One connection.
    pub fn conn(conn_id: impl Into<String>) -> Self {
        Self::conns([conn_id])
    }

    /// Every current connection of one user.
    pub fn user(user_id: impl Into<String>) -> Self {
        Self::users([user_id])
    }

    /// Whether nothing is targeted.
    pub fn is_empty(&self) -> bool {
        self.conn_ids.is_empty() && self.user_ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_fill_one_list() {
        assert_eq!(
            Targets::conn("gw-1-1"),
            Targets {
                conn_ids: vec!["gw-1-1".into()],
                user_ids: vec![],
            }
        );
        assert_eq!(
            Targets::user("alice"),
            Targets {
                conn_ids: vec![],
                user_ids: vec!["alice".into()],
            }
        );
        let conns = Targets::conns(vec![String::from("a"), String::from("b")]);
        assert_eq!(conns.conn_ids, ["a", "b"]);
        assert!(conns.user_ids.is_empty());
        let users = Targets::users(["u1", "u2"]);
        assert_eq!(users.user_ids, ["u1", "u2"]);
        assert!(users.conn_ids.is_empty());
    }

    #[test]
    fn empty_targets() {
        assert!(Targets::default().is_empty());
        assert!(Targets::conns(Vec::<String>::new()).is_empty());
        assert!(!Targets::user("x").is_empty());
    }
}
