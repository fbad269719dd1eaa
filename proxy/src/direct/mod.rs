//! Direct mode (design "Routes", "Resume", "Security"): a route whose path names a
//! channel, answered by the proxy itself — SSE, long-poll or raw streaming of a
//! Kafka-fed channel, with JWT auth, CORS, and resume without loss.
//!
//! A request goes through [`handle`]: CORS preflight, path and query, auth, then the
//! subscription and catch-up (history ring or relay replay, decided atomically with the
//! subscription so nothing falls between), then the transport.

pub mod auth;
pub mod catchup;
pub mod cors;
pub mod cursor;
pub mod path;
pub mod poll;
pub mod replay;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::resume::ResumePosition;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;

use self::auth::{authenticate, authorize, AuthFailure, ClientAuth};
use self::catchup::{catch_up, CatchupOutcome};
use self::cors::CorsPolicy;
use self::cursor::Transport;
use self::path::{ChannelTemplate, PathTemplate};
use self::replay::ReplayClient;
use self::stream::{DirectStream, StreamStart};
use crate::body::{self, ProxyBody};
use crate::context::ProxyContext;
use crate::hub::{OverflowPolicy, Subscriber, SubscriptionSet};
use crate::route::Route;

/// Whether a route needs a client token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    Public,
    #[default]
    Token,
}

/// A direct route's settings (`[[proxy.route]]` with `channel = …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectRoute {
    pub path: PathTemplate,
    pub channel: ChannelTemplate,
    /// The relay stream rule that feeds the channel (`stream=` of a replay); the relay
    /// picks its only rule when unset.
    pub stream: Option<String>,
    pub auth: AuthMode,
    /// Channels one request may read: the path's plus `?channel=` extras.
    pub max_channels: usize,
    pub on_overflow: OverflowPolicy,
    /// Period of SSE keep-alive comments while nothing else is written.
    pub keep_alive: Duration,
    /// The SSE `retry:` hint sent first.
    pub retry_ms: u64,
    pub cors: CorsPolicy,
    /// Items kept per channel for resumes from memory.
    pub history: usize,
    /// How long a long-poll waits for an event.
    pub poll_timeout: Duration,
    /// Items a connection may have queued before its overflow policy applies.
    pub queue: usize,
}

impl DirectRoute {
    /// A route for `path` → `channel` with every other setting at its default.
    pub fn new(path: PathTemplate, channel: ChannelTemplate) -> DirectRoute {
        DirectRoute {
            path,
            channel,
            stream: None,
            auth: AuthMode::Token,
            max_channels: 1,
            on_overflow: OverflowPolicy::Close,
            keep_alive: Duration::from_secs(30),
            retry_ms: 2000,
            cors: CorsPolicy::default(),
            history: 1000,
            poll_timeout: Duration::from_secs(30),
            queue: 1000,
        }
    }
}

/// What direct routes share: token verification and the relays to replay from.
#[derive(Debug, Clone, Default)]
pub struct DirectSettings {
    pub auth: Option<ClientAuth>,
    pub replay: Option<ReplayClient>,
}

/// A JSON error answer: `{"error": …, "reason": …}`.
fn json_error(status: StatusCode, error: &str, reason: &str) -> Response<ProxyBody> {
    let body = json!({ "error": error, "reason": reason }).to_string();
    let mut response = Response::new(body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The parts of a direct request the handler acts on.
struct DirectRequest {
    channels: Vec<String>,
    transport: Transport,
    token: Option<String>,
    resume: Option<ResumePosition>,
}

/// A request refused before anything was subscribed.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    error: &'static str,
    reason: String,
}

impl Refusal {
    fn into_response(self) -> Response<ProxyBody> {
        json_error(self.status, self.error, &self.reason)
    }
}

fn bad_request(reason: &str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        error: "bad_request",
        reason: reason.to_owned(),
    }
}

/// Reads path, query and headers.
fn parse_request(direct: &DirectRoute, request: &Request<Bytes>) -> Result<DirectRequest, Refusal> {
    let values = direct
        .path
        .matches(request.uri().path())
        .ok_or_else(|| Refusal {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            reason: "no such channel path".to_owned(),
        })?;
    let pairs = fjord_protocol::form::parse_query(request.uri().query().unwrap_or(""))
        .map_err(|e| bad_request(&format!("the query string is not valid: {e}")))?;
    let mut channels = vec![direct.channel.render(&values)];
    let mut mode = None;
    let mut token = None;
    let mut resume_id = None;
    for (name, value) in pairs {
        match name.as_str() {
            "channel" => {
                if value.is_empty() || value.chars().any(char::is_control) {
                    return Err(bad_request("empty or invalid channel name"));
                }
                if !channels.contains(&value) {
                    channels.push(value);
                }
            }
            "mode" => mode = Some(value),
            "token" => token = Some(value),
            "lastEventId" | "since" => resume_id = Some(value),
            _ => {}
        }
    }
    if channels.len() > direct.max_channels.max(1) {
        return Err(bad_request(&format!(
            "this route allows at most {} channel(s) per request",
            direct.max_channels.max(1)
        )));
    }
    let transport = match mode.as_deref() {
        Some("sse") => Transport::Sse,
        Some("poll") | Some("long-poll") => Transport::Poll,
        Some("stream") | Some("raw") => Transport::Raw,
        Some(other) => {
            return Err(bad_request(&format!(
                "unknown mode {other:?}: use sse, poll or stream"
            )))
        }
        None => {
            let accept = request
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.contains("text/event-stream") || !accept.contains("application/json") {
                Transport::Sse
            } else {
                Transport::Poll
            }
        }
    };
    let header_id = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let resume = match resume_id.or(header_id).filter(|id| !id.is_empty()) {
        Some(id) => Some(ResumePosition::decode(&id).map_err(|e| {
            bad_request(&format!("the resume id is not one this proxy issued: {e}"))
        })?),
        None => None,
    };
    Ok(DirectRequest {
        channels,
        transport,
        token,
        resume,
    })
}

