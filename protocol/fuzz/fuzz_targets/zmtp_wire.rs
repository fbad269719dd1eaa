//! The proxy's ZMTP reader (`fjord_proxy::zmtp`, what the ZeroMQ PULL/SUB inputs run on
//! every TCP connection) on arbitrary peer bytes: the greeting and `READY` handshake,
//! then message after message until the peer's end or an error.
//!
//! Input layout: byte 0 bit 0 picks our socket type (0 = PULL, 1 = SUB); bits 1-7 seed
//! the read sizes of the fragmented pass (0 = one byte per read, otherwise 1..=n bytes
//! from a xorshift sequence); byte 1 picks the message size limit (`byte × 8` bytes, so
//! a limit below the `READY` command is reachable too); the rest is what the peer sends.
//!
//! The connection is read twice, once with every read returning as much as fits and
//! once fragmented; both must give the same outcomes. Those outcomes must also equal
//! what a plain slice decoder written from ZMTP 3.0 (rfc.zeromq.org/spec/23) makes of
//! the bytes: a 64-byte greeting with signature, version ≥ 3 and the NULL mechanism;
//! a first frame that is a `READY` command carrying an acceptable `Socket-Type`; then
//! commands (a parsed command only from a body holding its whole name) and messages
//! whose frames, each charged its length plus the per-frame overhead, fit the limit.
//! What we write must be our greeting, then our `READY` once the peer's greeting passed.

#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use fjord_proxy::zmtp::{handshake, Incoming, SocketType, ZmtpError};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWrite;

#[path = "common/replay.rs"]
mod replay;
use replay::{complete, next_size, Replay, Sizes};

/// Bytes `FrameReader` charges per frame on top of its content (`FRAME_OVERHEAD`).
const FRAME_OVERHEAD: usize = 16;
const GREETING_LEN: usize = 64;

/// What we send the peer, kept for inspection; with `sizes`, each write takes at most
/// the next of them.
struct Sent {
    bytes: Arc<Mutex<Vec<u8>>>,
    sizes: Option<Sizes>,
}

