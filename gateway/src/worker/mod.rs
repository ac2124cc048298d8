//! The worker side: the listener for business processes, one session per worker link, and the
//! commands those processes send.

pub(crate) mod accept;
pub(crate) mod commands;
pub(crate) mod context;
pub(crate) mod queries;
pub(crate) mod session;
