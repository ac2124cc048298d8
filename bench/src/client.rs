//! What one load client does once its WebSocket is open: receive and count (idle, broadcast,
//! topics), send and wait for the echo (echo, soak), send numbered messages at a steady pace
//! and log every answer (fault), or speak the `wsgate.stream.v1` subprotocol and keep its
//! position in the stream (streams). The same code drives every target.
//!
//! Reading is one `read` per wake-up into a per-client buffer, then every complete frame in it
//! is handled; the clock is read once per `read`, not once per message. Pings get a masked pong,
//! a close frame gets a close back and ends the client. An idle client only waits for
//! readability and allocates its buffer when the first bytes arrive, so holding many idle
//! clients costs the bench little.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::frame::{self, Header};
use crate::handshake::Conn;
use crate::ledger::Ledger;
use crate::recorder::Recorder;
use crate::stamp;
use crate::streamwire::{self, Book, Slot};

/// Bytes reserved in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// What a client does after connecting.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Receive and count whatever arrives.
    Receive,
    /// Once the value turns `true`: send a stamped message, wait for it to come back, repeat.
    /// Echo with this many messages in flight, from the moment the flag turns true.
    Echo(watch::Receiver<bool>, usize),
    /// Once the flag turns true: one stamped message every interval, waiting for something
    /// to come back in between (its echo, or a broadcast); a steady, moderate client.
    Paced(watch::Receiver<bool>, std::time::Duration),
    /// Once the flag turns true: a numbered message every interval, open loop (whether or not
    /// answers come), each send and each answer written to the ledger; reads on after the
    /// ledger says to stop sending.
    Numbered(watch::Receiver<bool>, std::time::Duration, Arc<Ledger>),
    /// Offer `wsgate.stream.v1`, parse every frame as its JSON, count publications (and plain
    /// `message` frames) as deliveries, and keep this client's position and what its connection
    /// received in its slot of the book.
    Streams(Arc<Book>),
}

impl Behaviour {
    /// The subprotocol a client of this behaviour offers in its upgrade.
    pub fn subprotocol(&self) -> Option<&'static str> {
        match self {
            Behaviour::Streams(_) => Some(streamwire::SUBPROTOCOL),
            _ => None,
        }
    }
}

/// Why a client stopped.
#[derive(Debug)]
pub enum End {
    /// The server sent a close frame (its code, if any).
    Closed(Option<u16>),
    /// The server closed the TCP connection without a close frame.
    Eof,
    /// Reading or writing failed, or the server broke the framing rules.
    Failed(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed(Some(code)) => write!(f, "the server closed the connection with {code}"),
            End::Closed(None) => write!(f, "the server closed the connection (no code)"),
            End::Eof => write!(f, "the server dropped the connection without a close frame"),
            End::Failed(e) => write!(f, "the connection failed: {e}"),
        }
    }
}

/// Runs client `id` until the server ends it (or the task is aborted).
pub async fn run(conn: Conn, id: usize, behaviour: Behaviour, recorder: Arc<Recorder>) {
    let mut reader = Reader::new(conn);
    let end = match behaviour {
        Behaviour::Receive => receive(&mut reader, id, &recorder).await,
        Behaviour::Echo(start, in_flight) => {
            echo(&mut reader, id, &recorder, start, in_flight).await
        }
        Behaviour::Paced(start, every) => paced(&mut reader, id, &recorder, start, every).await,
        Behaviour::Numbered(start, every, ledger) => {
            numbered(&mut reader, id, &recorder, start, every, &ledger).await
        }
        Behaviour::Streams(book) => streams(&mut reader, id, &recorder, &book).await,
    };
    recorder.server_ended(end.to_string());
}

async fn receive(reader: &mut Reader, id: usize, recorder: &Recorder) -> End {
    let mut latencies = Vec::with_capacity(64);
    loop {
        match reader.read_some(recorder.recording(), &mut latencies).await {
            Ok(n) => recorder.record(id, n, &latencies),
            Err(end) => return end,
        }
        latencies.clear();
    }
}

