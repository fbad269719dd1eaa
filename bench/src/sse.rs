//! A minimal HTTP/1.1 SSE subscriber, built for holding tens of thousands of
//! idle connections cheaply: no per-connection read buffer (reads go into a
//! per-thread scratch buffer), chunked and close-delimited bodies, and an SSE
//! parser that only keeps the unfinished tail of the current event.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::histogram::Histogram;
use crate::payload;
use crate::resume::Trail;

const MAX_HEAD: usize = 16 * 1024;

thread_local! {
    /// Read buffer shared by every connection served by this thread.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
    /// De-chunked body bytes, also shared per thread.
    static DECODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Counters shared by all subscriber connections of one worker process.
#[derive(Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub bad_events: AtomicU64,
    /// Events whose `seq` is not above the previous one on the same
    /// connection: duplicates or reordering.
    pub regressions: AtomicU64,
    pub bytes: AtomicU64,
    pub latency: Mutex<Histogram>,
    /// Forced reconnects that succeeded / gave up.
    pub reconnects: AtomicU64,
    pub reconnect_failures: AtomicU64,
    /// Disconnect order → new stream's response head, µs.
    pub reconnect_latency: Mutex<Histogram>,
    /// Disconnect order → every record produced before it received, µs.
    pub catch_up_latency: Mutex<Histogram>,
}

impl Counters {
    pub fn reset(&self) {
        self.events.store(0, Ordering::Relaxed);
        self.bad_events.store(0, Ordering::Relaxed);
        self.regressions.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.latency.lock().expect("latency lock").clear();
        self.reconnects.store(0, Ordering::Relaxed);
        self.reconnect_failures.store(0, Ordering::Relaxed);
        self.reconnect_latency
            .lock()
            .expect("reconnect lock")
            .clear();
        self.catch_up_latency.lock().expect("catch-up lock").clear();
    }

    /// Records a connection that reached its catch-up goal now.
    pub fn caught_up(&self, since_us: u64) {
        let took = payload::now_us().saturating_sub(since_us);
        self.catch_up_latency
            .lock()
            .expect("catch-up lock")
            .record(took);
    }
}

/// An SSE response whose head has been read and accepted (status 200).
pub struct OpenStream {
    stream: TcpStream,
    body: BodyDecoder,
    sse: SseParser,
    leftover: Vec<u8>,
    /// Last id and seq seen, catch-up goal: kept across reconnects.
    pub trail: Trail,
}

/// Connects from `source` (bind before connect, so many loopback source
/// addresses multiply the ephemeral port space) and sends the GET.
pub async fn open(
    source: IpAddr,
    server: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<OpenStream> {
    tokio::time::timeout(timeout, open_inner(source, server, path))
        .await
        .map_err(|_| anyhow!("timed out after {timeout:?}"))?
}

/// `IP_BIND_ADDRESS_NO_PORT`: the kernel picks the source port at connect
/// time, knowing the destination, instead of at bind time. Without it every
/// bind to port 0 searches the bind table for a port free on that address,
/// which with tens of thousands of sockets per source address becomes the
/// load generator's main cost (100,000 set-ups took ~30 s of kernel time in
/// `inet_bind2_bucket_find` / `inet_bhash2_conflict`).
fn defer_port_choice(socket: &TcpSocket) -> Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a valid int option value.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("IP_BIND_ADDRESS_NO_PORT");
    }
    Ok(())
}

async fn open_inner(source: IpAddr, server: SocketAddr, path: &str) -> Result<OpenStream> {
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    defer_port_choice(&socket)?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("bind {source}"))?;
    let mut stream = socket.connect(server).await.context("connect")?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\n\
         Cache-Control: no-cache\r\nUser-Agent: fjord-bench\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;

    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let end = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("connection closed before response head");
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(pos) = find(&head, b"\r\n\r\n") {
            break pos + 4;
        }
        if head.len() > MAX_HEAD {
            bail!("response head too large");
        }
    };
    let leftover = head.split_off(end);
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    if status != 200 {
        bail!("status {status}");
    }
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok(OpenStream {
        stream,
        body: if chunked {
            BodyDecoder::Chunked(ChunkState::Size {
                acc: 0,
                in_ext: false,
            })
        } else {
            BodyDecoder::Raw
        },
        sse: SseParser::default(),
        leftover,
        trail: Trail::default(),
    })
}

