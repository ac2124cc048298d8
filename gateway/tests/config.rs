//! Configuration layering through the real binary: built-in defaults < `--config` file <
//! `WSGATE_*` variables < flags, as `wsgate --print-config` shows them; the messages for
//! unknown keys and bad values; secrets redacted.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::{Command, Output};

/// A config file in a fresh temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "wsgate-config-{}-{name}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn arg(&self) -> String {
        format!("--config={}", self.0.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `wsgate ARGS` with exactly `env` as its WSGATE_* variables.
fn wsgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wsgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("WSGATE_") {
            command.env_remove(k);
        }
    }
    command.args(args).envs(env.iter().copied());
    command.output().expect("the wsgate binary runs")
}

/// `--print-config` output, parsed; panics (with stderr) unless the exit code is 0.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> (toml::Table, String) {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let out = wsgate(&all, env);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "exit {}: {}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let table = stdout
        .parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("--print-config is not TOML: {e}\n{stdout}"));
    (table, stdout)
}

/// The error a failing run printed; panics if it succeeded.
fn failure(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = wsgate(args, env);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn str_of<'t>(t: &'t toml::Table, key: &str) -> &'t str {
    t[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

fn strings(t: &toml::Table, key: &str) -> Vec<String> {
    t[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn defaults_file_env_flags_in_that_order() {
    let file = TempFile::new(
        "layers",
        r#"
ws_path = "/file"
send_queue = 10
heartbeat_text = "file-ping"
client_ping_interval = "5s"
forward_headers = ["origin"]
allowed_origins = ["https://file.example.com"]
authorize_hook = true
"#,
    );
    let (t, text) = print_config(
        &[&file.arg(), "--send-queue", "30"],
        &[
            ("WSGATE_SEND_QUEUE", "20"),
            ("WSGATE_WS_PATH", "/env"),
            (
                "WSGATE_ALLOWED_ORIGINS",
                "https://env.example.com,*.env.test",
            ),
        ],
    );
    // flag > env > file
    assert_eq!(t["send_queue"].as_integer(), Some(30));
    // env > file
    assert_eq!(str_of(&t, "ws_path"), "/env");
    assert_eq!(
        strings(&t, "allowed_origins"),
        ["https://env.example.com", "*.env.test"]
    );
    // file > default
    assert_eq!(str_of(&t, "heartbeat_text"), "file-ping");
    assert_eq!(str_of(&t, "client_ping_interval"), "5s");
    assert_eq!(strings(&t, "forward_headers"), ["origin"]);
    assert_eq!(t["authorize_hook"].as_bool(), Some(true));
    // default
    assert_eq!(str_of(&t, "heartbeat_reply"), "pong");
    assert_eq!(str_of(&t, "ws_addr"), "0.0.0.0:8080");
    assert_eq!(str_of(&t, "drain_timeout"), "10s");
    // Each value that is not a default says where it came from.
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} line in\n{text}"))
            .to_owned()
    };
    assert!(line("send_queue").ends_with("# from --send-queue"));
    assert!(line("ws_path").ends_with("# from WSGATE_WS_PATH"));
    assert!(line("heartbeat_text").ends_with("# from the config file"));
    assert!(!line("heartbeat_reply").contains('#'));
}

#[test]
fn the_file_can_come_from_wsgate_config_and_empty_lists_clear_defaults() {
    let file = TempFile::new(
        "envfile",
        "forward_headers = []\npeers = \"gw1:8081, gw2:8081\"\nnode_id = \"gw-1\"\n",
    );
    let path = file.0.display().to_string();
    let (t, text) = print_config(&[], &[("WSGATE_CONFIG", path.as_str())]);
    assert!(text.contains(&path), "{text}");
    assert_eq!(strings(&t, "forward_headers"), Vec::<String>::new());
    assert_eq!(strings(&t, "peers"), ["gw1:8081", "gw2:8081"]);
    assert_eq!(str_of(&t, "node_id"), "gw-1");
}

#[test]
fn print_config_output_is_a_config_file() {
    let file = TempFile::new(
        "first",
        "ws_addr = \"127.0.0.1:9100\"\nguest_timeout = \"90s\"\nauthorize_fallback = \"allow\"\n",
    );
    let (first, text) = print_config(&[&file.arg(), "--max-message-bytes", "4096"], &[]);
    let again = TempFile::new("again", &text);
    let (second, _) = print_config(&[&again.arg()], &[]);
    assert_eq!(first, second);
    assert_eq!(str_of(&second, "guest_timeout"), "90s");
    assert_eq!(second["max_message_bytes"].as_integer(), Some(4096));
}

#[test]
fn secrets_are_redacted() {
    let file = TempFile::new(
        "secrets",
        "api_key = \"file-api-key-s3cret\"\nworker_token = \"file-token-s3cret\"\n",
    );
    let (t, text) = print_config(
        &[
            &file.arg(),
            "--jwt-secret",
            "flag-jwt-s3cret-flag-jwt-s3cret-0123",
        ],
        &[("WSGATE_WORKER_TOKEN", "env-token-s3cret")],
    );
    assert!(!text.contains("s3cret"), "a secret leaked:\n{text}");
    for key in ["api_key", "worker_token", "jwt_secret"] {
        assert_eq!(str_of(&t, key), "[redacted]", "{key}");
    }
    // Unset secrets are listed as unset, not printed.
    let (t, text) = print_config(&[], &[]);
    assert!(!t.contains_key("api_key"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("# not set:") && l.contains("api_key")),
        "{text}"
    );
}

#[test]
fn unknown_keys_name_the_key_the_file_and_the_allowed_keys() {
    let file = TempFile::new("unknown", "ws_adr = \"127.0.0.1:1\"\n");
    let err = failure(&[&file.arg(), "--print-config"], &[]);
    let path = file.0.display().to_string();
    assert!(err.contains(&path), "{err}");
    assert!(err.contains("unknown key `ws_adr`"), "{err}");
    assert!(err.contains("did you mean `ws_addr`?"), "{err}");
    for allowed in ["ws_addr", "forward_headers", "allowed_origins", "tls_cert"] {
        assert!(err.contains(allowed), "{allowed} not listed: {err}");
    }
    // The file is checked even when flags override every key in it.
    let file = TempFile::new("unknown2", "[server]\nws_addr = \"127.0.0.1:1\"\n");
    let err = failure(&[&file.arg(), "--print-config"], &[]);
    assert!(err.contains("unknown key `server`"), "{err}");
}

#[test]
fn bad_values_name_the_key_the_value_and_what_is_allowed() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "send_queue = \"lots\"",
            &["`send_queue`", "\"lots\"", "like 1024"],
        ),
        (
            "client_ping_interval = \"5 days\"",
            &["`client_ping_interval`", "\"5 days\"", "ms, s, m or h"],
        ),
        (
            "ws_addr = \"localhost\"",
            &["`ws_addr`", "\"localhost\"", "like \"0.0.0.0:8080\""],
        ),
        (
            "authorize_fallback = \"maybe\"",
            &["`authorize_fallback`", "\"maybe\"", "allowed: deny, allow"],
        ),
        (
            "authorize_hook = \"yes\"",
            &["`authorize_hook`", "true or false"],
        ),
        (
            "ws_path = [\"/a\", \"/b\"]",
            &["`ws_path`", "one value, not a list"],
        ),
    ];
    for (line, wanted) in cases {
        let file = TempFile::new("bad", &format!("{line}\n"));
        let err = failure(&[&file.arg(), "--print-config"], &[]);
        assert!(err.contains(&file.0.display().to_string()), "{line}: {err}");
        for w in wanted {
            assert!(err.contains(w), "{line}: expected {w:?} in: {err}");
        }
    }
    // Not TOML at all: the file and the line.
    let file = TempFile::new("syntax", "ws_addr = \"127.0.0.1:1\nsend_queue = 3\n");
    let err = failure(&[&file.arg(), "--print-config"], &[]);
    assert!(
        err.contains("is not valid TOML") && err.contains("line 1"),
        "{err}"
    );
    // A missing file.
    let err = failure(&["--config=/no/such/wsgate.toml", "--print-config"], &[]);
    assert!(err.contains("/no/such/wsgate.toml"), "{err}");
    // A bad environment variable is reported as one.
    let err = failure(&["--print-config"], &[("WSGATE_WS_ADDR", "nowhere")]);
    assert!(
        err.contains("WSGATE_WS_ADDR") && err.contains("nowhere"),
        "{err}"
    );
    // Settings that exclude each other across sources.
    let file = TempFile::new("conflict", "peers_dns = \"gw.svc:8081\"\n");
    let err = failure(&[&file.arg(), "--peers=a:1", "--print-config"], &[]);
    assert!(err.contains(&file.0.display().to_string()), "{err}");
    assert!(err.contains("--peers"), "{err}");
}