async fn streams(reader: &mut Reader, id: usize, recorder: &Recorder, book: &Book) -> End {
    reader.slot = Some(book.start(id));
    let mut latencies = Vec::with_capacity(64);
    loop {
        let read = reader.read_some(recorder.recording(), &mut latencies).await;
        // Once per read, not per frame: the scenario reads the book while the client runs,
        // and after its task is gone.
        if let Some(slot) = &reader.slot {
            book.store(id, slot);
        }
        match read {
            Ok(n) => recorder.record(id, n, &latencies),
            Err(end) => return end,
        }
        latencies.clear();
    }
}

async fn echo(
    reader: &mut Reader,
    id: usize,
    recorder: &Recorder,
    mut start: watch::Receiver<bool>,
    in_flight: usize,
) -> End {
    if start.wait_for(|go| *go).await.is_err() {
        return End::Failed("the bench stopped before the echo phase started".into());
    }
    let mut latencies = Vec::with_capacity(4);
    let mut out = Vec::with_capacity(128 * in_flight);
    let mut seq = 0u64;
    // Send `in_flight` messages, then as many as came back: the number in flight stays put.
    let mut to_send = in_flight;
    loop {
        out.clear();
        for _ in 0..to_send {
            let message = stamp::message(seq);
            seq += 1;
            frame::encode_client(
                frame::OP_TEXT,
                message.as_bytes(),
                frame::random_mask(),
                &mut out,
            );
        }
        if let Err(e) = reader.stream.write_all(&out).await {
            return End::Failed(format!("sending: {e}"));
        }
        loop {
            match reader.read_some(recorder.recording(), &mut latencies).await {
                Ok(0) => continue,
                Ok(n) => {
                    recorder.record(id, n, &latencies);
                    latencies.clear();
                    to_send = n as usize;
                    break;
                }
                Err(end) => return end,
            }
        }
    }
}

async fn paced(
    reader: &mut Reader,
    id: usize,
    recorder: &Recorder,
    mut start: watch::Receiver<bool>,
    every: std::time::Duration,
) -> End {
    if start.wait_for(|go| *go).await.is_err() {
        return End::Failed("the bench stopped before the paced phase started".into());
    }
    // Clients start spread over one interval, not all at once.
    let offset = every.mul_f64((id % 1000) as f64 / 1000.0);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut latencies = Vec::with_capacity(4);
    let mut out = Vec::with_capacity(128);
    let mut seq = 0u64;
    loop {
        tick.tick().await;
        out.clear();
        frame::encode_client(
            frame::OP_TEXT,
            stamp::message(seq).as_bytes(),
            frame::random_mask(),
            &mut out,
        );
        seq += 1;
        if let Err(e) = reader.stream.write_all(&out).await {
            return End::Failed(format!("sending: {e}"));
        }
        loop {
            match reader.read_some(recorder.recording(), &mut latencies).await {
                Ok(0) => continue,
                Ok(n) => {
                    recorder.record(id, n, &latencies);
                    latencies.clear();
                    break;
                }
                Err(end) => return end,
            }
        }
    }
}

