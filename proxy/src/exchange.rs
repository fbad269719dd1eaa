//! GRIP origin mode: one client request's exchange with its origin (§1–2, §5, §6).
//!
//! The request is forwarded; a non-GRIP answer is passed through byte for byte; a GRIP
//! answer is parsed into an [`Instruction`] and becomes a response hold, a stream hold,
//! a paged stream (next links), or a plain response. Response holds may recover, which
//! re-sends the request and starts over with the new answer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fjord_protocol::instruction::{self, is_grip_response, Hold, Instruction};
use fjord_protocol::sig::verify_grip_sig;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::{self, ProxyBody};
use crate::context::ProxyContext;
use crate::hold::response::{self, apply_status, client_headers, ResponseHoldEnd};
use crate::hold::stream::{self, HeldStream, StreamOrigin};
use crate::origin::{ClientRequest, OriginRequest};
use crate::route::{Route, RouteTarget};

/// Request bodies up to this size may still get a GRIP answer (§1.9).
const MAX_GRIP_REQUEST_BODY: usize = 100_000;
/// Largest GRIP response body read into memory (stream holds' initial bodies).
const MAX_GRIP_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// The 502 of §2.4, with the reason when the route (or proxy) is in debug mode.
pub fn bad_gateway(ctx: &ProxyContext, route: &Route, reason: &str) -> Response<ProxyBody> {
    tracing::info!(route = %route.id, %reason, "error while proxying to origin");
    ctx.metrics
        .origin_requests
        .with_label_values(&["error"])
        .inc();
    let message = if route.debug || ctx.settings.debug {
        format!("{reason}\n")
    } else {
        "Error while proxying to origin.\n".to_owned()
    };
    body::text(StatusCode::BAD_GATEWAY, &message)
}

/// Handles one client request on an origin route.
pub async fn handle(
    ctx: Arc<ProxyContext>,
    route: Arc<Route>,
    request: Request<Bytes>,
    is_tls: bool,
) -> Response<ProxyBody> {
    let RouteTarget::Origin(targets) = &route.target else {
        return bad_gateway(&ctx, &route, "route has no origin");
    };
    let (parts, body) = request.into_parts();
    let too_large_for_grip = body.len() > MAX_GRIP_REQUEST_BODY;
    let trusted = is_trusted_upstream(&ctx, &parts.headers);
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let client = ClientRequest {
        method: parts.method.clone(),
        path_and_query,
        headers: &parts.headers,
        body,
        is_tls,
    };
    let base = Arc::new(OriginRequest::prepare(client, &route, &ctx.sig, trusted));
    let implicit: Vec<String> = targets
        .first()
        .map(|t| t.subscriptions.clone())
        .unwrap_or_default();
    let untrusted_target = targets.first().is_some_and(|t| t.untrusted);
    let mut request = (*base).clone();
    let mut first_hold = true;
    let mut gone = GoneGuard::default();
    loop {
        let response = match ctx.origin.send(targets, &request).await {
            Ok(response) => response,
            Err(e) => return bad_gateway(&ctx, &route, &e.to_string()),
        };
        ctx.metrics.origin_requests.with_label_values(&["ok"]).inc();
        if trusted || route.no_grip || untrusted_target || !is_grip_response(response.headers()) {
            return passthrough(response);
        }
        let (rparts, rbody) = response.into_parts();
        let origin_body = match Limited::new(rbody, MAX_GRIP_RESPONSE_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return bad_gateway(&ctx, &route, &format!("reading origin body: {e}")),
        };
        let instruction = match Instruction::parse(rparts.status, &rparts.headers, &origin_body) {
            Ok(instruction) => instruction,
            Err(e) => return bad_gateway(&ctx, &route, &e.to_string()),
        };
        if too_large_for_grip {
            return body::text(
                StatusCode::BAD_REQUEST,
                "Request too large to accept GRIP instruct.\n",
            );
        }
        match &instruction.hold {
            Some(Hold::Response(hold)) => {
                if origin_body.len() > instruction::MAX_RESPONSE_HOLD_BODY {
                    return bad_gateway(&ctx, &route, "response hold body too large");
                }
                if let Some(uri) = &instruction.gone_link {
                    gone.arm(&ctx, &route, &base, uri);
                }
                let end = response::hold(
                    &ctx,
                    &route,
                    &implicit,
                    &instruction,
                    hold.timeout(),
                    &origin_body,
                    first_hold,
                )
                .await;
                first_hold = false;
                match end {
                    ResponseHoldEnd::Respond(response) => return response,
                    ResponseHoldEnd::Retry(last) => request = base.with_grip_last(&last),
                }
            }
            Some(Hold::Stream(_)) => {
                // The stream's body posts its own gone link when it ends.
                gone.disarm();
                return stream_response(&ctx, &route, implicit, &base, &instruction, origin_body);
            }
            None if instruction.next_link.is_some() => {
                gone.disarm();
                return stream_response(&ctx, &route, implicit, &base, &instruction, origin_body);
            }
            None => return plain_response(&instruction, origin_body),
        }
    }
}

