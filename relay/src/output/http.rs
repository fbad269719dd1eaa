//! The HTTP output (§4.1, §9): batched `POST /publish/` to a Pushpin-style control API,
//! so the relay can also feed an unmodified Pushpin.
//!
//! A batch per consumer poll, split so no body exceeds the configured item count or size
//! (Pushpin refuses bodies over 1,000,000 bytes). Hand-off is a 2xx answer. Connection
//! failures, 5xx, 408 and 429 are retried with backoff until they succeed (the relay
//! stalls rather than lose records); any other 4xx cannot be fixed by retrying and is
//! logged and counted as dropped. Pushpin closes the connection after each POST, so
//! connections are not pooled.

use std::time::Duration;

use bytes::Bytes;
use fjord_protocol::item::PublishItem;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{HttpBatchConfig, HttpTarget};
use crate::metrics::RelayMetrics;

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HTTP publish URL {url:?}: {reason}")]
pub struct HttpTargetError {
    pub url: String,
    pub reason: String,
}

/// One control API.
pub struct HttpOutput {
    uri: Uri,
    authorization: Option<String>,
    limits: HttpBatchConfig,
    client: Client<HttpConnector, Full<Bytes>>,
    metrics: RelayMetrics,
}

enum Attempt {
    Done,
    Retry(String),
    Refused(StatusCode, String),
}

impl HttpOutput {
    pub fn new(
        target: &HttpTarget,
        limits: HttpBatchConfig,
        metrics: RelayMetrics,
    ) -> Result<HttpOutput, HttpTargetError> {
        let fail = |reason: &str| HttpTargetError {
            url: target.url.clone(),
            reason: reason.to_owned(),
        };
        let base = target.url.trim_end_matches('/');
        let url = if base.ends_with("/publish") {
            format!("{base}/")
        } else {
            format!("{base}/publish/")
        };
        let uri: Uri = url.parse().map_err(|_| fail("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(fail("only http:// is supported"));
        }
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        Ok(HttpOutput {
            uri,
            authorization: target.authorization.clone(),
            limits,
            client,
            metrics,
        })
    }

    pub fn url(&self) -> String {
        self.uri.to_string()
    }

    /// Returns once every item was accepted (or refused for good).
    pub async fn publish(&self, items: &[PublishItem]) {
        for body in self.bodies(items) {
            let count = body.items;
            let mut backoff = RETRY_MIN;
            loop {
                match self.post(body.bytes.clone()).await {
                    Attempt::Done => {
                        self.metrics
                            .items_published
                            .with_label_values(&["http"])
                            .inc_by(count as u64);
                        break;
                    }
                    Attempt::Refused(status, answer) => {
                        tracing::error!(url = %self.uri, %status, %answer, items = count,
                            "HTTP publish refused; dropping the batch");
                        self.metrics
                            .items_dropped
                            .with_label_values(&["http", "refused"])
                            .inc_by(count as u64);
                        break;
                    }
                    Attempt::Retry(error) => {
                        tracing::warn!(url = %self.uri, %error, retry_in = ?backoff,
                            "HTTP publish failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(RETRY_MAX);
                    }
                }
            }
        }
    }

    /// `{"items":[…]}` bodies within the limits. An item too big for any body on its
    /// own is dropped and counted.
    fn bodies(&self, items: &[PublishItem]) -> Vec<Body> {
        const ENVELOPE: usize = r#"{"items":[]}"#.len();
        let mut bodies = Vec::new();
        let mut current = Vec::new();
        let mut count = 0;
        for item in items {
            let encoded = item.to_json().to_string();
            if ENVELOPE + encoded.len() > self.limits.max_body_bytes {
                tracing::error!(url = %self.uri, channel = %item.channel, size = encoded.len(),
                    "item exceeds the HTTP publish body limit; dropping it");
                self.metrics
                    .items_dropped
                    .with_label_values(&["http", "too_large"])
                    .inc();
                continue;
            }
            let full = count >= self.limits.max_items
                || ENVELOPE + current.len() + 1 + encoded.len() > self.limits.max_body_bytes;
            if count > 0 && full {
                bodies.push(Body::finish(std::mem::take(&mut current), count));
                count = 0;
            }
            if count > 0 {
                current.push(b',');
            }
            current.extend_from_slice(encoded.as_bytes());
            count += 1;
        }
        if count > 0 {
            bodies.push(Body::finish(current, count));
        }
        bodies
    }

    async fn post(&self, body: Bytes) -> Attempt {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len());
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => return Attempt::Refused(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let answer = response
                .into_body()
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim_end().to_owned())
                .unwrap_or_default();
            Ok::<_, String>((status, answer))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Err(_) => Attempt::Retry("request timed out".to_owned()),
            Ok(Err(error)) => Attempt::Retry(error),
            Ok(Ok((status, _))) if status.is_success() => Attempt::Done,
            Ok(Ok((status, answer)))
                if status.is_server_error()
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS =>
            {
                Attempt::Retry(format!("{status}: {answer}"))
            }
            Ok(Ok((status, answer))) => Attempt::Refused(status, answer),
        }
    }
}

