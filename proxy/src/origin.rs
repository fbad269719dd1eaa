//! Requests from the proxy to origin servers (§1).
//!
//! A client request becomes an [`OriginRequest`] once: hop-by-hop headers and
//! `Accept-Encoding` removed, client `Grip-*` headers stripped unless the request came
//! from a trusted upstream proxy, `Grip-Sig` and `Grip-Feature` added. The same value is
//! re-sent on recovery retries (§3.7.3) and adapted for next-link fetches (§6.4).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fjord_protocol::header::{GripLast, GRIP_FEATURE_VALUE};
use fjord_protocol::sig::{sign_grip_sig, SigningKey};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::origin_tls::TlsClients;
use crate::route::{OriginTarget, Route};

/// Request headers never forwarded (§1.1): hop-by-hop, and `Accept-Encoding` because
/// streamed content is spliced into responses verbatim and must be uncompressed.
const STRIPPED_REQUEST_HEADERS: [&str; 7] = [
    "connection",
    "keep-alive",
    "accept-encoding",
    "content-encoding",
    "transfer-encoding",
    "expect",
    "upgrade",
];

/// How long an origin may take to answer with its response head.
const ORIGIN_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("route has no origin target")]
    NoTarget,
    #[error("could not connect to any origin target: {0}")]
    Connect(String),
    #[error("origin request failed: {0}")]
    Request(String),
    #[error("origin did not answer within {0:?}")]
    Timeout(Duration),
    #[error("invalid origin request URI: {0}")]
    Uri(String),
}

/// Signing settings for `Grip-Sig` (§1.3), global values before route overrides.
#[derive(Clone, Default)]
pub struct SigSettings {
    pub iss: String,
    pub key: Option<SigningKey>,
}

/// The parts of a client request the origin request is made from.
pub struct ClientRequest<'a> {
    pub method: Method,
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub is_tls: bool,
}

/// A client request as the origin will receive it.
#[derive(Debug, Clone)]
pub struct OriginRequest {
    pub method: Method,
    /// Path and query after the route's rewrite.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl OriginRequest {
    /// Prepares a client request for the origin (§1.1–1.5, §1.8).
    ///
    /// `trusted` means the request carried a valid `Grip-Sig` of an upstream proxy
    /// (§1.4): its `Grip-*` headers are kept and no signature of ours is added.
    pub fn prepare(
        client: ClientRequest<'_>,
        route: &Route,
        sig: &SigSettings,
        trusted: bool,
    ) -> OriginRequest {
        let client_headers = client.headers;
        let mut headers = HeaderMap::with_capacity(client_headers.len() + 4);
        let connection_listed: Vec<String> = client_headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        for (name, value) in client_headers {
            let lower = name.as_str();
            if STRIPPED_REQUEST_HEADERS.contains(&lower)
                || connection_listed.iter().any(|c| c == lower)
            {
                continue;
            }
            if !trusted && lower.starts_with("grip-") {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        if let Some(host) = &route.as_host {
            if let Ok(value) = HeaderValue::from_str(host) {
                headers.insert(http::header::HOST, value);
            }
        }
        for header in &route.headers {
            headers.insert(header.name.clone(), header.value.clone());
        }
        if client.is_tls {
            headers.insert(
                HeaderName::from_static("x-forwarded-proto"),
                HeaderValue::from_static("https"),
            );
        }
        if !route.no_grip && !trusted {
            if let Some(token) = grip_sig_for(route, sig) {
                headers.insert(HeaderName::from_static("grip-sig"), token);
            }
            headers.insert(
                HeaderName::from_static("grip-feature"),
                HeaderValue::from_static(GRIP_FEATURE_VALUE),
            );
        }
        OriginRequest {
            method: client.method,
            path_and_query: route.rewrite_path(client.path_and_query),
            headers,
            body: client.body,
        }
    }

    /// The same request with `Grip-Last` headers for recovery (§1.6, §3.7.3).
    pub fn with_grip_last(&self, last: &[(String, String)]) -> OriginRequest {
        let mut request = self.clone();
        request.headers.remove("grip-last");
        for (channel, id) in last {
            if let Ok(value) = GripLast::new(channel.as_str(), id.as_str()).to_header_value() {
                request
                    .headers
                    .append(HeaderName::from_static("grip-last"), value);
            }
        }
        request
    }

    /// A next-link fetch (§6.4): `GET` of `path_and_query`, the original headers
    /// (with a fresh signature), no body. Route rewrites are not applied to link URIs
    /// (Pushpin bug #48292).
    pub fn link_fetch(&self, path_and_query: &str, route: &Route, sig: &SigSettings) -> Self {
        let mut request = self.clone();
        request.method = Method::GET;
        request.path_and_query = path_and_query.to_owned();
        request.body = Bytes::new();
        request.headers.remove(http::header::CONTENT_LENGTH);
        request.headers.remove(http::header::CONTENT_TYPE);
        if !route.no_grip {
            if let Some(token) = grip_sig_for(route, sig) {
                request
                    .headers
                    .insert(HeaderName::from_static("grip-sig"), token);
            }
        }
        request
    }
}

/// The route's `Grip-Sig` value, if signing applies (§1.3: key and issuer non-empty).
fn grip_sig_for(route: &Route, sig: &SigSettings) -> Option<HeaderValue> {
    let iss = route.sig_iss.as_deref().unwrap_or(&sig.iss);
    if iss.is_empty() {
        return None;
    }
    let route_key;
    let key = match &route.sig_key {
        Some(spec) => {
            route_key = crate::keys::signing_key_from_spec(spec, None).ok()?;
            &route_key
        }
        None => sig.key.as_ref()?,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = sign_grip_sig(iss, key, now).ok()?;
    HeaderValue::from_str(&token).ok()
}

/// The request an attempt at `target` sends: an absolute `http`/`https` URI (the
/// pooled clients key connections by it), and `Host` from the target's `host=`, else
/// the client's, else the target's address.
fn outgoing_request(
    target: &OriginTarget,
    request: &OriginRequest,
) -> Result<Request<Full<Bytes>>, OriginError> {
    let scheme = if target.ssl { "https" } else { "http" };
    let uri: Uri = format!(
        "{scheme}://{}{}",
        target.authority(),
        request.path_and_query
    )
    .parse()
    .map_err(|e: http::uri::InvalidUri| OriginError::Uri(e.to_string()))?;
    let mut outgoing = Request::builder()
        .method(request.method.clone())
        .uri(uri)
        .body(Full::new(request.body.clone()))
        .map_err(|e| OriginError::Request(e.to_string()))?;
    *outgoing.headers_mut() = request.headers.clone();
    if let Some(host) = &target.host_header {
        if let Ok(value) = HeaderValue::from_str(host) {
            outgoing.headers_mut().insert(http::header::HOST, value);
        }
    }
    if !outgoing.headers().contains_key(http::header::HOST) {
        if let Ok(value) = HeaderValue::from_str(&target.authority()) {
            outgoing.headers_mut().insert(http::header::HOST, value);
        }
    }
    Ok(outgoing)
}

/// Why one attempt at a target got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection came about (refused, timed out, TLS handshake failed): the next
    /// target may be tried.
    Unreachable(String),
    /// The request failed on an established connection.
    Failed(String),
}

impl SendError {
    pub(crate) fn from_pooled(error: hyper_util::client::legacy::Error) -> SendError {
        if error.is_connect() {
            SendError::Unreachable(error.to_string())
        } else {
            SendError::Failed(error.to_string())
        }
    }
}

/// The HTTP client for origins: pooled connections, plain HTTP or TLS (`ssl` targets).
#[derive(Clone)]
pub struct OriginClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Made on the first `ssl` target (reading the system's roots); `Err` says why
    /// TLS is unavailable.
    tls: Arc<OnceLock<Result<TlsClients, String>>>,
}

impl Default for OriginClient {
    fn default() -> Self {
        Self::new()
    }
}

fn tcp_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    connector
}

fn pool() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(Duration::from_secs(30));
    builder
}