#[test]
fn print_config_fails_for_a_configuration_that_would_not_start() {
    let file = TempFile::new(
        "invalid",
        "allowed_origins = [\"https://app.example.com/path\"]\n",
    );
    let out = wsgate(&[&file.arg(), "--print-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allowed-origins") && err.contains("\"https://app.example.com\""),
        "{err}"
    );
    // It still prints what it read, to help find the mistake.
    assert!(String::from_utf8_lossy(&out.stdout).contains("allowed_origins"));
}

#[test]
fn docs_list_every_key() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let (t, text) = print_config(&[], &[]);
    let unset = text
        .lines()
        .find_map(|l| l.strip_prefix("# not set: "))
        .unwrap_or_default();
    let keys = t
        .keys()
        .map(String::as_str)
        .chain(unset.split(", ").filter(|k| !k.is_empty()));
    for key in keys {
        assert!(
            doc.contains(&format!("| `{key}` |")),
            "docs/configuration.md has no row for `{key}`"
        );
    }
}

#[test]
fn stream_rules_come_from_every_source_print_back_and_bad_ones_say_why() {
    let file = TempFile::new(
        "streams",
        "stream = [\"topics order:* history=100 age=10m\", \"users * cache\"]\n\
         stream_engine = \"redis\"\n\
         stream_redis_url = \"redis://:hunter2-s3cret@127.0.0.1:6379/2\"\n",
    );
    let (t, text) = print_config(&[&file.arg()], &[]);
    assert_eq!(
        strings(&t, "stream"),
        [
            "topics order:* history=100 age=10m bytes=1048576",
            "users * cache age=5m bytes=1048576"
        ]
    );
    assert!(
        !text.contains("s3cret"),
        "the Redis password leaked:\n{text}"
    );
    // What --print-config wrote starts the same gateway again.
    let again = TempFile::new("streams-again", &text);
    let (second, _) = print_config(&[&again.arg()], &[]);
    assert_eq!(strings(&second, "stream"), strings(&t, "stream"));

    let (t, _) = print_config(
        &[],
        &[("WSGATE_STREAM", "topics a:* history=5,users u-* age=2m")],
    );
    assert_eq!(strings(&t, "stream").len(), 2);

    for (rule, words) in [
        ("rooms x", "`topics` or `users`"),
        ("topics x history=0", "positive whole number"),
        ("topics x colour=blue", "unknown setting"),
    ] {
        let err = failure(&["--stream", rule], &[]);
        assert!(err.contains(words), "{rule}: {err}");
    }
}

