//! HTTP/2 on the public listener: for TLS clients that offer `h2` through ALPN, and
//! for plain connections that open with the HTTP/2 preface ("prior knowledge", as a
//! load balancer speaking h2c to its backends does).
//!
//! Why: a browser opens at most six HTTP/1.1 connections per origin, so a page with
//! several EventSource streams (or several tabs) starves itself; over HTTP/2 all of
//! them share one connection. hyper speaks the protocol (flow control, stream resets,
//! `SETTINGS`); each request is handed to the same handler the HTTP/1 driver uses,
//! after being made to look like the HTTP/1.1 request the handlers were written for.
//!
//! A held stream ends when the client resets its HTTP/2 stream or closes the
//! connection: hyper then drops the response body (or the pending handler of a
//! long-poll), which unsubscribes it and fires its gone link (§6.5), as a hang-up
//! does on HTTP/1. A stream whose client stops reading runs out of flow-control
//! window, its body is no longer polled, and its queue overflows as on HTTP/1.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::{self, ProxyBody};
use crate::http1::{ConnectionLimits, HEAD_TIMEOUT, MAX_HEAD};

/// The ALPN protocol id of HTTP/2 (RFC 9113 §3.2).
pub const ALPN: &[u8] = b"h2";

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a plain connection opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    Http1,
    /// With the HTTP/2 preface.
    Http2,
    /// Closed, failed, or silent for [`HEAD_TIMEOUT`]: nothing to serve.
    Gone,
}

/// How long to wait for more bytes when what arrived is a proper prefix of the
/// preface (a peek returns the same bytes at once until more come).
const PREFIX_WAIT: Duration = Duration::from_millis(50);

/// Tells HTTP/1 from HTTP/2 by the first bytes, without reading them: the bytes stay
/// for whichever driver serves the connection. An HTTP/1 request differs from the
/// preface in its first byte or within its first few, so the decision normally takes
/// one peek.
pub async fn sniff(stream: &TcpStream) -> Opening {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Opening::Gone,
        };
        if buf[..n] != PREFACE[..n] {
            return Opening::Http1;
        }
        if n == PREFACE.len() {
            return Opening::Http2;
        }
        if Instant::now() + PREFIX_WAIT >= deadline {
            return Opening::Gone;
        }
        tokio::time::sleep(PREFIX_WAIT).await;
    }
}

/// Streams one client may have open at once; browsers commonly allow 100 as servers
/// do, and each stream here may be a held connection with its own queue.
const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Serves one HTTP/2 connection until the client leaves. `handle` turns each request
/// into a response, exactly as for [`crate::http1::serve_connection`].
pub async fn serve_connection<S, H, F>(
    stream: S,
    peer: SocketAddr,
    limits: ConnectionLimits,
    handle: H,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Bytes>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let handle = handle.clone();
        async move { Ok::<_, Infallible>(respond(request, peer, limits, handle).await) }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        // The same bound on a request's headers as HTTP/1 puts on its head.
        .max_header_list_size(MAX_HEAD as u32)
        // A peer that stops answering pings is gone even if TCP has not noticed.
        .keep_alive_interval(Some(HEAD_TIMEOUT))
        .keep_alive_timeout(HEAD_TIMEOUT);
    if let Err(error) = builder
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, %error, "HTTP/2 connection ended with an error");
    }
}

/// Reads the request body within the limit, then runs the handler.
async fn respond<H, F>(
    request: Request<Incoming>,
    peer: SocketAddr,
    limits: ConnectionLimits,
    handle: H,
) -> Response<ProxyBody>
where
    H: Fn(Request<Bytes>, SocketAddr) -> F,
    F: Future<Output = Response<ProxyBody>>,
{
    let (mut parts, incoming) = request.into_parts();
    let body = match Limited::new(incoming, limits.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return body::text(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large.\n");
        }
        Err(error) => {
            tracing::debug!(%peer, %error, "HTTP/2 request body failed");
            return body::text(StatusCode::BAD_REQUEST, "Bad request.\n");
        }
    };
    as_http11(&mut parts);
    handle(Request::from_parts(parts, body), peer).await
}

/// Gives an HTTP/2 request the shape of the HTTP/1.1 request the handlers expect: the
/// `:authority` pseudo-header becomes `Host` (RFC 9113 §8.3.1), and the version says
/// 1.1, which is also what is forwarded to an origin (origins are reached over
/// HTTP/1.1). Connection-specific response headers the handlers set are removed by
/// hyper, as HTTP/2 requires (RFC 9113 §8.2.2).
fn as_http11(parts: &mut http::request::Parts) {
    if !parts.headers.contains_key(http::header::HOST) {
        if let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(http::header::HOST, host);
        }
    }
    parts.version = Version::HTTP_11;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// What `sniff` makes of a connection whose client sends `parts`, a pause between
    /// each, then keeps the connection open (or closes it, with `close`).
    async fn sniffed(parts: &[&[u8]], close: bool) -> Opening {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            for part in parts {
                stream.write_all(&part).await.expect("write");
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
            if !close {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let (server, _) = listener.accept().await.expect("accept");
        let opening = sniff(&server).await;
        client.abort();
        opening
    }

    #[tokio::test]
    async fn an_http1_request_is_told_by_its_first_bytes() {
        assert_eq!(
            sniffed(&[b"GET / HTTP/1.1\r\n"], false).await,
            Opening::Http1
        );
        assert_eq!(
            sniffed(&[b"PRI / HTTP/1.1\r\n"], false).await,
            Opening::Http1
        );
    }

    #[tokio::test]
    async fn a_preface_that_arrives_in_pieces_is_http2() {
        let (head, tail) = PREFACE.split_at(7);
        assert_eq!(sniffed(&[head, tail], false).await, Opening::Http2);
    }

    #[tokio::test]
    async fn a_connection_closed_before_a_byte_is_gone() {
        assert_eq!(sniffed(&[], true).await, Opening::Gone);
    }

    #[tokio::test]
    async fn the_bytes_stay_for_the_driver() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(PREFACE).await.expect("write");
        let (mut server, _) = listener.accept().await.expect("accept");
        assert_eq!(sniff(&server).await, Opening::Http2);
        let mut read = [0u8; PREFACE.len()];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut read)
            .await
            .expect("read");
        assert_eq!(&read[..], PREFACE);
    }

    #[test]
    fn the_authority_becomes_the_host_header_and_the_version_one_point_one() {
        let request = Request::builder()
            .version(Version::HTTP_2)
            .uri("https://example.com:8443/stream?channel=a")
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        as_http11(&mut parts);
        assert_eq!(parts.version, Version::HTTP_11);
        assert_eq!(parts.headers[http::header::HOST], "example.com:8443");
        assert_eq!(parts.uri.path(), "/stream");
    }

    #[test]
    fn a_host_header_the_client_sent_is_kept() {
        let request = Request::builder()
            .version(Version::HTTP_2)
            .uri("https://example.com/")
            .header(http::header::HOST, "other.example")
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        as_http11(&mut parts);
        assert_eq!(parts.headers[http::header::HOST], "other.example");
    }
}
