//! TLS on the public listener through a real `fjord proxy`: an SSE stream over TLS
//! receives what the control API publishes, over HTTP/1.1 and over HTTP/2 (many
//! streams on one connection), a client that does not speak TLS fails alone, and a
//! bad certificate stops the start with one line.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::direct::{kafka_item, order_data};
use support::h2::read_body_until;
use support::tls::Certificate;
use support::{Origin, Proxy, Reply, SLOW};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const ROUTE: &str =
    "[[proxy.route]]\npath = \"/orders/{id}\"\nchannel = \"orders.{id}\"\nauth = \"public\"\n";

/// The TLS clients of these tests.
impl Certificate {
    async fn proxy(&self) -> Proxy {
        self.proxy_builder().config(ROUTE).start().await
    }

    /// A TLS client that trusts only this certificate and offers only HTTP/1.1.
    async fn connect(&self, addr: SocketAddr) -> TlsStream<TcpStream> {
        self.connect_offering(addr, &[b"http/1.1"]).await
    }

    /// A TLS client that trusts only this certificate and offers `alpn`.
    async fn connect_offering(&self, addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the test CA");
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("server name");
        tokio::time::timeout(
            SLOW,
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .expect("handshake in time")
        .expect("handshake")
    }
}

/// Reads until `needle` has arrived; everything read so far.
async fn read_until<S: AsyncRead + Unpin>(stream: &mut S, seen: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    let found = tokio::time::timeout(SLOW, async {
        while !String::from_utf8_lossy(seen).contains(needle) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before {needle:?}: {:?}",
                String::from_utf8_lossy(seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "{needle:?} did not arrive: {:?}",
        String::from_utf8_lossy(seen)
    );
}

async fn open_stream(cert: &Certificate, proxy: &Proxy) -> (TlsStream<TcpStream>, Vec<u8>) {
    let mut tls = cert.connect(proxy.listen).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(b"GET /orders/1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send request");
    let mut seen = Vec::new();
    read_until(&mut tls, &mut seen, "\r\n\r\n").await;
    let head = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    (tls, seen)
}

#[tokio::test]
async fn sse_over_tls_receives_publishes_while_a_plain_client_fails_alone() {
    let cert = Certificate::generate();
    let proxy = cert.proxy().await;
    let (mut first, mut first_seen) = open_stream(&cert, &proxy).await;
    let (mut second, mut second_seen) = open_stream(&cert, &proxy).await;
    proxy.wait_subscriptions(2).await;

    proxy
        .publish_items(&[kafka_item("orders.1", 0, 1, "1", "before")])
        .await;
    read_until(&mut first, &mut first_seen, "data: before\n\n").await;

    // Plain HTTP on the TLS port: no HTTP answer, the connection ends.
    let mut plain = TcpStream::connect(proxy.listen).await.expect("connect");
    plain
        .write_all(b"GET /orders/1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(SLOW, plain.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the plain connection was not closed");
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    // Garbage that looks like a TLS record header, then a hang-up.
    let mut garbage = TcpStream::connect(proxy.listen).await.expect("connect");
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("send");
    drop(garbage);
    let failures = support::wait_for_async(SLOW, || async {
        let count = proxy
            .metric("fjord_proxy_tls_handshake_failures_total")
            .await;
        (count >= 2.0).then_some(count)
    })
    .await;
    assert!(failures.is_some(), "handshake failures were not counted");

    proxy
        .publish_items(&[kafka_item("orders.1", 0, 2, "1", "after")])
        .await;
    read_until(&mut first, &mut first_seen, "data: after\n\n").await;
    read_until(&mut second, &mut second_seen, "data: after\n\n").await;
    let body = |seen: &[u8]| {
        let text = String::from_utf8_lossy(seen).into_owned();
        let start = text.find("\r\n\r\n").map_or(0, |i| i + 4);
        order_data(&text[start..])
    };
    assert_eq!(body(&first_seen), ["before", "after"]);
    assert_eq!(body(&second_seen), ["before", "after"]);
}

#[tokio::test]
async fn a_long_poll_over_tls_is_answered_with_the_published_item() {
    let cert = Certificate::generate();
    let proxy = cert.proxy().await;
    let mut tls = cert.connect(proxy.listen).await;
    tls.write_all(b"GET /orders/7?mode=poll HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send request");
    proxy.wait_subscriptions(1).await;
    proxy
        .publish_items(&[kafka_item("orders.7", 0, 1, "7", "\"held\"")])
        .await;
    let mut seen = Vec::new();
    read_until(&mut tls, &mut seen, "held").await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
}

/// An HTTP/2 connection to the proxy (ALPN `h2` offered first, as browsers do).
async fn connect_h2(
    cert: &Certificate,
    proxy: &Proxy,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tls = cert
        .connect_offering(proxy.listen, &[b"h2", b"http/1.1"])
        .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

async fn get_h2(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    path: &str,
) -> http::Response<Incoming> {
    support::h2::get(sender, &format!("https://localhost{path}")).await
}

#[tokio::test]
async fn http2_clients_hold_many_streams_on_one_connection() {
    // More streams than the six HTTP/1.1 connections a browser opens per origin.
    const STREAMS: usize = 8;
    let cert = Certificate::generate();
    let proxy = cert.proxy().await;
    let mut sender = connect_h2(&cert, &proxy).await;
    let mut bodies = Vec::new();
    for order in 1..=STREAMS {
        let response = get_h2(&mut sender, &format!("/orders/{order}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "text/event-stream"
        );
        assert!(
            !response.headers().contains_key(http::header::CONNECTION),
            "no connection-specific headers in HTTP/2"
        );
        bodies.push(response.into_body());
    }
    proxy.wait_subscriptions(STREAMS).await;
    let items: Vec<_> = (1..=STREAMS)
        .map(|order| {
            let key = order.to_string();
            kafka_item(&format!("orders.{order}"), 0, 1, &key, &format!("o{order}"))
        })
        .collect();
    proxy.publish_items(&items).await;
    for (index, body) in bodies.iter_mut().enumerate() {
        let mut seen = String::new();
        read_body_until(body, &mut seen, &format!("data: o{}\n\n", index + 1)).await;
        assert_eq!(order_data(&seen), [format!("o{}", index + 1)]);
    }
}

#[tokio::test]
async fn a_reset_http2_stream_ends_its_hold_while_its_neighbours_keep_receiving() {
    let cert = Certificate::generate();
    let proxy = cert.proxy().await;
    let mut sender = connect_h2(&cert, &proxy).await;
    let kept = get_h2(&mut sender, "/orders/1").await;
    let reset = get_h2(&mut sender, "/orders/1").await;
    proxy.wait_subscriptions(2).await;
    // Dropping a response body resets its stream (RST_STREAM), as a closed tab does.
    drop(reset);
    let left = support::wait_for_async(SLOW, || async {
        let count = proxy.metric("fjord_proxy_subscriptions").await;
        (count <= 1.0).then_some(count)
    })
    .await;
    assert_eq!(left, Some(1.0), "the reset stream's subscription remained");
    proxy
        .publish_items(&[kafka_item("orders.1", 0, 1, "1", "still")])
        .await;
    let mut seen = String::new();
    read_body_until(&mut kept.into_body(), &mut seen, "data: still\n\n").await;
}

#[tokio::test]
async fn an_oversized_http2_request_head_gets_431_and_fails_alone() {
    let cert = Certificate::generate();
    let proxy = cert.proxy().await;
    let mut sender = connect_h2(&cert, &proxy).await;
    let kept = get_h2(&mut sender, "/orders/1").await;
    proxy.wait_subscriptions(1).await;
    let request = http::Request::get("https://localhost/orders/2")
        .header("x-padding", "p".repeat(20 * 1024))
        .body(Empty::new())
        .expect("request");
    let refused = tokio::time::timeout(SLOW, sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("an answer, not a broken connection");
    assert_eq!(refused.status(), 431);
    proxy
        .publish_items(&[kafka_item("orders.1", 0, 1, "1", "alive")])
        .await;
    let mut seen = String::new();
    read_body_until(&mut kept.into_body(), &mut seen, "data: alive\n\n").await;
}

#[tokio::test]
async fn a_long_poll_over_http2_is_answered_with_the_published_item() {
    let cert = Certificate::generate();
    let proxy = cert.proxy().await;
    let mut sender = connect_h2(&cert, &proxy).await;
    let request = http::Request::get("https://localhost/orders/7?mode=poll")
        .body(Empty::new())
        .expect("request");
    let pending = sender.send_request(request);
    let answer = tokio::spawn(async move {
        let response = pending.await.expect("response");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body");
        (
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        )
    });
    proxy.wait_subscriptions(1).await;
    proxy
        .publish_items(&[kafka_item("orders.7", 0, 1, "7", "\"held\"")])
        .await;
    let (status, body) = tokio::time::timeout(SLOW, answer)
        .await
        .expect("answered in time")
        .expect("task");
    assert_eq!(status, 200);
    assert!(body.contains("held"), "{body}");
}

#[tokio::test]
async fn a_grip_origin_sees_an_http11_request_and_its_stream_hold_is_served_over_http2() {
    let cert = Certificate::generate();
    let origin = Origin::start(|_| Reply::stream("g", "opened\n")).await;
    let proxy = cert.proxy_builder().origin(origin.addr).start().await;
    let mut sender = connect_h2(&cert, &proxy).await;
    let response = get_h2(&mut sender, "/feed?x=1").await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut seen = String::new();
    read_body_until(&mut body, &mut seen, "opened\n").await;
    let forwarded = origin.requests();
    let request = forwarded.first().expect("the origin was asked");
    assert_eq!(request.target, "/feed?x=1");
    assert_eq!(request.version, "HTTP/1.1");
    assert_eq!(request.header("host"), Some("localhost"));
    proxy
        .publish_items(&[support::stream_item("g", "published\n")])
        .await;
    read_body_until(&mut body, &mut seen, "published\n").await;
}

#[tokio::test]
async fn a_reset_http2_stream_fires_its_gone_link() {
    let cert = Certificate::generate();
    let origin = Origin::start(|request| match request.path() {
        "/gone/9" => Reply::new(204),
        _ => Reply::stream("g", "hi\n").header("Grip-Link", "</gone/9>; rel=gone"),
    })
    .await;
    let proxy = cert.proxy_builder().origin(origin.addr).start().await;
    let mut sender = connect_h2(&cert, &proxy).await;
    let kept = get_h2(&mut sender, "/kept").await;
    let mut reset = get_h2(&mut sender, "/feed").await.into_body();
    let mut seen = String::new();
    read_body_until(&mut reset, &mut seen, "hi\n").await;
    assert!(origin.requests_to("/gone/9").is_empty(), "posted too early");
    drop(reset);
    let gone = origin.wait_path("/gone/9", 1, SLOW).await;
    assert!(gone.is_some(), "no gone link after the stream was reset");
    drop(kept);
}

#[test]
fn a_missing_certificate_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pem");
    let output = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .args(["--zmq-pull", "", "--zmq-sub", ""])
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .stdin(Stdio::null())
        .output()
        .expect("run fjord proxy");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("fjord:")).collect();
    let expected = format!("fjord: TLS: cannot read {}: ", missing.display());
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with(&expected), "{stderr}");
}

#[test]
fn only_one_tls_flag_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .args(["--zmq-pull", "", "--zmq-sub", "", "--tls-cert", "cert.pem"])
        .stdin(Stdio::null())
        .output()
        .expect("run fjord proxy");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("fjord: TLS needs both a certificate and a key"),
        "{stderr}"
    );
}
