//! Free loopback ports for servers started by tests.

use std::net::TcpListener;

/// Asks the kernel for a free port on 127.0.0.1.
///
/// The port is released before returning, so another process could take it before the
/// caller binds it; on a test machine that window is small enough in practice.
pub fn free_loopback_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
