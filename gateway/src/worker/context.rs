//! What the worker side uses, handed to it by the server: the settings, the connections its
//! commands act on (under [`Limits`]), the links it registers, the authorize hook its
//! answers go to, the command ids it remembers, and the counters.

use std::sync::Arc;

use wsgate_proto::v1::{Result as CmdResult, envelope::Body};

use super::command_ids::CommandIds;
use super::commands::{self, Asked};
use super::limits::Limits;
use crate::auth::AuthHook;
use crate::config::Config;
use crate::connections::Connections;
use crate::links::Links;
use crate::stats::Stats;

#[derive(Debug)]
pub(crate) struct Context {
    pub config: Arc<Config>,
    pub conns: Arc<Connections>,
    pub links: Arc<Links>,
    pub hook: Arc<AuthHook>,
    pub stats: Arc<Stats>,
    pub limits: Limits,
    /// Shared with the APIs' in-process calls: a retry may come through either.
    pub command_ids: Arc<CommandIds>,
}

impl Context {
    /// Runs one command or query of a link ([`commands::carry_out`] on this gateway's
    /// connections, under its limits and counters).
    pub(crate) async fn carry_out(
        &self,
        body: Body,
        asked: Option<&Asked>,
        command_id: &str,
    ) -> Option<CmdResult> {
        commands::carry_out(
            &self.conns,
            &self.limits,
            &self.stats,
            body,
            asked,
            command_id,
        )
        .await
    }
}
