//! A minimal keep-alive HTTP/1.1 client for the publishers and the stats queries.
//!
//! The publishers send tens of thousands of small POSTs per second over a few connections;
//! a full HTTP client would cost the bench more CPU than the request is worth, and all three
//! targets' HTTP endpoints are plain HTTP/1.1 on loopback. This one writes a request, parses
//! the status and headers with httparse, and reads a `Content-Length` or chunked body. A
//! connection the server closed is reopened once, transparently.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head or body accepted.
const MAX_RESPONSE: usize = 8 * 1024 * 1024;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed request.
#[derive(Debug, Error)]
pub enum HttpError {
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection mid-response")]
    Eof,
    #[error("the response is not valid HTTP/1.1: {0}")]
    Malformed(String),
    #[error("no answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection to one server.
#[derive(Debug)]
pub struct HttpClient {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: BytesMut,
    request: Vec<u8>,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> HttpClient {
        HttpClient {
            addr,
            stream: None,
            buf: BytesMut::with_capacity(4096),
            request: Vec::with_capacity(512),
        }
    }

    pub async fn get(&mut self, path: &str) -> Result<Response, HttpError> {
        self.send("GET", path, None, &[]).await
    }

    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Response, HttpError> {
        self.send("POST", path, Some(content_type), body).await
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response, HttpError> {
        self.request.clear();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{}Content-Length: {}\r\n\r\n",
            self.addr,
            content_type.map_or(String::new(), |t| format!("Content-Type: {t}\r\n")),
            body.len()
        );
        self.request.extend_from_slice(head.as_bytes());
        self.request.extend_from_slice(body);
        let reused = self.stream.is_some();
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange()).await {
            Ok(Ok(r)) => Ok(r),
            // A kept-alive connection the server closed meanwhile: once more on a fresh one.
            Ok(Err(HttpError::Eof | HttpError::Io(_))) if reused => {
                self.stream = None;
                match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange()).await {
                    Ok(r) => r,
                    Err(_) => Err(HttpError::Timeout),
                }
            }
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(HttpError::Timeout)
            }
        }
    }

    /// Writes the prepared request and reads one response.
    async fn exchange(&mut self) -> Result<Response, HttpError> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)
                .await
                .map_err(|source| HttpError::Connect {
                    addr: self.addr,
                    source,
                })?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
            self.buf.clear();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(HttpError::Eof);
        };
        stream.write_all(&self.request).await?;
        let (status, head_len, framing, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let framing = Framing::of(response.headers)?;
                    let close = response.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                    });
                    break (response.code.unwrap_or(0), n, framing, close);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_RESPONSE {
                        return Err(HttpError::Malformed(
                            "the response head is too large".into(),
                        ));
                    }
                    read_more(stream, &mut self.buf).await?;
                }
                Err(e) => return Err(HttpError::Malformed(e.to_string())),
            }
        };
        self.buf.advance(head_len);
        let body = match framing {
            Framing::Length(len) => {
                while self.buf.len() < len {
                    read_more(stream, &mut self.buf).await?;
                }
                self.buf.split_to(len).to_vec()
            }
            Framing::Chunked => read_chunked(stream, &mut self.buf).await?,
            Framing::UntilClose => {
                loop {
                    self.buf.reserve(4096);
                    if stream.read_buf(&mut self.buf).await? == 0 {
                        break;
                    }
                    if self.buf.len() > MAX_RESPONSE {
                        return Err(HttpError::Malformed(
                            "the response body is too large".into(),
                        ));
                    }
                }
                self.stream = None;
                self.buf.split().to_vec()
            }
        };
        if close {
            self.stream = None;
        }
        Ok(Response { status, body })
    }
}

/// How the body's end is marked.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Framing {
    fn of(headers: &[httparse::Header<'_>]) -> Result<Framing, HttpError> {
        for h in headers {
            if h.name.eq_ignore_ascii_case("content-length") {
                let len = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .filter(|l| *l <= MAX_RESPONSE)
                    .ok_or_else(|| HttpError::Malformed("bad Content-Length".into()))?;
                return Ok(Framing::Length(len));
            }
            if h.name.eq_ignore_ascii_case("transfer-encoding")
                && String::from_utf8_lossy(h.value)
                    .to_ascii_lowercase()
                    .contains("chunked")
            {
                return Ok(Framing::Chunked);
            }
        }
        Ok(Framing::UntilClose)
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), HttpError> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(HttpError::Eof);
    }
    Ok(())
}

/// A chunked body: size lines, data, the terminating zero chunk and its trailer.
async fn read_chunked(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            read_more(stream, buf).await?;
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Malformed(format!("bad chunk size {size_text:?}")))?;
        buf.advance(line_end + 2);
        if size == 0 {
            // Skip trailers up to the empty line.
            loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    buf.advance(p + 2);
                    if p == 0 {
                        return Ok(body);
                    }
                    continue;
                }
                read_more(stream, buf).await?;
            }
        }
        if body.len() + size > MAX_RESPONSE {
            return Err(HttpError::Malformed(
                "the response body is too large".into(),
            ));
        }
        while buf.len() < size + 2 {
            read_more(stream, buf).await?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.advance(size + 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn server(answers: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            for answer in answers {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await.expect("read");
                s.write_all(answer).await.expect("write");
            }
        });
        addr
    }

    #[tokio::test]
    async fn length_and_chunked_bodies_on_one_connection() {
        let addr = server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{\"recipients\":3}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        ])
        .await;
        let mut c = HttpClient::new(addr);
        let r = c
            .post("/broadcast", "text/plain", b"hi")
            .await
            .expect("post");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "{\"recipients\":3}");
        let r = c.get("/stats").await.expect("get");
        assert_eq!(r.text(), "{\"a\":1}");
    }
}
