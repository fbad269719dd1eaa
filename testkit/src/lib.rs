//! Fixtures shared by Fjord's test suites.
//!
//! The suites test against real components: [`KafkaBroker`] starts a real
//! Kafka-protocol broker (the `tansu` broker from crates.io, SQLite storage engine)
//! on a free loopback port, in a fresh temporary directory, and offers the handful of
//! operations the proxy and relay suites need: create topics, produce records with keys
//! and headers, read high watermarks, stop (SIGKILL) and restart on the same data.
//!
//! [`Pushpin`] starts a real, unmodified Pushpin (Debian's `pushpin` package) from a
//! private configuration in a temporary directory, for interoperability tests of the
//! relay's Pushpin-facing outputs.
//!
//! Known quirks of the test broker, which the suites must respect:
//! - topics are not auto-created; call [`KafkaBroker::create_topic`] first;
//! - ListGroups/DescribeGroups drop the connection, so nothing here depends on them;
//! - its `memory://` engine returns wrong data after a seek, so only `sqlite://` is used;
//! - consumers should use a small `session.timeout.ms` (see [`KafkaBroker::consumer_config`]);
//! - with `enable.auto.commit=true`, a consumer group that rebalances mid-stream was seen
//!   to stall on transport failures here; commit explicitly (the relay does).

mod broker;
mod ports;
mod pushpin;

pub use broker::{produce_with, BrokerError, KafkaBroker, TestRecord, INSTALL_HINT};
pub use ports::free_loopback_port;
pub use pushpin::{Pushpin, PushpinError, PUSHPIN_INSTALL_HINT};
