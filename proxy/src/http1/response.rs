//! Writing one response: head, then the body frame by frame, while watching for the
//! client hanging up.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::transport::Transport;
use super::MAX_HEAD;
use crate::body::ProxyBody;

/// Whether the connection can serve another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    KeepAlive,
    Close,
}

enum Framing {
    /// No body may be sent (HEAD, 204, 304) or it is empty with a length given.
    Empty,
    Length,
    Chunked,
    /// HTTP/1.0 streams end by closing the connection (§2.3).
    UntilClose,
}

/// Writes `response`; `close` asks for the connection to end afterwards, `http10`
/// means the client cannot read chunked encoding.
pub async fn write_response<S: Transport>(
    stream: &mut S,
    response: Response<ProxyBody>,
    head_only: bool,
    http10: bool,
    close: bool,
    carry: &mut Vec<u8>,
) -> WriteOutcome {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let no_body = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let declared_length = parts.headers.contains_key(http::header::CONTENT_LENGTH);
    let exact = body.size_hint().exact();
    let framing = if no_body {
        Framing::Empty
    } else if declared_length || exact.is_some() {
        Framing::Length
    } else if http10 {
        Framing::UntilClose
    } else {
        Framing::Chunked
    };
    let closing = close || matches!(framing, Framing::UntilClose);
    let head = encode_head(&parts, &framing, exact, closing);
    // Header values may share a buffer with the origin's whole response head; holding
    // them for a stream's life would keep that buffer (8 KiB) alive per connection.
    drop(parts);
    if send(stream, &head).await.is_err() {
        return WriteOutcome::Close;
    }
    drop(head);
    if matches!(framing, Framing::Empty) {
        return if closing {
            WriteOutcome::Close
        } else {
            WriteOutcome::KeepAlive
        };
    }
    let chunked = matches!(framing, Framing::Chunked);
    let mut probe = [0u8; 256];
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            read = stream.read(&mut probe) => match read {
                // The client hung up: drop the body, which ends a held stream (§6.5).
                Ok(0) | Err(_) => return WriteOutcome::Close,
                Ok(n) => {
                    // Pipelined bytes of the next request; keep them, within reason.
                    if carry.len() + n > MAX_HEAD {
                        return WriteOutcome::Close;
                    }
                    carry.extend_from_slice(&probe[..n]);
                    continue;
                }
            },
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed; closing");
                return WriteOutcome::Close;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        let mut batch = Batch {
            first: data,
            rest: Vec::new(),
        };
        let after = gather_ready(&mut body, &mut batch);
        if write_batch(stream, &batch, chunked).await.is_err() {
            return WriteOutcome::Close;
        }
        // Here rather than inside `write_batch`: an await there would add to the state
        // of every held connection, even on plain TCP where it does nothing.
        if flush(stream).await.is_err() {
            return WriteOutcome::Close;
        }
        match after {
            BatchEnd::More => {}
            BatchEnd::BodyEnded => break,
            BatchEnd::BodyFailed => return WriteOutcome::Close,
        }
    }
    if chunked && send(stream, b"0\r\n\r\n").await.is_err() {
        return WriteOutcome::Close;
    }
    if closing {
        WriteOutcome::Close
    } else {
        WriteOutcome::KeepAlive
    }
}

/// What stopped a batch from growing.
enum BatchEnd {
    /// Nothing more is ready now (or the batch is big enough).
    More,
    BodyEnded,
    BodyFailed,
}

/// Body frames that go out in one write. A held stream usually has exactly one frame
/// ready per wake-up, so the common case allocates nothing: `rest` stays empty.
struct Batch {
    first: Bytes,
    rest: Vec<Bytes>,
}

impl Batch {
    fn frames(&self) -> impl Iterator<Item = &Bytes> {
        std::iter::once(&self.first).chain(self.rest.iter())
    }

    fn len(&self) -> usize {
        self.frames().map(Bytes::len).sum()
    }
}

/// Collects frames that are ready now, so a burst goes out in one write.
fn gather_ready(body: &mut ProxyBody, batch: &mut Batch) -> BatchEnd {
    // A no-op waker is enough: when nothing is ready, the main loop polls again with
    // the task's real waker before it sleeps.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut size = batch.len();
    while size < MAX_BATCH {
        match std::pin::Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    size += data.len();
                    batch.rest.push(data);
                }
            }
            Poll::Ready(None) => return BatchEnd::BodyEnded,
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!(error = %e, "response body failed; closing");
                return BatchEnd::BodyFailed;
            }
            Poll::Pending => return BatchEnd::More,
        }
    }
    BatchEnd::More
}

/// A batch stops growing at this size.
const MAX_BATCH: usize = 64 * 1024;

/// Batches up to this size (with their chunk framing) are copied into one stack
/// buffer and sent with a single `write`: fan-out writes one small event to many
/// sockets, and per delivery a copy of a few hundred bytes is cheaper than building
/// an I/O vector and its size line on the heap.
const INLINE_WRITE: usize = 2048;

