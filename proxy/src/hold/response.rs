//! Response holds: long-polling (§5).
//!
//! Nothing is sent until the first deliverable `http-response` item, the timeout, or a
//! recovery. The first item completes the response; later ones find no subscriber.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::instruction::{self, Instruction, StatusLine};
use fjord_protocol::item::{self, ResponseAction, ResponseMessage};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response};

use super::{ContentFilterContext, HeldChannels, HoldLimits, Verdict};
use crate::body::{self, ProxyBody};
use crate::context::ProxyContext;
use crate::hub::Subscriber;
use crate::metrics::ConnectionGauge;
use crate::queue::QueueEvent;
use crate::route::Route;

/// Each held connection queues at most this many undelivered items (§3.6) once it is
/// slow; a burst that lands before the connection is scheduled may briefly exceed it
/// ([`crate::queue`] says why and by how much).
pub const HELD_QUEUE_CAPACITY: usize = 100;

/// How a response hold ended.
pub enum ResponseHoldEnd {
    Respond(Response<ProxyBody>),
    /// Re-send the original request with these `Grip-Last` pairs (§3.7.3, §5.5).
    Retry(Vec<(String, String)>),
}

/// Holds the client until an item, the timeout, or a recovery.
///
/// `first_hold` is true for the first hold of a client request only: the
/// first-subscription refresh (§3.7.5) happens once per request. A retried request
/// re-subscribes channels that, being held by nobody else, look new again; refreshing
/// those too would re-send the request every second until something is published.
pub async fn hold(
    ctx: &Arc<ProxyContext>,
    route: &Route,
    implicit_channels: &[String],
    instruction: &Instruction,
    hold_timeout: Duration,
    origin_body: &Bytes,
    first_hold: bool,
) -> ResponseHoldEnd {
    let _gauge = ConnectionGauge::new(&ctx.metrics, "response");
    let subscriber = Subscriber::new(Arc::from(route.id.as_str()), HELD_QUEUE_CAPACITY);
    let limits = HoldLimits {
        max_channels: ctx.settings.connection_subscription_max,
    };
    let (mut held, first) = HeldChannels::subscribe(
        Arc::clone(&ctx.hub),
        subscriber,
        instruction,
        implicit_channels,
        &route.channel_prefix,
        &limits,
    );
    if held.behind_at_hold_time() {
        return ResponseHoldEnd::Retry(held.grip_last());
    }
    let timeout_body = match &instruction.response.body {
        instruction::ResponseBody::Origin => origin_body.clone(),
        instruction::ResponseBody::Replaced(bytes) => bytes.clone(),
    };
    let mut timeout = pin!(tokio::time::sleep(hold_timeout));
    let refresh_after = if first_hold && first && ctx.settings.update_on_first_subscription {
        Duration::from_secs(1)
    } else {
        // Far enough in the future never to fire, near enough not to overflow.
        Duration::from_secs(100 * 365 * 24 * 3600)
    };
    let mut refresh = pin!(tokio::time::sleep(refresh_after));
    let mut recover = ctx.recover.subscribe();
    let subscriber = Arc::clone(held.subscriber());
    loop {
        tokio::select! {
            event = subscriber.queue().pop() => {
                let QueueEvent::Item(delivery) = event else {
                    // Only reachable if 100 items arrived without one being deliverable.
                    return ResponseHoldEnd::Respond(timeout_response(&instruction.response.status, &instruction.response.headers, timeout_body));
                };
                match held.judge_response(&delivery) {
                    Verdict::Skip(reason) => {
                        ctx.metrics.dropped.with_label_values(&[reason.label()]).inc();
                    }
                    Verdict::Recover => return ResponseHoldEnd::Retry(held.grip_last()),
                    Verdict::Accept((format, content)) => match &format.action {
                        ResponseAction::Hint => return ResponseHoldEnd::Retry(held.grip_last()),
                        ResponseAction::Send(message) => {
                            ctx.metrics
                                .publish_to_write
                                .observe(delivery.received_at);
                            return ResponseHoldEnd::Respond(published_response(
                                message,
                                &content,
                                &instruction.response.headers,
                                &timeout_body,
                            ));
                        }
                    },
                }
            }
            () = &mut timeout => {
                return ResponseHoldEnd::Respond(timeout_response(
                    &instruction.response.status,
                    &instruction.response.headers,
                    timeout_body,
                ));
            }
            () = &mut refresh => return ResponseHoldEnd::Retry(held.grip_last()),
            _ = recover.recv() => return ResponseHoldEnd::Retry(held.grip_last()),
        }
    }
}

