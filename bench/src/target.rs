//! The systems under test, each started fresh as a child process: wsgate itself, the plain
//! tokio-tungstenite hub and the Node.js `ws` hub.
//!
//! A target is started, its output read until it says where it listens (wsgate's
//! `wsgate is up` log line, the peers' `ready ws=... http=...`), and its output drained for
//! the rest of its life, counting warnings and errors. It is killed (SIGKILL) when the
//! measurement is done, so every measurement starts from a fresh process; only one runs at a
//! time, because they would compete for the same cores.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::error::BenchError;
use crate::http::HttpClient;

/// How long a target may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Warning lines kept for the report.
const KEEP_WARNINGS: usize = 5;
/// Output lines kept to explain a failed start.
const KEEP_TAIL: usize = 20;

/// Which system is under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The wsgate gateway.
    Wsgate,
    /// The minimal tokio-tungstenite broadcast hub.
    Plain,
    /// The Node.js hub on npm `ws`.
    Node,
}

impl TargetKind {
    pub const ALL: [TargetKind; 3] = [TargetKind::Wsgate, TargetKind::Plain, TargetKind::Node];

    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Wsgate => "wsgate",
            TargetKind::Plain => "plain",
            TargetKind::Node => "node",
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the targets' programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    pub wsgate: PathBuf,
    pub plain: PathBuf,
    pub node: PathBuf,
    pub node_hub: PathBuf,
}

impl Programs {
    /// Checks that the program of `kind` exists: `Err` with what to do when not.
    pub fn check(&self, kind: TargetKind) -> Result<(), BenchError> {
        match kind {
            TargetKind::Wsgate => exists(
                "wsgate",
                &self.wsgate,
                "build it with `cargo build --release -p wsgate` or pass --wsgate-bin",
            ),
            TargetKind::Plain => exists(
                "plain-hub",
                &self.plain,
                "build it with `cargo build --release -p wsgate-bench` or pass --plain-bin",
            ),
            TargetKind::Node => {
                exists(
                    "node hub",
                    &self.node_hub,
                    "pass --node-hub with the path of bench/peers/node-hub/hub.js",
                )?;
                let modules = self
                    .node_hub
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("node_modules");
                if !modules.is_dir() {
                    return Err(BenchError::MissingBinary {
                        what: "node_modules for the node hub",
                        path: modules,
                        hint: "run `npm ci` in bench/peers/node-hub".into(),
                    });
                }
                let version = std::process::Command::new(&self.node)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                match version {
                    Ok(s) if s.success() => Ok(()),
                    _ => Err(BenchError::MissingBinary {
                        what: "node",
                        path: self.node.clone(),
                        hint: "install Node.js (e.g. `apt-get install nodejs npm`) or pass --node"
                            .into(),
                    }),
                }
            }
        }
    }
}

fn exists(what: &'static str, path: &Path, hint: &str) -> Result<(), BenchError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(BenchError::MissingBinary {
            what,
            path: path.to_owned(),
            hint: hint.to_owned(),
        })
    }
}

/// What a target printed that deserves attention.
#[derive(Debug, Default)]
pub struct LogScan {
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    warnings: u64,
    first: Vec<String>,
    tail: std::collections::VecDeque<String>,
}

