//! The ZMTP 3.0 wire protocol (NULL security), as far as the relay's outputs need it: an
//! XPUB side that proxies' SUB sockets connect to (§4.3) and a PUSH side that connects to
//! Pushpin-style PULL sockets (§4.2).
//!
//! Why not the `zeromq` crate (0.4.1, the workspace's ZeroMQ dependency)? Its source shows:
//! - it has no XPUB socket (`SocketType::XPUB` exists only as a name in the compatibility
//!   table), and its `PubSocket` keeps each peer's subscriptions in a crate-private map with
//!   no accessor or event, so a publisher cannot learn which channels are subscribed (§9);
//! - `PubSocket::send` drops a message silently when a peer's queue is full (`try_send`,
//!   `BufferFull` ignored), which would let the relay commit offsets of records no proxy
//!   received;
//! - its subscription reader `assert!`s one-frame messages and `unwrap`s the peer lookup,
//!   and `send` hits `todo!()` on unexpected write errors, all inside the relay's process;
//! - `connect` waits for the first connection and never reconnects after a disconnect,
//!   which a proxy restart would turn into a silent PUSH outage.
//!
//! So the relay speaks ZMTP itself. We greet as ZMTP 3.0, so peers (libzmq, the `zeromq`
//! crate, Fjord's proxy) send subscriptions in the 3.0 form, a data frame `0x01`/`0x00` +
//! topic; the 3.1 `SUBSCRIBE`/`CANCEL` commands are understood too.

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
const READ_BUFFER: usize = 8 * 1024;

/// A transport endpoint as ZeroMQ writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://host:port`; `*` as host means every interface, port 0 any free port.
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

/// The socket types the relay is or meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    Pull,
    Push,
    Sub,
    XSub,
    XPub,
}

impl SocketType {
    pub fn name(self) -> &'static str {
        match self {
            SocketType::Pull => "PULL",
            SocketType::Push => "PUSH",
            SocketType::Sub => "SUB",
            SocketType::XSub => "XSUB",
            SocketType::XPub => "XPUB",
        }
    }

    fn from_name(name: &[u8]) -> Option<SocketType> {
        [
            SocketType::Pull,
            SocketType::Push,
            SocketType::Sub,
            SocketType::XSub,
            SocketType::XPub,
        ]
        .into_iter()
        .find(|t| t.name().as_bytes() == name)
    }

    /// ZMTP's compatibility table, for the pairs the relay takes part in.
    fn accepts(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (Push, Pull) | (Pull, Push) | (XPub, Sub | XSub) | (Sub | XSub, XPub)
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

/// What the peer sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Message(Vec<Bytes>),
    Command { name: Bytes, data: Bytes },
}

/// Reads commands and messages from one connection. Not cancel-safe: run it in its own
/// task and forward what it reads.
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

    /// The next message or command; `None` when the peer closed the connection.
    pub async fn next(&mut self) -> Result<Option<Incoming>, ZmtpError> {
        loop {
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
                .filter(|&size| size <= budget)
                .ok_or(ZmtpError::TooLarge {
                    limit: self.max_message_size,
                })?;
            let mut body = vec![0u8; size];
            self.inner.read_exact(&mut body).await?;
            let body = Bytes::from(body);
            if flags & FLAG_COMMAND != 0 {
                return parse_command(body).map(Some);
            }
            self.parts.push(body);
            self.part_bytes += size;
            if flags & FLAG_MORE == 0 {
                self.part_bytes = 0;
                return Ok(Some(Incoming::Message(std::mem::take(&mut self.parts))));
            }
        }
    }
}

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

/// The `Socket-Type` property of a `READY` command's data (names case-insensitive).
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

