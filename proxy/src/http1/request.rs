//! Reading one request: head (httparse), then its body.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::MAX_HEAD;

/// Most headers a request may have.
const MAX_HEADERS: usize = 100;
/// First allocation for a request head; most heads fit.
const INITIAL_HEAD_BUFFER: usize = 1024;
/// Longest chunk-size or trailer line of a chunked body, CRLF not counted.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// A parsed request and whether the client wants the connection kept.
pub struct ParsedRequest {
    pub inner: Request<Bytes>,
    pub keep_alive: bool,
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// Reads the next request. `carry` holds bytes already received (pipelined) and
/// receives whatever follows this request. `Ok(None)`: the client closed cleanly.
pub async fn read_request<S>(
    stream: &mut S,
    carry: &mut Vec<u8>,
    max_body: usize,
) -> Result<Option<ParsedRequest>, RequestError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = std::mem::take(carry);
    if buf.capacity() == 0 {
        buf.reserve(INITIAL_HEAD_BUFFER);
    }
    let (head_len, mut parts, framing, keep_alive, expects_continue) = loop {
        // Only the first MAX_HEAD bytes count, so whether a head fits (and which error
        // a bad one gets) does not depend on how many bytes one read brought.
        if let Some(parsed) = parse_head(&buf[..buf.len().min(MAX_HEAD)])? {
            break parsed;
        }
        if buf.len() >= MAX_HEAD {
            return Err(RequestError::HeadTooLarge);
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve((buf.capacity()).min(MAX_HEAD));
        }
        if stream.read_buf(&mut buf).await? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(RequestError::Malformed("connection closed mid-head".into()));
        }
    };
    let mut rest = buf.split_off(head_len);
    drop(buf);
    if expects_continue && !matches!(framing, Framing::None) {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        // A TLS stream holds the record until flushed, and the client waits for it.
        stream.flush().await?;
    }
    let body = match framing {
        Framing::None => {
            *carry = rest;
            Bytes::new()
        }
        Framing::Length(len) => {
            if len > max_body {
                return Err(RequestError::BodyTooLarge);
            }
            while rest.len() < len {
                rest.reserve(len - rest.len());
                if stream.read_buf(&mut rest).await? == 0 {
                    return Err(RequestError::Malformed("connection closed mid-body".into()));
                }
            }
            let tail = rest.split_off(len);
            *carry = tail;
            Bytes::from(rest)
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            let mut body = Vec::new();
            loop {
                match decoder.decode(&mut rest, &mut body, max_body)? {
                    true => break,
                    false => {
                        rest.reserve(4096);
                        if stream.read_buf(&mut rest).await? == 0 {
                            return Err(RequestError::Malformed(
                                "connection closed mid-body".into(),
                            ));
                        }
                    }
                }
            }
            *carry = rest;
            Bytes::from(body)
        }
    };
    if carry.is_empty() {
        // Nothing pipelined: let the idle connection hold no buffer at all.
        *carry = Vec::new();
    }
    parts.extend_body(body);
    Ok(Some(ParsedRequest {
        inner: parts.finish(),
        keep_alive,
    }))
}

/// A request head waiting for its body.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

impl Head {
    fn extend_body(&mut self, body: Bytes) {
        self.body = body;
    }

    fn finish(self) -> Request<Bytes> {
        let mut request = Request::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers;
        request
    }
}

type ParsedHead = (usize, Head, Framing, bool, bool);