/// The gone link of a response hold (§6.5), posted when the exchange ends however it
/// ends: answered by a publish, timed out, failed, or dropped because the client went
/// away. A recovery retry keeps it armed (the client is still there); it is disarmed
/// when the exchange turns into a stream, whose body then owns its gone link.
#[derive(Default)]
struct GoneGuard {
    armed: Option<ArmedGone>,
}

struct ArmedGone {
    ctx: Arc<ProxyContext>,
    route: Arc<Route>,
    request: Arc<OriginRequest>,
    uri: String,
}

impl GoneGuard {
    fn arm(
        &mut self,
        ctx: &Arc<ProxyContext>,
        route: &Arc<Route>,
        request: &Arc<OriginRequest>,
        uri: &str,
    ) {
        self.armed = Some(ArmedGone {
            ctx: Arc::clone(ctx),
            route: Arc::clone(route),
            request: Arc::clone(request),
            uri: uri.to_owned(),
        });
    }

    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for GoneGuard {
    fn drop(&mut self) {
        if let Some(gone) = self.armed.take() {
            stream::post_gone_link(&gone.ctx, &gone.route, &gone.request, &gone.uri);
        }
    }
}

/// §1.4: a `Grip-Sig` that verifies with `upstream_key` marks another GRIP proxy.
fn is_trusted_upstream(ctx: &ProxyContext, headers: &HeaderMap) -> bool {
    let (Some(key), Some(token)) = (
        ctx.upstream_key.as_ref(),
        headers.get("grip-sig").and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    verify_grip_sig(token, key, now).is_ok()
}

/// A non-GRIP origin response, relayed unchanged (§2.1) but for hop-by-hop headers.
fn passthrough(response: Response<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    for name in ["connection", "keep-alive", "transfer-encoding"] {
        parts.headers.remove(name);
    }
    Response::from_parts(
        parts,
        body.map_err(|e| Box::new(e) as body::BodyError)
            .boxed_unsync(),
    )
}

fn initial_body(instruction: &Instruction, origin_body: Bytes) -> Bytes {
    match &instruction.response.body {
        instruction::ResponseBody::Origin => origin_body,
        instruction::ResponseBody::Replaced(bytes) => bytes.clone(),
    }
}

/// No hold and no next link: the response is sent now, without its GRIP headers.
pub(crate) fn plain_response(instruction: &Instruction, origin_body: Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(body::full(initial_body(instruction, origin_body)));
    let status = &instruction.response.status;
    apply_status(&mut response, status.code(), Some(status.reason()));
    let mut headers = client_headers(&instruction.response.headers);
    headers.remove(http::header::CONTENT_LENGTH);
    *response.headers_mut() = headers;
    response
}

/// A stream hold or paged stream: status and headers now, then the initial body, then
/// whatever follows (§2.3, §6).
pub(crate) fn stream_response(
    ctx: &Arc<ProxyContext>,
    route: &Arc<Route>,
    implicit_channels: Vec<String>,
    base: &Arc<OriginRequest>,
    instruction: &Instruction,
    origin_body: Bytes,
) -> Response<ProxyBody> {
    let origin = StreamOrigin {
        ctx: Arc::clone(ctx),
        route: Arc::clone(route),
        implicit_channels,
        request: Arc::clone(base),
    };
    let held = HeldStream::start(origin, instruction, initial_body(instruction, origin_body));
    let mut response = Response::new(stream::into_body(held));
    let status = &instruction.response.status;
    apply_status(&mut response, status.code(), Some(status.reason()));
    let mut headers = client_headers(&instruction.response.headers);
    headers.remove(http::header::CONTENT_LENGTH);
    *response.headers_mut() = headers;
    response
}