async fn numbered(
    reader: &mut Reader,
    id: usize,
    recorder: &Recorder,
    mut start: watch::Receiver<bool>,
    every: std::time::Duration,
    ledger: &Ledger,
) -> End {
    if start.wait_for(|go| *go).await.is_err() {
        return End::Failed("the bench stopped before the fault phase started".into());
    }
    reader.seqs = Some(Vec::with_capacity(8));
    // Clients start spread over one interval, so the total rate is steady.
    let offset = every.mul_f64(id as f64 / ledger.clients().max(1) as f64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut latencies = Vec::new();
    let mut out = Vec::with_capacity(128);
    loop {
        // `read_some` may be dropped mid-way when a tick comes first: it keeps what it read
        // (the seqs, a close) in the reader, so nothing is lost.
        tokio::select! {
            _ = tick.tick(), if ledger.sending() => {
                let now = stamp::now_nanos();
                let seq = ledger.send(id, now);
                out.clear();
                frame::encode_client(
                    frame::OP_TEXT,
                    stamp::message_at(now, seq).as_bytes(),
                    frame::random_mask(),
                    &mut out,
                );
                if let Err(e) = reader.stream.write_all(&out).await {
                    return End::Failed(format!("sending: {e}"));
                }
            }
            read = reader.read_some(false, &mut latencies) => {
                if let Err(end) = read {
                    return end;
                }
            }
        }
        let seqs = reader.seqs.get_or_insert_default();
        if !seqs.is_empty() {
            ledger.answered(id, seqs, stamp::now_nanos());
            recorder.record(id, seqs.len() as u64, &[]);
            seqs.clear();
        }
    }
}

/// The receiving half of a client: buffer, frame parser, and the answers to control frames.
struct Reader {
    stream: TcpStream,
    buf: BytesMut,
    /// Control-frame answers waiting to be written.
    out: Vec<u8>,
    /// The send time of a fragmented message whose first fragment has arrived.
    fragment_stamp: Option<u64>,
    /// A close frame arrived behind data messages: reported on the next call, after them.
    closed: Option<End>,
    /// When set, the sequence number of every data message received is pushed here (numbered
    /// clients): the messages' own numbers, kept even if a call is dropped half-way.
    seqs: Option<Vec<u64>>,
    /// The sequence number of a fragmented message whose first fragment has arrived.
    fragment_seq: Option<u64>,
    /// When set, every text frame is a frame of the `wsgate.stream.v1` subprotocol, read into
    /// this client's slot (streams clients); only its data messages are counted.
    slot: Option<Slot>,
}

impl Reader {
    fn new(conn: Conn) -> Reader {
        // No leftover: start without a buffer (see read_some).
        let buf = if conn.leftover.is_empty() {
            BytesMut::new()
        } else {
            conn.leftover
        };
        Reader {
            stream: conn.stream,
            buf,
            out: Vec::new(),
            fragment_stamp: None,
            closed: None,
            seqs: None,
            fragment_seq: None,
            slot: None,
        }
    }

    /// Handles the frames already buffered, or else reads once and handles what arrived.
    /// Returns the data messages completed; with `timed`, pushes their latencies (µs).
    ///
    /// Dropped half-way (a `select!`), it loses only its return value: the bytes read stay
    /// buffered or handled, seqs and a close frame are kept in `self`, and control-frame answers
    /// not yet written stay in `out` for the next call.
    async fn read_some(&mut self, timed: bool, latencies: &mut Vec<u64>) -> Result<u64, End> {
        if let Some(end) = self.closed.take() {
            return Err(end);
        }
        if !self.has_frame() {
            if self.buf.capacity() == 0 {
                // Idle clients sit here without a buffer until the server sends something.
                self.stream
                    .readable()
                    .await
                    .map_err(|e| End::Failed(e.to_string()))?;
            }
            self.buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Err(End::Eof),
                Ok(_) => {}
                Err(e) => return Err(End::Failed(e.to_string())),
            }
        }
        // A streams client stamps its `joined` frames with the time, timed or not.
        let now = if timed || self.slot.is_some() {
            stamp::now_nanos()
        } else {
            0
        };
        let mut messages = 0;
        let mut closed = None;
        while let Some(h) = self.complete_frame()? {
            let payload = &self.buf[h.header_len..h.frame_len()];
            match h.opcode {
                frame::OP_TEXT | frame::OP_BINARY if h.fin && self.slot.is_some() => {
                    if let Some(slot) = self.slot.as_mut() {
                        if h.opcode == frame::OP_TEXT {
                            messages += slot.frame(payload, now, timed, latencies);
                        } else {
                            // The protocol sends every frame as text, binary payloads too.
                            return Err(End::Failed(
                                "a binary frame on a wsgate.stream.v1 connection".into(),
                            ));
                        }
                    }
                }
                frame::OP_TEXT | frame::OP_BINARY | frame::OP_CONTINUATION
                    if self.slot.is_some() =>
                {
                    // The gateway writes each message as one frame; a client that reassembled
                    // fragments is not what this bench measures.
                    return Err(End::Failed(
                        "a fragmented message on a wsgate.stream.v1 connection".into(),
                    ));
                }
                frame::OP_TEXT | frame::OP_BINARY if h.fin => {
                    messages += 1;
                    if timed && let Some(l) = stamp::latency_micros(payload, now) {
                        latencies.push(l);
                    }
                    if let Some(seqs) = self.seqs.as_mut()
                        && let Some(seq) = stamp::parse_seq(payload)
                    {
                        seqs.push(seq);
                    }
                }
                frame::OP_TEXT | frame::OP_BINARY => {
                    self.fragment_stamp = stamp::parse(payload);
                    self.fragment_seq = stamp::parse_seq(payload);
                }
                frame::OP_CONTINUATION if h.fin => {
                    messages += 1;
                    if timed && let Some(sent) = self.fragment_stamp.take() {
                        latencies.push(now.saturating_sub(sent) / 1000);
                    }
                    if let Some(seq) = self.fragment_seq.take()
                        && let Some(seqs) = self.seqs.as_mut()
                    {
                        seqs.push(seq);
                    }
                }
                frame::OP_PING => {
                    frame::encode_client(
                        frame::OP_PONG,
                        payload,
                        frame::random_mask(),
                        &mut self.out,
                    );
                }
                frame::OP_CLOSE => {
                    // Echo the status code back, as RFC 6455 asks.
                    let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    let echo = payload.get(..2).unwrap_or(&[]);
                    frame::encode_client(
                        frame::OP_CLOSE,
                        echo,
                        frame::random_mask(),
                        &mut self.out,
                    );
                    closed = Some(code);
                }
                _ => {}
            }
            self.buf.advance(h.frame_len());
            if closed.is_some() {
                break;
            }
        }
        if let Some(code) = closed {
            self.closed = Some(End::Closed(code));
        }
        // Written piece by piece, what is left staying in `out`, so that a dropped call
        // neither loses nor repeats part of a frame.
        while !self.out.is_empty() {
            match self.stream.write(&self.out).await {
                Ok(n) if n > 0 => {
                    self.out.drain(..n);
                }
                written => {
                    self.out.clear();
                    if self.closed.is_some() {
                        break;
                    }
                    let e = written
                        .err()
                        .map_or("the socket took nothing".into(), |e| e.to_string());
                    return Err(End::Failed(format!("answering a control frame: {e}")));
                }
            }
        }
        if messages == 0
            && let Some(end) = self.closed.take()
        {
            return Err(end);
        }
        Ok(messages)
    }

    /// Whether a whole frame is already buffered (so no read is needed).
    fn has_frame(&self) -> bool {
        match frame::parse_header(&self.buf) {
            Ok(Some(h)) => self.buf.len() >= h.frame_len(),
            Ok(None) => false,
            // Let complete_frame report it.
            Err(_) => true,
        }
    }

    /// The header of the next frame if all of it is buffered.
    fn complete_frame(&self) -> Result<Option<Header>, End> {
        match frame::parse_header(&self.buf) {
            Ok(Some(h)) if self.buf.len() >= h.frame_len() => Ok(Some(h)),
            Ok(_) => Ok(None),
            Err(e) => Err(End::Failed(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A server that upgrades, then sends `script` and reports what the client sent back.
    async fn scripted_server(
        script: Vec<u8>,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut head = vec![0u8; 1024];
            let n = s.read(&mut head).await.expect("read");
            let head = String::from_utf8_lossy(&head[..n]);
            let answer =
                crate::handshake::switching_protocols(&head, crate::handshake::correct_accept);
            s.write_all(answer.as_bytes()).await.expect("write");
            s.write_all(&script).await.expect("write");
            let mut got = Vec::new();
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_end(&mut got))
                    .await;
            got
        });
        (addr, task)
    }

    #[tokio::test]
    async fn counts_times_answers_pings_and_stops_on_close() {
        let stamped = stamp::message(1);
        let mut script = vec![0x81, stamped.len() as u8];
        script.extend_from_slice(stamped.as_bytes());
        script.extend_from_slice(&[0x89, 0x01, b'p']); // ping "p"
        // A fragmented message: "0..." then continuation.
        script.extend_from_slice(&[0x01, 20]);
        script.extend_from_slice(&stamped.as_bytes()[..20]);
        script.extend_from_slice(&[0x80, 0x01, b'x']);
        script.extend_from_slice(&[0x88, 0x02, 0x03, 0xE8]); // close 1000
        let (addr, server) = scripted_server(script).await;
        let conn = crate::handshake::connect(Ipv4Addr::LOCALHOST, addr, "/")
            .await
            .expect("connect");
        let recorder = Arc::new(Recorder::new(1));
        recorder.set_recording(true);
        run(conn, 0, Behaviour::Receive, recorder.clone()).await;
        assert_eq!(recorder.delivered(), 2);
        assert_eq!(recorder.latencies().samples, 2);
        assert_eq!(recorder.closed_by_server(), 1);
        assert!(recorder.first_end().expect("end").contains("1000"));
        let sent = server.await.expect("server");
        // A masked pong with "p", then a masked close with 1000.
        assert_eq!(sent[0], 0x8A);
        assert_eq!(sent[1], 0x81);
        assert_eq!(sent[6] ^ sent[2], b'p');
        assert_eq!(sent[7], 0x88);
        assert_eq!(sent[8], 0x82);
    }

    /// A server frame: text, unmasked, `payload` under 64 KiB.
    fn text_frame(payload: &str) -> Vec<u8> {
        let mut out = Vec::new();
        match u16::try_from(payload.len()) {
            Ok(n) if n < 126 => out.extend_from_slice(&[0x81, n as u8]),
            Ok(n) => {
                out.extend_from_slice(&[0x81, 126]);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Err(_) => panic!("test frames are small"),
        }
        out.extend_from_slice(payload.as_bytes());
        out
    }

    #[tokio::test]
    async fn a_streams_client_counts_publications_and_keeps_its_position() {
        let stamped = stamp::message(7);
        let mut script = Vec::new();
        script.extend(text_frame(
            r#"{"type":"joined","stream":"topic:s0","epoch":"e1","offset":4}"#,
        ));
        for offset in [5, 6] {
            script.extend(text_frame(&format!(
                r#"{{"type":"publication","stream":"topic:s0","epoch":"e1","offset":{offset},"data":"{stamped}"}}"#
            )));
        }
        script.extend(text_frame(r#"{"type":"pong"}"#));
        script.extend_from_slice(&[0x88, 0x02, 0x03, 0xE8]); // close 1000
        let (addr, _server) = scripted_server(script).await;
        let conn = crate::handshake::connect(Ipv4Addr::LOCALHOST, addr, "/")
            .await
            .expect("connect");
        let recorder = Arc::new(Recorder::new(1));
        recorder.set_recording(true);
        let book = Arc::new(Book::new(1));
        run(conn, 0, Behaviour::Streams(book.clone()), recorder.clone()).await;
        // Two publications; joined and pong are not deliveries.
        assert_eq!(recorder.delivered(), 2);
        assert_eq!(recorder.latencies().samples, 2);
        let slot = book.get(0);
        assert_eq!((slot.epoch.as_str(), slot.offset), ("e1", 6));
        assert_eq!((slot.received, slot.gaps, slot.duplicates), (2, 0, 0));
        assert!(slot.joined.is_some());
        assert_eq!(
            Behaviour::Streams(book).subprotocol(),
            Some("wsgate.stream.v1")
        );
    }
}
