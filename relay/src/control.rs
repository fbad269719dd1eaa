//! The relay's control HTTP server (design "Processes": port 5571): `/metrics`
//! (Prometheus text), `/healthz`, `/readyz`, and `GET /replay` (design "Resume" 2).
//!
//! `GET /replay?channel=C&stream=S&position=P` or `…&after=orders-0-41,orders-1-17`:
//! `stream` is the rule's index or name (optional when there is one rule); `position` a
//! resume id (`ResumePosition` encoding) and/or `after` item ids naming the last offset
//! delivered per partition; `partitions=listed` limits the replay to the partitions named
//! (default `all`, see [`PartitionScope`]). The answer is NDJSON, see [`crate::replay`].

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use fjord_protocol::resume::{KafkaPosition, ResumePosition};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rdkafka::config::ClientConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

use crate::health::Health;
use crate::mapping::Mapper;
use crate::metrics::RelayMetrics;
use crate::replay::{run_replay, PartitionScope, ReplayRequest};

/// Replays running at once; each holds a Kafka client and a blocking thread.
const MAX_CONCURRENT_REPLAYS: usize = 8;

type ControlBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// What the handlers need.
pub struct ControlState {
    pub metrics: RelayMetrics,
    pub health: Arc<Health>,
    pub mapper: Arc<Mapper>,
    pub replay_config: ClientConfig,
    replays: Arc<Semaphore>,
}

impl ControlState {
    pub fn new(
        metrics: RelayMetrics,
        health: Arc<Health>,
        mapper: Arc<Mapper>,
        replay_config: ClientConfig,
    ) -> Self {
        ControlState {
            metrics,
            health,
            mapper,
            replay_config,
            replays: Arc::new(Semaphore::new(MAX_CONCURRENT_REPLAYS)),
        }
    }
}

/// Serves connections until the task is aborted.
pub async fn serve(listener: TcpListener, state: Arc<ControlState>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "control accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(state: &Arc<ControlState>, request: Request<Incoming>) -> Response<ControlBody> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, &state.metrics.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "OK\n"),
        "/readyz" => match state.health.not_ready_reason() {
            None => text(StatusCode::OK, "ready\n"),
            Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{reason}\n")),
        },
        "/replay" => replay(state, request.uri().query().unwrap_or("")).await,
        _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<ControlBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

fn bad_request(message: &str) -> Response<ControlBody> {
    let body = serde_json::json!({ "error": message }).to_string() + "\n";
    let mut response = text(StatusCode::BAD_REQUEST, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A parsed replay query and the rule it names.
fn parse_replay(mapper: &Mapper, query: &str) -> Result<(usize, ReplayRequest), String> {
    let mut channel = None;
    let mut stream = None;
    let mut after = ResumePosition::new();
    let mut given = false;
    let mut scope = PartitionScope::All;
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "channel" => channel = Some(value),
            "stream" => stream = Some(value),
            "position" => {
                let position =
                    ResumePosition::decode(&value).map_err(|e| format!("position: {e}"))?;
                after.set_timestamp_ms(position.timestamp_ms());
                for (topic, partition, offset) in position.iter() {
                    after.advance(topic, partition, offset);
                }
                given = true;
            }
            "after" => {
                for id in value.split(',').filter(|id| !id.is_empty()) {
                    let position: KafkaPosition =
                        id.parse().map_err(|e| format!("after {id:?}: {e}"))?;
                    after.advance_to(&position);
                    given = true;
                }
            }
            "partitions" => {
                scope = match value.as_str() {
                    "all" => PartitionScope::All,
                    "listed" => PartitionScope::Listed,
                    _ => return Err("partitions must be 'all' or 'listed'".to_owned()),
                }
            }
            _ => {}
        }
    }
    let channel = channel
        .filter(|c| !c.is_empty())
        .ok_or("channel is required")?;
    if !given {
        return Err("position or after is required".to_owned());
    }
    let index = match stream {
        Some(stream) => mapper
            .find(&stream)
            .map(|(index, _)| index)
            .ok_or_else(|| format!("no stream {stream:?}"))?,
        None if mapper.rules().len() == 1 => 0,
        None => return Err("stream is required when several streams are configured".into()),
    };
    Ok((
        index,
        ReplayRequest {
            channel,
            after,
            scope,
        },
    ))
}

async fn replay(state: &Arc<ControlState>, query: &str) -> Response<ControlBody> {
    let (index, request) = match parse_replay(&state.mapper, query) {
        Ok(parsed) => parsed,
        Err(message) => {
            state
                .metrics
                .replays
                .with_label_values(&["bad_request"])
                .inc();
            return bad_request(&message);
        }
    };
    let Ok(permit) = state.replays.clone().try_acquire_owned() else {
        let mut response = text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many replays running\n",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return response;
    };
    let (lines, body) = mpsc::channel(64);
    let task_state = state.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let blocking_state = task_state.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let rule = &blocking_state.mapper.rules()[index];
            run_replay(&blocking_state.replay_config, rule, &request, &lines)
        })
        .await;
        let result = match outcome {
            Ok(true) => "gap",
            Ok(false) => "ok",
            Err(_) => "error",
        };
        task_state
            .metrics
            .replays
            .with_label_values(&[result])
            .inc();
    });
    let mut response = Response::new(NdjsonBody { lines: body }.boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// A streamed body fed line by line from the replay thread.
struct NdjsonBody {
    lines: mpsc::Receiver<Bytes>,
}

impl Body for NdjsonBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.lines
            .poll_recv(cx)
            .map(|line| line.map(|line| Ok(Frame::data(line))))
    }
}

/// `application/x-www-form-urlencoded` pairs.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    fjord_protocol::form::parse_query(query).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamConfig;

    fn mapper() -> Mapper {
        let mut named = StreamConfig::new("orders", "orders.{key}");
        named.name = Some("orders".into());
        Mapper::compile(&[named, StreamConfig::new("drivers", "{topic}")], 1024).unwrap()
    }

    #[test]
    fn replay_queries_parse() {
        let mut position = ResumePosition::new();
        position.advance("orders", 0, 41);
        position.set_timestamp_ms(5);
        let query = format!(
            "channel=orders.a%2Bb&stream=orders&position={}&after=orders-1-17,orders-0-3&partitions=listed",
            position.encode()
        );
        let (index, request) = parse_replay(&mapper(), &query).unwrap();
        assert_eq!(index, 0);
        assert_eq!(request.channel, "orders.a+b");
        assert_eq!(request.after.offset_of("orders", 0), Some(41));
        assert_eq!(request.after.offset_of("orders", 1), Some(17));
        assert_eq!(request.after.timestamp_ms(), 5);
        assert_eq!(request.scope, PartitionScope::Listed);
        assert_eq!(
            parse_replay(&mapper(), "channel=x&stream=1&after=drivers-0-0")
                .unwrap()
                .0,
            1
        );
    }

    #[test]
    fn bad_replay_queries_are_refused() {
        let m = mapper();
        assert!(parse_replay(&m, "stream=0&after=orders-0-1").is_err());
        assert!(parse_replay(&m, "channel=c&stream=0").is_err());
        assert!(parse_replay(&m, "channel=c&after=orders-0-1").is_err());
        assert!(parse_replay(&m, "channel=c&stream=9&after=orders-0-1").is_err());
        assert!(parse_replay(&m, "channel=c&stream=0&after=orders-x-1").is_err());
        assert!(parse_replay(&m, "channel=c&stream=0&position=!!").is_err());
        assert!(parse_replay(&m, "channel=%ZZ&stream=0&after=orders-0-1").is_err());
    }
}
