//! A lean HTTP/1.1 server connection for the public listener.
//!
//! Why not hyper here: a held connection is the unit of cost (design "Performance
//! principles"), and hyper's HTTP/1 connection keeps an 8 KiB read buffer and an 8 KiB
//! header write buffer for its whole life, whatever the traffic. Measured with 5,000
//! idle SSE streams on hyper 1.8 that was 14.8 KB of RSS per connection, against a
//! budget of a few KB. This driver reads the request head into a buffer that is freed
//! once the request is parsed (httparse does the parsing), and writes each body frame
//! straight to the socket. hyper still serves the control port and is the origin client.
//!
//! What it implements: request heads up to [`MAX_HEAD`], `Content-Length` and chunked
//! request bodies, `Expect: 100-continue`, keep-alive and pipelining, responses framed by
//! `Content-Length`, chunked encoding (HTTP/1.1) or connection close (HTTP/1.0), reason
//! phrases from [`hyper::ext::ReasonPhrase`], and noticing a client that hangs up while
//! its response is held.

/// Public so the fuzz target `http1_request` (protocol/fuzz) can drive the request
/// reader with arbitrary bytes; the server itself only uses it through
/// [`serve_connection`].
pub mod request;
mod response;
mod transport;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::body::{self, ProxyBody};
use request::{read_request, RequestError};
use response::{write_response, WriteOutcome};
pub use transport::Transport;

/// Largest request head accepted (Pushpin's `client_buffer_size` is 8192).
pub const MAX_HEAD: usize = 16 * 1024;
/// A client must send its request head within this time.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_body: usize,
}

/// Serves requests on `stream` (plain TCP or TLS) until the client leaves or a
/// response ends the connection. `handle` turns each request into a response.
pub async fn serve_connection<S, H, F>(
    mut stream: S,
    peer: SocketAddr,
    limits: ConnectionLimits,
    handle: H,
) where
    S: Transport,
    H: Fn(Request<Bytes>, SocketAddr) -> F,
    F: Future<Output = Response<ProxyBody>>,
{
    // Bytes received after the previous request (pipelining); empty between requests,
    // so an idle keep-alive connection holds no buffer.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let read = tokio::time::timeout(
            HEAD_TIMEOUT,
            read_request(&mut stream, &mut carry, limits.max_body),
        )
        .await;
        let request = match read {
            Err(_) => return,
            Ok(Ok(Some(request))) => request,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                let response = match error {
                    RequestError::HeadTooLarge => body::text(
                        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        "Request header too large.\n",
                    ),
                    RequestError::BodyTooLarge => {
                        body::text(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large.\n")
                    }
                    RequestError::Malformed(reason) => {
                        tracing::debug!(%peer, %reason, "malformed request");
                        body::text(StatusCode::BAD_REQUEST, "Bad request.\n")
                    }
                    RequestError::Io(_) => return,
                };
                let _ = write_response(&mut stream, response, false, false, true, &mut carry).await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        let keep_alive = request.keep_alive;
        let head_only = request.inner.method() == http::Method::HEAD;
        let http10 = request.inner.version() == http::Version::HTTP_10;
        // While the handler runs (a long-poll may wait a minute), keep reading: a
        // client that hangs up must end its hold and fire its gone link (§6.5).
        // The block drops the handler's future as soon as it produced the response,
        // so a held stream does not keep the finished handler allocated.
        let response = {
            let handler = handle(request.inner, peer);
            tokio::pin!(handler);
            let mut probe = [0u8; 64];
            loop {
                tokio::select! {
                    response = &mut handler => break response,
                    read = stream.read(&mut probe) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if carry.len() + n > MAX_HEAD {
                                return;
                            }
                            carry.extend_from_slice(&probe[..n]);
                        }
                    },
                }
            }
        };
        let outcome = write_response(
            &mut stream,
            response,
            head_only,
            http10,
            http10 || !keep_alive,
            &mut carry,
        )
        .await;
        match outcome {
            WriteOutcome::KeepAlive if keep_alive && !http10 => continue,
            _ => {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
