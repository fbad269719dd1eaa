//! Helpers of the direct-mode suites: Kafka-shaped items, client tokens, SSE parsing.

use fjord_protocol::sig::SigningKey;
use fjord_protocol::token::{issue_client_token, Audience, ChannelPattern, ClientClaims};
use serde_json::json;

/// The HS256 secret the suites' proxies verify tokens with.
pub const SECRET: &str = "direct-mode-test-secret-0123456789";

/// `[auth]` for [`SECRET`] with audience `fjord`.
pub fn auth_section() -> String {
    format!("[auth]\njwt_key = \"{SECRET}\"\naudience = \"fjord\"\n")
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A token for `channels`, valid for `ttl_secs`, audience `fjord`, signed with `secret`.
pub fn token_with(secret: &str, channels: &[&str], ttl_secs: i64, audience: &str) -> String {
    let exp = (now() as i64 + ttl_secs).max(1) as u64;
    let mut claims = ClientClaims::new(
        channels.iter().map(|c| ChannelPattern::new(*c)).collect(),
        exp,
    );
    claims.aud = Some(Audience::One(audience.to_owned()));
    let key = SigningKey::from_secret(secret.as_bytes()).expect("key");
    issue_client_token(&claims, &key).expect("sign")
}

/// A valid token for `channels`, an hour long.
pub fn token(channels: &[&str]) -> String {
    token_with(SECRET, channels, 3600, "fjord")
}

/// An item as the relay publishes a Kafka record (§9): position in `meta`, an SSE event
/// with the item id, and the raw value.
pub fn kafka_item(
    channel: &str,
    partition: i32,
    offset: i64,
    key: &str,
    data: &str,
) -> serde_json::Value {
    let id = format!("orders-{partition}-{offset}");
    json!({
        "channel": channel,
        "id": id,
        "meta": {"topic": "orders", "partition": partition.to_string(),
                 "offset": offset.to_string(), "key": key, "event": "order"},
        "formats": {
            "http-stream": {"content": format!("id: {id}\nevent: order\ndata: {data}\n\n")},
            "http-response": {"body": data},
        },
    })
}

/// One parsed SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Every complete event in `text` (comments and `retry:` lines skipped; an event still
/// missing its blank line is not complete).
pub fn parse_sse(text: &str) -> Vec<SseEvent> {
    let complete = text.rfind("\n\n").map_or("", |end| &text[..end]);
    let mut events = Vec::new();
    for block in complete.split("\n\n") {
        let mut id = None;
        let mut event = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v);
            }
        }
        if !data.is_empty() {
            events.push(SseEvent {
                id,
                event,
                data: data.join("\n"),
            });
        }
    }
    events
}

/// The values of the `order` events, in order.
pub fn order_data(text: &str) -> Vec<String> {
    parse_sse(text)
        .into_iter()
        .filter(|e| e.event.as_deref() == Some("order"))
        .map(|e| e.data)
        .collect()
}
