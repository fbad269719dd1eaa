//! Asking a relay to replay a channel from Kafka (design "Resume" 2): `GET /replay` on the
//! relay's control port answers NDJSON — gap lines, item lines, then an end line (see
//! `fjord_relay::replay`). The proxy reads it whole, bounded, before the connection goes
//! live.

use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::form::percent_encode;
use fjord_protocol::item::PublishItem;
use fjord_protocol::resume::ResumePosition;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::kafka_event::KafkaEvent;

/// A range of offsets Kafka no longer has (both ends inclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
    pub to: i64,
}

/// One line of a replay that the connection acts on.
#[derive(Debug)]
pub enum ReplayEntry {
    Gap(Gap),
    Record(KafkaEvent),
}

/// Why a replay did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay request failed: {0}")]
    Request(String),
    #[error("relay answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("relay reported: {0}")]
    Relay(String),
    #[error("replay answer is malformed: {0}")]
    Malformed(String),
    #[error("replay ended without its end line")]
    Truncated,
    #[error("replay is larger than {0} bytes")]
    TooLarge(usize),
}

/// Largest replay answer read into memory; a client further behind is served in rounds
/// (its stream ends with a resume id after what was read, and it reconnects).
const MAX_REPLAY_BYTES: usize = 64 * 1024 * 1024;
const REPLAY_TIMEOUT: Duration = Duration::from_secs(60);

/// Talks to the relays' control ports.
#[derive(Clone)]
pub struct ReplayClient {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for ReplayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayClient")
            .field("base", &self.base)
            .finish()
    }
}

impl ReplayClient {
    /// A client of the relay control API at `base` (`http://host:port`).
    pub fn new(base: &str) -> ReplayClient {
        ReplayClient {
            base: base.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The items of `channel` after `after`, as the relay's rule `stream` maps them.
    pub async fn replay(
        &self,
        channel: &str,
        stream: Option<&str>,
        after: &ResumePosition,
    ) -> Result<Vec<ReplayEntry>, ReplayError> {
        let mut uri = format!(
            "{}/replay?channel={}&position={}",
            self.base,
            percent_encode(channel),
            after.encode()
        );
        if let Some(stream) = stream {
            uri.push_str("&stream=");
            uri.push_str(&percent_encode(stream));
        }
        let request = http::Request::get(uri)
            .body(Empty::new())
            .map_err(|e| ReplayError::Request(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ReplayError::Request(e.to_string()))?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_REPLAY_BYTES)
                .collect()
                .await
                .map_err(|_| ReplayError::TooLarge(MAX_REPLAY_BYTES))?
                .to_bytes();
            if !status.is_success() {
                return Err(ReplayError::Status {
                    status: status.as_u16(),
                    body: String::from_utf8_lossy(&body).trim().to_owned(),
                });
            }
            parse_replay(channel, &body)
        };
        tokio::time::timeout(REPLAY_TIMEOUT, exchange)
            .await
            .map_err(|_| ReplayError::Request("timed out".to_owned()))?
    }
}

/// Reads a replay answer: gap and item lines until the end line.
pub fn parse_replay(channel: &str, body: &[u8]) -> Result<Vec<ReplayEntry>, ReplayError> {
    let mut entries = Vec::new();
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| ReplayError::Malformed(e.to_string()))?;
        if let Some(gap) = value.get("gap") {
            let gap: Gap = serde_json::from_value(gap.clone())
                .map_err(|e| ReplayError::Malformed(format!("gap: {e}")))?;
            entries.push(ReplayEntry::Gap(gap));
        } else if value.get("end").is_some() {
            return Ok(entries);
        } else if let Some(error) = value.get("error") {
            return Err(ReplayError::Relay(
                error.as_str().unwrap_or("unknown").to_owned(),
            ));
        } else {
            let item = PublishItem::from_json(&value, Some(channel))
                .map_err(|e| ReplayError::Malformed(format!("item: {e}")))?;
            let record = KafkaEvent::from_item(&item).ok_or_else(|| {
                ReplayError::Malformed("replayed item without a Kafka position".to_owned())
            })?;
            entries.push(ReplayEntry::Record(record));
        }
    }
    Err(ReplayError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_answer_gives_gaps_then_records() {
        let body = br#"{"gap":{"topic":"orders","partition":0,"from":0,"to":4}}
{"channel":"orders.1","id":"orders-0-5","meta":{"topic":"orders","partition":"0","offset":"5"},"formats":{"http-stream":{"content":"id: orders-0-5\ndata: x\n\n"}}}
{"end":{"position":"AQ","offsets":[]}}
"#;
        let entries = parse_replay("orders.1", body).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(matches!(&entries[0], ReplayEntry::Gap(g) if g.from == 0 && g.to == 4));
        match &entries[1] {
            ReplayEntry::Record(r) => {
                assert_eq!(r.position.offset, 5);
                assert_eq!(&r.sse_body[..], b"data: x\n\n");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_replay_without_its_end_line_or_with_an_error_fails() {
        assert!(matches!(
            parse_replay(
                "c",
                b"{\"gap\":{\"topic\":\"t\",\"partition\":0,\"from\":0,\"to\":1}}\n"
            ),
            Err(ReplayError::Truncated)
        ));
        assert!(matches!(
            parse_replay("c", b"{\"error\":\"Kafka down\"}\n"),
            Err(ReplayError::Relay(_))
        ));
        assert!(matches!(
            parse_replay("c", b"not json\n"),
            Err(ReplayError::Malformed(_))
        ));
    }
}