/// Seconds since the Unix epoch, what token claims count in.
fn unix_now() -> u64 {
    crate::hub::unix_ms() / 1000
}

/// Answers a request on a direct route.
pub async fn handle(
    ctx: Arc<ProxyContext>,
    route: Arc<Route>,
    direct: &DirectRoute,
    request: Request<Bytes>,
) -> Response<ProxyBody> {
    let mut response = respond(&ctx, &route, direct, &request).await;
    direct.cors.apply(request.headers(), response.headers_mut());
    response
}

async fn respond(
    ctx: &Arc<ProxyContext>,
    route: &Arc<Route>,
    direct: &DirectRoute,
    request: &Request<Bytes>,
) -> Response<ProxyBody> {
    if request.method() == Method::OPTIONS {
        let mut response = body::empty_response(StatusCode::NO_CONTENT);
        if let Some(headers) = direct.cors.preflight(request.headers()) {
            response.headers_mut().extend(headers);
        }
        return response;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "direct routes answer GET",
        );
        response.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static("GET, OPTIONS"),
        );
        return response;
    }
    let parsed = match parse_request(direct, request) {
        Ok(parsed) => parsed,
        Err(refusal) => return refusal.into_response(),
    };
    let mut expires_in = None;
    if direct.auth == AuthMode::Token {
        let checked = authenticate(
            ctx.direct.auth.as_ref(),
            request.headers(),
            parsed.token.as_deref(),
            unix_now(),
        )
        .and_then(|claims| authorize(&claims, &parsed.channels).map(|()| claims));
        match checked {
            Ok(claims) => expires_in = Some(claims.expires_in(unix_now())),
            Err(failure) => return refuse(ctx, &failure),
        }
    }

    let subscriber = Subscriber::with_policy(
        Arc::from(route.id.as_str()),
        direct.queue,
        direct.on_overflow,
    );
    let mut subscriptions = SubscriptionSet::new(Arc::clone(&ctx.hub), subscriber);
    let outcome: CatchupOutcome = catch_up(
        ctx,
        direct,
        &mut subscriptions,
        &parsed.channels,
        parsed.resume.as_ref(),
    )
    .await;

    match parsed.transport {
        Transport::Poll => {
            poll::respond(
                ctx,
                direct,
                subscriptions,
                outcome,
                request.method() == Method::HEAD,
            )
            .await
        }
        transport => stream_response(ctx, direct, transport, subscriptions, outcome, expires_in),
    }
}

fn refuse(ctx: &ProxyContext, failure: &AuthFailure) -> Response<ProxyBody> {
    ctx.metrics
        .auth_failures
        .with_label_values(&[failure.label()])
        .inc();
    let error = match failure {
        AuthFailure::Forbidden { .. } => "forbidden",
        _ => "unauthorized",
    };
    let mut response = json_error(failure.status(), error, &failure.reason());
    if failure.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    response
}

fn stream_response(
    ctx: &Arc<ProxyContext>,
    direct: &DirectRoute,
    transport: Transport,
    subscriptions: SubscriptionSet,
    outcome: CatchupOutcome,
    expires_in: Option<Duration>,
) -> Response<ProxyBody> {
    let mut initial = std::collections::VecDeque::new();
    if transport == Transport::Sse {
        initial.push_back(Bytes::from(format!("retry: {}\n\n", direct.retry_ms)));
    }
    let CatchupOutcome {
        mut cursor,
        entries,
        close,
    } = outcome;
    for entry in &entries {
        if let Some(bytes) = entry.write(&mut cursor, transport, &ctx.metrics) {
            initial.push_back(bytes);
        }
    }
    let stream = DirectStream::new(StreamStart {
        transport,
        initial,
        cursor,
        subscriptions,
        metrics: Arc::clone(&ctx.metrics),
        keep_alive: Some(direct.keep_alive).filter(|d| !d.is_zero()),
        expires_in,
        close_now: close,
    });
    let mut response = Response::new(http_body_util::BodyExt::boxed_unsync(stream));
    let headers = response.headers_mut();
    let content_type = match transport {
        Transport::Sse => "text/event-stream",
        _ => "application/octet-stream",
    };
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
