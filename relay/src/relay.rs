//! Starting and stopping a relay: the library entry point the CLI (`fjord relay`,
//! `fjord run`) calls with a [`RelayConfig`] it parsed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::RelayConfig;
use crate::consumer::{
    commit_periodically, commit_stored, group_consumer_config, probe_periodically, ConsumeLoop,
    GroupConsumer, KafkaConfigError, RelayContext,
};
use crate::control::{serve, ControlState};
use crate::health::Health;
use crate::mapping::{Mapper, RuleError};
use crate::metrics::RelayMetrics;
use crate::output::http::HttpTargetError;
use crate::output::zmtp::{Endpoint, EndpointError};
use crate::output::{HttpOutput, Outputs, PushOutput, XpubOutput};
use crate::replay::replay_consumer_config;

/// How long [`RunningRelay::shutdown`] waits for the batch in hand.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("no [[relay.stream]] rule is configured")]
    NoStreams,
    #[error("no output is configured (publish, push, http or an in-process sink)")]
    NoOutputs,
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Kafka(#[from] KafkaConfigError),
    #[error("[relay] publish/push: {0}")]
    Endpoint(#[from] EndpointError),
    #[error("[relay] http: {0}")]
    HttpTarget(#[from] HttpTargetError),
    #[error("cannot bind the {what} at {address}: {source}")]
    Bind {
        what: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Entry point; see [`Relay::start`].
pub struct Relay;

impl Relay {
    /// Binds the outputs and the control server, then consumes in the background: once
    /// the XPUB subscriptions have settled (see [`crate::config::SettleConfig`]), the relay
    /// subscribes to its topics in the consumer group. Must run inside a Tokio runtime.
    pub async fn start(config: RelayConfig) -> Result<RunningRelay, RelayError> {
        if config.streams.is_empty() {
            return Err(RelayError::NoStreams);
        }
        if config.publish.is_none()
            && config.push.is_empty()
            && config.http.is_empty()
            && config.sink.is_none()
        {
            return Err(RelayError::NoOutputs);
        }
        let mapper = Arc::new(Mapper::compile(&config.streams, config.max_value_bytes)?);
        let metrics = RelayMetrics::new()?;
        let health = Arc::new(Health::default());
        let consumer_config = group_consumer_config(&config.kafka)?;
        let context = RelayContext::new(metrics.clone(), health.clone());
        let consumer: Arc<GroupConsumer> = Arc::new(
            consumer_config
                .create_with_context(context)
                .map_err(KafkaConfigError::Client)?,
        );

        let xpub = match &config.publish {
            None => None,
            Some(endpoint) => {
                let parsed = Endpoint::parse(endpoint)?;
                let output = XpubOutput::bind(&parsed, config.peer_write_timeout, metrics.clone())
                    .await
                    .map_err(|source| RelayError::Bind {
                        what: "XPUB publish endpoint",
                        address: endpoint.clone(),
                        source,
                    })?;
                tracing::info!(endpoint = output.endpoint(), "relay XPUB endpoint bound");
                Some(output)
            }
        };
        let push = config
            .push
            .iter()
            .map(|e| Ok(PushOutput::start(Endpoint::parse(e)?, metrics.clone())))
            .collect::<Result<Vec<_>, EndpointError>>()?;
        let http = config
            .http
            .iter()
            .map(|t| HttpOutput::new(t, config.http_batch, metrics.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let publish_endpoint = xpub.as_ref().map(|x| x.endpoint().to_owned());
        let outputs = Arc::new(Outputs {
            xpub,
            push,
            http,
            sink: config.sink.clone(),
            metrics: metrics.clone(),
        });

        let mut tasks = Vec::new();
        let control_addr = match config.control {
            None => None,
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| RelayError::Bind {
                        what: "control HTTP server",
                        address: address.to_string(),
                        source,
                    })?;
                let bound = listener.local_addr().map_err(|source| RelayError::Bind {
                    what: "control HTTP server",
                    address: address.to_string(),
                    source,
                })?;
                let state = Arc::new(ControlState::new(
                    metrics.clone(),
                    health.clone(),
                    mapper.clone(),
                    replay_consumer_config(&config.kafka),
                ));
                tasks.push(tokio::spawn(serve(listener, state)));
                tracing::info!(address = %bound, "relay control server bound");
                Some(bound)
            }
        };

        let (stop, stopped) = watch::channel(false);
        tasks.push(tokio::spawn(commit_periodically(
            consumer.clone(),
            metrics.clone(),
            config.commit_interval,
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(probe_periodically(
            consumer.clone(),
            mapper.probe_topic(),
            health.clone(),
            metrics.clone(),
            config.probe_interval,
            stopped.clone(),
        )));
        let main = tokio::spawn(consume(
            config,
            consumer.clone(),
            mapper,
            outputs.clone(),
            metrics.clone(),
            health.clone(),
            stopped,
        ));
        Ok(RunningRelay {
            control_addr,
            publish_endpoint,
            stop,
            main: Some(main),
            tasks,
            health,
            metrics,
            outputs,
        })
    }
}

async fn consume(
    config: RelayConfig,
    consumer: Arc<GroupConsumer>,
    mapper: Arc<Mapper>,
    outputs: Arc<Outputs>,
    metrics: RelayMetrics,
    health: Arc<Health>,
    mut stopped: watch::Receiver<bool>,
) {
    if let Some(xpub) = &outputs.xpub {
        tokio::select! {
            _ = xpub.wait_settled(config.settle) => {}
            _ = stopped.changed() => return,
        }
        tracing::info!(peers = xpub.peer_count(), "XPUB subscriptions settled");
    }
    let topics = mapper.subscriptions();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    if let Err(error) = consumer.subscribe(&names) {
        tracing::error!(%error, ?topics, "cannot subscribe to the relay's topics");
        return;
    }
    tracing::info!(?topics, "relay consuming");
    health.set_consuming(true);
    ConsumeLoop {
        consumer: consumer.clone(),
        mapper,
        outputs,
        metrics: metrics.clone(),
        max_batch: config.max_batch_records.max(1),
    }
    .run(stopped)
    .await;
    health.set_consuming(false);
    let _ = tokio::task::spawn_blocking(move || commit_stored(&*consumer, &metrics)).await;
}

/// A started relay. Dropping it stops every task without a final commit, like a crash
/// would; [`RunningRelay::shutdown`] stops cleanly.
pub struct RunningRelay {
    control_addr: Option<SocketAddr>,
    publish_endpoint: Option<String>,
    stop: watch::Sender<bool>,
    main: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    health: Arc<Health>,
    metrics: RelayMetrics,
    outputs: Arc<Outputs>,
}

impl RunningRelay {
    /// The control server's address, with the actual port.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// The XPUB endpoint as bound (`tcp://127.0.0.1:<port>`).
    pub fn publish_endpoint(&self) -> Option<&str> {
        self.publish_endpoint.as_deref()
    }

    /// Whether `/readyz` would answer ready.
    pub fn is_ready(&self) -> bool {
        self.health.ready()
    }

    /// Whether some proxy connected to the XPUB endpoint subscribes to `channel`.
    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.outputs
            .xpub
            .as_ref()
            .is_some_and(|x| x.is_subscribed(channel))
    }

    pub fn metrics(&self) -> &RelayMetrics {
        &self.metrics
    }

    /// Stops consuming after the batch in hand, commits what was handed off, and stops.
    /// An output that cannot take the batch (a PUSH or HTTP target that is down) gets
    /// [`SHUTDOWN_GRACE`]; after that the relay stops without the final commit, which
    /// re-sends that batch on the next start.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(mut main) = self.main.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut main)
                .await
                .is_err()
            {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "relay did not stop in time; aborting");
                main.abort();
            }
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    /// Stops at once, committing nothing more: what a SIGKILL leaves behind.
    pub fn abort(self) {
        drop(self);
    }
}

impl Drop for RunningRelay {
    fn drop(&mut self) {
        if let Some(main) = self.main.take() {
            main.abort();
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamConfig;

    fn config() -> RelayConfig {
        let mut config = RelayConfig {
            streams: vec![StreamConfig::new("orders", "{topic}")],
            publish: Some("tcp://127.0.0.1:0".into()),
            control: Some("127.0.0.1:0".parse().unwrap()),
            ..RelayConfig::default()
        };
        config
            .kafka
            .insert("bootstrap.servers".into(), "127.0.0.1:1".into());
        config.kafka.insert("group.id".into(), "g".into());
        config
    }

    #[tokio::test]
    async fn start_refuses_unusable_configs() {
        let mut no_streams = config();
        no_streams.streams.clear();
        assert!(matches!(
            Relay::start(no_streams).await,
            Err(RelayError::NoStreams)
        ));
        let mut no_outputs = config();
        no_outputs.publish = None;
        assert!(matches!(
            Relay::start(no_outputs).await,
            Err(RelayError::NoOutputs)
        ));
        let mut bad_endpoint = config();
        bad_endpoint.push = vec!["inproc://x".into()];
        assert!(matches!(
            Relay::start(bad_endpoint).await,
            Err(RelayError::Endpoint(_))
        ));
        let mut bad_rule = config();
        bad_rule.streams[0].channels = vec!["{nope}".into()];
        assert!(matches!(
            Relay::start(bad_rule).await,
            Err(RelayError::Rule(_))
        ));
    }

    #[tokio::test]
    async fn a_started_relay_binds_and_is_alive_but_not_ready_without_kafka() {
        let relay = Relay::start(config()).await.unwrap();
        assert!(relay.control_addr().is_some_and(|a| a.port() != 0));
        assert!(relay
            .publish_endpoint()
            .is_some_and(|e| e.starts_with("tcp://127.0.0.1:") && !e.ends_with(":0")));
        assert!(!relay.is_ready());
        relay.shutdown().await;
    }
}
