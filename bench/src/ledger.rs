//! The fault scenario's bookkeeping: every numbered message each client sent and every answer
//! it got, and the pure accounting that turns them into lost, duplicated and out-of-order
//! messages and takeover times per fault.
//!
//! Each client writes only its own [`ClientLog`] (its own lock, never contended but by the
//! scenario's drain check), so recording costs a push per message. The accounting works on a
//! snapshot taken after the run ([`Ledger::snapshot`]) and is unit-tested on hand-made logs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What one client sent and what came back.
#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    /// The send time of message `seq` at index `seq` (ns since the UNIX epoch).
    pub sent: Vec<u64>,
    /// Every answer in the order it arrived: (seq, arrival ns). An echo carries the seq of
    /// the message it answers; a seq that was never sent is kept too (and counted apart).
    pub answers: Vec<(u64, u64)>,
    /// Answers so far to message `seq` at index `seq`.
    count: Vec<u32>,
    /// Messages sent and not answered yet.
    open: u64,
}

impl ClientLog {
    /// Message `seq` (the next one) was sent at `at`.
    fn send(&mut self, at: u64) -> u64 {
        let seq = self.sent.len() as u64;
        self.sent.push(at);
        self.count.push(0);
        self.open += 1;
        seq
    }

    /// An answer to `seq` arrived at `at`.
    fn answer(&mut self, seq: u64, at: u64) {
        self.answers.push((seq, at));
        if let Some(n) = usize::try_from(seq)
            .ok()
            .and_then(|i| self.count.get_mut(i))
        {
            if *n == 0 {
                self.open -= 1;
            }
            *n = n.saturating_add(1);
        }
    }
}

/// Every client's log, and whether the clients should go on sending.
#[derive(Debug)]
pub struct Ledger {
    logs: Box<[Mutex<ClientLog>]>,
    sending: AtomicBool,
    sent: AtomicU64,
    answers: AtomicU64,
}

impl Ledger {
    pub fn new(clients: usize) -> Ledger {
        Ledger {
            logs: (0..clients).map(|_| Mutex::default()).collect(),
            sending: AtomicBool::new(true),
            sent: AtomicU64::new(0),
            answers: AtomicU64::new(0),
        }
    }

    pub fn clients(&self) -> usize {
        self.logs.len()
    }

    /// Whether clients should still send (they read on either way).
    pub fn sending(&self) -> bool {
        self.sending.load(Ordering::Relaxed)
    }

    /// From now on the clients send nothing more.
    pub fn stop_sending(&self) {
        self.sending.store(false, Ordering::Relaxed);
    }

    /// Client `client` sends its next message at `at`; its seq.
    pub fn send(&self, client: usize, at: u64) -> u64 {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.logs.get(client).map_or(0, |log| lock(log).send(at))
    }

    /// Client `client` got answers to `seqs` at `at`.
    pub fn answered(&self, client: usize, seqs: &[u64], at: u64) {
        if seqs.is_empty() {
            return;
        }
        self.answers.fetch_add(seqs.len() as u64, Ordering::Relaxed);
        if let Some(log) = self.logs.get(client) {
            let mut log = lock(log);
            for &seq in seqs {
                log.answer(seq, at);
            }
        }
    }

    /// Messages sent so far, by every client.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Answers so far (duplicates included).
    pub fn answers(&self) -> u64 {
        self.answers.load(Ordering::Relaxed)
    }

    /// Messages sent and not answered yet, over every client.
    pub fn open(&self) -> u64 {
        self.logs.iter().map(|log| lock(log).open).sum()
    }

    /// A copy of every client's log.
    pub fn snapshot(&self) -> Vec<ClientLog> {
        self.logs.iter().map(|log| lock(log).clone()).collect()
    }
}

/// One fault's share of the run: the messages sent from `from` (inclusive) to `to`
/// (exclusive), with the fault at `fault`; all ns since the UNIX epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: u64,
    pub fault: u64,
    pub to: u64,
}