impl OriginClient {
    pub fn new() -> OriginClient {
        OriginClient {
            client: pool().build(tcp_connector()),
            tls: Arc::new(OnceLock::new()),
        }
    }

    /// Sends `request` to the route's targets, trying the next one only when
    /// connecting fails (§7.1: no load balancing); a TLS handshake that fails (an
    /// untrusted certificate, say) counts as a failed connect.
    pub async fn send(
        &self,
        targets: &[OriginTarget],
        request: &OriginRequest,
    ) -> Result<Response<Incoming>, OriginError> {
        let mut last_error = OriginError::NoTarget;
        for target in targets {
            let outgoing = outgoing_request(target, request)?;
            let attempt =
                tokio::time::timeout(ORIGIN_RESPONSE_TIMEOUT, self.attempt(target, outgoing))
                    .await
                    .map_err(|_| OriginError::Timeout(ORIGIN_RESPONSE_TIMEOUT))?;
            match attempt {
                Ok(response) => return Ok(response),
                Err(SendError::Unreachable(reason)) => {
                    last_error = OriginError::Connect(format!("{}: {reason}", target.authority()));
                }
                Err(SendError::Failed(reason)) => return Err(OriginError::Request(reason)),
            }
        }
        Err(last_error)
    }

    async fn attempt(
        &self,
        target: &OriginTarget,
        outgoing: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, SendError> {
        if !target.ssl {
            return self
                .client
                .request(outgoing)
                .await
                .map_err(SendError::from_pooled);
        }
        let tls = self
            .tls
            .get_or_init(|| TlsClients::new(tcp_connector, pool).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| SendError::Unreachable(format!("TLS to origins is unavailable: {e}")))?;
        tls.send(target, outgoing).await
    }

    /// Fires a request and forgets it (gone links, §6.5): best effort, no retry.
    pub fn post_and_forget(&self, targets: Vec<OriginTarget>, request: OriginRequest) {
        let client = self.clone();
        tokio::spawn(async move {
            if let Err(e) = client.send(&targets, &request).await {
                tracing::debug!(error = %e, "gone link request failed");
            }
        });
    }
}
