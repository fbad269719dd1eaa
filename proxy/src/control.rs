//! The control HTTP server: Pushpin's publish API (§4.1) plus Fjord's operational
//! endpoints, on one port (default `127.0.0.1:5561`).
//!
//! The Pushpin part answers byte for byte as Pushpin's `handlerengine.cpp` and
//! `simplehttpserver.cpp` do, because publisher libraries and scripts check status
//! codes and sometimes bodies:
//!
//! - `POST /publish` (one trailing slash ignored): all-or-nothing validation, then
//!   `Published\n` as `text/plain`, or `{"message":"Published"}\n` as
//!   `application/json` when the last recognised `Accept` entry is JSON. Pushpin does
//!   not weigh q-values; neither do we.
//! - An `Accept` header naming neither text nor JSON gets `406` on every path.
//! - `POST /recover` → `Updated\n`; other methods on `/publish` and `/recover` → `405`
//!   with `Allow: POST`; any method on `/` → `Pushpin API\n`; anything else → `404`.
//! - A body over the limit (1,000,000 bytes) → `400 Request body too large.`, whether
//!   announced by `Content-Length` or found while reading a chunked body **[ext]**. A
//!   body-carrying method with neither header → `411`, as Pushpin requires a length.
//! - `Authorization` is ignored (conformance item 39).
//!
//! Deliberate differences, all additive: the query string is ignored when matching
//! paths (Pushpin compares the raw request target), connections are kept alive
//! (Pushpin closes after each response), and a request head over the header limit gets
//! hyper's `431` instead of Pushpin's `400 Request header too large.`.
//!
//! Fjord's endpoints: `GET /metrics` (Prometheus text), `GET /healthz` (the process
//! serves), `GET /readyz` (the proxy finished starting; `503` before).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fjord_protocol::item::parse_publish_request;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::hub::{Hub, PublishInput};
use crate::log_limit::LogLimiter;

/// Pushpin's `push_in_http_max_body_size` default (§7.2).
pub const DEFAULT_MAX_BODY_SIZE: usize = 1_000_000;
/// Pushpin's `push_in_http_max_headers_size` default (§7.2).
pub const DEFAULT_MAX_HEADERS_SIZE: usize = 10_000;

/// A client must send its request head within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A 10,000-byte head can hold far more than hyper's default of 100 header lines;
/// Pushpin limits only the size.
const MAX_HEADER_LINES: usize = 1_000;
/// How much of an oversized body is read and discarded before answering. A client
/// that is still sending when the connection closes would see a reset instead of the
/// `400`; beyond this amount we stop being polite.
const OVERSIZED_DRAIN_BYTES: usize = 8 * 1024 * 1024;
const OVERSIZED_DRAIN_TIME: Duration = Duration::from_secs(2);
const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Size limits of control requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlLimits {
    pub max_body_size: usize,
    pub max_headers_size: usize,
}

impl Default for ControlLimits {
    fn default() -> Self {
        ControlLimits {
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            max_headers_size: DEFAULT_MAX_HEADERS_SIZE,
        }
    }
}

/// Called on `POST /recover`: every hold should recover (§3.7 step 6).
pub type RecoverHook = Arc<dyn Fn() + Send + Sync>;

/// What the control server needs from the rest of the proxy.
#[derive(Clone)]
pub struct ControlDeps {
    /// Published items go here; its metrics are served on `/metrics`.
    pub hub: Arc<Hub>,
    /// `/readyz` answers `200` while this is true.
    pub ready: Arc<AtomicBool>,
    pub recover: RecoverHook,
    pub limits: ControlLimits,
}

/// The control port's listener.
pub struct ControlServer;

impl ControlServer {
    /// Binds `addr` and serves on it in a spawned task. Binding errors are returned so
    /// the caller can name the port that is in use; the task never ends on its own.
    pub async fn bind(
        addr: SocketAddr,
        deps: ControlDeps,
    ) -> Result<(SocketAddr, JoinHandle<()>), io::Error> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let state = Arc::new(ControlState {
            deps,
            rejections: LogLimiter::new(REJECTION_LOG_INTERVAL),
        });
        Ok((local, tokio::spawn(accept_loop(listener, state))))
    }
}

struct ControlState {
    deps: ControlDeps,
    rejections: LogLimiter,
}