impl AsyncWrite for Sent {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = b.len().min(next_size(&mut self.sizes));
        self.bytes
            .lock()
            .expect("only this thread writes")
            .extend_from_slice(&b[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Connected(SocketType),
    Message(Vec<Vec<u8>>),
    Command {
        name: Vec<u8>,
        data: Vec<u8>,
    },
    Closed,
    /// The peer's bytes ended inside a greeting or frame.
    Truncated,
    Error(String),
}

fn error_outcome(error: ZmtpError) -> Outcome {
    match error {
        ZmtpError::Io(e) => {
            assert_eq!(
                e.kind(),
                io::ErrorKind::UnexpectedEof,
                "an in-memory stream fails only by ending: {e}"
            );
            Outcome::Truncated
        }
        other => Outcome::Error(other.to_string()),
    }
}

fn incoming_outcome(incoming: Incoming) -> Outcome {
    match incoming {
        Incoming::Message(frames) => Outcome::Message(frames.iter().map(|f| f.to_vec()).collect()),
        Incoming::Command { name, data } => Outcome::Command {
            name: name.to_vec(),
            data: data.to_vec(),
        },
    }
}

/// The connection through `fjord_proxy::zmtp`, and what it wrote.
fn read_all(
    data: &[u8],
    ours: SocketType,
    max: usize,
    sizes: Option<u8>,
) -> (Vec<Outcome>, Vec<u8>) {
    let read = Replay::new(data.to_vec(), sizes.map(Sizes::new));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let write = Sent {
        bytes: Arc::clone(&sent),
        sizes: sizes.map(|s| Sizes::new(s.wrapping_add(1))),
    };
    let mut outcomes = Vec::new();
    match complete(
        handshake(Box::new(read), Box::new(write), ours, max),
        "the ZMTP handshake",
    ) {
        Err(e) => outcomes.push(error_outcome(e)),
        Ok(mut connection) => {
            outcomes.push(Outcome::Connected(connection.peer_type));
            // Every frame consumes at least two bytes, so this ends with the input.
            loop {
                match complete(connection.reader.next(), "the ZMTP reader") {
                    Ok(Some(incoming)) => outcomes.push(incoming_outcome(incoming)),
                    Ok(None) => {
                        outcomes.push(Outcome::Closed);
                        break;
                    }
                    Err(e) => {
                        outcomes.push(error_outcome(e));
                        break;
                    }
                }
            }
        }
    }
    let sent = sent.lock().expect("only this thread writes").clone();
    (outcomes, sent)
}

/// ZMTP 3.0 read straight from the slice, independent of `FrameReader`.
struct Model<'a> {
    wire: &'a [u8],
    max: usize,
    parts: Vec<Vec<u8>>,
    charged: usize,
}

enum Stop {
    Truncated,
    Error(ZmtpError),
}

impl From<Stop> for Outcome {
    fn from(stop: Stop) -> Outcome {
        match stop {
            Stop::Truncated => Outcome::Truncated,
            Stop::Error(e) => Outcome::Error(e.to_string()),
        }
    }
}

impl<'a> Model<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        if self.wire.len() < n {
            return Err(Stop::Truncated);
        }
        let (head, rest) = self.wire.split_at(n);
        self.wire = rest;
        Ok(head)
    }

    fn greeting(&mut self) -> Result<(), Stop> {
        let g = self.take(GREETING_LEN)?;
        if g[0] != 0xff || g[9] != 0x7f {
            return Err(Stop::Error(ZmtpError::NotZmtp));
        }
        if g[10] < 3 {
            return Err(Stop::Error(ZmtpError::OldVersion(g[10])));
        }
        let mechanism = g[12..32].split(|&b| b == 0).next().unwrap_or_default();
        if mechanism != b"NULL" {
            let name = String::from_utf8_lossy(mechanism).into_owned();
            return Err(Stop::Error(ZmtpError::Mechanism(name)));
        }
        Ok(())
    }

    /// One frame: flags and body, with the size limit applied before the body is read.
    fn frame(&mut self) -> Result<Option<(u8, &'a [u8])>, Stop> {
        let Some((&flags, _)) = self.wire.split_first() else {
            return Ok(None);
        };
        self.take(1)?;
        let size = if flags & 0b010 != 0 {
            u64::from_be_bytes(self.take(8)?.try_into().expect("eight bytes"))
        } else {
            u64::from(self.take(1)?[0])
        };
        let room = self.max.saturating_sub(self.charged) as u128;
        if u128::from(size) + FRAME_OVERHEAD as u128 > room {
            return Err(Stop::Error(ZmtpError::TooLarge { limit: self.max }));
        }
        let body = self.take(size as usize)?;
        Ok(Some((flags, body)))
    }

    fn command(body: &[u8]) -> Result<Outcome, Stop> {
        let (&len, rest) = body
            .split_first()
            .ok_or(Stop::Error(ZmtpError::MalformedCommand))?;
        if rest.len() < usize::from(len) {
            return Err(Stop::Error(ZmtpError::MalformedCommand));
        }
        let (name, data) = rest.split_at(usize::from(len));
        Ok(Outcome::Command {
            name: name.to_vec(),
            data: data.to_vec(),
        })
    }

    /// The next command or whole message; `None` at the end of the bytes between frames.
    fn next(&mut self) -> Result<Option<Outcome>, Stop> {
        loop {
            let Some((flags, body)) = self.frame()? else {
                return Ok(None);
            };
            if flags & 0b100 != 0 {
                // A command may come between the frames of a message (libzmq sends
                // heartbeats so); the message goes on after it.
                return Self::command(body).map(Some);
            }
            self.parts.push(body.to_vec());
            self.charged += body.len() + FRAME_OVERHEAD;
            if flags & 0b001 == 0 {
                self.charged = 0;
                return Ok(Some(Outcome::Message(std::mem::take(&mut self.parts))));
            }
        }
    }

    /// The first frame must be `READY`, a command on its own: message frames ahead of
    /// it are refused. Its `Socket-Type` must fit `ours`.
    fn ready(&mut self, ours: SocketType) -> Result<SocketType, Stop> {
        let not_ready = || Stop::Error(ZmtpError::NotReady);
        // A peer that closes before any frame has not sent READY either.
        let (flags, body) = self.frame()?.ok_or_else(not_ready)?;
        if flags & 0b100 == 0 {
            return Err(not_ready());
        }
        let Outcome::Command { name, data } = Self::command(body)? else {
            unreachable!("command() makes commands");
        };
        if name != b"READY" {
            return Err(not_ready());
        }
        let mut properties = data.as_slice();
        let mut socket_type = None;
        while let Some((&len, rest)) = properties.split_first() {
            let malformed = || Stop::Error(ZmtpError::MalformedCommand);
            let name = rest.get(..usize::from(len)).ok_or_else(malformed)?;
            let rest = &rest[usize::from(len)..];
            let value_len = rest.get(..4).ok_or_else(malformed)?;
            let value_len = u32::from_be_bytes(value_len.try_into().expect("four bytes")) as usize;
            let value = rest.get(4..4 + value_len).ok_or_else(malformed)?;
            if name.eq_ignore_ascii_case(b"Socket-Type") {
                socket_type = Some(value);
            }
            properties = &rest[4 + value_len..];
        }
        let peer = socket_type.ok_or(Stop::Error(ZmtpError::MalformedCommand))?;
        let fits = match (ours, peer) {
            (SocketType::Pull, b"PUSH") => Some(SocketType::Push),
            (SocketType::Sub, b"PUB") => Some(SocketType::Pub),
            (SocketType::Sub, b"XPUB") => Some(SocketType::XPub),
            _ => None,
        };
        fits.ok_or_else(|| {
            Stop::Error(ZmtpError::Incompatible {
                peer: String::from_utf8_lossy(peer).into_owned(),
                ours: ours.name(),
            })
        })
    }

    fn run(wire: &[u8], ours: SocketType, max: usize) -> Vec<Outcome> {
        let mut model = Model {
            wire,
            max,
            parts: Vec::new(),
            charged: 0,
        };
        if let Err(stop) = model.greeting() {
            return vec![stop.into()];
        }
        let peer = match model.ready(ours) {
            Ok(peer) => peer,
            Err(stop) => return vec![stop.into()],
        };
        let mut outcomes = vec![Outcome::Connected(peer)];
        loop {
            match model.next() {
                Ok(Some(outcome)) => outcomes.push(outcome),
                Ok(None) => {
                    outcomes.push(Outcome::Closed);
                    return outcomes;
                }
                Err(stop) => {
                    outcomes.push(stop.into());
                    return outcomes;
                }
            }
        }
    }
}

