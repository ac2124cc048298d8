//! `--print-config`: the effective configuration as a TOML file that `--config` accepts, each
//! value not from a default marked with its source, secrets shown as "[redacted]".

use std::time::Duration;

use serde::Serializer;

use super::Config;
use super::layers::{Loaded, Source, file_keys};

/// What a secret is printed as.
pub const REDACTED: &str = "[redacted]";

impl Loaded {
    /// The configuration as TOML, with a comment naming where each non-default value came from
    /// and which settings are unset.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let body = toml::to_string(&self.config)?;
        let mut out = String::from(
            "# wsgate effective configuration. Sources, weakest first: built-in defaults,\n\
             # the config file, WSGATE_* environment variables, flags.\n",
        );
        match &self.file {
            Some(path) => out.push_str(&format!("# config file: {}\n", path.display())),
            None => out.push_str("# config file: none (--config FILE or WSGATE_CONFIG)\n"),
        }
        let command = super::layers::command();
        let mut shown = Vec::new();
        for line in body.lines() {
            out.push_str(line);
            if let Some((key, _)) = line.split_once(" = ") {
                let key = key.trim();
                shown.push(key.to_owned());
                let arg = command.get_arguments().find(|a| a.get_id() == key);
                match (self.sources.get(key), arg) {
                    (Some(Source::File), _) => out.push_str("  # from the config file"),
                    (Some(Source::Env), Some(arg)) => {
                        if let Some(env) = arg.get_env() {
                            out.push_str(&format!("  # from {}", env.to_string_lossy()));
                        }
                    }
                    (Some(Source::Flag), Some(arg)) => {
                        if let Some(long) = arg.get_long() {
                            out.push_str(&format!("  # from --{long}"));
                        }
                    }
                    _ => {}
                }
            }
            out.push('\n');
        }
        let unset: Vec<String> = file_keys()
            .into_iter()
            .filter(|k| !shown.contains(k))
            .collect();
        if !unset.is_empty() {
            out.push_str(&format!("# not set: {}\n", unset.join(", ")));
        }
        Ok(out)
    }
}

/// A secret: present or not, never its value.
pub(crate) fn redacted<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

/// A URL with its password, if any, replaced.
pub(crate) fn url_without_password<S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
    match value.split_once("://") {
        Some((scheme, rest)) if rest.contains('@') => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            s.serialize_str(&format!("{scheme}://{REDACTED}@{host}"))
        }
        _ => s.serialize_str(value),
    }
}

/// A list of values the way flags take them (their `Display`, which parses back).
pub(crate) fn displayed<S: Serializer, T: std::fmt::Display>(
    values: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(ToString::to_string))
}

/// A duration the way flags take it: "250ms", "10s", "5m", "1h".
pub(crate) fn duration<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*value))
}

/// A clap value enum by its flag spelling ("deny").
pub(crate) fn value_enum<S: Serializer, E: clap::ValueEnum>(
    value: &E,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value.to_possible_value() {
        Some(v) => s.serialize_str(v.get_name()),
        None => s.serialize_none(),
    }
}

/// The shortest exact spelling `parse_duration` reads back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

impl Config {
    /// This configuration as TOML (secrets redacted), in the format of a `--config` file.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_duration;

    #[test]
    fn durations_round_trip() {
        for text in ["0s", "250ms", "10s", "90s", "5m", "1h", "1500ms"] {
            let d = parse_duration(text).expect("parses");
            assert_eq!(format_duration(d), text);
        }
    }

    #[test]
    fn secrets_are_redacted_and_the_output_parses() {
        let config = Config {
            api_key: Some("api-s3cret".into()),
            worker_token: Some("tok-s3cret".into()),
            jwt_secret: Some("jwt-s3cret-jwt-s3cret-jwt-s3cret-0".into()),
            ..Config::default()
        };
        let text = config.to_toml().expect("serializes");
        assert!(!text.contains("s3cret"), "{text}");
        let table: toml::Table = text.parse().expect("valid TOML");
        assert_eq!(table["api_key"].as_str(), Some(REDACTED));
        assert_eq!(table["client_ping_interval"].as_str(), Some("20s"));
        assert_eq!(table["authorize_fallback"].as_str(), Some("deny"));
    }
}
