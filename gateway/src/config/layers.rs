//! Where each setting comes from: built-in defaults < the `--config` TOML file < `WSGATE_*`
//! environment variables < flags.
//!
//! clap already layers defaults, environment and flags, and records each value's source. The
//! file slots in between: every file value whose setting clap took from its default (or did
//! not have) is appended to the command line as `--flag=value` and the whole is parsed again,
//! so one set of value parsers, conflicts and requirements covers every source. File keys are
//! the arguments' ids, which are the flag names with '-' written as '_' (`ws_addr`,
//! `forward_headers`). Each file value is checked on its own first, so a bad one is reported
//! with the file, the key and the value rather than as a flag the user never typed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches};

use super::Config;
use crate::error::ConfigError;

/// The argument id of `--config`.
const CONFIG: &str = "config";
/// The argument id of `--print-config`.
const PRINT_CONFIG: &str = "print_config";
/// Settings that take no value from a file.
const NOT_FILE_KEYS: [&str; 4] = [CONFIG, PRINT_CONFIG, "help", "version"];
/// Settings whose values are secrets: never echoed, in messages or `--print-config`.
pub(crate) const SECRET_KEYS: [&str; 4] =
    ["api_key", "worker_token", "jwt_secret", "stream_redis_url"];

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

/// The command line as parsed: the effective configuration and what else was asked for.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// `--print-config`: print the configuration and exit.
    pub print_config: bool,
    /// The `--config` file, if one was read.
    pub file: Option<PathBuf>,
    /// The source of every setting, by file key.
    pub sources: BTreeMap<String, Source>,
}

/// The full command line: every [`Config`] flag plus `--config` and `--print-config`. Built
/// once per process and cloned: building it is most of what parsing costs.
pub fn command() -> Command {
    static COMMAND: std::sync::LazyLock<Command> = std::sync::LazyLock::new(build_command);
    COMMAND.clone()
}

fn build_command() -> Command {
    Config::command()
        .arg(
            Arg::new(CONFIG)
                .long("config")
                .env("WSGATE_CONFIG")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "TOML file of settings (keys: the flag names with '-' as '_'); \
                     WSGATE_* variables and flags override it",
                ),
        )
        .arg(
            Arg::new(PRINT_CONFIG)
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help("Print the effective configuration as TOML (secrets redacted) and exit"),
        )
}

/// The settings a config file may hold, by key, in `--help` order.
pub fn file_keys() -> Vec<String> {
    command()
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| !NOT_FILE_KEYS.contains(id))
        .map(str::to_owned)
        .collect()
}

impl Loaded {
    /// Parses `args` (program name first) with the environment and the `--config` file.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        Self::from_args_reading(args, |path| std::fs::read_to_string(path))
    }

    /// [`from_args`](Self::from_args), with the file's text from `read` (the fuzz target
    /// feeds the file's text without a file).
    pub(crate) fn from_args_reading<I, T>(
        args: I,
        read: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let command = command();
        // Leniently first: only to learn the file and which settings flags or variables set.
        // Errors such as a missing `requires` may be fixed by the file; the strict parse below
        // reports whatever is left. --help and --version still end here.
        let first = command
            .clone()
            .ignore_errors(true)
            .try_get_matches_from(args.iter())?;
        let file = first.get_one::<PathBuf>(CONFIG).cloned();
        let mut from_file = Vec::new();
        let mut consumers = Vec::new();
        if let Some(path) = &file {
            let mut table = read_table(path, &read)?;
            if let Some(value) = table.remove(CONSUMER) {
                consumers = read_consumers(path, value)?;
            }
            for (key, value) in table {
                let arg = file_arg(&command, path, &key)?;
                let values = file_values(path, &key, arg, &value)?;
                let overridden = matches!(
                    first.value_source(&key),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                );
                if !overridden {
                    args.extend(as_flags(arg, &values));
                    from_file.push(key);
                }
            }
        }
        let matches = command.clone().try_get_matches_from(&args).map_err(|e| {
            match (&file, from_file.is_empty()) {
                (Some(path), false) => ConfigError::FileConflict {
                    path: path.clone(),
                    message: strip_clap_prefix(&e.render().to_string()),
                },
                _ => from_env(&e, &command, &args).unwrap_or(ConfigError::Cli(e)),
            }
        })?;
        let mut config = Config::from_arg_matches(&matches)?;
        config.consumers = consumers;
        config.normalize();
        let sources = file_keys()
            .into_iter()
            .map(|key| {
                let source = if from_file.contains(&key) {
                    Source::File
                } else {
                    match matches.value_source(&key) {
                        Some(ValueSource::CommandLine) => Source::Flag,
                        Some(ValueSource::EnvVariable) => Source::Env,
                        _ => Source::Default,
                    }
                };
                (key, source)
            })
            .collect();
        Ok(Loaded {
            config,
            print_config: matches.get_flag(PRINT_CONFIG),
            file,
            sources,
        })
    }
}

