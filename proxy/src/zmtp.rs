//! The ZMTP 3.0 wire protocol (NULL security), as far as the publish inputs need it:
//! endpoints, the greeting and `READY` handshake, and frame reading and writing.
//!
//! Why not the `zeromq` crate (0.4.1) for the inputs? Reading its source showed, for a
//! long-running server that publishers connect to and leave:
//!
//! - A peer that closes its connection cleanly (EOF) is dropped from the receive
//!   queue but never from the socket's peer map (`peer_disconnected` runs only on a
//!   read *error*), so its write half, and with it the file descriptor, is kept for the
//!   life of the socket.
//! - `SubSocket::subscribe`/`unsubscribe` send to every peer in that map and return at
//!   the first failed write, so once one publisher has left, subscription changes
//!   stop reaching the publishers after it in iteration order.
//! - A SUB socket does replay its subscriptions to peers that connect later, for bound
//!   and connected sockets alike (`peer_connected` sends the stored set), but it takes
//!   the snapshot before adding the peer to the map, so a subscription made in between
//!   is lost for that peer.
//! - `connect` waits until the first connection succeeds and there is no reconnection
//!   after a disconnect, which a relay restart would turn into a silent outage.
//! - `recv` panics (`todo!`) on a second `READY` command, the command decoder panics on
//!   an empty or truncated command frame, and a frame's 64-bit length is reserved
//!   without a limit.
//!
//! Each of these either loses subscriptions, leaks, or lets one peer take the whole
//! input down, so the inputs speak ZMTP themselves; this module is small because PULL
//! and SUB only ever send subscriptions and `PONG`. Interoperability is what libzmq
//! and the `zeromq` crate implement: we greet as ZMTP 3.0, so libzmq peers use the
//! 3.0 subscription form (a data frame `0x01`/`0x00` + topic), which libzmq XPUB and
//! PUB sockets accept at every 3.x version.

use std::fmt;
use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

const GREETING_LEN: usize = 64;
const FLAG_MORE: u8 = 0b001;
const FLAG_LONG: u8 = 0b010;
const FLAG_COMMAND: u8 = 0b100;
/// Bytes charged per frame on top of its content when enforcing the message size
/// limit, so a message of countless empty frames is bounded too.
const FRAME_OVERHEAD: usize = 16;
const READ_BUFFER: usize = 64 * 1024;

/// A transport endpoint as ZeroMQ writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://host:port`; `*` as host means every interface.
    Tcp { host: String, port: u16 },
    /// `ipc://path`, a Unix domain socket.
    Ipc(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ZeroMQ endpoint {endpoint:?}: {reason}")]
pub struct EndpointError {
    pub endpoint: String,
    pub reason: &'static str,
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        let fail = |reason| EndpointError {
            endpoint: text.to_owned(),
            reason,
        };
        if let Some(address) = text.strip_prefix("tcp://") {
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| fail("expected tcp://host:port"))?;
            let port = port
                .parse()
                .map_err(|_| fail("port is not a number 0-65535"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(fail("host is empty"));
            }
            let host = if host == "*" { "0.0.0.0" } else { host };
            Ok(Endpoint::Tcp {
                host: host.to_owned(),
                port,
            })
        } else if let Some(path) = text.strip_prefix("ipc://") {
            if path.is_empty() || path == "*" {
                return Err(fail("ipc endpoints need an explicit path"));
            }
            Ok(Endpoint::Ipc(PathBuf::from(path)))
        } else {
            Err(fail("only tcp:// and ipc:// are supported"))
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Ipc(path) => write!(f, "ipc://{}", path.display()),
        }
    }
}

/// The ZeroMQ socket types the inputs meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    Pull,
    Push,
    Sub,
    XSub,
    Pub,
    XPub,
}

impl SocketType {
    pub fn name(self) -> &'static str {
        match self {
            SocketType::Pull => "PULL",
            SocketType::Push => "PUSH",
            SocketType::Sub => "SUB",
            SocketType::XSub => "XSUB",
            SocketType::Pub => "PUB",
            SocketType::XPub => "XPUB",
        }
    }

    fn from_name(name: &[u8]) -> Option<SocketType> {
        [
            SocketType::Pull,
            SocketType::Push,
            SocketType::Sub,
            SocketType::XSub,
            SocketType::Pub,
            SocketType::XPub,
        ]
        .into_iter()
        .find(|t| t.name().as_bytes() == name)
    }

    /// Whether a socket of this type may talk to a `peer` (ZMTP's compatibility table).
    pub fn accepts(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (Pull, Push) | (Push, Pull) | (Sub | XSub, Pub | XPub) | (Pub | XPub, Sub | XSub)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ZmtpError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("peer does not speak ZMTP (bad greeting signature)")]
    NotZmtp,
    #[error("peer speaks ZMTP {0}.x; 3.0 or later is required")]
    OldVersion(u8),
    #[error("peer wants security mechanism {0:?}; only NULL is supported")]
    Mechanism(String),
    #[error("peer did not start with a READY command")]
    NotReady,
    #[error("malformed command frame")]
    MalformedCommand,
    #[error("peer is a {peer} socket, which cannot talk to our {ours} socket")]
    Incompatible { peer: String, ours: &'static str },
    #[error("message exceeds {limit} bytes")]
    TooLarge { limit: usize },
}