/// `{len:x}\r\n` without allocating; returns the buffer and how many bytes are used.
fn chunk_size_line(len: usize) -> ([u8; 18], usize) {
    let mut line = [0u8; 18];
    let digits = (usize::BITS as usize / 4) - (len.leading_zeros() as usize / 4);
    let digits = digits.max(1);
    for (i, digit) in line[..digits].iter_mut().enumerate() {
        let nibble = (len >> (4 * (digits - 1 - i))) & 0xf;
        *digit = b"0123456789abcdef"[nibble];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    (line, digits + 2)
}

/// Writes a batch of body frames, as one chunk when chunked; the caller flushes.
async fn write_batch<S: Transport>(
    writer: &mut S,
    batch: &Batch,
    chunked: bool,
) -> std::io::Result<()> {
    let len = batch.len();
    if len == 0 {
        return Ok(());
    }
    let (size_line, size_len) = chunk_size_line(len);
    let size_line = if chunked { &size_line[..size_len] } else { &[] };
    let trailer: &[u8] = if chunked { b"\r\n" } else { b"" };
    if size_line.len() + len + trailer.len() <= INLINE_WRITE {
        // The stack buffer lives only inside this call, so it does not become part of
        // the connection's future (which would cost every idle connection its size).
        return match try_write_inline(writer, size_line, batch, trailer) {
            InlineWrite::Done => Ok(()),
            InlineWrite::Failed(e) => Err(e),
            InlineWrite::Rest(rest) => writer.write_all(&rest).await,
        };
    }
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batch.rest.len() + 3);
    slices.push(IoSlice::new(size_line));
    slices.extend(batch.frames().map(|b| IoSlice::new(b)));
    slices.push(IoSlice::new(trailer));
    slices.retain(|s| !s.is_empty());
    write_all_vectored(writer, &mut slices).await
}

/// Writes all of `bytes`, then sends what a TLS session still holds: a held stream
/// may wait minutes for its next frame, so nothing written may stay buffered. One
/// poll function rather than `write_all` and a flush awaited in turn: its state is
/// `write_all`'s, and an idle connection's future is sized by its largest await.
fn send<'a, S: Transport>(
    stream: &'a mut S,
    mut bytes: &'a [u8],
) -> impl Future<Output = std::io::Result<()>> + 'a {
    std::future::poll_fn(move |cx| {
        while !bytes.is_empty() {
            let n = ready!(Pin::new(&mut *stream).poll_write(cx, bytes))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            bytes = &bytes[n..];
        }
        flush_buffered(stream, cx)
    })
}

/// What [`send`] does after writing, for bytes a transport already took.
fn flush<S: Transport>(stream: &mut S) -> impl Future<Output = std::io::Result<()>> + '_ {
    std::future::poll_fn(move |cx| flush_buffered(stream, cx))
}

/// Plain TCP holds nothing, so it skips the flush altogether.
fn flush_buffered<S: Transport>(stream: &mut S, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
    if S::BUFFERS_WRITES {
        Pin::new(stream).poll_flush(cx)
    } else {
        Poll::Ready(Ok(()))
    }
}

enum InlineWrite {
    Done,
    /// The socket took only part (or nothing) now; the rest must be awaited.
    Rest(Vec<u8>),
    Failed(std::io::Error),
}

fn try_write_inline<S: Transport>(
    writer: &mut S,
    size_line: &[u8],
    batch: &Batch,
    trailer: &[u8],
) -> InlineWrite {
    let mut buffer = [0u8; INLINE_WRITE];
    let mut used = 0;
    for part in std::iter::once(size_line)
        .chain(batch.frames().map(|b| &b[..]))
        .chain(std::iter::once(trailer))
    {
        buffer[used..used + part.len()].copy_from_slice(part);
        used += part.len();
    }
    let encoded = &buffer[..used];
    match writer.write_now(encoded) {
        Ok(n) if n == encoded.len() => InlineWrite::Done,
        Ok(n) => InlineWrite::Rest(encoded[n..].to_vec()),
        Err(e) => InlineWrite::Failed(e),
    }
}

async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    while !slices.is_empty() {
        let written = writer.write_vectored(slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// The status line and headers, with the framing headers this connection decided.
fn encode_head(
    parts: &http::response::Parts,
    framing: &Framing,
    exact: Option<u64>,
    closing: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| r.as_bytes().to_vec())
        .or_else(|| {
            parts
                .status
                .canonical_reason()
                .map(|r| r.as_bytes().to_vec())
        })
        .unwrap_or_default();
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(&reason);
    head.extend_from_slice(b"\r\n");
    write_headers(&mut head, &parts.headers);
    match framing {
        Framing::Length if !parts.headers.contains_key(http::header::CONTENT_LENGTH) => {
            head.extend_from_slice(
                format!("content-length: {}\r\n", exact.unwrap_or(0)).as_bytes(),
            );
        }
        Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if closing {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn write_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        if matches!(
            name.as_str(),
            "transfer-encoding" | "connection" | "keep-alive"
        ) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_size_line;

    #[test]
    fn chunk_size_line_is_lowercase_hex_without_leading_zeros() {
        for len in [
            1usize,
            9,
            10,
            15,
            16,
            255,
            256,
            4095,
            65_536,
            0x1234_abcd,
            usize::MAX,
        ] {
            let (line, used) = chunk_size_line(len);
            assert_eq!(&line[..used], format!("{len:x}\r\n").as_bytes(), "{len}");
        }
    }
}