impl Config {
    /// Drops empty and blank entries from list settings (`forward_headers = []` in a file, or
    /// `WSGATE_PEERS=""`, arrive as one empty value).
    fn normalize(&mut self) {
        for list in [
            &mut self.forward_headers,
            &mut self.allowed_origins,
            &mut self.peers,
            &mut self.api_allowed_hosts,
            &mut self.handshake_rate_exempt,
            &mut self.trusted_proxies,
        ] {
            list.iter_mut().for_each(|v| *v = v.trim().to_owned());
            list.retain(|v| !v.is_empty());
        }
    }
}

/// The file key of the consumers' tables (`[[consumer]]`).
pub(crate) const CONSUMER: &str = "consumer";

/// The `[[consumer]]` tables, each checked (docs/consumers.md).
fn read_consumers(
    path: &Path,
    value: toml::Value,
) -> Result<Vec<crate::consumers::spec::Spec>, ConfigError> {
    let bad = |message: String| ConfigError::Consumer {
        path: path.to_owned(),
        message,
    };
    let toml::Value::Array(tables) = value else {
        return Err(bad(
            "`consumer` is a list of tables: write each as [[consumer]]".into(),
        ));
    };
    let specs = tables
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            table.try_into().map_err(|e: toml::de::Error| {
                bad(format!("consumer #{}: {}", i + 1, e.to_string().trim_end()))
            })
        })
        .collect::<Result<Vec<crate::consumers::spec::Spec>, _>>()?;
    crate::consumers::spec::check_all(&specs).map_err(bad)?;
    Ok(specs)
}

