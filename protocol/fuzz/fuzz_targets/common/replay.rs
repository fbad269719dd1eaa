//! An in-memory connection for the targets that drive the proxy's async readers
//! (`http1_request`, `zmtp_wire`): the peer's bytes replayed in reads of chosen
//! sizes, always ready, and a way to run a future that therefore never waits.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Read (or write) sizes of a fragmented pass: 1..=`bound` bytes (1 when `bound` is 0),
/// from a small deterministic generator seeded by `bound`.
pub struct Sizes {
    bound: u8,
    state: u64,
}

impl Sizes {
    pub fn new(bound: u8) -> Self {
        Sizes {
            bound,
            state: 0x9e37_79b9_7f4a_7c15 ^ u64::from(bound),
        }
    }

    pub fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        match self.bound {
            0 => 1,
            bound => 1 + (self.state % u64::from(bound)) as usize,
        }
    }
}

/// The next size of `sizes`, or unbounded without them.
pub fn next_size(sizes: &mut Option<Sizes>) -> usize {
    sizes.as_mut().map_or(usize::MAX, Sizes::next)
}

/// The peer's bytes: every read is ready and returns at most the next of `sizes`
/// (`None`: as much as fits), then end of stream. Writes are accepted and dropped.
pub struct Replay<D> {
    data: D,
    pos: usize,
    sizes: Option<Sizes>,
}

impl<D: AsRef<[u8]>> Replay<D> {
    pub fn new(data: D, sizes: Option<Sizes>) -> Self {
        Replay {
            data,
            pos: 0,
            sizes,
        }
    }
}

impl<D: AsRef<[u8]> + Unpin> AsyncRead for Replay<D> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let size = next_size(&mut this.sizes);
        let rest = &this.data.as_ref()[this.pos..];
        let n = rest.len().min(buf.remaining()).min(size);
        buf.put_slice(&rest[..n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<D: Unpin> AsyncWrite for Replay<D> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a future that cannot wait: every read and write of a [`Replay`] is ready and
/// an exhausted input reads as end of stream, so `Pending` would mean a hang in
/// `what`.
pub fn complete<F: Future>(future: F, what: &str) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("{what} waited on a stream that is always ready"),
    }
}