/// What the peer sent: a complete message, or a command such as `PING`.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Message(Vec<Bytes>),
    Command { name: Bytes, data: Bytes },
}

/// Reads greeting, commands and messages from one connection. Not cancel-safe: a
/// read that is dropped midway loses the connection's framing.
pub struct FrameReader {
    inner: BufReader<BoxRead>,
    max_message_size: usize,
    parts: Vec<Bytes>,
    part_bytes: usize,
}

impl FrameReader {
    pub fn new(read: BoxRead, max_message_size: usize) -> FrameReader {
        FrameReader {
            inner: BufReader::with_capacity(READ_BUFFER, read),
            max_message_size,
            parts: Vec::new(),
            part_bytes: 0,
        }
    }

    async fn read_greeting(&mut self) -> Result<(), ZmtpError> {
        let mut greeting = [0u8; GREETING_LEN];
        self.inner.read_exact(&mut greeting).await?;
        if greeting[0] != 0xFF || greeting[9] != 0x7F {
            return Err(ZmtpError::NotZmtp);
        }
        if greeting[10] < 3 {
            return Err(ZmtpError::OldVersion(greeting[10]));
        }
        let mechanism = &greeting[12..32];
        let name_len = mechanism
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(mechanism.len());
        if &mechanism[..name_len] != b"NULL" {
            let name = String::from_utf8_lossy(&mechanism[..name_len]).into_owned();
            return Err(ZmtpError::Mechanism(name));
        }
        Ok(())
    }

    /// One frame's flags and body, its size checked against what is left of the
    /// message limit before the body is read; `None` when the peer closed the
    /// connection between frames.
    async fn read_frame(&mut self) -> Result<Option<(u8, Bytes)>, ZmtpError> {
        let flags = match self.inner.read_u8().await {
            Ok(flags) => flags,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = if flags & FLAG_LONG != 0 {
            self.inner.read_u64().await?
        } else {
            u64::from(self.inner.read_u8().await?)
        };
        let budget = self.max_message_size.saturating_sub(self.part_bytes);
        let size = usize::try_from(size)
            .ok()
            .filter(|&size| size.saturating_add(FRAME_OVERHEAD) <= budget)
            .ok_or(ZmtpError::TooLarge {
                limit: self.max_message_size,
            })?;
        let mut body = vec![0u8; size];
        self.inner.read_exact(&mut body).await?;
        Ok(Some((flags, Bytes::from(body))))
    }

    /// The data of the peer's first frame, which must be its `READY` command: in ZMTP
    /// 3.0's grammar a connection is greeting, handshake, then traffic, and the NULL
    /// mechanism's handshake is that one command. Read as a single frame so that
    /// message frames sent ahead of it are refused, not kept for the first message.
    async fn read_ready(&mut self) -> Result<Bytes, ZmtpError> {
        let Some((flags, body)) = self.read_frame().await? else {
            return Err(ZmtpError::NotReady);
        };
        if flags & FLAG_COMMAND == 0 {
            return Err(ZmtpError::NotReady);
        }
        match parse_command(body)? {
            Incoming::Command { name, data } if name.as_ref() == b"READY" => Ok(data),
            _ => Err(ZmtpError::NotReady),
        }
    }

    /// The next message or command; `None` when the peer closed the connection.
    pub async fn next(&mut self) -> Result<Option<Incoming>, ZmtpError> {
        while let Some((flags, body)) = self.read_frame().await? {
            if flags & FLAG_COMMAND != 0 {
                return parse_command(body).map(Some);
            }
            self.part_bytes += body.len() + FRAME_OVERHEAD;
            self.parts.push(body);
            if flags & FLAG_MORE == 0 {
                self.part_bytes = 0;
                return Ok(Some(Incoming::Message(std::mem::take(&mut self.parts))));
            }
        }
        Ok(None)
    }
}

/// A command frame's body: name length, name, then command data.
fn parse_command(body: Bytes) -> Result<Incoming, ZmtpError> {
    let name_len = usize::from(*body.first().ok_or(ZmtpError::MalformedCommand)?);
    if body.len() < 1 + name_len {
        return Err(ZmtpError::MalformedCommand);
    }
    Ok(Incoming::Command {
        name: body.slice(1..1 + name_len),
        data: body.slice(1 + name_len..),
    })
}

/// The `Socket-Type` property of a `READY` command's data. Property names compare
/// case-insensitively (ZMTP 3.0).
fn ready_socket_type(mut data: &[u8]) -> Result<Vec<u8>, ZmtpError> {
    let mut socket_type = None;
    while let Some((&name_len, rest)) = data.split_first() {
        let name_len = usize::from(name_len);
        let name = rest.get(..name_len).ok_or(ZmtpError::MalformedCommand)?;
        let rest = &rest[name_len..];
        let value_len = rest
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or(ZmtpError::MalformedCommand)?;
        let value_len = usize::try_from(value_len).map_err(|_| ZmtpError::MalformedCommand)?;
        let value = rest
            .get(4..4 + value_len)
            .ok_or(ZmtpError::MalformedCommand)?;
        if name.eq_ignore_ascii_case(b"Socket-Type") {
            socket_type = Some(value.to_vec());
        }
        data = &rest[4 + value_len..];
    }
    socket_type.ok_or(ZmtpError::MalformedCommand)
}

/// Writes frames to one connection.
pub struct FrameWriter {
    inner: BoxWrite,
    buffer: Vec<u8>,
}

impl FrameWriter {
    pub fn new(write: BoxWrite) -> FrameWriter {
        FrameWriter {
            inner: write,
            buffer: Vec::new(),
        }
    }

