//! A scripted origin server: records every request it receives (method, target,
//! headers, body, arrival time) and answers each with whatever the test's handler
//! returns for it. HTTP/1.1 over `TcpListener`, plain or TLS, keep-alive, written by
//! hand so the test controls every response byte (`Content-Length` included).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::client::find;

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Request target: path and query.
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Add `Content-Length` when the headers do not carry one.
    pub auto_length: bool,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            reason: standard_reason(status).to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            auto_length: true,
        }
    }

    pub fn ok() -> Reply {
        Reply::new(200)
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl AsRef<[u8]>) -> Reply {
        self.body = body.as_ref().to_vec();
        self
    }

    /// A stream hold on `channels` (one `Grip-Channel` header) with a text body.
    pub fn stream(channels: &str, body: &str) -> Reply {
        Reply::ok()
            .header("Content-Type", "text/plain")
            .header("Grip-Hold", "stream")
            .header("Grip-Channel", channels)
            .body(body)
    }

    /// A response hold on `channels` with `timeout` seconds and a JSON timeout body.
    pub fn response_hold(channels: &str, timeout: u32, body: &str) -> Reply {
        Reply::ok()
            .header("Content-Type", "application/json")
            .header("Grip-Hold", "response")
            .header("Grip-Channel", channels)
            .header("Grip-Timeout", &timeout.to_string())
            .body(body)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        let has_length = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        if self.auto_length && !has_length {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn standard_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

struct State {
    requests: Mutex<Vec<Recorded>>,
    handler: Box<Handler>,
}

/// A running origin; stops when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Origin {
    /// Starts an origin on a free loopback port answering with `handler`.
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Origin {
        Self::start_with(None, handler).await
    }

    /// Like [`Origin::start`], speaking TLS with `tls`'s certificate.
    pub async fn start_tls(
        tls: TlsAcceptor,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        Self::start_with(Some(tls), handler).await
    }

    async fn start_with(
        tls: Option<TlsAcceptor>,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            handler: Box::new(handler),
        });
        let task = tokio::spawn(accept(listener, tls, Arc::clone(&state)));
        Origin { addr, state, task }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("requests").clone()
    }

    /// Requests whose path (without query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }

    /// Waits until `n` requests satisfy `matches`; returns them.
    pub async fn wait_n(
        &self,
        n: usize,
        timeout: Duration,
        matches: impl Fn(&Recorded) -> bool,
    ) -> Option<Vec<Recorded>> {
        super::wait_for(timeout, || {
            let found: Vec<Recorded> = self.requests().into_iter().filter(&matches).collect();
            (found.len() >= n).then_some(found)
        })
        .await
    }

    /// Waits for the first request satisfying `matches`.
    pub async fn wait(
        &self,
        timeout: Duration,
        matches: impl Fn(&Recorded) -> bool,
    ) -> Option<Recorded> {
        self.wait_n(1, timeout, matches)
            .await
            .and_then(|found| found.into_iter().next())
    }

    /// Waits for `n` requests to `path`.
    pub async fn wait_path(
        &self,
        path: &str,
        n: usize,
        timeout: Duration,
    ) -> Option<Vec<Recorded>> {
        self.wait_n(n, timeout, |r| r.path() == path).await
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        match tls.clone() {
            None => connections.spawn(serve(stream, state)),
            Some(acceptor) => connections.spawn(async move {
                // A client that refuses the certificate ends the handshake: no request.
                if let Ok(stream) = acceptor.accept(stream).await {
                    serve(stream, state).await;
                }
            }),
        };
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, state: Arc<State>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let at = Instant::now();
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let version = parts.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                Some((name.trim().to_owned(), value.trim().to_owned()))
            })
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            match read_chunked(&mut stream, &mut buf).await {
                Some(body) => body,
                None => return,
            }
        } else {
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < len {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            buf.drain(..len).collect()
        };
        let recorded = Recorded {
            method,
            target,
            version,
            headers,
            body,
            at,
        };
        state
            .requests
            .lock()
            .expect("requests")
            .push(recorded.clone());
        let reply = (state.handler)(&recorded);
        if stream.write_all(&reply.encode()).await.is_err() {
            return;
        }
    }
}

async fn read_chunked<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 16 * 1024];
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(buf, b"\r\n") {
                break pos;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let need = line_end + 2 + size + 2;
        while buf.len() < need {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        buf.drain(..need);
        if size == 0 {
            return Some(body);
        }
    }
}