/// Parses a complete head out of `buf`, or `None` when more bytes are needed.
/// Synchronous on purpose: httparse's header array lives on the stack only here, never
/// in a connection's future.
fn parse_head(buf: &[u8]) -> Result<Option<ParsedHead>, RequestError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(RequestError::Malformed(e.to_string())),
    };
    let malformed = |what: &str| RequestError::Malformed(what.to_owned());
    let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| malformed("method"))?;
    let uri: Uri = parsed
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| malformed("request target"))?;
    let version = match parsed.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let name =
            HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| malformed("header name"))?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| malformed("header value"))?;
        headers.append(name, value);
    }
    let connection_has = |token: &str| {
        headers.get_all(http::header::CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let keep_alive = match version {
        Version::HTTP_10 => connection_has("keep-alive"),
        _ => !connection_has("close"),
    };
    let framing = framing(&headers)?;
    let expects_continue = headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let head = Head {
        method,
        uri,
        version,
        headers,
        body: Bytes::new(),
    };
    Ok(Some((
        head_len,
        head,
        framing,
        keep_alive,
        expects_continue,
    )))
}

/// RFC 9112 §6.3: chunked wins over Content-Length; several different lengths are an
/// error (request smuggling).
fn framing(headers: &HeaderMap) -> Result<Framing, RequestError> {
    if let Some(te) = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        let chunked = te
            .to_str()
            .ok()
            .and_then(|v| v.split(',').next_back())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        if !chunked {
            return Err(RequestError::Malformed(
                "unsupported transfer-encoding".into(),
            ));
        }
        return Ok(Framing::Chunked);
    }
    let mut length: Option<usize> = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let parsed: usize = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| RequestError::Malformed("content-length".into()))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(RequestError::Malformed("conflicting content-length".into()));
        }
        length = Some(parsed);
    }
    Ok(match length {
        Some(0) | None => Framing::None,
        Some(len) => Framing::Length(len),
    })
}

/// Incremental decoder of a chunked request body (RFC 9112 §7.1).
#[derive(Default)]
pub(crate) struct ChunkedDecoder {
    /// Bytes of the current chunk's data still to copy.
    remaining: usize,
    /// After a chunk's data, its CRLF is still to come.
    expect_crlf: bool,
    /// The zero chunk was seen; trailers until an empty line.
    in_trailers: bool,
}

impl ChunkedDecoder {
    /// Consumes what it can from `input` into `out`; true once the body is complete
    /// (then `input` holds only what follows the body).
    pub(crate) fn decode(
        &mut self,
        input: &mut Vec<u8>,
        out: &mut Vec<u8>,
        max_body: usize,
    ) -> Result<bool, RequestError> {
        let mut pos = 0;
        let result = loop {
            if self.expect_crlf {
                // Decided from the first bytes, not at the end of a line: garbage after
                // a chunk's data gets this error however it arrives.
                let pending = &input[pos..];
                match pending {
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.expect_crlf = false;
                        continue;
                    }
                    [] | [b'\r'] => break Ok(false),
                    _ => break Err(RequestError::Malformed("missing CRLF after chunk".into())),
                }
            }
            if self.remaining > 0 {
                let take = self.remaining.min(input.len() - pos);
                if take == 0 {
                    break Ok(false);
                }
                if out.len() + take > max_body {
                    break Err(RequestError::BodyTooLarge);
                }
                out.extend_from_slice(&input[pos..pos + take]);
                pos += take;
                self.remaining -= take;
                if self.remaining == 0 {
                    self.expect_crlf = true;
                }
                continue;
            }
            let Some(eol) = input[pos..].windows(2).position(|w| w == b"\r\n") else {
                // The same limit as for a complete line below: a trailing CR may be
                // the start of the line's CRLF.
                let pending = &input[pos..];
                let line_so_far = pending.len() - usize::from(pending.ends_with(b"\r"));
                if line_so_far > MAX_CHUNK_LINE {
                    break Err(RequestError::Malformed("chunk line too long".into()));
                }
                break Ok(false);
            };
            if eol > MAX_CHUNK_LINE {
                break Err(RequestError::Malformed("chunk line too long".into()));
            }
            let line = &input[pos..pos + eol];
            pos += eol + 2;
            if self.in_trailers {
                if line.is_empty() {
                    break Ok(true);
                }
                continue;
            }
            let size_text = line.split(|&b| b == b';').next().unwrap_or(b"");
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| RequestError::Malformed("chunk size".into()));
            match size {
                Err(e) => break Err(e),
                Ok(0) => self.in_trailers = true,
                Ok(size) => {
                    if out.len().saturating_add(size) > max_body {
                        break Err(RequestError::BodyTooLarge);
                    }
                    self.remaining = size;
                }
            }
        };
        input.drain(..pos);
        result
    }
}

#[cfg(test)]
mod tests {
    //! Regressions found by the `http1_request` fuzz target (protocol/fuzz): the same
    //! bytes must give the same result whether they arrive in one read or in many.

    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    /// A client replayed from memory, `step` bytes per read (`usize::MAX`: all that fits).
    struct Replay {
        data: Vec<u8>,
        pos: usize,
        step: usize,
    }

