//! Pushpin's built-in `test` route target (§7.1): a tiny origin inside the proxy, handy
//! for trying a deployment without a backend.
//!
//! `/` answers a greeting, `/stream` holds an HTTP stream on channel `test` (or
//! `?channel=`), `/response` holds a long-poll on the same channel.

use std::sync::Arc;

use bytes::Bytes;
use fjord_protocol::instruction::{Hold, Instruction};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};

use crate::body::{self, ProxyBody};
use crate::context::ProxyContext;
use crate::exchange::{bad_gateway, stream_response};
use crate::hold::response::{self, ResponseHoldEnd};
use crate::origin::OriginRequest;
use crate::route::Route;

pub async fn handle(
    ctx: Arc<ProxyContext>,
    route: Arc<Route>,
    request: Request<Bytes>,
) -> Response<ProxyBody> {
    let channel = request
        .uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("channel="))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "test".to_owned());
    let mode = match request.uri().path() {
        "/stream" => "stream",
        "/response" => "response",
        _ => return body::text(StatusCode::OK, "Hello from the Fjord test origin.\n"),
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.insert("grip-hold", HeaderValue::from_static(mode));
    let Ok(channel_header) = HeaderValue::from_str(&channel) else {
        return body::text(StatusCode::BAD_REQUEST, "Invalid channel.\n");
    };
    headers.insert("grip-channel", channel_header);
    let instruction = match Instruction::parse(StatusCode::OK, &headers, b"") {
        Ok(instruction) => instruction,
        Err(e) => return bad_gateway(&ctx, &route, &e.to_string()),
    };
    let base = Arc::new(OriginRequest {
        method: request.method().clone(),
        path_and_query: request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        headers: HeaderMap::new(),
        body: Bytes::new(),
    });
    match &instruction.hold {
        Some(Hold::Response(hold)) => {
            let body = Bytes::from_static(b"timeout\n");
            match response::hold(&ctx, &route, &[], &instruction, hold.timeout(), &body, true).await
            {
                ResponseHoldEnd::Respond(response) => response,
                ResponseHoldEnd::Retry(_) => {
                    response::timeout_response(&instruction.response.status, &headers, body)
                }
            }
        }
        _ => stream_response(&ctx, &route, Vec::new(), &base, &instruction, Bytes::new()),
    }
}
