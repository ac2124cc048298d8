//! Just enough of the Redis protocol (RESP2) for the streams scenario to ask whether a Redis
//! answers before it starts wsgate with the Redis engine, and to delete the keys its runs
//! left under their own prefix afterwards (the history and command-id keys would otherwise
//! sit in a shared Redis until they expire, an hour later for some).
//!
//! Hand-written over a TCP stream rather than the `redis` crate: a handful of commands, and
//! the bench keeps to the dependencies it has.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long connecting and each command may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Largest reply accepted (a SCAN page of short keys is a few tens of KiB).
const MAX_REPLY: usize = 16 * 1024 * 1024;
/// Keys asked for per SCAN page, and deleted per UNLINK.
const PAGE: usize = 1000;

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

/// Where a `redis://` URL points, and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`.
    pub addr: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: Option<u32>,
}

/// Reads `redis://[[user]:password@]host[:port][/db]`.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("{url:?} is not a redis:// URL"))?;
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let (host, db) = match rest.split_once('/') {
        Some((host, db)) => (host, db),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    let addr = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_owned()
    } else {
        format!("{host}:6379")
    };
    let db = match db.trim() {
        "" => None,
        n => Some(
            n.parse()
                .map_err(|_| format!("{url:?}: the database {n:?} is not a number"))?,
        ),
    };
    let (user, password) = match auth.map(|a| a.split_once(':').unwrap_or(("", a))) {
        None => (None, None),
        Some((user, password)) => (
            (!user.is_empty()).then(|| user.to_owned()),
            (!password.is_empty()).then(|| password.to_owned()),
        ),
    };
    Ok(Target {
        addr,
        user,
        password,
        db,
    })
}

/// One connection to a Redis.
#[derive(Debug)]
pub struct Redis {
    stream: TcpStream,
    buf: BytesMut,
}