impl LogScan {
    fn line(&self, line: &str) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if line.contains("WARN") || line.contains("ERROR") {
            inner.warnings += 1;
            if inner.first.len() < KEEP_WARNINGS {
                inner.first.push(line.to_owned());
            }
        }
        if inner.tail.len() == KEEP_TAIL {
            inner.tail.pop_front();
        }
        inner.tail.push_back(line.to_owned());
    }

    /// Warning or error lines so far, and the first few.
    pub fn warnings(&self) -> (u64, Vec<String>) {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (inner.warnings, inner.first.clone())
    }

    fn tail(&self) -> String {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.tail.is_empty() {
            return "(it printed nothing)".into();
        }
        inner.tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A started target.
#[derive(Debug)]
pub struct Running {
    pub kind: TargetKind,
    child: Child,
    pub pid: u32,
    /// Where clients connect.
    pub ws: SocketAddr,
    /// The WebSocket path (any path works for the peers).
    pub ws_path: String,
    /// wsgate's HTTP API, or the peer's HTTP endpoint.
    pub http: SocketAddr,
    /// wsgate's worker listener.
    pub worker: Option<SocketAddr>,
    /// wsgate's gRPC API.
    pub grpc: Option<SocketAddr>,
    pub log: Arc<LogScan>,
}

impl Running {
    /// Starts `kind` with its benchmark settings and `extra` arguments after them (flags the
    /// settings do not give).
    pub async fn start(
        kind: TargetKind,
        programs: &Programs,
        extra: &[String],
    ) -> Result<Running, BenchError> {
        programs.check(kind)?;
        let mut command = match kind {
            TargetKind::Wsgate => {
                let mut c = Command::new(&programs.wsgate);
                c.args([
                    "--ws-addr",
                    "127.0.0.1:0",
                    "--worker-addr",
                    "127.0.0.1:0",
                    "--api-addr",
                    "127.0.0.1:0",
                    "--grpc-addr",
                    "127.0.0.1:0",
                    "--send-queue",
                    "4096",
                    "--client-ping-interval",
                    "300s",
                    "--client-idle-timeout",
                    "900s",
                    // The echo phases measure how many round trips the gateway carries, so no
                    // per-client rate limit (500 messages/s by default) may cap them.
                    "--client-message-rate",
                    "0",
                ])
                .env("RUST_LOG", "warn,wsgate=info");
                c
            }
            TargetKind::Plain => {
                let mut c = Command::new(&programs.plain);
                c.args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
                c
            }
            TargetKind::Node => {
                let mut c = Command::new(&programs.node);
                c.arg(&programs.node_hub).args([
                    "--listen",
                    "127.0.0.1:0",
                    "--http",
                    "127.0.0.1:0",
                ]);
                if let Some(dir) = programs.node_hub.parent() {
                    c.current_dir(dir);
                }
                c
            }
        };
        command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let fail = |reason: String| BenchError::TargetStart {
            target: kind.to_string(),
            reason,
        };
        let mut child = command
            .spawn()
            .map_err(|e| fail(format!("cannot run it: {e}")))?;
        let pid = child.id().ok_or_else(|| fail("it exited at once".into()))?;
        let log = Arc::new(LogScan::default());
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(fail("its output could not be captured".into()));
        };
        tokio::spawn(drain(BufReader::new(stderr), log.clone()));
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                let line = strip_ansi(&line);
                log.line(&line);
                if let Some(ready) = parse_ready(kind, &line) {
                    return Some(ready);
                }
            }
            None
        })
        .await;
        let ready = match ready {
            Ok(Some(ready)) => ready?,
            Ok(None) => {
                let status = child.wait().await.map_or("?".into(), |s| s.to_string());
                // Give the stderr task a moment to collect the last words.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(fail(format!(
                    "it exited ({status}) before saying it was ready; its last output:\n{}",
                    log.tail()
                )));
            }
            Err(_) => {
                return Err(fail(format!(
                    "it did not say it was ready within {} s; its last output:\n{}",
                    START_TIMEOUT.as_secs(),
                    log.tail()
                )));
            }
        };
        tokio::spawn(drain_lines(lines, log.clone()));
        Ok(Running {
            kind,
            child,
            pid,
            ws: ready.ws,
            ws_path: ready.ws_path,
            http: ready.http,
            worker: ready.worker,
            grpc: ready.grpc,
            log,
        })
    }

    /// The path a client upgrades, with an optional query (`topic=t1`).
    pub fn client_path(&self, query: &str) -> String {
        if query.is_empty() {
            self.ws_path.clone()
        } else {
            format!("{}?{query}", self.ws_path)
        }
    }

    /// The worker address (wsgate only).
    pub fn worker_addr(&self) -> Result<SocketAddr, BenchError> {
        self.worker.ok_or_else(|| BenchError::Target {
            target: self.kind.to_string(),
            reason: "has no worker link (only wsgate has one)".into(),
        })
    }

    /// Resident memory of the process now, from /proc.
    pub fn rss_bytes(&self) -> Result<u64, BenchError> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path)
            .map_err(|e| self.error(format!("cannot read {path}: {e}")))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .ok_or_else(|| self.error(format!("no VmRSS in {path}")))
    }

    /// Connections the target says it holds.
    pub async fn connections(&self) -> Result<u64, BenchError> {
        let path = match self.kind {
            TargetKind::Wsgate => "/api/v1/counts",
            TargetKind::Plain | TargetKind::Node => "/stats",
        };
        self.json_u64(path, "connections").await
    }

    /// Messages the target itself says it dropped (wsgate: slow consumers; peers: their
    /// `dropped` counter).
    pub async fn server_drops(&self) -> Result<u64, BenchError> {
        match self.kind {
            TargetKind::Wsgate => {
                let text = self.get("/metrics").await?;
                Ok(
                    metric(&text, "wsgate_dropped_total{reason=\"slow_consumer\"}")
                        + metric(&text, "wsgate_closes_total{reason=\"slow_consumer\"}"),
                )
            }
            TargetKind::Plain | TargetKind::Node => self.json_u64("/stats", "dropped").await,
        }
    }

    /// wsgate's `/metrics` text, to read with [`metric`].
    pub async fn metrics(&self) -> Result<String, BenchError> {
        self.get("/metrics").await
    }

    async fn json_u64(&self, path: &str, field: &str) -> Result<u64, BenchError> {
        let text = self.get(path).await?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| self.error(format!("GET {path} did not answer JSON ({e}): {text:?}")))?;
        value
            .get(field)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| self.error(format!("GET {path} has no number {field:?}: {text}")))
    }

    async fn get(&self, path: &str) -> Result<String, BenchError> {
        let mut http = HttpClient::new(self.http);
        let r = http
            .get(path)
            .await
            .map_err(|e| self.error(format!("GET {path} failed: {e}")))?;
        if r.status != 200 {
            return Err(self.error(format!("GET {path} answered {}: {}", r.status, r.text())));
        }
        Ok(r.text())
    }

    fn error(&self, reason: String) -> BenchError {
        BenchError::Target {
            target: self.kind.to_string(),
            reason,
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Addresses from a target's ready line.
struct Ready {
    ws: SocketAddr,
    ws_path: String,
    http: SocketAddr,
    worker: Option<SocketAddr>,
    grpc: Option<SocketAddr>,
}

/// The ready line of `kind`, if `line` is it.
fn parse_ready(kind: TargetKind, line: &str) -> Option<Result<Ready, BenchError>> {
    let bad = |what: &str| BenchError::TargetStart {
        target: kind.to_string(),
        reason: format!("its ready line has no usable {what}: {line}"),
    };
    let addr = |text: Option<&str>, what: &str| {
        text.and_then(|t| t.parse::<SocketAddr>().ok())
            .ok_or_else(|| bad(what))
    };
    match kind {
        TargetKind::Wsgate => {
            if !line.contains("wsgate is up") {
                return None;
            }
            Some((|| {
                let clients = field(line, "clients").ok_or_else(|| bad("clients="))?;
                let rest = clients
                    .strip_prefix("ws://")
                    .ok_or_else(|| bad("ws:// URL"))?;
                let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let api = field(line, "api")
                    .and_then(|a| a.strip_prefix("http://"))
                    .map(|a| a.trim_end_matches('/'));
                Ok(Ready {
                    ws: addr(Some(host), "clients address")?,
                    ws_path: if path.is_empty() {
                        "/".into()
                    } else {
                        path.into()
                    },
                    http: addr(api, "api=http:// address")?,
                    worker: Some(addr(field(line, "worker"), "worker=")?),
                    grpc: Some(addr(field(line, "grpc"), "grpc=")?),
                })
            })())
        }
        TargetKind::Plain | TargetKind::Node => {
            if !line.trim_start().starts_with("ready ") {
                return None;
            }
            Some((|| {
                Ok(Ready {
                    ws: addr(field(line, "ws"), "ws=")?,
                    ws_path: "/ws".into(),
                    http: addr(field(line, "http"), "http=")?,
                    worker: None,
                    grpc: None,
                })
            })())
        }
    }
}

/// The value of `key=` in a log line, up to the next whitespace (quotes removed).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("{key}=");
    let mut from = 0;
    while let Some(at) = line[from..].find(&pattern) {
        let start = from + at;
        // A whole key: at the start or after whitespace.
        if start == 0 || line[..start].ends_with(char::is_whitespace) {
            let value = &line[start + pattern.len()..];
            let end = value.find(char::is_whitespace).unwrap_or(value.len());
            return Some(value[..end].trim_matches('"'));
        }
        from = start + pattern.len();
    }
    None
}

/// Removes ANSI colour sequences (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn drain<R: AsyncRead + Unpin>(reader: BufReader<R>, log: Arc<LogScan>) {
    drain_lines(reader.lines(), log).await;
}

