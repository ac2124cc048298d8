//! A tiny real DNS server for tests: authoritative for the names a test sets, on loopback.
//!
//! Tests of DNS discovery need records that change between two lookups, which no system
//! resolver on a test machine offers. [`TestDns`] listens on `127.0.0.1:<port>` over UDP and
//! TCP (the same port, so one `SocketAddr` serves a resolver that falls back to TCP) and
//! answers A/AAAA questions from a table the test edits with [`TestDns::set`]:
//!
//! - a set name: its records of the asked type (NOERROR, possibly with an empty answer), TTL 0;
//! - any other name: NXDOMAIN.
//!
//! The wire format is written by hand (RFC 1035 §4): parse the one question, copy it into the
//! answer, append resource records that point back at it. Answers over UDP that exceed 512
//! bytes are sent truncated (TC) with no records, so a resolver retries over TCP, where the
//! full answer goes. Names match case-insensitively, with or without a trailing dot.
//!
//! Everything runs in one task that is aborted when the `TestDns` is dropped (TCP connections
//! live in a `JoinSet` inside it, so they end too).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;

const RCODE_NOERROR: u8 = 0;
const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;
const RCODE_REFUSED: u8 = 5;

/// The largest UDP answer sent (plain DNS, no EDNS); larger ones go out truncated.
const MAX_UDP: usize = 512;
/// A TCP connection idle this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

type Table = Arc<Mutex<HashMap<String, Vec<IpAddr>>>>;

/// A DNS server on loopback answering A/AAAA from a table; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    table: Table,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

/// Queries answered, per transport.
#[derive(Default)]
struct Counts {
    udp: AtomicUsize,
    tcp: AtomicUsize,
}

impl TestDns {
    /// Starts the server on `127.0.0.1:0` (UDP and TCP on the same port), with no names.
    pub async fn start() -> Self {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("local addr of the test DNS socket");
        let table = Table::default();
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(serve(udp, tcp, table.clone(), counts.clone()));
        Self {
            addr,
            table,
            counts,
            task,
        }
    }

    /// The address to give a resolver (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `name` exist with exactly these addresses (A for IPv4, AAAA for IPv6), replacing
    /// what it had. An empty list keeps the name existing with no records (NOERROR, empty).
    pub fn set(&self, name: &str, ips: &[IpAddr]) {
        lock(&self.table).insert(normalize(name), ips.to_vec());
    }

    /// Makes `name` unknown again (NXDOMAIN).
    pub fn remove(&self, name: &str) {
        lock(&self.table).remove(&normalize(name));
    }

    /// How many queries were answered so far (UDP and TCP), to check that a client asked again.
    pub fn queries(&self) -> usize {
        self.counts.udp.load(Ordering::Relaxed) + self.counts.tcp.load(Ordering::Relaxed)
    }

    /// How many of those came over TCP (a resolver retrying a truncated UDP answer).
    pub fn tcp_queries(&self) -> usize {
        self.counts.tcp.load(Ordering::Relaxed)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for TestDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDns").field("addr", &self.addr).finish()
    }
}

fn lock(table: &Table) -> std::sync::MutexGuard<'_, HashMap<String, Vec<IpAddr>>> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A UDP socket and a TCP listener on the same loopback port (a few tries: the TCP port can
/// be taken by someone else after the UDP bind picked it).
async fn bind_pair() -> (UdpSocket, TcpListener) {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the test DNS UDP socket on 127.0.0.1:0");
        let addr = udp.local_addr().expect("local addr of the test DNS socket");
        match TcpListener::bind(addr).await {
            Ok(tcp) => return (udp, tcp),
            Err(err) => last_err = Some(err),
        }
    }
    panic!("no loopback port free for both UDP and TCP: {last_err:?}");
}

