//! `--allowed-origins`: which web pages may open client WebSockets.
//!
//! Browsers send the page's origin (`scheme://host[:port]`) with every WebSocket handshake and
//! let any page connect anywhere, so a gateway that trusts cookies or ambient credentials needs
//! this check. Entries:
//!
//! - `https://app.example.com` — that origin exactly (scheme, host and port; the scheme's
//!   default port may be left out, as browsers do);
//! - `https://*.example.com` — any subdomain of example.com (not example.com itself);
//! - `app.example.com`, `*.example.com`, `localhost:3000` — the same without a scheme: http
//!   and https both match;
//! - `null` — the opaque origin of sandboxed frames and `file://` pages;
//! - `*` — every origin.
//!
//! Hosts compare case-insensitively. A request with no Origin header is not from a browser page
//! and is not checked.

/// One parsed `--allowed-origins` entry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pattern<'a> {
    Any,
    Null,
    Origin {
        /// None: http and https.
        scheme: Option<&'a str>,
        /// Without the `*.` of a wildcard.
        host: &'a str,
        wildcard: bool,
        port: Option<u16>,
    },
}

impl<'a> Pattern<'a> {
    /// Parses an entry; the error says what is wrong with it and how to write it.
    pub(crate) fn parse(entry: &'a str) -> Result<Self, String> {
        let entry = entry.trim();
        match entry {
            "*" => return Ok(Pattern::Any),
            "null" => return Ok(Pattern::Null),
            "" => return Err("an empty entry; remove it".into()),
            _ => {}
        }
        let (scheme, rest) = match entry.split_once("://") {
            Some((scheme, rest)) => {
                let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
                if !valid {
                    return Err(format!("{entry:?} has an invalid scheme {scheme:?}"));
                }
                (Some(scheme), rest)
            }
            None => (None, entry),
        };
        if let Some(at) = rest.find(['/', '?', '#']) {
            return Err(format!(
                "{entry:?} has a path; an origin is only scheme://host[:port], so write {:?}",
                format!(
                    "{}{}",
                    scheme.map(|s| format!("{s}://")).unwrap_or_default(),
                    &rest[..at]
                )
            ));
        }
        let (host, port) = split_port(rest).ok_or_else(|| {
            format!("{entry:?} has an invalid port; write host:port with a port from 1 to 65535")
        })?;
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(base) => (base, true),
            None => (host, false),
        };
        let host_ok = !host.is_empty()
            && (host.starts_with('[') && host.ends_with(']')
                || host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')));
        if !host_ok {
            return Err(format!(
                "{entry:?} is not an origin; write it like https://app.example.com, https://*.example.com or localhost:3000"
            ));
        }
        Ok(Pattern::Origin {
            scheme,
            host,
            wildcard,
            port,
        })
    }

    fn matches(&self, origin: &str) -> bool {
        let Pattern::Origin {
            scheme,
            host,
            wildcard,
            port,
        } = self
        else {
            return match self {
                Pattern::Any => true,
                _ => origin == "null",
            };
        };
        let Some((o_scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        let Some((o_host, o_port)) = split_port(rest.trim_end_matches('/')) else {
            return false;
        };
        let scheme_ok = match scheme {
            Some(s) => s.eq_ignore_ascii_case(o_scheme),
            None => o_scheme.eq_ignore_ascii_case("http") || o_scheme.eq_ignore_ascii_case("https"),
        };
        let default = default_port(o_scheme);
        let port_ok = port.or(default) == o_port.or(default);
        let host_ok = if *wildcard {
            let (o, h) = (o_host.as_bytes(), host.as_bytes());
            o.len() > h.len() + 1
                && o[o.len() - h.len()..].eq_ignore_ascii_case(h)
                && o[o.len() - h.len() - 1] == b'.'
        } else {
            o_host.eq_ignore_ascii_case(host)
        };
        scheme_ok && port_ok && host_ok
    }
}

/// Whether a handshake's Origin header passes `allowed` (empty: everything passes). Entries
/// were checked at startup; one that no longer parses matches nothing.
pub(crate) fn is_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    let Some(origin) = origin.map(str::trim) else {
        return true;
    };
    allowed.is_empty()
        || allowed
            .iter()
            .any(|entry| Pattern::parse(entry).is_ok_and(|p| p.matches(origin)))
}

/// `host[:port]` into the host and the port, if written; None when the port is not a number.
fn split_port(s: &str) -> Option<(&str, Option<u16>)> {
    // An IPv6 literal keeps its colons inside brackets.
    let colon = match s.rfind(']') {
        Some(end) => s[end..].find(':').map(|i| end + i),
        None => s.rfind(':'),
    };
    match colon {
        Some(i) => {
            let port: u16 = s[i + 1..].parse().ok().filter(|p| *p != 0)?;
            Some((&s[..i], Some(port)))
        }
        None => Some((s, None)),
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str], origin: &str) -> bool {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        for e in &entries {
            Pattern::parse(e).unwrap_or_else(|err| panic!("{e}: {err}"));
        }
        is_allowed(&entries, Some(origin))
    }

    #[test]
    fn exact_origins() {
        let list = ["https://app.example.com"];
        assert!(allowed(&list, "https://app.example.com"));
        assert!(allowed(&list, "https://APP.example.com"));
        assert!(allowed(&list, "https://app.example.com:443"));
        assert!(!allowed(&list, "http://app.example.com"));
        assert!(!allowed(&list, "https://app.example.com:8443"));
        assert!(!allowed(&list, "https://evil.com"));
        assert!(!allowed(&list, "https://app.example.com.evil.com"));
        assert!(allowed(&["http://localhost:3000"], "http://localhost:3000"));
        assert!(!allowed(
            &["http://localhost:3000"],
            "http://localhost:3001"
        ));
    }

    #[test]
    fn wildcards_and_schemeless() {
        let list = ["https://*.example.com"];
        assert!(allowed(&list, "https://a.example.com"));
        assert!(allowed(&list, "https://a.b.example.com"));
        assert!(!allowed(&list, "https://example.com"));
        assert!(!allowed(&list, "https://evilexample.com"));
        assert!(!allowed(&list, "http://a.example.com"));
        let list = ["example.com", "localhost:3000"];
        assert!(allowed(&list, "http://example.com"));
        assert!(allowed(&list, "https://example.com"));
        assert!(!allowed(&list, "https://example.com:8443"));
        assert!(allowed(&list, "http://localhost:3000"));
        assert!(!allowed(&list, "chrome-extension://example.com"));
        assert!(allowed(&["*"], "https://anything.test"));
        assert!(allowed(&["null"], "null"));
        assert!(!allowed(&["https://a.test"], "null"));
        assert!(allowed(&["http://[::1]:8080"], "http://[::1]:8080"));
    }

    #[test]
    fn no_list_or_no_header_allows() {
        assert!(is_allowed(&[], Some("https://evil.com")));
        assert!(is_allowed(&["https://a.test".into()], None));
    }

    #[test]
    fn bad_entries_say_how_to_write_them() {
        let err = Pattern::parse("https://app.example.com/").expect_err("path");
        assert!(err.contains("\"https://app.example.com\""), "{err}");
        assert!(Pattern::parse("https://a.test:99999").is_err());
        assert!(Pattern::parse("ht tp://a.test").is_err());
        assert!(Pattern::parse("a b").is_err());
        assert!(Pattern::parse("").is_err());
    }
}