    async fn write_greeting(&mut self) -> io::Result<()> {
        let mut greeting = [0u8; GREETING_LEN];
        greeting[0] = 0xFF;
        greeting[9] = 0x7F;
        greeting[10] = 3;
        greeting[11] = 0;
        greeting[12..16].copy_from_slice(b"NULL");
        self.inner.write_all(&greeting).await?;
        self.inner.flush().await
    }

    async fn write_ready(&mut self, ours: SocketType) -> io::Result<()> {
        let name = ours.name().as_bytes();
        let mut data = Vec::with_capacity(16 + name.len());
        data.push(11);
        data.extend_from_slice(b"Socket-Type");
        data.extend_from_slice(&(name.len() as u32).to_be_bytes());
        data.extend_from_slice(name);
        self.send_command(b"READY", &data).await
    }

    /// Sends a command frame.
    pub async fn send_command(&mut self, name: &[u8], data: &[u8]) -> io::Result<()> {
        let mut body = Vec::with_capacity(1 + name.len() + data.len());
        body.push(name.len().min(255) as u8);
        body.extend_from_slice(&name[..name.len().min(255)]);
        body.extend_from_slice(data);
        self.buffer.clear();
        encode_frame(&mut self.buffer, FLAG_COMMAND, &body);
        self.flush_buffer().await
    }

    /// Sends one message made of `frames`.
    pub async fn send_message(&mut self, frames: &[&[u8]]) -> io::Result<()> {
        self.buffer.clear();
        for (index, frame) in frames.iter().enumerate() {
            let more = if index + 1 < frames.len() {
                FLAG_MORE
            } else {
                0
            };
            encode_frame(&mut self.buffer, more, frame);
        }
        self.flush_buffer().await
    }

    async fn flush_buffer(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buffer).await?;
        self.inner.flush().await
    }
}

fn encode_frame(out: &mut Vec<u8>, flags: u8, body: &[u8]) {
    if body.len() > 255 {
        out.push(flags | FLAG_LONG);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    } else {
        out.push(flags);
        out.push(body.len() as u8);
    }
    out.extend_from_slice(body);
}

/// A connection past the handshake.
pub struct Connection {
    pub reader: FrameReader,
    pub writer: FrameWriter,
    pub peer_type: SocketType,
}

