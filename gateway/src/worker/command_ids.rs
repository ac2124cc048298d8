//! Command ids: a command sent again with the same `Envelope.command_id` (a retry after a lost
//! link, an HTTP `Idempotency-Key`) is carried out once, and every retry gets the first one's
//! `Result`.
//!
//! One window per gateway, shared by every worker link and by the HTTP and gRPC APIs, since a
//! retry may come on another link than the first try (the SDK retries on its next session).
//! The invariant [`Recent`] keeps: an id is either running — held by exactly one [`Running`]
//! guard, which the retries wait on — or finished with its `Result`; finished ones are
//! forgotten oldest first past the window's count, bytes or age, so memory stays bounded
//! whatever ids senders choose. Running ones are bounded by the commands in flight (one per
//! link at a time, plus the APIs' calls).
//!
//! A retry must be the same command: the window keeps a hash of the first one's body, and an
//! id reused for a different body is refused (BAD_REQUEST) rather than answered with another
//! command's `Result`. Queries are not remembered (they change nothing; a retry runs again).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{DefaultHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prost::Message as _;
use tokio::sync::watch;
use wsgate_proto::link::body::BodyKind;
use wsgate_proto::v1::{Result as CmdResult, envelope::Body};
use wsgate_proto::validate::{self, Refused};

use super::report::refused;
use crate::stats::Stats;

/// How much the window remembers (`--command-ids`, `--command-id-ttl`, and a byte bound).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Finished commands remembered at most; 0 turns command ids off.
    pub count: usize,
    /// How long a finished command is remembered.
    pub ttl: Duration,
    /// Bytes of remembered ids and `Result`s at most.
    pub bytes: usize,
}

/// Bytes the window may hold, whatever the count: a `Result` lists at most a command's limit of
/// ids, so this is what bounds memory when commands report many unknown targets.
pub(crate) const WINDOW_BYTES: usize = 64 << 20;

/// The recent command ids of this gateway.
#[derive(Debug)]
pub(crate) struct CommandIds {
    recent: Mutex<Recent>,
    stats: Arc<Stats>,
}

impl CommandIds {
    pub(crate) fn new(window: Window, stats: Arc<Stats>) -> Self {
        Self {
            recent: Mutex::new(Recent::new(window)),
            stats,
        }
    }

    /// Carries out `body` with `run`, once per `command_id` (empty: no id, always run). A
    /// retry waits for the first try, then answers with its `Result`.
    pub(crate) async fn carry_out<F>(
        &self,
        command_id: &str,
        body: Body,
        run: impl FnOnce(Body) -> F,
    ) -> Option<CmdResult>
    where
        F: Future<Output = Option<CmdResult>>,
    {
        if command_id.is_empty() || BodyKind::of(&body) == BodyKind::Query || self.is_off() {
            return run(body).await;
        }
        if let Err(refusal) = validate::command_id("Envelope.command_id", command_id) {
            return Some(refused(refusal));
        }
        let fingerprint = fingerprint(&body);
        loop {
            let claim = self.lock().claim(command_id, fingerprint, Instant::now());
            match claim {
                Claim::Run(generation) => {
                    let running = Running {
                        ids: self,
                        id: command_id,
                        generation,
                        finished: false,
                    };
                    let result = run(body).await;
                    match &result {
                        Some(result) => running.finish(result.clone()),
                        None => drop(running),
                    }
                    return result;
                }
                Claim::Done(result) => {
                    Stats::incr(&self.stats.commands_deduplicated);
                    return Some(result);
                }
                Claim::Wait(mut done) => {
                    // Closed without a value: the first try was abandoned (its link's task
                    // ended mid-command); claim again, and run it here if nobody else has.
                    if let Ok(result) = done.wait_for(Option::is_some).await
                        && let Some(result) = result.clone()
                    {
                        Stats::incr(&self.stats.commands_deduplicated);
                        return Some(result);
                    }
                }
                Claim::Reused => {
                    return Some(refused(Refused::bad(format!(
                        "command id {command_id:?} was used for a different command within the last {:?}; give each command its own id and reuse it only to retry that command",
                        self.lock().window.ttl
                    ))));
                }
            }
        }
    }

