//! The byte stream a connection runs over: plain TCP or TLS.
//!
//! The driver is generic over it, so the plain-TCP path compiles to the same code as
//! before TLS existed (no enum match, no extra state per idle connection).

use std::io::{self, Write};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// Whether bytes taken by [`Transport::write_now`] or `poll_write` may wait inside
    /// the transport (TLS records) until flushed. When false, a flush does nothing and
    /// is skipped.
    const BUFFERS_WRITES: bool;

    /// Takes as much of `bytes` as possible without waiting; `Ok(0)` when nothing can
    /// be taken now. Fan-out sends one small frame to many connections, and on TCP
    /// this is the one `write` system call per delivery.
    fn write_now(&mut self, bytes: &[u8]) -> io::Result<usize>;
}

impl Transport for TcpStream {
    const BUFFERS_WRITES: bool = false;

    fn write_now(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self.try_write(bytes) {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl Transport for TlsStream<TcpStream> {
    const BUFFERS_WRITES: bool = true;

    /// Seals `bytes` into one TLS record held by the session (up to rustls's buffer
    /// limit); the caller's flush sends it.
    fn write_now(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.get_mut().1.writer().write(bytes)
    }
}
