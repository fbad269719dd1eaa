//! Fjord's GRIP realtime reverse proxy.
//!
//! Section numbers (§) refer to `spec/grip.md`.

pub mod body;
pub mod context;
pub mod control;
pub mod exchange;
pub mod filter;
pub mod hold;
pub mod http1;
pub mod hub;
pub mod keys;
pub mod launch;
pub mod log_limit;
pub mod metrics;
pub mod origin;
pub mod queue;
pub mod route;
pub mod routes_file;
pub mod sequencer;
pub mod server;
pub mod test_origin;
pub mod zmq_input;
pub mod zmtp;
