//! Which topics and users are streams, and how much each keeps: the `--stream` rules
//! (docs/streams.md). Pure: parsing a rule and matching a name.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use wsgate_proto::stream::Bounds;

/// What a rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Topics,
    Users,
}

impl Kind {
    /// What one of its names is, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Topics => "topic",
            Kind::Users => "user",
        }
    }

    /// The prefix of its streams' names: `topic:<topic>`, `user:<user id>`.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Topics => "topic:",
            Kind::Users => "user:",
        }
    }
}

/// One `--stream` rule: `topics order:* history=100 age=10m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kind: Kind,
    /// `*` matches any run of characters; everything else matches itself.
    pub pattern: String,
    pub bounds: Bounds,
    /// Keep the latest message only, and give it to every client that joins.
    pub cache: bool,
}

/// The defaults of a rule's settings.
const HISTORY: usize = 100;
const AGE: Duration = Duration::from_secs(300);
const BYTES: usize = 1 << 20;

const SYNTAX: &str = "a stream rule is `topics <pattern>` or `users <pattern>` then settings: \
     history=N, age=D (90s, 10m, 1h), bytes=N, cache; for example \
     \"topics order:* history=100 age=10m\" (docs/streams.md)";

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let kind = match words.next() {
            Some("topics") => Kind::Topics,
            Some("users") => Kind::Users,
            Some(other) => return Err(format!("{other:?} is not `topics` or `users`: {SYNTAX}")),
            None => return Err(format!("the rule is empty: {SYNTAX}")),
        };
        let pattern = words
            .next()
            .ok_or_else(|| format!("no pattern after {:?}: {SYNTAX}", s.trim()))?
            .to_owned();
        let mut bounds = Bounds {
            messages: HISTORY,
            bytes: BYTES,
            age: AGE,
        };
        let mut cache = false;
        for word in words {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            let number = || {
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{key}={value:?} is not a positive whole number"))
            };
            match key {
                "history" => bounds.messages = number()?,
                "bytes" => bounds.bytes = number()?,
                "age" => {
                    bounds.age = crate::config::parse_duration(value)
                        .ok()
                        // Whole milliseconds at least: what the history counts in.
                        .filter(|d| d.as_millis() > 0)
                        .ok_or_else(|| {
                            format!("age={value:?} is not a duration above zero (90s, 10m, 1h)")
                        })?;
                }
                "cache" if value.is_empty() => cache = true,
                _ => return Err(format!("unknown setting {word:?}: {SYNTAX}")),
            }
        }
        if cache {
            bounds.messages = 1;
        }
        Ok(Rule {
            kind,
            pattern,
            bounds,
            cache,
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Topics => "topics",
            Kind::Users => "users",
        };
        write!(f, "{kind} {}", self.pattern)?;
        if self.cache {
            write!(f, " cache")?;
        } else {
            write!(f, " history={}", self.bounds.messages)?;
        }
        write!(
            f,
            " age={} bytes={}",
            crate::config::render::format_duration(self.bounds.age),
            self.bounds.bytes
        )
    }
}

/// Whether `name` matches `pattern` (`*`: any run of characters, possibly empty).
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole name.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The first rule of `kind` that matches `name`.
pub fn find<'a>(rules: &'a [Rule], kind: Kind, name: &str) -> Option<&'a Rule> {
    rules
        .iter()
        .find(|r| r.kind == kind && matches(&r.pattern, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_documented() {
        for (pattern, name, expected) in [
            ("order:*", "order:7", true),
            ("order:*", "order:", true),
            ("order:*", "orders:7", false),
            ("*", "anything", true),
            ("*", "", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("*:status", "order:7:status", true),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(matches(pattern, name), expected, "{pattern} ~ {name}");
        }
    }

    #[test]
    fn rules_parse_with_defaults_and_refuse_with_a_reason() {
        let r: Rule = "topics order:* history=100 age=10m".parse().expect("valid");
        assert_eq!(r.kind, Kind::Topics);
        assert_eq!(r.pattern, "order:*");
        assert_eq!(r.bounds.messages, 100);
        assert_eq!(r.bounds.age, Duration::from_secs(600));
        assert_eq!(r.bounds.bytes, BYTES);
        let c: Rule = "users * cache".parse().expect("valid");
        assert!(c.cache);
        assert_eq!(c.bounds.messages, 1);
        assert_eq!(c.bounds.age, AGE);
        for bad in [
            "",
            "rooms x",
            "topics",
            "topics x history=0",
            "topics x history=many",
            "topics x age=0s",
            "topics x colour=blue",
            "topics x cache=yes",
        ] {
            let err = bad.parse::<Rule>().expect_err(bad);
            assert!(!err.is_empty());
        }
        let rules = vec![
            "topics order:* history=5".parse().expect("valid"),
            "topics * history=9".parse::<Rule>().expect("valid"),
        ];
        assert_eq!(
            find(&rules, Kind::Topics, "order:1").map(|r| r.bounds.messages),
            Some(5)
        );
        assert_eq!(
            find(&rules, Kind::Topics, "chat").map(|r| r.bounds.messages),
            Some(9)
        );
        assert!(find(&rules, Kind::Users, "42").is_none());
    }
}
