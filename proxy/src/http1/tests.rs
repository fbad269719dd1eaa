use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::body::BodyError;

const WAIT: Duration = Duration::from_secs(5);

/// Serves one connection with `handle` and returns a connected client.
async fn serve<H, F>(handle: H) -> TcpStream
where
    H: Fn(Request<Bytes>, SocketAddr) -> F + Send + 'static,
    F: Future<Output = Response<ProxyBody>> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.expect("accept");
        let limits = ConnectionLimits { max_body: 1024 };
        serve_connection(stream, peer, limits, handle).await;
    });
    TcpStream::connect(addr).await.expect("connect")
}

async fn echo(request: Request<Bytes>, _peer: SocketAddr) -> Response<ProxyBody> {
    let text = format!(
        "{} {} {}",
        request.method(),
        request.uri(),
        String::from_utf8_lossy(request.body())
    );
    Response::new(body::full(text))
}

async fn read_until<C: tokio::io::AsyncRead + Unpin>(client: &mut C, needle: &[u8]) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(WAIT, async {
        while !seen.windows(needle.len()).any(|w| w == needle) {
            let n = client.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before {:?}: {:?}",
                needle,
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("in time");
    String::from_utf8_lossy(&seen).into_owned()
}

async fn read_to_end(client: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(WAIT, client.read_to_end(&mut all))
        .await
        .expect("closed in time")
        .expect("read");
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn fixed_body_is_sent_with_content_length() {
    let mut client = serve(echo).await;
    client
        .write_all(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let response = read_until(&mut client, b"GET /a?b=1 ").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("content-length: 11\r\n"), "{response}");
}

#[tokio::test]
async fn content_length_request_body_reaches_the_handler() {
    let mut client = serve(echo).await;
    client
        .write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .expect("send");
    read_until(&mut client, b"POST /p hello").await;
}

#[tokio::test]
async fn chunked_request_body_is_decoded() {
    let mut client = serve(echo).await;
    client
        .write_all(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
        .await
        .expect("send");
    read_until(&mut client, b"POST /c hello world").await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let mut client = serve(echo).await;
    client
        .write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let both = read_until(&mut client, b"GET /2 ").await;
    let first = both.find("GET /1 ").expect("first answered");
    let second = both.find("GET /2 ").expect("second answered");
    assert!(first < second);
}

#[tokio::test]
async fn connection_close_request_closes_after_the_response() {
    let mut client = serve(echo).await;
    client
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let all = read_to_end(&mut client).await;
    assert!(all.contains("connection: close\r\n"), "{all}");
}

/// A body fed by a channel, which records when it is dropped.
struct ChannelBody {
    rx: mpsc::UnboundedReceiver<Bytes>,
    dropped: Arc<AtomicBool>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

impl Drop for ChannelBody {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// A handler that answers one request with a body fed by a channel.
type StreamingBody = Box<
    dyn Fn(
            Request<Bytes>,
            SocketAddr,
        ) -> std::pin::Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>
        + Send,
>;

fn streaming(rx: mpsc::UnboundedReceiver<Bytes>, dropped: Arc<AtomicBool>) -> StreamingBody {
    let slot = std::sync::Mutex::new(Some(rx));
    Box::new(move |_request, _peer| {
        let rx = slot.lock().expect("lock").take().expect("one request");
        let dropped = Arc::clone(&dropped);
        Box::pin(async move { Response::new(ChannelBody { rx, dropped }.boxed_unsync()) })
    })
}

/// A client of `connect` that asked `GET /s` over HTTP/1.1 for a streaming response
/// and read its head. What is sent on the returned sender becomes body frames; the
/// flag turns true once the server dropped the body.
struct OpenStream<C> {
    tx: mpsc::UnboundedSender<Bytes>,
    client: C,
    dropped: Arc<AtomicBool>,
    head: String,
}

async fn open_stream<C, Fut>(connect: impl FnOnce(StreamingBody) -> Fut) -> OpenStream<C>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    Fut: Future<Output = C>,
{
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let dropped = Arc::new(AtomicBool::new(false));
    let mut client = connect(streaming(rx, Arc::clone(&dropped))).await;
    client
        .write_all(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let head = read_until(&mut client, b"\r\n\r\n").await;
    OpenStream {
        tx,
        client,
        dropped,
        head,
    }
}

#[tokio::test]
async fn stream_is_chunked_for_http11_and_ends_with_the_zero_chunk() {
    let OpenStream {
        tx,
        mut client,
        head,
        ..
    } = open_stream(serve).await;
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    tx.send(Bytes::from_static(b"hello\n")).expect("send");
    read_until(&mut client, b"6\r\nhello\n\r\n").await;
    drop(tx);
    read_until(&mut client, b"0\r\n\r\n").await;
}

#[tokio::test]
async fn stream_to_http10_client_is_close_delimited() {
    let (tx, rx) = mpsc::unbounded_channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let mut client = serve(streaming(rx, Arc::clone(&dropped))).await;
    client
        .write_all(b"GET /s HTTP/1.0\r\n\r\n")
        .await
        .expect("send");
    tx.send(Bytes::from_static(b"raw")).expect("send");
    drop(tx);
    let all = read_to_end(&mut client).await;
    assert!(!all.contains("chunked"), "{all}");
    assert!(all.ends_with("\r\n\r\nraw"), "{all:?}");
}

/// Opens a stream, hangs up after its head, and checks the server dropped the body.
/// Shared by the plain and TLS transports.
async fn hangup_drops_the_body<C, Fut>(connect: impl FnOnce(StreamingBody) -> Fut)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    Fut: Future<Output = C>,
{
    let OpenStream {
        tx,
        client,
        dropped,
        ..
    } = open_stream(connect).await;
    drop(client);
    let gone = tokio::time::timeout(WAIT, async {
        while !dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "body dropped after the client left");
    drop(tx);
}

#[tokio::test]
async fn client_hangup_drops_the_streaming_body() {
    hangup_drops_the_body(serve).await;
}

#[tokio::test]
async fn oversized_head_gets_431() {
    let mut client = serve(echo).await;
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    let _ = client.write_all(big.as_bytes()).await;
    let response = read_until(&mut client, b"\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
}

#[tokio::test]
async fn body_over_the_limit_gets_413() {
    let mut client = serve(echo).await;
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        .await
        .expect("send");
    let response = read_until(&mut client, b"\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
}

#[tokio::test]
async fn conflicting_content_lengths_are_rejected() {
    let mut client = serve(echo).await;
    client
        .write_all(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        .await
        .expect("send");
    let response = read_until(&mut client, b"\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
}

/// Sends a body only after the interim `100 Continue` arrives; shared by both
/// transports (over TLS the interim response must be flushed, not left in the session).
async fn interim_response_precedes_the_body<C>(mut client: C)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    client
        .write_all(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .expect("send");
    read_until(&mut client, b"HTTP/1.1 100 Continue\r\n\r\n").await;
    client.write_all(b"ok").await.expect("send body");
    read_until(&mut client, b"POST /e ok").await;
}

#[tokio::test]
async fn expect_continue_gets_an_interim_response() {
    interim_response_precedes_the_body(serve(echo).await).await;
}

#[tokio::test]
async fn reason_phrase_extension_is_written() {
    let mut client = serve(|_request, _peer| async {
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::try_from(b"Nope".to_vec()).expect("valid phrase"));
        response
    })
    .await;
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    read_until(&mut client, b"HTTP/1.1 404 Nope\r\n").await;
}

#[test]
fn chunked_decoder_handles_bytes_arriving_one_at_a_time() {
    let wire = b"3\r\nabc\r\n0\r\n\r\nNEXT";
    let mut decoder = request::ChunkedDecoder::default();
    let mut input = Vec::new();
    let mut out = Vec::new();
    let mut done = false;
    for &byte in wire.iter() {
        input.push(byte);
        if decoder.decode(&mut input, &mut out, 100).expect("valid") {
            done = true;
            break;
        }
    }
    assert!(done);
    assert_eq!(out, b"abc");
}

/// The same driver over TLS: every frame must leave the session at once, since a held
/// stream may wait minutes for the next one.
mod over_tls {
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    #[allow(deprecated)]
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Serves one TLS connection with `handle` and returns a connected TLS client.
    async fn serve_tls<H, F>(handle: H) -> TlsStream<TcpStream>
    where
        H: Fn(Request<Bytes>, SocketAddr) -> F + Send + 'static,
        F: Future<Output = Response<ProxyBody>> + Send,
    {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("generate");
        let cert = CertificateDer::from(generated.cert.der().to_vec());
        let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der()).expect("key");
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.expect("accept");
            let stream = TlsAcceptor::from(Arc::new(server))
                .accept(stream)
                .await
                .expect("handshake");
            let limits = ConnectionLimits { max_body: 1024 };
            serve_connection(stream, peer, limits, handle).await;
        });
        let mut roots = RootCertStore::empty();
        roots.add(cert).expect("root");
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .expect("client handshake")
    }

    #[tokio::test]
    async fn each_small_frame_arrives_without_waiting_for_the_next() {
        let OpenStream {
            tx,
            mut client,
            head,
            ..
        } = open_stream(serve_tls).await;
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        for n in 0..3 {
            let frame = format!("data: {n}\n\n");
            tx.send(Bytes::from(frame.clone())).expect("send");
            read_until(&mut client, frame.as_bytes()).await;
        }
        drop(tx);
        read_until(&mut client, b"0\r\n\r\n").await;
    }

    #[tokio::test]
    async fn a_frame_larger_than_a_tls_record_arrives_whole() {
        let OpenStream { tx, mut client, .. } = open_stream(serve_tls).await;
        let big: String = (0..40_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        tx.send(Bytes::from(format!("{big}END"))).expect("send");
        let seen = read_until(&mut client, b"END\r\n").await;
        assert!(seen.contains(&format!("{:x}\r\n{big}END\r\n", big.len() + 3)));
        drop(tx);
    }

    #[tokio::test]
    async fn expect_continue_is_flushed_before_the_body_is_sent() {
        interim_response_precedes_the_body(serve_tls(echo).await).await;
    }

    #[tokio::test]
    async fn client_hangup_drops_the_streaming_body() {
        hangup_drops_the_body(serve_tls).await;
    }
}