impl OpenStream {
    /// Reads until the server closes the stream, counting events into
    /// `counters`. Returns `Ok` on a clean end of stream. Cancelling it
    /// between reads leaves the stream and its trail consistent.
    pub async fn pump(&mut self, counters: &Counters) -> Result<()> {
        if !self.leftover.is_empty() {
            let leftover = std::mem::take(&mut self.leftover);
            if self.feed(&leftover, counters)? {
                return Ok(());
            }
        }
        loop {
            self.stream.readable().await?;
            let outcome = SCRATCH.with(|scratch| -> Result<bool> {
                let mut buf = scratch.borrow_mut();
                match self.stream.try_read(&mut buf) {
                    Ok(0) => Ok(true),
                    Ok(n) => {
                        counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
                        let done = self.feed(&buf[..n], counters)?;
                        Ok(done)
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
                    Err(e) => Err(e.into()),
                }
            })?;
            if outcome {
                return Ok(());
            }
        }
    }

    fn feed(&mut self, input: &[u8], counters: &Counters) -> Result<bool> {
        let now = payload::now_us();
        let mut lat = Vec::new();
        let mut bad = 0u64;
        let mut regressions = 0u64;
        let trail = &mut self.trail;
        let mut on_event = |id: Option<&[u8]>, data: Option<&[u8]>| {
            if let Some(id) = id {
                trail.last_id = Some(String::from_utf8_lossy(id).into_owned());
            }
            let Some(data) = data else { return };
            match payload::parse_ts(data) {
                Some(ts) => lat.push(now.saturating_sub(ts)),
                None => bad += 1,
            }
            if let Some(seq) = payload::parse_seq(data) {
                if trail.last_seq.is_some_and(|last| seq <= last) {
                    regressions += 1;
                }
                trail.last_seq = Some(seq);
            }
        };
        let done = match &mut self.body {
            BodyDecoder::Raw => {
                self.sse.feed(input, &mut on_event);
                false
            }
            BodyDecoder::Chunked(state) => DECODED.with(|cell| -> Result<bool> {
                let mut decoded = cell.borrow_mut();
                decoded.clear();
                let done = state.decode(input, &mut decoded)?;
                self.sse.feed(&decoded, &mut on_event);
                Ok(done)
            })?,
        };
        if !lat.is_empty() {
            counters
                .events
                .fetch_add(lat.len() as u64, Ordering::Relaxed);
            let mut hist = counters.latency.lock().expect("latency lock");
            for v in lat {
                hist.record(v);
            }
        }
        if let Some(goal) = self.trail.catch_up {
            if self.trail.reached(&goal) {
                self.trail.catch_up = None;
                counters.caught_up(goal.since_us);
            }
        }
        if bad > 0 {
            counters.bad_events.fetch_add(bad, Ordering::Relaxed);
        }
        if regressions > 0 {
            counters
                .regressions
                .fetch_add(regressions, Ordering::Relaxed);
        }
        if self.sse.pending.capacity() > 4096 && self.sse.pending.is_empty() {
            self.sse.pending = Vec::new();
        }
        Ok(done)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

enum BodyDecoder {
    Raw,
    Chunked(ChunkState),
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, PartialEq)]
enum ChunkState {
    Size { acc: usize, in_ext: bool },
    SizeLf { size: usize },
    Data { left: usize },
    DataCr,
    DataLf,
    Trailer { matched: usize },
    Done,
}

impl ChunkState {
    /// Appends decoded bytes to `out`; returns true once the last chunk ended.
    fn decode(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        while !input.is_empty() {
            match self {
                ChunkState::Size { acc, in_ext } => {
                    let b = input[0];
                    input = &input[1..];
                    if b == b'\r' {
                        *self = ChunkState::SizeLf { size: *acc };
                    } else if *in_ext || b == b';' {
                        *in_ext = true;
                    } else {
                        let digit = (b as char)
                            .to_digit(16)
                            .ok_or_else(|| anyhow!("bad chunk size byte {b:#x}"))?;
                        *acc = acc
                            .checked_mul(16)
                            .and_then(|a| a.checked_add(digit as usize))
                            .ok_or_else(|| anyhow!("chunk size overflow"))?;
                    }
                }
                ChunkState::SizeLf { size } => {
                    if input[0] != b'\n' {
                        bail!("missing LF after chunk size");
                    }
                    input = &input[1..];
                    *self = if *size == 0 {
                        ChunkState::Trailer { matched: 2 }
                    } else {
                        ChunkState::Data { left: *size }
                    };
                }
                ChunkState::Data { left } => {
                    let n = (*left).min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    *left -= n;
                    if *left == 0 {
                        *self = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr | ChunkState::DataLf => {
                    let want = if *self == ChunkState::DataCr {
                        b'\r'
                    } else {
                        b'\n'
                    };
                    if input[0] != want {
                        bail!("missing CRLF after chunk data");
                    }
                    input = &input[1..];
                    *self = if want == b'\r' {
                        ChunkState::DataLf
                    } else {
                        ChunkState::Size {
                            acc: 0,
                            in_ext: false,
                        }
                    };
                }
                ChunkState::Trailer { matched } => {
                    // Looking for the CRLF CRLF that ends the (usually empty)
                    // trailer; the CRLF after the size line counts as half.
                    let b = input[0];
                    input = &input[1..];
                    let expect = b"\r\n\r\n"[*matched];
                    *matched = if b == expect {
                        *matched + 1
                    } else if b == b'\r' {
                        1
                    } else {
                        0
                    };
                    if *matched == 4 {
                        *self = ChunkState::Done;
                    }
                }
                ChunkState::Done => return Ok(true),
            }
        }
        Ok(*self == ChunkState::Done)
    }
}

/// SSE event splitter: calls `on_event` with the `id:` and `data:` values of
/// every complete event that has either. Comments and other fields are
/// ignored.
#[derive(Default)]
struct SseParser {
    pending: Vec<u8>,
}

impl SseParser {
    fn feed(&mut self, input: &[u8], mut on_event: impl FnMut(Option<&[u8]>, Option<&[u8]>)) {
        if input.is_empty() {
            return;
        }
        let owned;
        let buf: &[u8] = if self.pending.is_empty() {
            input
        } else {
            self.pending.extend_from_slice(input);
            owned = std::mem::take(&mut self.pending);
            &owned
        };
        let mut start = 0;
        let normalized_end = |b: &[u8], from: usize| -> Option<(usize, usize)> {
            // Event ends at a blank line: "\n\n" or "\r\n\r\n".
            let mut i = from;
            while i + 1 < b.len() {
                if b[i] == b'\n' {
                    if b[i + 1] == b'\n' {
                        return Some((i, i + 2));
                    }
                    if b[i + 1] == b'\r' && i + 2 < b.len() && b[i + 2] == b'\n' {
                        return Some((i, i + 3));
                    }
                }
                i += 1;
            }
            None
        };
        while let Some((end, next)) = normalized_end(buf, start) {
            let event = &buf[start..end];
            let (mut id, mut data) = (None, None);
            for line in event.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(value) = line.strip_prefix(b"data:") {
                    data = Some(strip_space(value));
                } else if let Some(value) = line.strip_prefix(b"id:") {
                    id = Some(strip_space(value));
                }
            }
            if id.is_some() || data.is_some() {
                on_event(id, data);
            }
            start = next;
        }
        self.pending.extend_from_slice(&buf[start..]);
    }
}

/// A field value without the one optional space after the colon.
fn strip_space(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_split_anywhere() {
        let wire = b"5\r\nhello\r\n7;x=y\r\n world!\r\n0\r\n\r\n";
        for cut in 0..wire.len() {
            let mut st = ChunkState::Size {
                acc: 0,
                in_ext: false,
            };
            let mut out = Vec::new();
            let a = st.decode(&wire[..cut], &mut out).unwrap();
            let b = st.decode(&wire[cut..], &mut out).unwrap();
            assert!(!a || cut == wire.len());
            assert!(b, "cut {cut}");
            assert_eq!(out, b"hello world!");
        }
    }

    #[test]
    fn sse_events_across_reads() {
        let wire =
            b": hi\n\nid: 1\ndata: {\"seq\":1,\"ts\":5}\n\ndata: {\"seq\":2,\"ts\":6}\r\n\r\n";
        for cut in 0..wire.len() {
            let mut p = SseParser::default();
            let mut got = Vec::new();
            let mut ids = Vec::new();
            let mut on_event = |id: Option<&[u8]>, d: Option<&[u8]>| {
                ids.push(id.map(<[u8]>::to_vec));
                got.push(d.and_then(payload::parse_ts));
            };
            p.feed(&wire[..cut], &mut on_event);
            p.feed(&wire[cut..], &mut on_event);
            assert_eq!(got, vec![Some(5), Some(6)], "cut {cut}");
            assert_eq!(ids, vec![Some(b"1".to_vec()), None], "cut {cut}");
            assert!(p.pending.is_empty());
        }
    }
}