impl Redis {
    /// Connects to the Redis of `url`, logs in and selects its database.
    pub async fn connect(url: &str) -> Result<Redis, String> {
        let target = parse_url(url)?;
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(&target.addr))
            .await
            .map_err(|_| format!("nothing answered at {} within {TIMEOUT:?}", target.addr))?
            .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
        let mut redis = Redis {
            stream,
            buf: BytesMut::with_capacity(4096),
        };
        if let Some(password) = &target.password {
            let mut args = vec!["AUTH"];
            args.extend(target.user.as_deref());
            args.push(password);
            redis.ok(&args).await?;
        }
        if let Some(db) = target.db {
            redis.ok(&["SELECT", &db.to_string()]).await?;
        }
        Ok(redis)
    }

    /// Sends one command and reads its reply.
    pub async fn command(&mut self, args: &[&str]) -> Result<Value, String> {
        let name = args.first().copied().unwrap_or("(no command)");
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        tokio::time::timeout(TIMEOUT, async {
            self.stream
                .write_all(&out)
                .await
                .map_err(|e| format!("sending {name}: {e}"))?;
            loop {
                if let Some((value, used)) = parse(&self.buf)? {
                    self.buf.advance(used);
                    return Ok(value);
                }
                if self.buf.len() > MAX_REPLY {
                    return Err(format!("the reply to {name} passed {MAX_REPLY} bytes"));
                }
                self.buf.reserve(4096);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => return Err(format!("Redis closed the connection after {name}")),
                    Ok(_) => {}
                    Err(e) => return Err(format!("reading the reply to {name}: {e}")),
                }
            }
        })
        .await
        .map_err(|_| format!("no reply to {name} within {TIMEOUT:?}"))?
    }

    /// A command that must not answer with an error.
    async fn ok(&mut self, args: &[&str]) -> Result<Value, String> {
        match self.command(args).await? {
            Value::Error(e) => Err(format!(
                "Redis refused {}: {e}",
                args.first().copied().unwrap_or("(no command)")
            )),
            v => Ok(v),
        }
    }

    /// Deletes every key that starts with `prefix`; how many.
    pub async fn delete_prefixed(&mut self, prefix: &str) -> Result<u64, String> {
        // The prefix is the bench's own, but a glob character in it would widen the match.
        if prefix.contains(['*', '?', '[', ']', '\\']) {
            return Err(format!(
                "{prefix:?} has glob characters; not deleting by it"
            ));
        }
        let pattern = format!("{prefix}*");
        let page = PAGE.to_string();
        let mut cursor = "0".to_owned();
        let mut deleted = 0;
        loop {
            let reply = self
                .ok(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", &page])
                .await?;
            let (next, keys) = scan_page(reply)?;
            for chunk in keys.chunks(PAGE) {
                let mut args = vec!["UNLINK"];
                args.extend(chunk.iter().map(String::as_str));
                if let Value::Int(n) = self.ok(&args).await? {
                    deleted += u64::try_from(n).unwrap_or(0);
                }
            }
            if next == "0" {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// Whether a Redis answers `PING` at `url`: `Err` says why not.
pub async fn ping(url: &str) -> Result<(), String> {
    let mut redis = Redis::connect(url).await?;
    match redis.command(&["PING"]).await? {
        Value::Simple(s) if s == "PONG" => Ok(()),
        other => Err(format!("it answered PING with {other:?}")),
    }
}

/// A SCAN reply: the next cursor and the keys of this page.
fn scan_page(reply: Value) -> Result<(String, Vec<String>), String> {
    let bad = |v: &Value| format!("SCAN answered {v:?}");
    let Value::Array(Some(parts)) = &reply else {
        return Err(bad(&reply));
    };
    match parts.as_slice() {
        [Value::Bulk(Some(cursor)), Value::Array(Some(keys))] => {
            let keys = keys
                .iter()
                .map(|k| match k {
                    Value::Bulk(Some(k)) => Ok(String::from_utf8_lossy(k).into_owned()),
                    other => Err(bad(other)),
                })
                .collect::<Result<_, _>>()?;
            Ok((String::from_utf8_lossy(cursor).into_owned(), keys))
        }
        _ => Err(bad(&reply)),
    }
}

/// Arrays nested deeper than this are refused: the commands used answer two levels at most,
/// and a deeper reply would only recurse this parser into the ground.
const MAX_DEPTH: usize = 4;

/// One reply at the start of `buf` and the bytes it took; `None` when more are needed.
fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, String> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Value, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("a reply nested deeper than {MAX_DEPTH} arrays"));
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..end].split_first() else {
        return Err("an empty line where a reply should start".into());
    };
    let line = String::from_utf8_lossy(line).into_owned();
    let after = end + 2;
    let number = || {
        line.parse::<i64>()
            .map_err(|_| format!("{line:?} is not a RESP length or integer"))
    };
    Ok(match kind {
        b'+' => Some((Value::Simple(line), after)),
        b'-' => Some((Value::Error(line), after)),
        b':' => Some((Value::Int(number()?), after)),
        b'$' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Value::Bulk(None), after)));
            };
            // The length is the server's word: no arithmetic on it may overflow.
            let Some(end) = after.checked_add(len).filter(|e| *e <= MAX_REPLY) else {
                return Err(format!(
                    "a {len}-byte string, more than this client accepts"
                ));
            };
            if buf.len() < end + 2 {
                return Ok(None);
            }
            Some((Value::Bulk(Some(buf[after..end].to_vec())), end + 2))
        }
        b'*' => {
            let Ok(count) = usize::try_from(number()?) else {
                return Ok(Some((Value::Array(None), after)));
            };
            let mut items = Vec::with_capacity(count.min(PAGE));
            let mut at = after;
            for _ in 0..count {
                let Some((item, used)) = parse_at(&buf[at..], depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                at += used;
            }
            Some((Value::Array(Some(items)), at))
        }
        other => return Err(format!("a reply of unknown type {:?}", char::from(other))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("redis://127.0.0.1:6379/"),
            Ok(Target {
                addr: "127.0.0.1:6379".into(),
                user: None,
                password: None,
                db: None
            })
        );
        let t = parse_url("redis://:secret@cache/2").expect("url");
        assert_eq!(
            (t.addr.as_str(), t.password.as_deref(), t.db),
            ("cache:6379", Some("secret"), Some(2))
        );
        let t = parse_url("redis://bench:pw@10.0.0.1:7000").expect("url");
        assert_eq!(t.user.as_deref(), Some("bench"));
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("redis:///0").is_err());
    }

    #[test]
    fn replies() {
        assert_eq!(
            parse(b"+PONG\r\n"),
            Ok(Some((Value::Simple("PONG".into()), 7)))
        );
        assert_eq!(parse(b"+PON"), Ok(None));
        assert_eq!(parse(b":12\r\n"), Ok(Some((Value::Int(12), 5))));
        assert_eq!(parse(b"$-1\r\n"), Ok(Some((Value::Bulk(None), 5))));
        let page = b"*2\r\n$1\r\n0\r\n*2\r\n$3\r\nk:a\r\n$3\r\nk:b\r\n";
        let (value, used) = parse(page).expect("valid").expect("complete");
        assert_eq!(used, page.len());
        assert_eq!(
            scan_page(value),
            Ok(("0".into(), vec!["k:a".into(), "k:b".into()]))
        );
        assert_eq!(parse(&page[..page.len() - 3]), Ok(None));
        assert!(parse(b"?x\r\n").is_err());
        assert!(parse(b"$18446744073709551615\r\n").is_err());
        assert!(parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n").is_err());
    }
}