    fn is_off(&self) -> bool {
        self.lock().window.count == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The first try of an id, running: finished with its `Result`, or, dropped before that,
/// forgotten so that a retry runs it.
struct Running<'a> {
    ids: &'a CommandIds,
    id: &'a str,
    generation: u64,
    finished: bool,
}

impl Running<'_> {
    fn finish(mut self, result: CmdResult) {
        self.ids
            .lock()
            .finish(self.id, self.generation, result, Instant::now());
        self.finished = true;
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.ids.lock().abandon(self.id, self.generation);
        }
    }
}

/// A hash of the command, to tell a retry from another command under the same id.
fn fingerprint(body: &Body) -> u64 {
    let mut encoded = Vec::with_capacity(body.encoded_len());
    body.encode(&mut encoded);
    let mut hasher = DefaultHasher::new();
    hasher.write(&encoded);
    hasher.finish()
}

/// What a command with an id does.
#[derive(Debug)]
enum Claim {
    /// First try: run it (this generation), then [`Recent::finish`] or [`Recent::abandon`].
    Run(u64),
    /// Finished before: its `Result`.
    Done(CmdResult),
    /// Running now: its `Result` comes through this.
    Wait(watch::Receiver<Option<CmdResult>>),
    /// The id belongs to a different command.
    Reused,
}

#[derive(Debug)]
enum Slot {
    Running {
        fingerprint: u64,
        generation: u64,
        done: watch::Sender<Option<CmdResult>>,
    },
    Done {
        fingerprint: u64,
        generation: u64,
        result: CmdResult,
        bytes: usize,
    },
}

impl Slot {
    fn fingerprint(&self) -> u64 {
        match self {
            Slot::Running { fingerprint, .. } | Slot::Done { fingerprint, .. } => *fingerprint,
        }
    }
}

/// The window itself, without locks or clocks (times are passed in).
#[derive(Debug)]
struct Recent {
    window: Window,
    slots: HashMap<Arc<str>, Slot>,
    /// Finished ids, in the order they finished: when, which, and which generation (an id
    /// forgotten and used again is a new generation; its old entry here is skipped).
    finished: VecDeque<(Instant, Arc<str>, u64)>,
    /// Bytes of the finished slots.
    bytes: usize,
    next_generation: u64,
}

impl Recent {
    fn new(window: Window) -> Self {
        Self {
            window,
            slots: HashMap::new(),
            finished: VecDeque::new(),
            bytes: 0,
            next_generation: 0,
        }
    }

    fn claim(&mut self, id: &str, fingerprint: u64, now: Instant) -> Claim {
        self.expire(now);
        match self.slots.get(id) {
            Some(slot) if slot.fingerprint() != fingerprint => Claim::Reused,
            Some(Slot::Running { done, .. }) => Claim::Wait(done.subscribe()),
            Some(Slot::Done { result, .. }) => Claim::Done(result.clone()),
            None => {
                self.next_generation += 1;
                let generation = self.next_generation;
                let (done, _) = watch::channel(None);
                self.slots.insert(
                    id.into(),
                    Slot::Running {
                        fingerprint,
                        generation,
                        done,
                    },
                );
                Claim::Run(generation)
            }
        }
    }

