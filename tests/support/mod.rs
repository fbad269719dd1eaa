//! Harness of the GRIP conformance suite (spec §12): a real `fjord proxy` process, a
//! scripted origin server, a byte-level HTTP/1.1 client and a publish helper.
//!
//! Everything runs on loopback sockets. Each test starts its own proxy (ports chosen by
//! the kernel and read back from the proxy's "ready" log line) and its own origin, so
//! tests can run in parallel. Every wait is bounded.

#![allow(dead_code, unused_imports)]

pub mod client;
pub mod deployment;
pub mod direct;
pub mod h2;
pub mod origin;
pub mod proxy;
pub mod tls;

pub use client::{Head, HttpConn, ReadError, Response};
pub use origin::{Origin, Recorded, Reply};
pub use proxy::{publish_to, Proxy, ProxyBuilder};

use std::time::Duration;

/// Generous bound for steps whose timing the spec does not constrain (start-up, a
/// plain exchange) on a loaded two-core machine.
pub const SLOW: Duration = Duration::from_secs(10);

/// Polls `check` every few milliseconds until it returns `Some` or `timeout` passes.
pub async fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Like [`wait_for`] with an async check.
pub async fn wait_for_async<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A JSON publish body of one `http-stream` item.
pub fn stream_item(channel: &str, content: &str) -> serde_json::Value {
    serde_json::json!({"channel": channel, "formats": {"http-stream": {"content": content}}})
}

/// The content of the `n`th item of a numbered burst: `"007,"`.
pub fn numbered(n: usize) -> String {
    format!("{n:03},")
}

/// Reads a stream until `count` items made by [`numbered`] arrived, and checks that
/// each came once, in order; a stream that ends first says how far it got.
pub async fn expect_numbered(conn: &mut HttpConn, count: usize) {
    let data = conn
        .read_stream(count * 4, Duration::from_secs(5))
        .await
        .unwrap_or_else(|(e, data)| {
            panic!(
                "{e:?} after {} of {count} items; closed by overflow?",
                data.len() / 4
            )
        });
    let expected: String = (0..count).map(numbered).collect();
    assert_eq!(String::from_utf8_lossy(&data), expected);
}

/// Wraps items into a `POST /publish/` body.
pub fn items(items: &[serde_json::Value]) -> String {
    serde_json::json!({ "items": items }).to_string()
}