/// Greets the peer, exchanges `READY` and checks that the socket types fit. Both
/// sides send before they read, so the order of the two peers does not matter.
pub async fn handshake(
    read: BoxRead,
    write: BoxWrite,
    ours: SocketType,
    max_message_size: usize,
) -> Result<Connection, ZmtpError> {
    let mut reader = FrameReader::new(read, max_message_size);
    let mut writer = FrameWriter::new(write);
    writer.write_greeting().await?;
    reader.read_greeting().await?;
    writer.write_ready(ours).await?;
    let data = reader.read_ready().await?;
    let peer_name = ready_socket_type(&data)?;
    let peer_type = SocketType::from_name(&peer_name)
        .filter(|&peer| ours.accepts(peer))
        .ok_or_else(|| ZmtpError::Incompatible {
            peer: String::from_utf8_lossy(&peer_name).into_owned(),
            ours: ours.name(),
        })?;
    Ok(Connection {
        reader,
        writer,
        peer_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_zeromq_writes_them() {
        assert_eq!(
            Endpoint::parse("tcp://*:5560").unwrap(),
            Endpoint::Tcp {
                host: "0.0.0.0".into(),
                port: 5560
            }
        );
        let v6 = Endpoint::parse("tcp://[::1]:5562").unwrap();
        assert_eq!(v6.to_string(), "tcp://[::1]:5562");
        assert_eq!(
            Endpoint::parse("ipc:///tmp/x").unwrap(),
            Endpoint::Ipc("/tmp/x".into())
        );
        assert!(Endpoint::parse("tcp://localhost").is_err());
        assert!(Endpoint::parse("tcp://:1").is_err());
        assert!(Endpoint::parse("ipc://*").is_err());
        assert!(Endpoint::parse("inproc://x").is_err());
    }

    #[test]
    fn ready_properties_are_read_case_insensitively() {
        let mut data = vec![11];
        data.extend_from_slice(b"socket-type");
        data.extend_from_slice(&3u32.to_be_bytes());
        data.extend_from_slice(b"PUB");
        assert_eq!(ready_socket_type(&data).unwrap(), b"PUB");
        assert!(ready_socket_type(&data[..data.len() - 1]).is_err());
        assert!(ready_socket_type(&[]).is_err());
    }

    #[test]
    fn truncated_commands_are_errors_not_panics() {
        assert!(parse_command(Bytes::new()).is_err());
        assert!(parse_command(Bytes::from_static(b"\x05REA")).is_err());
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_before_allocation() {
        let mut wire = vec![FLAG_LONG];
        wire.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut reader = FrameReader::new(Box::new(std::io::Cursor::new(wire)), 1024);
        assert!(matches!(
            reader.next().await,
            Err(ZmtpError::TooLarge { limit: 1024 })
        ));
    }

    fn peer_greeting() -> Vec<u8> {
        let mut greeting = vec![0u8; GREETING_LEN];
        greeting[0] = 0xFF;
        greeting[9] = 0x7F;
        greeting[10] = 3;
        greeting[12..16].copy_from_slice(b"NULL");
        greeting
    }

    fn ready_command(socket_type: &[u8]) -> Vec<u8> {
        let mut body = vec![5];
        body.extend_from_slice(b"READY\x0bSocket-Type");
        body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
        body.extend_from_slice(socket_type);
        let mut frame = Vec::new();
        encode_frame(&mut frame, FLAG_COMMAND, &body);
        frame
    }

    async fn handshake_with(wire: Vec<u8>) -> Result<Connection, ZmtpError> {
        let read: BoxRead = Box::new(std::io::Cursor::new(wire));
        handshake(read, Box::new(tokio::io::sink()), SocketType::Pull, 1 << 20).await
    }

    #[tokio::test]
    async fn a_push_peer_that_sends_ready_first_is_connected() {
        let mut wire = peer_greeting();
        wire.extend_from_slice(&ready_command(b"PUSH"));
        encode_frame(&mut wire, 0, b"after");
        let mut connection = handshake_with(wire).await.unwrap();
        assert_eq!(connection.peer_type, SocketType::Push);
        assert_eq!(
            connection.reader.next().await.unwrap(),
            Some(Incoming::Message(vec![Bytes::from_static(b"after")]))
        );
    }

    #[tokio::test]
    async fn message_frames_before_ready_are_refused() {
        let mut wire = peer_greeting();
        encode_frame(&mut wire, FLAG_MORE, b"smuggled");
        wire.extend_from_slice(&ready_command(b"PUSH"));
        encode_frame(&mut wire, 0, b"after");
        assert!(matches!(
            handshake_with(wire).await,
            Err(ZmtpError::NotReady)
        ));
    }

    #[tokio::test]
    async fn multipart_messages_are_assembled() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, FLAG_MORE, b"a");
        encode_frame(&mut wire, 0, &[7u8; 300]);
        let mut reader = FrameReader::new(Box::new(std::io::Cursor::new(wire)), 1 << 20);
        let Some(Incoming::Message(frames)) = reader.next().await.unwrap() else {
            panic!("expected a message");
        };
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].as_ref(), b"a");
        assert_eq!(frames[1].len(), 300);
        assert!(reader.next().await.unwrap().is_none());
    }
}