fn read_table(
    path: &Path,
    read: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<toml::Table, ConfigError> {
    let text = read(path).map_err(|source| ConfigError::FileRead {
        path: path.to_owned(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::FileSyntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
}

/// The argument a file key sets, or an error naming the allowed keys.
fn file_arg<'c>(command: &'c Command, path: &Path, key: &str) -> Result<&'c Arg, ConfigError> {
    let found = command
        .get_arguments()
        .find(|a| a.get_id() == key && !NOT_FILE_KEYS.contains(&key));
    found.ok_or_else(|| {
        let keys = file_keys();
        let suggestion = closest(key, &keys)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        ConfigError::UnknownKey {
            path: path.to_owned(),
            key: key.to_owned(),
            suggestion,
            allowed: keys.join(", "),
        }
    })
}

/// What a file value stands for on the command line, checked with the flag's own parser.
enum FileValue {
    /// A switch (`authorize_hook = true`).
    Switch(bool),
    /// One value, or a list's values.
    Values(Vec<String>),
}

fn file_values(
    path: &Path,
    key: &str,
    arg: &Arg,
    value: &toml::Value,
) -> Result<FileValue, ConfigError> {
    let shown = if SECRET_KEYS.contains(&key) {
        "[redacted]".to_owned()
    } else {
        value.to_string()
    };
    let bad = |reason: String, expected: String| ConfigError::BadValue {
        path: path.to_owned(),
        key: key.to_owned(),
        value: shown.clone(),
        reason,
        expected,
    };
    let values = match arg.get_action() {
        ArgAction::SetTrue => {
            return match value {
                toml::Value::Boolean(b) => Ok(FileValue::Switch(*b)),
                _ => Err(bad("not a boolean".into(), "; write true or false".into())),
            };
        }
        ArgAction::Append => match value {
            toml::Value::Array(items) => items
                .iter()
                .map(|item| {
                    scalar(item).ok_or_else(|| {
                        bad(
                            "a list may hold only strings and numbers".into(),
                            String::new(),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            // A single string is accepted as the variable would be: comma-separated.
            toml::Value::String(s) => s.split(',').map(str::to_owned).collect(),
            other => vec![scalar(other).ok_or_else(|| {
                bad(
                    "not a list".into(),
                    "; write a list like [\"a\", \"b\"]".into(),
                )
            })?],
        },
        _ => vec![scalar(value).ok_or_else(|| {
            bad(
                "takes one value, not a list or table".into(),
                example(arg).unwrap_or_default(),
            )
        })?],
    };
    for v in &values {
        if let Err(reason) = check(arg, v) {
            let expected = match arg.get_possible_values() {
                pv if !pv.is_empty() => {
                    let names: Vec<_> = pv.iter().map(|p| p.get_name().to_owned()).collect();
                    format!("; allowed: {}", names.join(", "))
                }
                _ => example(arg).unwrap_or_default(),
            };
            return Err(bad(reason, expected));
        }
    }
    Ok(FileValue::Values(values))
}

/// A TOML scalar as the text a flag would take.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// "; expected a value like <default>" from the setting's default, when it has one.
fn example(arg: &Arg) -> Option<String> {
    let default = arg.get_default_values().first()?.to_str()?;
    if default.is_empty() {
        return None;
    }
    let quoted = if default.parse::<i64>().is_ok() {
        default.to_owned()
    } else {
        format!("\"{default}\"")
    };
    Some(format!("; expected a value like {quoted}"))
}

/// Runs `arg`'s value parser on one value, alone (without the relations to other settings).
fn check(arg: &Arg, value: &str) -> Result<(), String> {
    let probe = Arg::new("value")
        .long("value")
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    let parsed = Command::new("wsgate")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--value={value}")]);
    match parsed {
        Ok(_) => Ok(()),
        Err(e) => Err(match std::error::Error::source(&e) {
            Some(inner) => inner.to_string(),
            None if !arg.get_possible_values().is_empty() => "not one of the allowed values".into(),
            None => e.kind().to_string(),
        }),
    }
}

/// The flags that stand for a file value.
fn as_flags(arg: &Arg, value: &FileValue) -> Vec<OsString> {
    let Some(long) = arg.get_long() else {
        return Vec::new();
    };
    match value {
        FileValue::Switch(true) => vec![format!("--{long}").into()],
        FileValue::Switch(false) => Vec::new(),
        // An empty list with nothing to replace says nothing; passing it anyway would trip a
        // conflict (`peers = []` beside `peers_dns`, as --print-config writes it).
        FileValue::Values(values) if values.is_empty() && arg.get_default_values().is_empty() => {
            Vec::new()
        }
        // An empty list: one empty value, which `normalize` drops, so the default is replaced.
        FileValue::Values(values) if values.is_empty() => vec![format!("--{long}=").into()],
        FileValue::Values(values) => values
            .iter()
            .map(|v| format!("--{long}={v}").into())
            .collect(),
    }
}

/// A bad value that came from a `WSGATE_*` variable, reported as such: clap names the flag,
/// which the user may never have typed.
fn from_env(e: &clap::Error, command: &Command, args: &[OsString]) -> Option<ConfigError> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let arg = command.get_arguments().find(|a| {
        a.get_long()
            .is_some_and(|l| shown == &format!("--{l}") || shown.starts_with(&format!("--{l} ")))
    })?;
    let long = format!("--{}", arg.get_long()?);
    let typed = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == long || a.starts_with(&format!("{long}="))
    });
    let var = arg.get_env()?.to_string_lossy().into_owned();
    (!typed && std::env::var_os(&var).is_some()).then(|| ConfigError::Env {
        var,
        message: strip_clap_prefix(&e.render().to_string()),
    })
}

/// clap's rendering minus its "error: " prefix and usage footer, for use inside a sentence.
fn strip_clap_prefix(rendered: &str) -> String {
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(rendered);
    first.trim_start_matches("error: ").trim().to_owned()
}

/// The known key nearest to `key`, if it is near enough to be a typo.
fn closest<'k>(key: &str, keys: &'k [String]) -> Option<&'k str> {
    let wanted = key.to_ascii_lowercase().replace('-', "_");
    keys.iter()
        .map(|k| (edit_distance(&wanted, k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2) || k.starts_with(&wanted) && wanted.len() >= 4)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = file_keys();
        assert_eq!(closest("ws_adr", &keys), Some("ws_addr"));
        assert_eq!(closest("forward-header", &keys), Some("forward_headers"));
        assert_eq!(closest("allowed_origin", &keys), Some("allowed_origins"));
        assert_eq!(closest("completely_unrelated_thing", &keys), None);
    }

    #[test]
    fn every_setting_is_a_file_key() {
        let keys = file_keys();
        for key in [
            "ws_addr",
            "forward_headers",
            "tls_cert",
            "allowed_origins",
            "drain_timeout",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        assert!(!keys.iter().any(|k| k == "config" || k == "print_config"));
    }

    /// Found by the `config_file` fuzz target: `--print-config` wrote `peers = []` beside
    /// `peers_dns`, and the empty list became a `--peers=` that conflicts with it.
    #[test]
    fn an_empty_list_without_a_default_says_nothing() {
        let read = |text: &'static str| move |_: &Path| Ok::<_, std::io::Error>(text.to_owned());
        let loaded = Loaded::from_args_reading(
            ["wsgate", "--config", "a.toml"],
            read("peers = []\npeers_dns = \"workers.svc:8081\"\n"),
        )
        .expect("an empty peers list beside peers_dns loads");
        assert_eq!(loaded.config.peers_dns.as_deref(), Some("workers.svc:8081"));
        let printed = loaded.to_toml().expect("prints");
        Loaded::from_args_reading(["wsgate", "--config", "b.toml"], |_| Ok(printed.clone()))
            .unwrap_or_else(|e| panic!("--print-config output does not load: {e}\n{printed}"));
    }

    #[test]
    fn values_are_checked_alone() {
        let command = command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == "client_ping_interval")
            .expect("arg");
        assert!(check(arg, "10s").is_ok());
        let err = check(arg, "ten").expect_err("bad duration");
        assert!(err.contains("500ms"), "{err}");
    }
}
