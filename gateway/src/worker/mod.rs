//! The worker side: the listener for business processes, one session per worker link, and the
//! commands those processes send.

pub(crate) mod accept;
pub(crate) mod commands;
pub(crate) mod context;
pub(crate) mod limits;
pub(crate) mod queries;
pub(crate) mod report;
pub(crate) mod session;
