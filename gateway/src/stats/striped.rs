//! A counter spread over cache lines, for the few counters that change on every delivery from
//! every worker thread (bytes queued, messages and bytes out and in).
//!
//! One shared atomic would move its cache line between the cores on every change: at a million
//! deliveries a second that is millions of transfers, a measurable share of the gateway's time.
//! Each thread adds to its own line instead; a read sums the lines. Subtractions (the queued
//! bytes gauge) may land on another line than their addition, so a line can wrap below zero:
//! the sum, taken with wrapping arithmetic, is still exact once the changes have stopped, and
//! a read in the middle is clamped at zero.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Lines per counter; threads beyond this many share them.
const LINES: usize = 16;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Line(AtomicU64);

/// A counter (or gauge) changed from many threads at once; see the module doc.
#[derive(Debug, Default)]
pub struct Striped {
    lines: [Line; LINES],
}

/// The line of the current thread: threads take the next one in the order they first count.
fn line() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % LINES;
    }
    LINE.with(|l| *l)
}

impl Striped {
    pub(crate) fn add(&self, n: u64) {
        self.lines[line()].0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn incr(&self) {
        self.add(1);
    }

    pub(crate) fn sub(&self, n: u64) {
        self.lines[line()].0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The total; never below zero.
    pub fn get(&self) -> u64 {
        let sum = self
            .lines
            .iter()
            .fold(0u64, |acc, l| acc.wrapping_add(l.0.load(Ordering::Relaxed)));
        // A sum that wrapped below zero is a subtraction read before its addition.
        if sum > i64::MAX as u64 { 0 } else { sum }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn adds_and_subtractions_on_other_threads_sum_exactly() {
        let c = Arc::new(Striped::default());
        let adders: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| c.add(3)))
            })
            .collect();
        adders.into_iter().for_each(|t| t.join().expect("adder"));
        assert_eq!(c.get(), 120_000);
        // Taken back on threads that never added: their lines go below zero.
        let subtractors: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| c.sub(4)))
            })
            .collect();
        subtractors
            .into_iter()
            .for_each(|t| t.join().expect("subtractor"));
        assert_eq!(c.get(), 0);
        c.incr();
        assert_eq!(c.get(), 1);
    }

    #[test]
    fn a_subtraction_seen_before_its_addition_reads_as_zero() {
        let c = Striped::default();
        c.lines[0].0.store(5, Ordering::Relaxed);
        c.lines[1].0.store(0u64.wrapping_sub(7), Ordering::Relaxed);
        assert_eq!(c.get(), 0);
        c.lines[2].0.store(2, Ordering::Relaxed);
        assert_eq!(c.get(), 0, "exactly zero");
        c.lines[3].0.store(1, Ordering::Relaxed);
        assert_eq!(c.get(), 1);
    }
}