/// The origin's own response, sent when no item arrived in time (§5.4).
pub fn timeout_response(
    status: &StatusLine,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<ProxyBody> {
    let mut response = Response::new(body::full(body));
    apply_status(&mut response, status.code(), Some(status.reason()));
    *response.headers_mut() = client_headers(headers);
    response
}

/// The response built from a published `http-response` item (§3.2): the hold's
/// headers overridden name by name by the published ones, minus `Grip-*`.
fn published_response(
    message: &ResponseMessage,
    content: &ContentFilterContext,
    hold_headers: &HeaderMap,
    hold_body: &Bytes,
) -> Response<ProxyBody> {
    let body = match &message.body {
        item::ResponseBody::Bytes(bytes) => content.apply(bytes),
        item::ResponseBody::Patch(patch) => match apply_body_patch(hold_body, patch) {
            Some(patched) => patched,
            None => hold_body.clone(),
        },
    };
    let mut headers = client_headers(hold_headers);
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (name, value) in &message.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        if name.as_str().starts_with("grip-") || is_hop_by_hop(&name) {
            continue;
        }
        if !replaced.contains(&name) {
            headers.remove(&name);
            replaced.push(name.clone());
        }
        headers.append(name, value);
    }
    headers.remove(http::header::CONTENT_LENGTH);
    let mut response = Response::new(body::full(body));
    *response.headers_mut() = headers;
    apply_status(&mut response, message.code, message.reason.as_deref());
    response
}

/// RFC 6902 patch of the hold's JSON body, re-serialised with the original trailing
/// line ending kept (§3.2). `None` when the body is not JSON or the patch fails.
fn apply_body_patch(original: &Bytes, patch: &json_patch::Patch) -> Option<Bytes> {
    let text = std::str::from_utf8(original).ok()?;
    let trimmed = text.trim_end_matches(['\r', '\n']);
    let ending = &text[trimmed.len()..];
    let mut document: serde_json::Value = serde_json::from_str(trimmed).ok()?;
    json_patch::patch(&mut document, patch).ok()?;
    let mut out = serde_json::to_vec(&document).ok()?;
    out.extend_from_slice(ending.as_bytes());
    Some(Bytes::from(out))
}

/// Sets status and, where it differs from the standard phrase, the reason phrase.
pub fn apply_status(response: &mut Response<ProxyBody>, code: u16, reason: Option<&str>) {
    let status = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_GATEWAY);
    *response.status_mut() = status;
    if let Some(reason) = reason {
        if status.canonical_reason() != Some(reason) && !reason.is_empty() {
            if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()) {
                response.extensions_mut().insert(phrase);
            }
        }
    }
}

/// Origin headers as the client may see them (§2.3): no `Grip-*`, no hop-by-hop.
pub fn client_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if name.as_str().starts_with("grip-") || is_hop_by_hop(name) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "content-encoding" | "transfer-encoding"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_patch_keeps_the_trailing_newline() {
        let patch: json_patch::Patch =
            serde_json::from_str(r#"[{"op":"replace","path":"/n","value":2}]"#)
                .expect("valid patch");
        let out = apply_body_patch(&Bytes::from_static(b"{\"n\":1}\n"), &patch);
        assert_eq!(out.as_deref(), Some(&b"{\"n\":2}\n"[..]));
    }

    #[test]
    fn client_headers_drop_grip_and_hop_by_hop() {
        let mut headers = HeaderMap::new();
        headers.insert("grip-hold", HeaderValue::from_static("response"));
        headers.insert("connection", HeaderValue::from_static("close"));
        headers.insert("x-a", HeaderValue::from_static("1"));
        let out = client_headers(&headers);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key("x-a"));
    }
}
