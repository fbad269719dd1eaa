//! Fjord's wire formats, as pure code: nothing here performs I/O or needs a runtime.
//!
//! Every decoder in this crate takes untrusted bytes and returns a typed error on bad
//! input; none of them panics. Section numbers (§) refer to `spec/grip.md`.

pub mod form;
pub mod header;
pub mod instruction;
pub mod item;
pub mod keepalive;
pub mod resume;
pub mod sig;
pub mod sse;
pub mod tnetstring;
pub mod token;
pub mod zmq;
