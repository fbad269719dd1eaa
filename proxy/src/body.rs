//! The response body type every handler of the proxy returns.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Errors a response body can end with; the connection is then closed.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: a fixed buffer, an origin's body passed through, or a held stream.
pub type ProxyBody = UnsyncBoxBody<Bytes, BodyError>;

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

pub fn empty() -> ProxyBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A small `text/plain` response, as Pushpin sends for errors and control answers.
pub fn text(status: http::StatusCode, message: &str) -> http::Response<ProxyBody> {
    let mut response = http::Response::new(full(message.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

/// An empty response with `status`.
pub fn empty_response(status: http::StatusCode) -> http::Response<ProxyBody> {
    let mut response = http::Response::new(empty());
    *response.status_mut() = status;
    response
}
