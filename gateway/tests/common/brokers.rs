//! Brokers for the tests that need them: the machine's shared servers (each test with its own
//! keys, queues, subjects and tables) and servers of a test's own on free ports, to stop and
//! start again. Outside CI a test whose server is absent is skipped, saying so; in CI it fails
//! (`.ci/run` installs and starts them).

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{can_run, wait_until};

/// The shared servers of this machine.
pub const RABBITMQ: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const NATS: &str = "nats://127.0.0.1:4222";
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Whether something answers on a loopback port; `start` says how to start it.
pub fn listening(what: &str, port: u16, start: &str) -> bool {
    let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    can_run(
        what,
        (!up).then(|| format!("nothing listens on 127.0.0.1:{port} ({start})")),
    )
}

/// A name no other test or run uses (letters, digits, '_').
pub fn unique(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("wsgate_test_{test}_{}_{nanos}", std::process::id())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    super::reserve_addrs(1)[0].port()
}

/// A server of the test's own: killed when dropped.
pub struct OwnServer {
    child: tokio::process::Child,
    program: &'static str,
    args: Vec<String>,
    pub port: u16,
}

impl OwnServer {
    async fn start(program: &'static str, args: Vec<String>, port: u16) -> Self {
        let child = tokio::process::Command::new(program)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        wait_until(program, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        Self {
            child,
            program,
            args,
            port,
        }
    }

    /// A redis-server on a free port, keeping nothing on disk.
    pub async fn redis() -> Self {
        Self::redis_on(free_port()).await
    }

    /// A redis-server on `port`, keeping nothing on disk.
    pub async fn redis_on(port: u16) -> Self {
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(str::to_owned)
        .to_vec();
        Self::start("redis-server", args, port).await
    }

    /// A nats-server with JetStream on a free port, its store in a fresh directory.
    pub async fn nats() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("nats"));
        let args = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-js".into(),
            "-sd".into(),
            dir.display().to_string(),
        ];
        Self::start("nats-server", args, port).await
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits until its port is closed.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("the server stops");
        let port = self.port;
        wait_until("the server's port to close", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        })
        .await;
    }

    /// Starts it again, same port and arguments.
    pub async fn restart(&mut self) {
        let again = Self::start(self.program, self.args.clone(), self.port).await;
        *self = again;
    }
}

/// Runs a command of the machine (a broker's control tool) and fails the test unless it
/// succeeds.
pub async fn run(program: &str, args: &[&str]) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(program).args(args).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} {args:?} took over 60s"))
    .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
