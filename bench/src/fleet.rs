//! A fleet: many load clients connected to one target, each running as its own task.
//!
//! Clients connect in parallel with a bounded number of handshakes in flight, round-robin over
//! the loopback source addresses, with a progress line; a failed handshake is retried twice
//! before it counts. Once connected, a client's task goes on to its [`Behaviour`] and stays
//! until the fleet is closed (all tasks aborted, so all sockets closed) or the server ends it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::client::{self, Behaviour};
use crate::error::BenchError;
use crate::handshake;
use crate::progress::{Progress, si};
use crate::recorder::Recorder;

/// Longest a single handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per client before its failure counts.
const ATTEMPTS: usize = 3;

/// The path and query each client upgrades, by client index.
pub type PathFn = Arc<dyn Fn(usize) -> String + Send + Sync>;

/// The same request path for every client.
pub fn same_path(path: String) -> PathFn {
    Arc::new(move |_| path.clone())
}

/// What to connect.
pub struct FleetSpec {
    /// Names the fleet in progress lines and errors, e.g. "broadcast wsgate".
    pub label: String,
    /// The target's name, for errors.
    pub target: String,
    pub count: usize,
    pub server: SocketAddr,
    pub path: PathFn,
    pub behaviour: Behaviour,
    pub source_addrs: u8,
    pub concurrency: usize,
}

/// Connected clients.
pub struct Fleet {
    handles: Vec<JoinHandle<()>>,
    pub recorder: Arc<Recorder>,
    /// Wall time from the first connect to the last handshake.
    pub connect_secs: f64,
    pub count: usize,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("count", &self.count)
            .field("connect_secs", &self.connect_secs)
            .finish()
    }
}

impl Fleet {
    /// Handshakes per second while connecting.
    pub fn connect_rate(&self) -> f64 {
        if self.connect_secs > 0.0 {
            self.count as f64 / self.connect_secs
        } else {
            0.0
        }
    }

    /// Closes every client (their sockets are closed when this returns).
    pub async fn close(mut self) {
        let handles = std::mem::take(&mut self.handles);
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let _ = h.await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// Connects `spec.count` clients; fails if any could not connect.
pub async fn connect(spec: FleetSpec, progress: &Progress) -> Result<Fleet, BenchError> {
    let FleetSpec {
        label,
        target,
        count,
        server,
        path,
        behaviour,
        source_addrs,
        concurrency,
    } = spec;
    let recorder = Arc::new(Recorder::new(count));
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let start = Instant::now();
    {
        let (connected, failed, label) = (connected.clone(), failed.clone(), label.clone());
        progress.show(move || {
            let c = connected.load(Ordering::Relaxed);
            let secs = start.elapsed().as_secs_f64().max(1e-3);
            format!(
                "{label}: connected {c}/{count} ({}/s), failed {}",
                si(c as f64 / secs),
                failed.load(Ordering::Relaxed)
            )
        });
    }

    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        if failed.load(Ordering::Relaxed) > 0 {
            // The target is in trouble; do not pile up thousands of doomed handshakes.
            break;
        }
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let (recorder, connected, failed, first_error, path, behaviour) = (
            recorder.clone(),
            connected.clone(),
            failed.clone(),
            first_error.clone(),
            path.clone(),
            behaviour.clone(),
        );
        handles.push(tokio::spawn(async move {
            let path = path(i);
            let mut last_error = String::new();
            for attempt in 0..ATTEMPTS {
                let from = handshake::source_addr(i + attempt, source_addrs);
                match tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    handshake::connect_with(from, server, &path, behaviour.subprotocol()),
                )
                .await
                {
                    Ok(Ok(conn)) => {
                        drop(permit);
                        let _alive = recorder.enter();
                        connected.fetch_add(1, Ordering::Relaxed);
                        client::run(conn, i, behaviour, recorder.clone()).await;
                        return;
                    }
                    Ok(Err(e)) => last_error = e.to_string(),
                    Err(_) => {
                        last_error = format!(
                            "no answer to the handshake within {} s",
                            HANDSHAKE_TIMEOUT.as_secs()
                        );
                    }
                }
            }
            drop(permit);
            failed.fetch_add(1, Ordering::Relaxed);
            let mut first = first_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            first.get_or_insert(last_error);
        }));
    }
    let spawned = handles.len();
    // Every spawned client either connects or fails within ATTEMPTS handshake timeouts.
    while connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < spawned {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = start.elapsed().as_secs_f64();
    progress.clear();
    let fleet = Fleet {
        handles,
        recorder,
        connect_secs,
        count,
    };
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        fleet.close().await;
        return Err(BenchError::Connect {
            target,
            url: format!("ws://{server}{}", path(0)),
            wanted: count,
            failed: count - connected.load(Ordering::Relaxed),
            first,
        });
    }
    Ok(fleet)
}
