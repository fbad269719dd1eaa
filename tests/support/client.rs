//! A raw HTTP/1.1 client over `TcpStream`, so tests see the exact bytes the proxy
//! writes: status line with reason phrase, header lines, chunked framing and the
//! terminating zero-length chunk.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing (or not enough) arrived before the deadline.
    Timeout,
    /// The peer closed the connection.
    Eof,
    Malformed(String),
    Io(String),
}

/// A response head as received.
#[derive(Debug, Clone)]
pub struct Head {
    /// e.g. `HTTP/1.1 404 Nope`.
    pub status_line: String,
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    pub fn grip_headers(&self) -> Vec<&(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| n.to_ascii_lowercase().starts_with("grip-"))
            .collect()
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection.
pub struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> HttpConn {
        let stream = tokio::time::timeout(super::SLOW, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        HttpConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write request");
    }

    /// Sends an HTTP/1.1 request with `Host: fjord.test` unless `headers` names a host.
    pub async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        self.send_version(method, target, "HTTP/1.1", headers, body)
            .await;
    }

    pub async fn send_version(
        &mut self,
        method: &str,
        target: &str,
        version: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let mut out = format!("{method} {target} {version}\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            out.push_str("Host: fjord.test\r\n");
        }
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes).await;
    }

    pub async fn get(&mut self, target: &str, headers: &[(&str, &str)]) {
        self.send("GET", target, headers, b"").await;
    }

    /// Reads more bytes into the buffer; `Ok(0)` is end of stream.
    async fn fill(&mut self, deadline: Instant) -> Result<usize, ReadError> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(ReadError::Timeout),
            Ok(Err(e)) => Err(ReadError::Io(e.to_string())),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
        }
    }

    /// Reads until the buffer holds `\r\n` at or after `from`; returns the line end.
    async fn line_end(&mut self, from: usize, deadline: Instant) -> Result<usize, ReadError> {
        loop {
            if let Some(pos) = find(&self.buf[from..], b"\r\n") {
                return Ok(from + pos);
            }
            if self.fill(deadline).await? == 0 {
                return Err(ReadError::Eof);
            }
        }
    }

    async fn need(&mut self, len: usize, deadline: Instant) -> Result<(), ReadError> {
        while self.buf.len() < len {
            if self.fill(deadline).await? == 0 {
                return Err(ReadError::Eof);
            }
        }
        Ok(())
    }

    /// Reads a response head.
    pub async fn read_head(&mut self, timeout: Duration) -> Result<Head, ReadError> {
        let deadline = Instant::now() + timeout;
        let end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos;
            }
            if self.fill(deadline).await? == 0 {
                return Err(ReadError::Eof);
            }
        };
        let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_owned();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ReadError::Malformed(format!("status line {status_line:?}")))?;
        let reason = parts.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                Some((name.trim().to_owned(), value.trim().to_owned()))
            })
            .collect();
        Ok(Head {
            status_line,
            version,
            status,
            reason,
            headers,
        })
    }

    /// Reads one chunk of a chunked body; an empty vector is the terminating chunk
    /// (whose trailer section is consumed too).
    pub async fn read_chunk(&mut self, timeout: Duration) -> Result<Vec<u8>, ReadError> {
        let deadline = Instant::now() + timeout;
        let end = self.line_end(0, deadline).await?;
        let size_text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| ReadError::Malformed(format!("chunk size line {size_text:?}")))?;
        if size == 0 {
            // Trailer section: lines until an empty one.
            let mut from = end + 2;
            loop {
                let line_end = self.line_end(from, deadline).await?;
                if line_end == from {
                    self.buf.drain(..line_end + 2);
                    return Ok(Vec::new());
                }
                from = line_end + 2;
            }
        }
        let total = end + 2 + size + 2;
        self.need(total, deadline).await?;
        if &self.buf[total - 2..total] != b"\r\n" {
            return Err(ReadError::Malformed("chunk not followed by CRLF".into()));
        }
        let data = self.buf[end + 2..end + 2 + size].to_vec();
        self.buf.drain(..total);
        Ok(data)
    }

    /// Reads chunks until `done(decoded_so_far)` holds. Returns the decoded bytes, or
    /// the error with what was read before it.
    pub async fn read_chunks_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>, (ReadError, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut data = Vec::new();
        while !done(&data) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_chunk(left).await {
                Ok(chunk) if chunk.is_empty() => return Err((ReadError::Eof, data)),
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(e) => return Err((e, data)),
            }
        }
        Ok(data)
    }

    /// Reads chunks until `len` decoded bytes arrived.
    pub async fn read_stream(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, (ReadError, Vec<u8>)> {
        self.read_chunks_until(timeout, |d| d.len() >= len).await
    }

    /// Reads decoded chunk data until the terminating chunk; error if it does not
    /// come in time.
    pub async fn read_to_last_chunk(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<u8>, (ReadError, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut data = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_chunk(left).await {
                Ok(chunk) if chunk.is_empty() => return Ok(data),
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(e) => return Err((e, data)),
            }
        }
    }

    /// Raw bytes that arrive within `window` (empty when the connection stays quiet).
    pub async fn raw_within(&mut self, window: Duration) -> Vec<u8> {
        let deadline = Instant::now() + window;
        loop {
            match self.fill(deadline).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Whether the peer closes the connection within `timeout` (data is discarded).
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline).await {
                Ok(0) => return true,
                Ok(_) => self.buf.clear(),
                Err(ReadError::Timeout) => return false,
                Err(_) => return true,
            }
        }
    }

    /// Reads a complete response: `Content-Length`, chunked or close-delimited body.
    pub async fn read_response(&mut self, timeout: Duration) -> Result<Response, ReadError> {
        let deadline = Instant::now() + timeout;
        let head = self.read_head(timeout).await?;
        let left = || deadline.saturating_duration_since(Instant::now());
        let body = if head.is_chunked() {
            self.read_to_last_chunk(left()).await.map_err(|(e, _)| e)?
        } else if let Some(len) = head.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| ReadError::Malformed(format!("content-length {len:?}")))?;
            self.need(len, deadline).await?;
            self.buf.drain(..len).collect()
        } else if matches!(head.status, 204 | 304) || (100..200).contains(&head.status) {
            Vec::new()
        } else {
            loop {
                if self.fill(deadline).await? == 0 {
                    break;
                }
            }
            std::mem::take(&mut self.buf)
        };
        Ok(Response { head, body })
    }

    /// Bytes buffered but not consumed yet.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Shuts the connection down (the client goes away).
    pub async fn close(mut self) {
        let _ = self.stream.shutdown().await;
        drop(self);
    }
}

/// One request on a fresh connection, read to the end of its response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, ReadError> {
    let mut conn = HttpConn::connect(addr).await;
    conn.send(method, target, headers, body).await;
    conn.read_response(timeout).await
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
