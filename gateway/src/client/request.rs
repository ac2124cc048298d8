//! The client's HTTP upgrade request as the handshake reads it: where the head ends, the
//! parts the gateway uses (method, path, query, headers), and the address a client is counted
//! under behind trusted proxies.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::cidr::CidrList;

/// Where the request head ends: `Some(length)` once it is complete, `None` while more is to
/// come.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<usize>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The parts of the request the gateway uses.
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    /// Lower-cased names; repeated headers joined with ", ".
    pub(super) headers: HashMap<String, String>,
}

impl Request {
    pub(super) fn parse(head: &[u8]) -> Option<Self> {
        let mut raw = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut raw);
        req.parse(head).ok()?;
        let target = req.path?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: HashMap<String, String> = HashMap::new();
        for h in req.headers.iter() {
            let Ok(value) = std::str::from_utf8(h.value) else {
                continue;
            };
            headers
                .entry(h.name.to_ascii_lowercase())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.to_owned());
        }
        Some(Self {
            method: req.method?.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
        })
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub(super) fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header(name)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

/// The address a handshake is counted under: the TCP peer, or, when the peer is a trusted
/// proxy, the client it names (the rightmost `X-Forwarded-For` entry that is not itself a
/// trusted proxy, else `X-Real-IP`).
pub(super) fn client_addr(req: &Request, peer: IpAddr, trusted: &CidrList) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    if let Some(forwarded) = req.header("x-forwarded-for") {
        let mut last = None;
        for entry in forwarded.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                break;
            };
            last = Some(ip);
            if !trusted.contains(ip) {
                return ip;
            }
        }
        if let Some(ip) = last {
            return ip;
        }
    }
    req.header("x-real-ip")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer)
}