async fn serve(udp: UdpSocket, tcp: TcpListener, table: Table, counts: Arc<Counts>) {
    let mut conns = JoinSet::new();
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            recv = udp.recv_from(&mut buf) => {
                let Ok((len, peer)) = recv else { continue };
                if let Some(reply) = answer(&buf[..len], &table, MAX_UDP) {
                    counts.udp.fetch_add(1, Ordering::Relaxed);
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
            accepted = tcp.accept() => {
                if let Ok((stream, _)) = accepted {
                    conns.spawn(serve_tcp(stream, table.clone(), counts.clone()));
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// DNS over TCP: each message is prefixed by its 2-byte big-endian length.
async fn serve_tcp(mut stream: TcpStream, table: Table, counts: Arc<Counts>) {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut msg).await.is_err() {
            return;
        }
        let Some(reply) = answer(&msg, &table, usize::from(u16::MAX)) else {
            return;
        };
        counts.tcp.fetch_add(1, Ordering::Relaxed);
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut out = Vec::with_capacity(2 + reply.len());
        out.extend_from_slice(&reply_len.to_be_bytes());
        out.extend_from_slice(&reply);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// The reply to one query message, or `None` when it is not worth one (too short to carry an
/// id, or itself a response).
fn answer(query: &[u8], table: &Table, max_len: usize) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let id = [query[0], query[1]];
    let opcode = (query[2] >> 3) & 0x0f;
    let rd = query[2] & 0x01;
    let qdcount = u16::from_be_bytes([query[4], query[5]]);

    let header = |rcode: u8, aa: bool, tc: bool, qd: u16, an: u16| {
        let mut h = Vec::with_capacity(12);
        h.extend_from_slice(&id);
        // QR=1, opcode echoed, AA, TC, RD echoed; RA=1 (we answer everything we can).
        h.push(0x80 | (opcode << 3) | (u8::from(aa) << 2) | (u8::from(tc) << 1) | rd);
        h.push(0x80 | rcode);
        h.extend_from_slice(&qd.to_be_bytes());
        h.extend_from_slice(&an.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0]); // NSCOUNT, ARCOUNT
        h
    };

    if opcode != 0 {
        return Some(header(RCODE_NOTIMP, false, false, 0, 0));
    }
    if qdcount != 1 {
        return Some(header(RCODE_FORMERR, false, false, 0, 0));
    }
    let Some((name, qend)) = parse_name(query, 12) else {
        return Some(header(RCODE_FORMERR, false, false, 0, 0));
    };
    let Some(fixed) = query.get(qend..qend + 4) else {
        return Some(header(RCODE_FORMERR, false, false, 0, 0));
    };
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let question = &query[12..qend + 4];

    let reply_with = |rcode: u8, tc: bool, records: &[Vec<u8>]| {
        let an = if tc { 0 } else { records.len() };
        let mut out = header(rcode, true, tc, 1, u16::try_from(an).unwrap_or(u16::MAX));
        out.extend_from_slice(question);
        if !tc {
            for record in records {
                out.extend_from_slice(record);
            }
        }
        out
    };

    if qclass != CLASS_IN && qclass != CLASS_ANY {
        return Some(reply_with(RCODE_REFUSED, false, &[]));
    }
    let Some(ips) = lock(table).get(&name).cloned() else {
        return Some(reply_with(RCODE_NXDOMAIN, false, &[]));
    };
    let records: Vec<Vec<u8>> = ips
        .iter()
        .filter_map(|ip| match (ip, qtype) {
            (IpAddr::V4(v4), TYPE_A | TYPE_ANY) => Some(record(TYPE_A, &v4.octets())),
            (IpAddr::V6(v6), TYPE_AAAA | TYPE_ANY) => Some(record(TYPE_AAAA, &v6.octets())),
            _ => None,
        })
        .collect();
    let full = reply_with(RCODE_NOERROR, false, &records);
    if full.len() > max_len {
        return Some(reply_with(RCODE_NOERROR, true, &records));
    }
    Some(full)
}

/// One answer record for the question's name (a compression pointer to offset 12), TTL 0.
fn record(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(12 + rdata.len());
    r.extend_from_slice(&[0xc0, 0x0c]);
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&CLASS_IN.to_be_bytes());
    r.extend_from_slice(&0u32.to_be_bytes());
    let len = u16::try_from(rdata.len()).unwrap_or(0);
    r.extend_from_slice(&len.to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// The (lower-cased, dot-joined) name at `start` and the offset just past it. Questions carry
/// no compression pointers, so a pointer is a format error here.
fn parse_name(msg: &[u8], start: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut pos = start;
    loop {
        let len = usize::from(*msg.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = msg.get(pos..pos + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
        if pos - start > 255 {
            return None;
        }
    }
    Some((labels.join("."), pos))
}