    fn finish(&mut self, id: &str, generation: u64, result: CmdResult, now: Instant) {
        // Only the running try of this generation finishes (an abandoned one was removed).
        if !self.is_running(id, generation) {
            return;
        }
        let Some((
            key,
            Slot::Running {
                fingerprint, done, ..
            },
        )) = self.slots.remove_entry(id)
        else {
            return;
        };
        done.send_replace(Some(result.clone()));
        let bytes = key.len() + result.encoded_len() + SLOT_OVERHEAD;
        self.bytes += bytes;
        self.finished.push_back((now, key.clone(), generation));
        self.slots.insert(
            key,
            Slot::Done {
                fingerprint,
                generation,
                result,
                bytes,
            },
        );
        self.expire(now);
    }

    /// The running try of `id` ended without a `Result`: forget it, so a retry runs.
    fn abandon(&mut self, id: &str, generation: u64) {
        if self.is_running(id, generation) {
            // Dropping the sender wakes the waiters, who claim again.
            self.slots.remove(id);
        }
    }

    /// Whether `id` is running under the try of `generation`.
    fn is_running(&self, id: &str, generation: u64) -> bool {
        matches!(self.slots.get(id), Some(Slot::Running { generation: g, .. }) if *g == generation)
    }

    /// Forgets finished ids past the window, oldest first.
    fn expire(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.finished.front() {
            let too_many = self.finished.len() > self.window.count;
            let too_big = self.bytes > self.window.bytes;
            let too_old = now.saturating_duration_since(*at) >= self.window.ttl;
            if !(too_many || too_big || too_old) {
                break;
            }
            let Some((_, id, generation)) = self.finished.pop_front() else {
                break;
            };
            if let Some(Slot::Done {
                generation: g,
                bytes,
                ..
            }) = self.slots.get(&id)
                && *g == generation
            {
                self.bytes -= bytes;
                self.slots.remove(&id);
            }
        }
    }

    /// Finished ids remembered.
    #[cfg(test)]
    fn finished_count(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s, Slot::Done { .. }))
            .count()
    }
}

