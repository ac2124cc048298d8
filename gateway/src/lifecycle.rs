//! Where the gateway is in its life, for `/readyz` and `/metrics`: starting, serving, or
//! draining (shut down has begun: load balancers see `/readyz` fail first).

use std::sync::atomic::{AtomicBool, Ordering};

/// Serving or draining, read by the APIs and set by the server.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    serving: AtomicBool,
    draining: AtomicBool,
}

impl Lifecycle {
    /// Serving and not draining: what /readyz reports as ready.
    pub(crate) fn ready(&self) -> bool {
        self.serving.load(Ordering::Acquire) && !self.draining()
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub(crate) fn serve(&self) {
        self.serving.store(true, Ordering::Release);
    }

    /// Shut down has begun; never undone.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }
}
