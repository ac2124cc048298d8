//! A plain HTTP/1.1 client over TCP for the API tests: one request per connection, the
//! response read to the end (chunked bodies decoded), JSON helpers, and [`Api`], the HTTP API
//! of one test gateway.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{TestGateway, within};

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an error reply: status, JSON code, and words the message must contain.
    pub fn expect_error(&self, status: u16, code: &str, words: &[&str]) {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["error"], code, "{body}");
        let message = body["message"].as_str().expect("a message");
        for word in words {
            assert!(
                message.contains(word),
                "{message:?} should mention {word:?}"
            );
        }
    }
}

/// Decodes a chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = std::str::from_utf8(&raw[..end]).expect("chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`, `Host` the address it
/// goes to), read to the end.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let host = addr.to_string();
    let mut all = vec![("Host", host.as_str())];
    all.extend_from_slice(headers);
    http_exact(addr, method, path, &all, body).await
}

/// One HTTP/1.1 request with exactly these headers (no `Host` of its own), read to the end.
pub async fn http_exact(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    within("an HTTP exchange", async {
        let mut stream = TcpStream::connect(addr).await.expect("the API accepts");
        let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        if let Some(body) = body {
            stream.write_all(body).await.expect("write body");
        }
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let mut parsed_headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut parsed_headers);
        let head_len = match response.parse(&raw).expect("an HTTP response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("incomplete response: {raw:?}"),
        };
        let status = response.code.expect("a status");
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let rest = &raw[head_len..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        Reply {
            status,
            headers,
            body,
        }
    })
    .await
}

/// The API of one gateway, with or without a key.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub key: Option<String>,
}

impl Api {
    pub fn of(gw: &TestGateway) -> Self {
        Self {
            addr: gw.api_addr,
            key: None,
        }
    }

    pub fn with_key(mut self, key: &str) -> Self {
        self.key = Some(key.into());
        self
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
        let auth = self.key.as_ref().map(|k| format!("Bearer {k}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        http(self.addr, method, path, &headers, body).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body.to_string().as_bytes()))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    /// POST that must succeed; returns the JSON body.
    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let reply = self.post(path, body).await;
        let json = reply.json();
        assert_eq!(reply.status, 200, "POST {path}: {json}");
        assert_eq!(json["failed"], json!([]), "POST {path}: {json}");
        json
    }

    /// GET that must succeed; returns the JSON body.
    pub async fn query(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        let json = reply.json();
        assert_eq!(reply.status, 200, "GET {path}: {json}");
        assert_eq!(json["failed"], json!([]), "GET {path}: {json}");
        json
    }
}
