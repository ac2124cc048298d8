//! When a publisher may send its next message: closed-loop flow control for the
//! max-throughput phases, or an exact pace for the fixed-rate phase.
//!
//! Closed loop: publish while `published × fan-out − delivered < window` (deliveries still in
//! flight), so no target is pushed into dropping or closing slow clients and the figure is what
//! it sustains. Fixed rate: message `n` may go at `start + n / rate`; a publisher that falls
//! behind catches up in a burst, so the average rate is exact whenever the target keeps up.
//! Several publisher tasks share one gate; each [`Gate::next`] claims one sequence number.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::recorder::Recorder;

/// How long a publisher sleeps when the window is full (the window holds much more than this).
const WINDOW_POLL: Duration = Duration::from_millis(1);

/// The pacing rule.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// At most `in_flight` deliveries published but not yet received.
    Window { in_flight: u64 },
    /// `per_sec` messages per second.
    Rate { per_sec: f64 },
    /// No pacing: each publisher sends again as soon as its last request is answered.
    Answers,
}

/// Shared by the publisher tasks of one phase.
#[derive(Debug)]
pub struct Gate {
    pace: Pace,
    /// Deliveries each message makes (clients for a broadcast, subscribers for a publish).
    fanout: u64,
    recorder: Arc<Recorder>,
    /// `recorder.delivered()` when the phase started.
    base_delivered: u64,
    start: Instant,
    published: AtomicU64,
    stopped: AtomicBool,
}

impl Gate {
    pub fn new(pace: Pace, fanout: u64, recorder: Arc<Recorder>) -> Gate {
        let base_delivered = recorder.delivered();
        Gate {
            pace,
            fanout,
            recorder,
            base_delivered,
            start: Instant::now(),
            published: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Waits until the next message may go and claims its sequence number; `None` once
    /// stopped.
    pub async fn next(&self) -> Option<u64> {
        loop {
            if self.stopped.load(Ordering::Relaxed) {
                return None;
            }
            let published = self.published.load(Ordering::Relaxed);
            let wait = match self.pace {
                Pace::Window { in_flight } => {
                    let delivered = self.delivered();
                    let outstanding = (published * self.fanout).saturating_sub(delivered);
                    if outstanding < in_flight {
                        None
                    } else {
                        Some(WINDOW_POLL)
                    }
                }
                Pace::Answers => None,
                Pace::Rate { per_sec } => {
                    let due = self.start + Duration::from_secs_f64(published as f64 / per_sec);
                    let now = Instant::now();
                    if due <= now { None } else { Some(due - now) }
                }
            };
            match wait {
                None => {
                    if self
                        .published
                        .compare_exchange(
                            published,
                            published + 1,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return Some(published);
                    }
                }
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Messages claimed so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Deliveries since the gate was made.
    pub fn delivered(&self) -> u64 {
        self.recorder
            .delivered()
            .saturating_sub(self.base_delivered)
    }

    /// Publishers get `None` from now on.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn window_blocks_until_deliveries_arrive() {
        let recorder = Arc::new(Recorder::new(2));
        let gate = Arc::new(Gate::new(
            Pace::Window { in_flight: 4 },
            2,
            recorder.clone(),
        ));
        assert_eq!(gate.next().await, Some(0));
        assert_eq!(gate.next().await, Some(1));
        // 4 deliveries outstanding: the third waits until some arrive.
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.next().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        recorder.record(0, 1, &[]);
        assert_eq!(waiting.await.expect("task"), Some(2));
        gate.stop();
        assert_eq!(gate.next().await, None);
    }

    #[tokio::test]
    async fn rate_paces_messages() {
        let recorder = Arc::new(Recorder::new(1));
        let gate = Gate::new(Pace::Rate { per_sec: 200.0 }, 1, recorder);
        let start = Instant::now();
        for _ in 0..11 {
            gate.next().await;
        }
        // Message 10 is due at 50 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(45), "{took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
}