/// What happened to one window's messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    pub sent: u64,
    /// Answered at least once.
    pub answered: u64,
    /// Never answered.
    pub lost: u64,
    /// Answered more than once.
    pub duplicated: u64,
    /// First answers that came after the first answer to a later message of the same
    /// connection.
    pub out_of_order: u64,
    /// The longest time, over the connections that sent after the fault, from the fault to
    /// that connection's first answer to a message sent at or after it (ns). `None` when some
    /// such connection never got one.
    pub takeover_ns: Option<u64>,
    /// Connections that sent after the fault and never got an answer to any of those messages.
    pub never_answered_after: u64,
    /// The longest time between two answers in a row on one connection, among the pairs whose
    /// second answer came after the fault and whose first came before the window's end (ns).
    pub longest_gap_ns: u64,
    /// The slowest first answer to a message of the window: arrival minus send (ns).
    pub slowest_ns: u64,
}

/// Accounts every message of `logs` to the window it was sent in; messages sent outside
/// every window are not counted. Answers to seqs never sent are counted in the second value.
pub fn account(logs: &[ClientLog], windows: &[Window]) -> (Vec<Account>, u64) {
    let mut out = vec![Account::default(); windows.len()];
    let mut unexpected = 0;
    let window_of = |at: u64| windows.iter().position(|w| w.from <= at && at < w.to);
    for log in logs {
        let mut count = vec![0u32; log.sent.len()];
        let mut highest: Option<u64> = None;
        // Per window: the first answer to a message sent at or after the fault, and the
        // connection sent such a message.
        let mut first_after: Vec<Option<u64>> = vec![None; windows.len()];
        let mut previous: Option<u64> = None;
        for &(seq, at) in &log.answers {
            if let Some(before) = previous {
                for (w, acc) in windows.iter().zip(out.iter_mut()) {
                    if at >= w.fault && before < w.to {
                        acc.longest_gap_ns = acc.longest_gap_ns.max(at.saturating_sub(before));
                    }
                }
            }
            previous = Some(at);
            let Some(i) = usize::try_from(seq).ok().filter(|&i| i < log.sent.len()) else {
                unexpected += 1;
                continue;
            };
            count[i] = count[i].saturating_add(1);
            if count[i] > 1 {
                continue;
            }
            // Order is a connection's, whatever window each message belongs to.
            let late = highest.is_some_and(|h| seq < h);
            highest = highest.max(Some(seq));
            let sent_at = log.sent[i];
            let Some(w) = window_of(sent_at) else {
                continue;
            };
            let acc = &mut out[w];
            acc.slowest_ns = acc.slowest_ns.max(at.saturating_sub(sent_at));
            if late {
                acc.out_of_order += 1;
            }
            if sent_at >= windows[w].fault && first_after[w].is_none() {
                first_after[w] = Some(at);
            }
        }
        for (i, &sent_at) in log.sent.iter().enumerate() {
            let Some(w) = window_of(sent_at) else {
                continue;
            };
            let acc = &mut out[w];
            acc.sent += 1;
            match count[i] {
                0 => acc.lost += 1,
                1 => acc.answered += 1,
                _ => {
                    acc.answered += 1;
                    acc.duplicated += 1;
                }
            }
        }
        for (w, window) in windows.iter().enumerate() {
            let sent_after = log
                .sent
                .iter()
                .any(|&at| at >= window.fault && at < window.to);
            if !sent_after {
                continue;
            }
            let acc = &mut out[w];
            match first_after[w] {
                Some(at) => {
                    let took = at.saturating_sub(window.fault);
                    // Stays None once some connection never got an answer.
                    if acc.never_answered_after == 0 {
                        acc.takeover_ns = Some(acc.takeover_ns.unwrap_or(0).max(took));
                    }
                }
                None => {
                    acc.never_answered_after += 1;
                    acc.takeover_ns = None;
                }
            }
        }
    }
    (out, unexpected)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log from send times and answers.
    fn log(sent: &[u64], answers: &[(u64, u64)]) -> ClientLog {
        let mut log = ClientLog::default();
        for &at in sent {
            log.send(at);
        }
        for &(seq, at) in answers {
            log.answer(seq, at);
        }
        log
    }

    const ONE: [Window; 1] = [Window {
        from: 0,
        fault: 100,
        to: 1000,
    }];

    #[test]
    fn a_clean_run_loses_nothing() {
        let logs = [
            log(&[10, 110, 210], &[(0, 15), (1, 120), (2, 215)]),
            log(&[50, 150], &[(0, 55), (1, 170)]),
        ];
        let (acc, unexpected) = account(&logs, &ONE);
        assert_eq!(unexpected, 0);
        let a = &acc[0];
        assert_eq!((a.sent, a.answered, a.lost), (5, 5, 0));
        assert_eq!((a.duplicated, a.out_of_order), (0, 0));
        // Client 0: first answer to a message sent after 100 came at 120; client 1 at 170.
        assert_eq!(a.takeover_ns, Some(70));
        assert_eq!(a.never_answered_after, 0);
        // Gaps whose second answer is after the fault: 105 (15 -> 120), 95, 115.
        assert_eq!(a.longest_gap_ns, 115);
        assert_eq!(a.slowest_ns, 20);
    }

    #[test]
    fn lost_duplicated_and_out_of_order() {
        // Seq 1 never answered; seq 2 answered twice (redelivered); seq 4 before seq 3.
        let logs = [log(
            &[10, 20, 30, 40, 50],
            &[(0, 12), (2, 300), (4, 310), (3, 320), (2, 330)],
        )];
        let (acc, unexpected) = account(&logs, &ONE);
        assert_eq!(unexpected, 0);
        let a = &acc[0];
        assert_eq!(a.sent, 5);
        assert_eq!(a.answered, 4);
        assert_eq!(a.lost, 1);
        assert_eq!(a.duplicated, 1);
        // Only seq 3 came after a later one's first answer; the second 2 is a duplicate.
        assert_eq!(a.out_of_order, 1);
        // Nothing was sent after the fault: no takeover to speak of.
        assert_eq!(a.takeover_ns, None);
        assert_eq!(a.never_answered_after, 0);
        assert_eq!(a.longest_gap_ns, 288);
        assert_eq!(a.slowest_ns, 280);
    }

    #[test]
    fn messages_go_to_the_window_they_were_sent_in() {
        let windows = [
            Window {
                from: 0,
                fault: 100,
                to: 500,
            },
            Window {
                from: 500,
                fault: 600,
                to: 1000,
            },
        ];
        let logs = [log(
            &[50, 150, 550, 650, 1200],
            &[(0, 60), (1, 160), (2, 560), (4, 1210), (3, 2600)],
        )];
        let (acc, _) = account(&logs, &windows);
        assert_eq!((acc[0].sent, acc[0].answered), (2, 2));
        assert_eq!(acc[0].takeover_ns, Some(60));
        assert_eq!(acc[0].longest_gap_ns, 400);
        // Sent at 1200: after the last window, not counted.
        assert_eq!((acc[1].sent, acc[1].answered, acc[1].lost), (2, 2, 0));
        assert_eq!(acc[1].takeover_ns, Some(2000));
        // Seq 4 (uncounted) answered at 1210 before seq 3 at 2600: seq 3 is out of order.
        assert_eq!(acc[1].out_of_order, 1);
        assert_eq!(acc[1].slowest_ns, 1950);
        // 1210 -> 2600 does not count (its first answer came after the window's end);
        // 560 -> 1210 does (its second answer after the fault at 600, its first before 1000).
        assert_eq!(acc[1].longest_gap_ns, 650);
    }

    #[test]
    fn a_connection_never_answered_after_the_fault_has_no_takeover() {
        let logs = [
            log(&[10, 150], &[(0, 20), (1, 160)]),
            log(&[20, 160], &[(0, 25)]),
        ];
        let (acc, _) = account(&logs, &ONE);
        assert_eq!(acc[0].lost, 1);
        assert_eq!(acc[0].never_answered_after, 1);
        assert_eq!(acc[0].takeover_ns, None);
    }

    #[test]
    fn answers_to_unknown_seqs_are_counted_apart() {
        let logs = [log(&[10], &[(0, 20), (7, 30)])];
        let (acc, unexpected) = account(&logs, &ONE);
        assert_eq!(unexpected, 1);
        assert_eq!((acc[0].sent, acc[0].answered), (1, 1));
    }

    #[test]
    fn the_ledger_tracks_open_messages() {
        let ledger = Ledger::new(2);
        assert_eq!(ledger.send(0, 10), 0);
        assert_eq!(ledger.send(0, 20), 1);
        assert_eq!(ledger.send(1, 30), 0);
        assert_eq!(ledger.open(), 3);
        ledger.answered(0, &[1, 1], 40);
        ledger.answered(1, &[0, 9], 50);
        assert_eq!(ledger.open(), 1);
        assert_eq!((ledger.sent(), ledger.answers()), (3, 4));
        assert!(ledger.sending());
        ledger.stop_sending();
        assert!(!ledger.sending());
        let logs = ledger.snapshot();
        assert_eq!(logs[0].answers, vec![(1, 40), (1, 40)]);
    }
}
