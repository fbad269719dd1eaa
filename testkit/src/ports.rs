//! Free loopback ports for servers started by tests.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Ports are picked below Linux's default ephemeral range (32768–60999). A port the
/// kernel hands out for `bind(0)` is an ephemeral one, and between the pick and the
/// server's bind any client socket of a parallel test may take it as its source
/// port; the server then fails to start. Client sockets never get a port below the
/// range, so only two picks racing each other remain, which the per-process counter
/// and the bind check make unlikely.
const LOW: u32 = 20_000;
const HIGH: u32 = 32_000;

/// Successive picks step through the range by a prime that does not divide its
/// width, from a start chosen once per process, so a process never picks a port twice
/// before it has tried them all; different processes start at different places.
static START: OnceLock<u32> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);
const STEP: u32 = 7_919;

/// A free port on 127.0.0.1 outside the ephemeral range.
///
/// The port is released before returning, so another process could still take it
/// before the caller binds it.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let width = HIGH - LOW;
    let start = *START.get_or_init(|| std::process::id().wrapping_mul(2_654_435_761) ^ now_nanos());
    for _ in 0..width {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % width;
        let offset = (start % width + step * STEP % width) % width;
        let Ok(port) = u16::try_from(LOW + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    // Everything below the range is taken: fall back to the kernel's choice.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn now_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50)
            .map(|_| free_loopback_port().expect("port"))
            .collect();
        for &port in &ports {
            assert!((LOW..HIGH).contains(&u32::from(port)), "{port}");
            TcpListener::bind(("127.0.0.1", port)).expect("free");
        }
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
    }
}
