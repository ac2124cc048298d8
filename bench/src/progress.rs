//! The progress line on stderr: every second, whatever the running phase wants to say
//! (clients connected, deliveries per second, ...).
//!
//! At a terminal the line is rewritten in place with `\r`; in CI or a log file (stderr not a
//! terminal, or `CI` set) each update is its own line, so logs stay readable. Phases install a
//! status closure with [`Progress::show`]; it is called once per second from the printer task
//! and may keep its own state to compute rates.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

type Status = Box<dyn FnMut() -> String + Send>;

/// The one progress line of the process.
pub struct Progress {
    status: Mutex<Option<Status>>,
    /// Rewrite in place (a terminal) or print lines.
    in_place: bool,
    /// A `\r` line is on screen and must be ended before other output.
    dirty: Mutex<bool>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("in_place", &self.in_place)
            .finish()
    }
}

impl Progress {
    pub fn new() -> Progress {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        Progress {
            status: Mutex::new(None),
            in_place: std::io::stderr().is_terminal() && !ci,
            dirty: Mutex::new(false),
        }
    }

    /// From now on, prints what `status` returns every second.
    pub fn show(&self, status: impl FnMut() -> String + Send + 'static) {
        *lock(&self.status) = Some(Box::new(status));
    }

    /// Stops printing the current status.
    pub fn clear(&self) {
        *lock(&self.status) = None;
        self.end_line();
    }

    /// Prints a line of its own (a phase's result), not overwritten by the next update.
    pub fn say(&self, line: impl AsRef<str>) {
        self.end_line();
        eprintln!("{}", line.as_ref());
    }

    /// Prints the status once, now.
    fn tick(&self) {
        let line = match lock(&self.status).as_mut() {
            Some(status) => status(),
            None => return,
        };
        let mut stderr = std::io::stderr().lock();
        if self.in_place {
            let _ = write!(stderr, "\r{line}\x1b[K");
            let _ = stderr.flush();
            *lock(&self.dirty) = true;
        } else {
            let _ = writeln!(stderr, "  {line}");
        }
    }

    fn end_line(&self) {
        let mut dirty = lock(&self.dirty);
        if *dirty {
            eprintln!();
            *dirty = false;
        }
    }

    /// Prints every second until the process ends; spawn once.
    pub async fn run(self: std::sync::Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            self.tick();
        }
    }
}

/// A human number: 1234567 -> "1.23M".
pub fn si(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{:.2}G", value / 1e9)
    } else if abs >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if abs >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if abs >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::si;

    #[test]
    fn human_numbers() {
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(56_000.0), "56.0k");
        assert_eq!(si(950.0), "950");
        assert_eq!(si(12.0), "12");
        assert_eq!(si(2.5), "2.5");
    }
}