#[test]
fn consumers_come_from_the_file_print_back_and_bad_ones_say_why() {
    let file = TempFile::new(
        "consumers",
        "[[consumer]]\n\
         name = \"notice\"\n\
         kind = \"rabbitmq\"\n\
         url = \"amqp://app:hunter2-s3cret@127.0.0.1:5672/%2f\"\n\
         queue = \"ws.notice\"\n\
         command = \"broadcast\"\n\
         \n\
         [[consumer]]\n\
         name = \"users\"\n\
         kind = \"redis-pubsub\"\n\
         channels = [\"pub.user.*\"]\n\
         command = \"users/send\"\n\
         from = \"pub.user.{id}\"\n\
         to = \"{id}\"\n",
    );
    let (t, text) = print_config(&[&file.arg()], &[]);
    let consumers = t["consumer"].as_array().expect("the tables");
    assert_eq!(consumers.len(), 2, "{text}");
    assert_eq!(consumers[1]["from"].as_str(), Some("pub.user.{id}"));
    assert!(!text.contains("s3cret"), "the password leaked:\n{text}");
    // What --print-config wrote starts the same gateway again.
    let again = TempFile::new("consumers-again", &text);
    let (second, _) = print_config(&[&again.arg()], &[]);
    assert_eq!(second["consumer"], t["consumer"]);

    for (table, words) in [
        ("name = \"x\"\nkind = \"kafka\"", "unknown variant `kafka`"),
        ("name = \"x\"\nkind = \"redis-list\"", "needs `key`"),
        (
            "name = \"x\"\nkind = \"nats\"\nsubjects = [\"a\"]\nqueue = \"q\"",
            "`queue` is a setting of rabbitmq",
        ),
        (
            "name = \"x\"\nkind = \"nats\"\nsubjects = [\"a\"]\nbad = \"dead-letter\"",
            "nowhere to keep",
        ),
    ] {
        let bad = TempFile::new("bad-consumer", &format!("[[consumer]]\n{table}\n"));
        let err = failure(&[&bad.arg()], &[]);
        assert!(
            err.contains(words) && err.contains("consumer"),
            "{table}: {err}"
        );
    }
    let twice = TempFile::new(
        "twice",
        "[[consumer]]\nname = \"a\"\nkind = \"redis-list\"\nkey = \"k\"\n[[consumer]]\nname = \"a\"\nkind = \"redis-list\"\nkey = \"j\"\n",
    );
    assert!(failure(&[&twice.arg()], &[]).contains("two consumers are named a"));
}