/// We greet first whatever the peer sends, and send `READY` once its greeting passed.
fn check_sent(sent: &[u8], ours: SocketType, peer_greeting_passed: bool) {
    assert!(sent.len() >= GREETING_LEN, "our greeting was not sent");
    let (greeting, rest) = sent.split_at(GREETING_LEN);
    assert_eq!(
        (greeting[0], greeting[9], greeting[10], &greeting[12..16]),
        (0xff, 0x7f, 3, &b"NULL"[..]),
        "our greeting"
    );
    if peer_greeting_passed {
        let name = ours.name().as_bytes();
        let mut ready = vec![0b100, (1 + 5 + 1 + 11 + 4 + name.len()) as u8, 5];
        ready.extend_from_slice(b"READY\x0bSocket-Type");
        ready.extend_from_slice(&(name.len() as u32).to_be_bytes());
        ready.extend_from_slice(name);
        assert_eq!(rest, ready, "our READY");
    } else {
        assert!(rest.is_empty(), "READY sent after a refused greeting");
    }
}

fuzz_target!(|data: &[u8]| {
    let [selector, limit, wire @ ..] = data else {
        return;
    };
    let ours = if selector & 1 == 0 {
        SocketType::Pull
    } else {
        SocketType::Sub
    };
    let max = usize::from(*limit) * 8;
    let (whole, sent) = read_all(wire, ours, max, None);
    let peer_greeting_passed = Model {
        wire,
        max,
        parts: Vec::new(),
        charged: 0,
    }
    .greeting()
    .is_ok();
    check_sent(&sent, ours, peer_greeting_passed);
    for outcome in &whole {
        if let Outcome::Message(frames) = outcome {
            let charged: usize = frames.iter().map(|f| f.len() + FRAME_OVERHEAD).sum();
            assert!(
                charged <= max,
                "a message of {charged} bytes passed the {max} limit"
            );
        }
    }
    let (fragmented, sent_fragmented) = read_all(wire, ours, max, Some(selector >> 1));
    assert_eq!(whole, fragmented, "outcome depends on read boundaries");
    assert_eq!(
        sent, sent_fragmented,
        "what we send depends on write boundaries"
    );
    assert_eq!(
        whole,
        Model::run(wire, ours, max),
        "outcome differs from ZMTP 3.0"
    );
});