async fn drain_lines<R: AsyncRead + Unpin>(
    mut lines: tokio::io::Lines<BufReader<R>>,
    log: Arc<LogScan>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        log.line(&strip_ansi(&line));
    }
}

/// The value of a metric sample line `name value` in a Prometheus exposition (0 if absent).
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wsgate_ready_line() {
        let line = "2026-01-01T00:00:00.000000Z  INFO wsgate::server: wsgate is up node_id=box clients=ws://127.0.0.1:40001/ws worker=127.0.0.1:40002 worker_tls=false api=http://127.0.0.1:40003/ grpc=127.0.0.1:40004 grpc_tls=false";
        let ready = parse_ready(TargetKind::Wsgate, line)
            .expect("is the ready line")
            .expect("parses");
        assert_eq!(ready.ws.to_string(), "127.0.0.1:40001");
        assert_eq!(ready.ws_path, "/ws");
        assert_eq!(ready.http.to_string(), "127.0.0.1:40003");
        assert_eq!(
            ready.worker.map(|w| w.to_string()).as_deref(),
            Some("127.0.0.1:40002")
        );
        assert_eq!(
            ready.grpc.map(|g| g.to_string()).as_deref(),
            Some("127.0.0.1:40004")
        );
        assert!(parse_ready(TargetKind::Wsgate, "INFO something else").is_none());
        // worker_tls= must not be taken for worker=.
        assert_eq!(field("worker_tls=false worker=1", "worker"), Some("1"));
    }

    #[test]
    fn reads_peer_ready_line_and_strips_colour() {
        let ready = parse_ready(
            TargetKind::Node,
            "ready ws=127.0.0.1:1234 http=127.0.0.1:1235",
        )
        .expect("is the ready line")
        .expect("parses");
        assert_eq!(ready.ws.port(), 1234);
        assert_eq!(ready.http.port(), 1235);
        assert_eq!(strip_ansi("\u{1b}[2mwsgate\u{1b}[0m is up"), "wsgate is up");
    }

    #[test]
    fn reads_metrics() {
        let text = "# HELP x\nwsgate_dropped_total{reason=\"slow_consumer\"} 7\nwsgate_dropped_total{reason=\"no_business\"} 3\n";
        assert_eq!(
            metric(text, "wsgate_dropped_total{reason=\"slow_consumer\"}"),
            7
        );
        assert_eq!(metric(text, "absent"), 0);
    }
}
