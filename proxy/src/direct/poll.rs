//! Long-poll on a direct route: one JSON answer per request, the cursor in and out.
//!
//! `?since=<cursor>` (or `Last-Event-ID`) resumes exactly like an SSE reconnect; the
//! answer comes at once when anything lies after the cursor, else when the next event
//! arrives or `poll_timeout` passes (then with no events and the cursor to poll with
//! next).

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use super::catchup::{CatchupEntry, CatchupOutcome};
use super::stream::CloseReason;
use super::DirectRoute;
use crate::body::{self, ProxyBody};
use crate::context::ProxyContext;
use crate::hub::SubscriptionSet;
use crate::metrics::ConnectionGauge;
use crate::queue::QueueEvent;

/// Most events one answer carries; the rest come with the next poll.
const MAX_EVENTS_PER_ANSWER: usize = 1000;

pub async fn respond(
    ctx: &Arc<ProxyContext>,
    direct: &DirectRoute,
    subscriptions: SubscriptionSet,
    outcome: CatchupOutcome,
    head_only: bool,
) -> Response<ProxyBody> {
    let _gauge = ConnectionGauge::new(&ctx.metrics, "direct_poll");
    let CatchupOutcome {
        mut cursor,
        entries,
        close,
    } = outcome;
    let mut events: Vec<Value> = Vec::new();
    let mut gaps: Vec<Value> = Vec::new();
    for entry in &entries {
        match entry {
            CatchupEntry::Gap(gap) => {
                ctx.metrics.gaps.inc();
                cursor.skip_gap(gap);
                gaps.push(json!(gap));
            }
            CatchupEntry::Unknown { channel, reason } => {
                ctx.metrics.gaps.inc();
                gaps.push(json!({ "channel": channel, "reason": reason }));
            }
            _ => {
                if let Some(event) = entry.event(&mut cursor).filter(|e| e.is_writable()) {
                    events.push(event.json());
                }
            }
        }
    }
    if close == Some(CloseReason::ReplayFailed) {
        let body = json!({
            "error": "unavailable",
            "reason": "the relay could not replay what was missed; poll again later",
            "cursor": cursor.resume_id(),
        });
        return json_response(StatusCode::SERVICE_UNAVAILABLE, &body, head_only);
    }

    let queue = subscriptions.subscriber().queue();
    if events.is_empty() && gaps.is_empty() && close.is_none() {
        let deadline = tokio::time::sleep(direct.poll_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = queue.pop() => match event {
                    QueueEvent::Item(delivery) => {
                        if let Some(event) = cursor.accept(&delivery).filter(|e| e.is_writable()) {
                            events.push(event.json());
                            break;
                        }
                    }
                    QueueEvent::Overflowed => break,
                },
                _ = &mut deadline => break,
            }
        }
    }
    // Whatever else is already queued goes in the same answer.
    while events.len() < MAX_EVENTS_PER_ANSWER {
        let Some(delivery) = queue.try_pop() else {
            break;
        };
        if let Some(event) = cursor.accept(&delivery).filter(|e| e.is_writable()) {
            events.push(event.json());
        }
    }
    let mut body = json!({ "cursor": cursor.resume_id(), "events": events });
    if !gaps.is_empty() {
        body["gaps"] = Value::Array(gaps);
    }
    drop(subscriptions);
    json_response(StatusCode::OK, &body, head_only)
}

fn json_response(status: StatusCode, value: &Value, head_only: bool) -> Response<ProxyBody> {
    let text = if head_only {
        String::new()
    } else {
        value.to_string()
    };
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