/// Writes frames to one connection; frames are gathered into one buffer per call so a
/// batch of messages costs one write.
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

    pub async fn send_command(&mut self, name: &[u8], data: &[u8]) -> io::Result<()> {
        let name = &name[..name.len().min(255)];
        let mut body = Vec::with_capacity(1 + name.len() + data.len());
        body.push(name.len() as u8);
        body.extend_from_slice(name);
        body.extend_from_slice(data);
        self.buffer.clear();
        encode_frame(&mut self.buffer, FLAG_COMMAND, &body);
        self.flush_buffer().await
    }

    /// Queues one message made of `frames` into the pending buffer.
    pub fn push_message<F: AsRef<[u8]>>(&mut self, frames: &[F]) {
        for (index, frame) in frames.iter().enumerate() {
            let more = if index + 1 < frames.len() {
                FLAG_MORE
            } else {
                0
            };
            encode_frame(&mut self.buffer, more, frame.as_ref());
        }
    }

    /// Writes everything queued by [`FrameWriter::push_message`].
    pub async fn flush_buffer(&mut self) -> io::Result<()> {
        let result = async {
            self.inner.write_all(&self.buffer).await?;
            self.inner.flush().await
        }
        .await;
        self.buffer.clear();
        result
    }

    /// Answers a `PING` (ZMTP 3.1 heartbeat): `PONG` with the ping's context.
    pub async fn pong(&mut self, ping_data: &[u8]) -> io::Result<()> {
        let context = ping_data.get(2..).unwrap_or_default();
        self.send_command(b"PONG", context).await
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

/// Greets the peer, exchanges `READY` and checks that the socket types fit. Both sides
/// send before they read, so which side starts does not matter.
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
    let Some(Incoming::Command { name, data }) = reader.next().await? else {
        return Err(ZmtpError::NotReady);
    };
    if name.as_ref() != b"READY" {
        return Err(ZmtpError::NotReady);
    }
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

/// Connects to `endpoint` (tcp or ipc) and splits the stream.
pub async fn connect(endpoint: &Endpoint) -> io::Result<(BoxRead, BoxWrite)> {
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            stream.set_nodelay(true)?;
            let (read, write) = stream.into_split();
            Ok((Box::new(read), Box::new(write)))
        }
        Endpoint::Ipc(path) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            let (read, write) = stream.into_split();
            Ok((Box::new(read), Box::new(write)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_zeromq_writes_them() {
        assert_eq!(
            Endpoint::parse("tcp://*:5570").unwrap(),
            Endpoint::Tcp {
                host: "0.0.0.0".into(),
                port: 5570
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:5570").unwrap().to_string(),
            "tcp://[::1]:5570"
        );
        assert!(Endpoint::parse("tcp://localhost").is_err());
        assert!(Endpoint::parse("inproc://x").is_err());
        assert!(Endpoint::parse("ipc://*").is_err());
    }

    #[test]
    fn truncated_commands_are_errors_not_panics() {
        assert!(parse_command(Bytes::new()).is_err());
        assert!(parse_command(Bytes::from_static(b"\x05REA")).is_err());
        assert!(ready_socket_type(&[11, b'S']).is_err());
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

    #[tokio::test]
    async fn two_ends_handshake_and_exchange_messages() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let (left, right) = tokio::join!(
            handshake(Box::new(ar), Box::new(aw), SocketType::XPub, 1024),
            handshake(Box::new(br), Box::new(bw), SocketType::Sub, 1 << 20),
        );
        let (mut xpub, mut sub) = (left.unwrap(), right.unwrap());
        assert_eq!(xpub.peer_type, SocketType::Sub);
        sub.writer.push_message(&[b"\x01chan".as_slice()]);
        sub.writer.flush_buffer().await.unwrap();
        assert_eq!(
            xpub.reader.next().await.unwrap(),
            Some(Incoming::Message(vec![Bytes::from_static(b"\x01chan")]))
        );
        xpub.writer.push_message(&[b"chan".as_slice(), &[7u8; 300]]);
        xpub.writer.flush_buffer().await.unwrap();
        let Some(Incoming::Message(frames)) = sub.reader.next().await.unwrap() else {
            panic!("expected a message");
        };
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].len(), 300);
    }

    #[tokio::test]
    async fn incompatible_peers_are_refused() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let (left, _right) = tokio::join!(
            handshake(Box::new(ar), Box::new(aw), SocketType::XPub, 1024),
            handshake(Box::new(br), Box::new(bw), SocketType::Pull, 1024),
        );
        assert!(matches!(left, Err(ZmtpError::Incompatible { .. })));
    }
}
