//! What a command may do and how long it may hold a thread: the gateway's per-command and
//! per-connection limits as the commands read them, and the [`Budget`] that splits a large
//! command's work into slices.
//!
//! A refused command changes nothing: what it may name ([`Limits::per_command`]) is checked
//! by `validate::command` before it runs, so no answer can outgrow a frame. What it costs is
//! paid in slices: a command whose work grows with the connections it reaches gives its thread
//! back to the runtime every [`WORK_SLICE`] steps, so one large command never stalls other
//! connections, links or the APIs.

use wsgate_proto::validate;

use crate::config::Config;
use crate::connections::users::UserLimit;

/// Steps (a connection reached, a membership changed) a command takes before it lets other
/// tasks run.
pub(crate) const WORK_SLICE: usize = 2048;

/// Counts a command's steps and yields to the runtime after every [`WORK_SLICE`].
#[derive(Debug, Default)]
pub(crate) struct Budget(usize);

impl Budget {
    pub(crate) async fn spend(&mut self, steps: usize) {
        self.0 += steps;
        if self.0 >= WORK_SLICE {
            self.0 = 0;
            tokio::task::yield_now().await;
        }
    }
}

/// The limits commands run under, from the gateway's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// What one command may name (checked by [`validate::command`] before it runs).
    pub per_command: validate::Limits,
    pub topics_per_conn: usize,
    pub user: UserLimit,
    /// No answer may be larger (`--max-frame-bytes`).
    pub max_frame_bytes: usize,
}

impl Limits {
    pub(crate) fn of(config: &Config) -> Self {
        Self {
            per_command: validate::Limits {
                topics: config.max_topics_per_command,
                conn_ids: config.max_conn_ids_per_command,
                user_ids: config.max_user_ids_per_command,
            },
            topics_per_conn: config.max_topics_per_conn,
            user: UserLimit::new(
                config.max_connections_per_user,
                config.user_connection_policy,
            ),
            max_frame_bytes: config.max_frame_bytes,
        }
    }
}
