//! The example systems under `examples/`, run as their READMEs run them: the `wsgate` binary
//! with the example's own `wsgate.toml` (a copy holding this run's queue or key where tests must
//! not share one; listeners on free ports), the example's Node.js app, its PHP scripts, and the
//! npm packages of `examples/package.json`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::http::http;
use super::{can_run, node_missing, reserve_addrs, runs, spawn_wsgate, within};

/// `examples/`, where `package.json` and its `node_modules` are.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// `examples/<name>`.
pub fn example_dir(name: &str) -> PathBuf {
    examples_dir().join(name)
}

/// Whether an example's test can run here: php-cli when `php`, node with the npm `packages`
/// of `examples/`, and Chromium when `browser` (see [`can_run`]: in CI a missing part fails).
pub fn tools_here(what: &str, php: bool, packages: &[&str], browser: bool) -> bool {
    can_run(what, php.then(php_missing).flatten())
        && can_run(what, node_missing(&examples_dir(), packages, browser))
}

/// What is missing for the PHP examples: Debian's php-cli, or nothing.
pub fn php_missing() -> Option<String> {
    (!runs("php")).then(|| "php is not installed (apt-get install php-cli)".into())
}

/// The example's `wsgate.toml` with each `(from, to)` replaced (each `from` must be there),
/// written to a file of this run (`name`.toml in the temporary directory).
pub fn config_copy(example: &str, replace: &[(&str, &str)], name: &str) -> PathBuf {
    let path = example_dir(example).join("wsgate.toml");
    let mut toml = std::fs::read_to_string(&path).expect("the example's wsgate.toml");
    for (from, to) in replace {
        assert!(toml.contains(from), "{} holds {from}", path.display());
        toml = toml.replace(from, to);
    }
    let copy = std::env::temp_dir().join(format!("{name}.toml"));
    std::fs::write(&copy, toml).expect("the config copy is written");
    copy
}

/// A gateway started from an example's config.
pub struct ExampleGateway {
    pub child: Child,
    pub ws: SocketAddr,
    pub api: SocketAddr,
}

impl ExampleGateway {
    /// Starts the binary with `config` and `extra` flags, its client and API listeners on free
    /// ports, and waits until `/readyz` says `ready` (its consumers reading, if it has any).
    pub async fn start(config: &Path, extra: &[&str]) -> Self {
        let addrs = reserve_addrs(2);
        let (ws, api) = (addrs[0], addrs[1]);
        let (config, ws_arg, api_arg) = (
            config.display().to_string(),
            ws.to_string(),
            api.to_string(),
        );
        let mut args = vec![
            "--config",
            &config,
            "--ws-addr",
            &ws_arg,
            "--api-addr",
            &api_arg,
        ];
        args.extend_from_slice(extra);
        let (child, _) = spawn_wsgate(&args).await;
        within(
            "the example's gateway ready, its consumers reading",
            async {
                loop {
                    let reply = http(api, "GET", "/readyz", &[], None).await;
                    if reply.status == 200 && reply.body == b"ready" {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        )
        .await;
        Self { child, ws, api }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.ws)
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.api)
    }
}

/// Starts `node <script> <args>` and waits for its first line on stdout, which must start with
/// `says` (the app saying where it listens); what it writes later is read and dropped, so it
/// never blocks on a full pipe.
pub async fn node_app(script: &Path, args: &[&str], says: &str) -> Child {
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = within("the app to listen", lines.next_line())
        .await
        .expect("readable stdout")
        .unwrap_or_else(|| panic!("{} exited instead of listening", script.display()));
    assert!(first.starts_with(says), "{first}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}