struct Body {
    bytes: Bytes,
    items: usize,
}

impl Body {
    fn finish(items_json: Vec<u8>, items: usize) -> Body {
        let mut bytes = Vec::with_capacity(items_json.len() + 12);
        bytes.extend_from_slice(br#"{"items":["#);
        bytes.extend_from_slice(&items_json);
        bytes.extend_from_slice(b"]}");
        Body {
            bytes: Bytes::from(bytes),
            items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_protocol::item::{parse_publish_request, Formats, HttpStreamFormat, StreamAction};

    fn item(n: usize, size: usize) -> PublishItem {
        PublishItem::new(
            format!("c{n}"),
            Formats {
                http_stream: Some(HttpStreamFormat {
                    action: StreamAction::Send(Bytes::from(vec![b'x'; size])),
                    content_filters: Vec::new(),
                }),
                ..Formats::default()
            },
        )
    }

    fn output(max_items: usize, max_body_bytes: usize) -> HttpOutput {
        HttpOutput::new(
            &HttpTarget {
                url: "http://127.0.0.1:5561".into(),
                authorization: None,
            },
            HttpBatchConfig {
                max_items,
                max_body_bytes,
            },
            RelayMetrics::new().unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn bodies_respect_item_and_size_limits_and_parse_back() {
        let items: Vec<_> = (0..10).map(|n| item(n, 100)).collect();
        let out = output(4, 1_000_000);
        let bodies = out.bodies(&items);
        assert_eq!(
            bodies.iter().map(|b| b.items).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        let parsed: Vec<_> = bodies
            .iter()
            .flat_map(|b| parse_publish_request(&b.bytes).unwrap())
            .collect();
        assert_eq!(parsed, items);

        let small = output(100, 400);
        let bodies = small.bodies(&items);
        assert!(bodies.iter().all(|b| b.bytes.len() <= 400));
        assert_eq!(bodies.iter().map(|b| b.items).sum::<usize>(), 10);

        let huge = [item(0, 1000), item(1, 10)];
        let bodies = small.bodies(&huge);
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0].items, 1);
    }

    #[tokio::test]
    async fn publish_url_is_derived_from_the_base() {
        assert_eq!(output(1, 1).url(), "http://127.0.0.1:5561/publish/");
        let target = HttpTarget {
            url: "http://h:1/publish".into(),
            authorization: None,
        };
        let out = HttpOutput::new(
            &target,
            HttpBatchConfig::default(),
            RelayMetrics::new().unwrap(),
        );
        assert_eq!(out.unwrap().url(), "http://h:1/publish/");
        let https = HttpTarget {
            url: "https://h/".into(),
            authorization: None,
        };
        assert!(HttpOutput::new(
            &https,
            HttpBatchConfig::default(),
            RelayMetrics::new().unwrap()
        )
        .is_err());
    }
}