    impl AsyncRead for Replay {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = (self.data.len() - self.pos)
                .min(buf.remaining())
                .min(self.step);
            let start = self.pos;
            buf.put_slice(&self.data[start..start + n]);
            self.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Replay {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// The first request of `data` read `step` bytes at a time: its body, or the error.
    async fn first_request(data: &[u8], step: usize) -> Result<Vec<u8>, String> {
        let mut client = Replay {
            data: data.to_vec(),
            pos: 0,
            step,
        };
        match read_request(&mut client, &mut Vec::new(), 1 << 20).await {
            Ok(Some(request)) => Ok(request.inner.body().to_vec()),
            Ok(None) => Err("closed".into()),
            Err(error) => Err(error.to_string()),
        }
    }

    /// The outcome with every read as large as the buffer allows, after checking that
    /// reads of 1, 7 and 509 bytes give the same.
    async fn outcome_for_any_split(data: &[u8]) -> Result<Vec<u8>, String> {
        let whole = first_request(data, usize::MAX).await;
        for step in [1, 7, 509] {
            assert_eq!(first_request(data, step).await, whole, "{step}-byte reads");
        }
        whole
    }

    fn chunked(body: &[u8]) -> Vec<u8> {
        let mut data = b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        data.extend_from_slice(body);
        data
    }

    #[tokio::test]
    async fn chunk_line_over_the_limit_is_refused_even_when_it_arrives_complete() {
        let mut body = b"3;".to_vec();
        body.extend(std::iter::repeat_n(b'e', MAX_CHUNK_LINE));
        body.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
        let outcome = outcome_for_any_split(&chunked(&body)).await;
        assert_eq!(
            outcome,
            Err("malformed request: chunk line too long".into())
        );
    }

    #[tokio::test]
    async fn invalid_chunk_line_over_the_limit_gets_the_same_error_in_any_split() {
        let mut body = vec![b'z'; MAX_CHUNK_LINE + 10];
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        let outcome = outcome_for_any_split(&chunked(&body)).await;
        assert_eq!(
            outcome,
            Err("malformed request: chunk line too long".into())
        );
    }

    #[tokio::test]
    async fn chunk_line_at_the_limit_is_accepted() {
        let mut body = b"3;".to_vec();
        body.extend(std::iter::repeat_n(b'e', MAX_CHUNK_LINE - 2));
        body.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
        let outcome = outcome_for_any_split(&chunked(&body)).await;
        assert_eq!(outcome, Ok(b"abc".to_vec()));
    }

    #[tokio::test]
    async fn garbage_after_chunk_data_is_a_missing_crlf_in_any_split() {
        let mut body = b"3\r\nabcX".to_vec();
        body.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE + 10));
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        let outcome = outcome_for_any_split(&chunked(&body)).await;
        assert_eq!(
            outcome,
            Err("malformed request: missing CRLF after chunk".into())
        );
    }

    /// A GET whose head is exactly `len` bytes long.
    fn head_of_len(len: usize) -> Vec<u8> {
        let fixed = "GET / HTTP/1.1\r\nX-Pad: \r\n\r\n".len();
        let mut data = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        data.extend(std::iter::repeat_n(b'p', len - fixed));
        data.extend_from_slice(b"\r\n\r\n");
        assert_eq!(data.len(), len);
        data
    }

    #[tokio::test]
    async fn head_over_the_limit_is_refused_even_when_one_read_completes_it() {
        let outcome = outcome_for_any_split(&head_of_len(MAX_HEAD + 3)).await;
        assert_eq!(
            outcome,
            Err(format!("request head larger than {MAX_HEAD} bytes"))
        );
    }

    #[tokio::test]
    async fn invalid_byte_past_the_head_limit_is_reported_as_too_large() {
        let mut data = head_of_len(MAX_HEAD + 40);
        data[MAX_HEAD + 2] = 0;
        let outcome = outcome_for_any_split(&data).await;
        assert_eq!(
            outcome,
            Err(format!("request head larger than {MAX_HEAD} bytes"))
        );
    }

    #[tokio::test]
    async fn head_of_exactly_the_limit_is_accepted() {
        let outcome = outcome_for_any_split(&head_of_len(MAX_HEAD)).await;
        assert_eq!(outcome, Ok(Vec::new()));
    }
}
