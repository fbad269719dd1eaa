//! Writing one response: head, then the body frame by frame, while watching for the
//! client hanging up.

use std::io::IoSlice;
use std::task::Poll;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

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
pub async fn write_response(
    stream: &mut TcpStream,
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
    if stream.write_all(&head).await.is_err() {
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
    let (mut reader, mut writer) = stream.split();
    let mut probe = [0u8; 256];
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            read = reader.read(&mut probe) => match read {
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
        let mut batch = vec![data];
        let after = gather_ready(&mut body, &mut batch);
        if write_data(&mut writer, &batch, chunked).await.is_err() {
            return WriteOutcome::Close;
        }
        match after {
            BatchEnd::More => {}
            BatchEnd::BodyEnded => break,
            BatchEnd::BodyFailed => return WriteOutcome::Close,
        }
    }
    if chunked && writer.write_all(b"0\r\n\r\n").await.is_err() {
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

/// Collects frames that are ready now, so a burst goes out in one write.
fn gather_ready(body: &mut ProxyBody, batch: &mut Vec<Bytes>) -> BatchEnd {
    // A no-op waker is enough: when nothing is ready, the main loop polls again with
    // the task's real waker before it sleeps.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut size: usize = batch.iter().map(Bytes::len).sum();
    while size < 64 * 1024 {
        match std::pin::Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    size += data.len();
                    batch.push(data);
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

/// Writes a batch of body frames, as one chunk when chunked.
async fn write_data<W: AsyncWrite + Unpin>(
    writer: &mut W,
    batch: &[Bytes],
    chunked: bool,
) -> std::io::Result<()> {
    let len: usize = batch.iter().map(Bytes::len).sum();
    if len == 0 {
        return Ok(());
    }
    let size_line = format!("{len:x}\r\n");
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batch.len() + 2);
    if chunked {
        slices.push(IoSlice::new(size_line.as_bytes()));
    }
    slices.extend(batch.iter().map(|b| IoSlice::new(b)));
    if chunked {
        slices.push(IoSlice::new(b"\r\n"));
    }
    write_all_vectored(writer, &mut slices).await
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