async fn accept_loop(listener: TcpListener, state: Arc<ControlState>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or a reset before accept: keep serving.
                tracing::warn!(error = %e, "control port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let max_headers_size = state.deps.limits.max_headers_size;
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_header_size(max_headers_size)
                .max_headers(MAX_HEADER_LINES)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "control connection ended with an error");
            }
        });
    }
}

async fn handle(state: &ControlState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(endpoint) = FjordEndpoint::from_path(request.uri().path()) {
        return fjord_endpoint(state, endpoint, request.method());
    }
    let method = request.method().clone();
    let target = request.uri().to_string();
    let path = pushpin_path(request.uri().path()).to_owned();
    let (response, items) = pushpin_api(state, &path, request).await;
    let status = response.status();
    tracing::debug!(%method, %target, code = status.as_u16(), items, "control request");
    if path == "/publish" && status.is_client_error() && status != StatusCode::METHOD_NOT_ALLOWED {
        state
            .deps
            .hub
            .metrics()
            .publish_errors
            .with_label_values(&[PublishInput::Http.label()])
            .inc();
    }
    response
}

#[derive(Debug, Clone, Copy)]
enum FjordEndpoint {
    Metrics,
    Health,
    Ready,
}

impl FjordEndpoint {
    fn from_path(path: &str) -> Option<FjordEndpoint> {
        match path {
            "/metrics" => Some(FjordEndpoint::Metrics),
            "/healthz" => Some(FjordEndpoint::Health),
            "/readyz" => Some(FjordEndpoint::Ready),
            _ => None,
        }
    }
}

fn fjord_endpoint(
    state: &ControlState,
    endpoint: FjordEndpoint,
    method: &Method,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed(method, "GET");
    }
    match endpoint {
        FjordEndpoint::Metrics => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            state.deps.hub.metrics().render(),
        ),
        FjordEndpoint::Health => text(StatusCode::OK, "ok\n"),
        FjordEndpoint::Ready if state.deps.ready.load(Ordering::Acquire) => {
            text(StatusCode::OK, "ready\n")
        }
        FjordEndpoint::Ready => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

/// The path as Pushpin matches it: a single trailing slash is dropped, except on `/`.
fn pushpin_path(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    }
}

/// Serves one Pushpin API request, in Pushpin's order: length checks, body, `Accept`,
/// then the path. Returns the response and the number of items published.
async fn pushpin_api(
    state: &ControlState,
    path: &str,
    request: Request<Incoming>,
) -> (Response<Full<Bytes>>, usize) {
    let (parts, body) = request.into_parts();
    if method_assumes_body(&parts.method) && !has_length(&parts.headers) {
        let response = text(
            StatusCode::LENGTH_REQUIRED,
            "Request requires Content-Length.\n",
        );
        return (response, 0);
    }
    let body = match read_body(body, state.deps.limits.max_body_size).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            state.warn_rejected(path, "Request body too large.");
            let mut response = text(StatusCode::BAD_REQUEST, "Request body too large.\n");
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return (response, 0);
        }
        Err(BodyError::Read(e)) => {
            tracing::debug!(error = %e, "control request body could not be read");
            let response = text(StatusCode::BAD_REQUEST, "Failed to read request body.\n");
            return (response, 0);
        }
    };
    let Some(format) = response_format(&parts.headers) else {
        let response = text(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable. Supported formats are text/plain and application/json.\n",
        );
        return (response, 0);
    };
    match path {
        "/" => (text(StatusCode::OK, "Pushpin API\n"), 0),
        "/publish" if parts.method == Method::POST => publish(state, &body, format),
        "/recover" if parts.method == Method::POST => {
            (state.deps.recover)();
            (message(format, "Updated"), 0)
        }
        "/publish" | "/recover" => (method_not_allowed(&parts.method, "POST"), 0),
        _ => (text(StatusCode::NOT_FOUND, "Not Found\n"), 0),
    }
}

/// Validates the whole request first (§4.1: a bad item means nothing is published),
/// then hands every item to the hub before answering, so a `200` means the items are
/// already queued for their subscribers.
fn publish(
    state: &ControlState,
    body: &[u8],
    format: ResponseFormat,
) -> (Response<Full<Bytes>>, usize) {
    match parse_publish_request(body) {
        Ok(items) => {
            let count = items.len();
            for item in items {
                state.deps.hub.publish(item, PublishInput::Http);
            }
            (message(format, "Published"), count)
        }
        Err(e) => {
            let reason = e.to_string();
            state.warn_rejected("/publish", &reason);
            (text(StatusCode::BAD_REQUEST, format!("{reason}\n")), 0)
        }
    }
}

