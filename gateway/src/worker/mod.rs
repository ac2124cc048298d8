//! The worker side: the listener for business processes, one session per worker link, and the
//! commands those processes send; `in_process` carries out the gateway's own cluster client's
//! commands without a link.

pub(crate) mod accept;
pub(crate) mod command_ids;
pub(crate) mod commands;
pub(crate) mod context;
pub(crate) mod deferred;
pub(crate) mod in_process;
pub(crate) mod limits;
pub(crate) mod queries;
pub(crate) mod report;
pub(crate) mod session;