/// What a remembered id costs besides its bytes: the map's and the queue's entries.
const SLOT_OVERHEAD: usize = 128;

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use wsgate_proto::v1::{Broadcast, ErrorCode, Payload};

    use super::*;

    fn window(count: usize, secs: u64) -> Window {
        Window {
            count,
            ttl: Duration::from_secs(secs),
            bytes: WINDOW_BYTES,
        }
    }

    fn result(delivered: u32) -> CmdResult {
        CmdResult {
            delivered,
            ..Default::default()
        }
    }

    fn broadcast(text: &str) -> Body {
        Body::Broadcast(Broadcast {
            payload: Some(Payload::text(text)),
            ..Default::default()
        })
    }

    #[test]
    fn a_retry_gets_the_first_result_and_a_different_command_is_refused() {
        let mut recent = Recent::new(window(10, 60));
        let t0 = Instant::now();
        let Claim::Run(g) = recent.claim("a", 1, t0) else {
            panic!("the first try runs")
        };
        assert!(matches!(recent.claim("a", 1, t0), Claim::Wait(_)));
        assert!(matches!(recent.claim("a", 2, t0), Claim::Reused));
        recent.finish("a", g, result(7), t0);
        assert!(matches!(recent.claim("a", 1, t0), Claim::Done(r) if r.delivered == 7));
        assert!(matches!(recent.claim("a", 2, t0), Claim::Reused));
        // Past the age, the id is forgotten: a retry runs again.
        let later = t0 + Duration::from_secs(60);
        assert!(matches!(recent.claim("a", 1, later), Claim::Run(_)));
    }

    #[test]
    fn an_abandoned_try_lets_a_retry_run() {
        let mut recent = Recent::new(window(10, 60));
        let t0 = Instant::now();
        let Claim::Run(g) = recent.claim("a", 1, t0) else {
            panic!("the first try runs")
        };
        let Claim::Wait(waiter) = recent.claim("a", 1, t0) else {
            panic!("a retry waits")
        };
        recent.abandon("a", g);
        assert!(waiter.has_changed().is_err(), "the waiter sees the try end");
        assert!(matches!(recent.claim("a", 1, t0), Claim::Run(_)));
    }

    /// Random claims, finishes, abandons and clock steps: the window never remembers more
    /// than its count or bytes, nothing older than its age, its byte count is exact, and an id
    /// it remembers answers with its own result.
    #[test]
    fn the_window_stays_bounded_and_answers_what_it_remembers() {
        let mut rng = StdRng::seed_from_u64(13);
        for _ in 0..50 {
            let count = rng.random_range(1..20);
            let mut w = window(count, 10);
            w.bytes = rng.random_range(200..2_000);
            let mut recent = Recent::new(w);
            let mut now = Instant::now();
            let mut running: Vec<(String, u64)> = Vec::new();
            let mut answers: HashMap<String, (u32, u64)> = HashMap::new();
            for step in 0..500u32 {
                let id = format!("id-{}", rng.random_range(0..40));
                match rng.random_range(0..10) {
                    0..=4 => match recent.claim(&id, 1, now) {
                        Claim::Run(g) => running.push((id, g)),
                        Claim::Done(r) => {
                            let (delivered, _) = answers[&id];
                            assert_eq!(r.delivered, delivered, "{id} answers its own result");
                        }
                        Claim::Wait(_) => {
                            assert!(
                                running.iter().any(|(r, _)| *r == id),
                                "{id} waits on a running try"
                            );
                        }
                        Claim::Reused => panic!("one fingerprint is never reused"),
                    },
                    5..=7 if !running.is_empty() => {
                        let (id, g) = running.swap_remove(rng.random_range(0..running.len()));
                        recent.finish(&id, g, result(step), now);
                        answers.insert(id, (step, g));
                    }
                    8 if !running.is_empty() => {
                        let (id, g) = running.swap_remove(rng.random_range(0..running.len()));
                        recent.abandon(&id, g);
                    }
                    _ => now += Duration::from_secs(rng.random_range(0..4)),
                }
                recent.expire(now);
                assert!(recent.finished_count() <= count);
                assert!(recent.bytes <= w.bytes);
                let bytes: usize = recent
                    .slots
                    .values()
                    .map(|s| match s {
                        Slot::Done { bytes, .. } => *bytes,
                        Slot::Running { .. } => 0,
                    })
                    .sum();
                assert_eq!(recent.bytes, bytes);
                assert!(
                    recent
                        .finished
                        .iter()
                        .all(|(at, _, _)| now.duration_since(*at) < w.ttl)
                );
            }
        }
    }

    #[tokio::test]
    async fn a_retry_during_the_first_try_waits_for_it_and_runs_nothing() {
        let ids = Arc::new(CommandIds::new(window(10, 60), Arc::new(Stats::default())));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let ids = ids.clone();
            async move {
                ids.carry_out("pay-1", broadcast("paid"), |_| async move {
                    let _ = released.await;
                    Some(result(3))
                })
                .await
            }
        });
        // The first try has claimed the id once the window holds it as running.
        while !matches!(ids.lock().slots.get("pay-1"), Some(Slot::Running { .. })) {
            tokio::task::yield_now().await;
        }
        let retry = tokio::spawn({
            let ids = ids.clone();
            async move {
                ids.carry_out("pay-1", broadcast("paid"), |_| async {
                    panic!("a retry of a running command must not run it again")
                })
                .await
            }
        });
        let _ = release.send(());
        let first = first.await.expect("first try").expect("a result");
        let retry = retry.await.expect("retry").expect("a result");
        assert_eq!((first.delivered, retry.delivered), (3, 3));
        assert_eq!(
            ids.stats
                .commands_deduplicated
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let other = ids
            .carry_out("pay-1", broadcast("refunded"), |_| async {
                Some(result(9))
            })
            .await
            .expect("a refusal");
        assert_eq!(other.code, ErrorCode::BadRequest as i32);
        assert!(
            other.message.contains("different command"),
            "{}",
            other.message
        );
    }
}