impl ControlState {
    fn warn_rejected(&self, path: &str, reason: &str) {
        if let Some(suppressed) = self.rejections.admit(Instant::now()) {
            tracing::warn!(path, reason, suppressed, "control API rejected a request");
        }
    }
}

/// Pushpin sends `411` for a body-carrying method without `Content-Length`; a chunked
/// body is accepted as an extension.
fn method_assumes_body(method: &Method) -> bool {
    method != Method::GET && method != Method::HEAD && method != Method::DELETE
}

fn has_length(headers: &HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_LENGTH) || headers.contains_key(header::TRANSFER_ENCODING)
}

#[derive(Debug)]
enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Collects the body, refusing it as soon as it is known to exceed `limit`: up front
/// from `Content-Length`, or while reading a chunked body.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let announced = body.size_hint().exact();
    if announced.is_some_and(|length| length > limit as u64) {
        drain(body).await;
        return Err(BodyError::TooLarge);
    }
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if collected.len() + data.len() > limit {
            drain(body).await;
            return Err(BodyError::TooLarge);
        }
        collected.extend_from_slice(&data);
    }
    Ok(collected.freeze())
}

/// Reads and discards what remains of an oversized body, within bounds, so the client
/// can read the `400` instead of a connection reset.
async fn drain(mut body: Incoming) {
    let discard = async {
        let mut drained = 0usize;
        while drained < OVERSIZED_DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    drained += frame.data_ref().map_or(0, |data| data.len());
                }
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(OVERSIZED_DRAIN_TIME, discard).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFormat {
    Text,
    Json,
}

/// The response format `Accept` asks for, as Pushpin decides it: every recognised
/// media range overrides the previous one, so the last wins; `None` when the header is
/// present but names neither text nor JSON (→ `406`).
fn response_format(headers: &HeaderMap) -> Option<ResponseFormat> {
    if !headers.contains_key(header::ACCEPT) {
        return Some(ResponseFormat::Text);
    }
    let mut chosen = None;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for entry in value.split(',') {
            let media = entry.split(';').next().unwrap_or_default().trim();
            match media.to_ascii_lowercase().as_str() {
                "text/plain" | "text/*" | "*/*" | "*" => chosen = Some(ResponseFormat::Text),
                "application/json" | "application/*" => chosen = Some(ResponseFormat::Json),
                _ => {}
            }
        }
    }
    chosen
}

/// A success message in the negotiated format; JSON is compact, as Pushpin's.
fn message(format: ResponseFormat, message: &str) -> Response<Full<Bytes>> {
    match format {
        ResponseFormat::Text => text(StatusCode::OK, format!("{message}\n")),
        ResponseFormat::Json => {
            let body = serde_json::json!({ "message": message });
            respond(StatusCode::OK, "application/json", format!("{body}\n"))
        }
    }
}

fn method_not_allowed(method: &Method, allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Method not allowed: {method}.\n"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    respond(status, "text/plain", body)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn no_accept_header_means_text() {
        assert_eq!(
            response_format(&HeaderMap::new()),
            Some(ResponseFormat::Text)
        );
    }

    #[test]
    fn the_last_recognised_accept_entry_wins() {
        let json_last = accept(&["text/plain, application/json"]);
        assert_eq!(response_format(&json_last), Some(ResponseFormat::Json));
        let text_last = accept(&["application/json", "*/*;q=0.1"]);
        assert_eq!(response_format(&text_last), Some(ResponseFormat::Text));
        let wildcard = accept(&["application/*; q=0.5"]);
        assert_eq!(response_format(&wildcard), Some(ResponseFormat::Json));
    }

    #[test]
    fn accept_naming_neither_text_nor_json_is_refused() {
        assert_eq!(response_format(&accept(&["text/html, image/png"])), None);
        assert_eq!(response_format(&accept(&[""])), None);
    }

    #[test]
    fn one_trailing_slash_is_ignored() {
        assert_eq!(pushpin_path("/publish/"), "/publish");
        assert_eq!(pushpin_path("/publish"), "/publish");
        assert_eq!(pushpin_path("/publish//"), "/publish/");
        assert_eq!(pushpin_path("/"), "/");
    }
}
