//! Fjord's GRIP realtime reverse proxy.
//!
//! Section numbers (§) refer to `spec/grip.md`.

pub mod body;
pub mod context;
pub mod control;
pub mod direct;
pub mod exchange;
pub mod files;
pub mod filter;
pub mod history;
pub mod hold;
pub mod http1;
pub mod http2;
pub mod hub;
pub mod kafka_event;
pub mod keys;
pub mod launch;
pub mod log_limit;
pub mod metrics;
pub mod origin;
mod origin_tls;
pub mod queue;
pub mod route;
pub mod routes_file;
pub mod sequencer;
pub mod server;
pub mod test_origin;
pub mod tls;
pub mod zmq_input;
pub mod zmtp;
